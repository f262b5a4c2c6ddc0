complete --keep-order --exclusive --command lpp --arguments "(COMPLETE=fish lpp -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
