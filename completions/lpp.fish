# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_lpp_global_optspecs
    string join \n kubeconfig= context= n/namespace= request-timeout= o/output= y/yes color= v/verbose q/quiet h/help V/version
end

function __fish_lpp_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_lpp_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_lpp_using_subcommand
    set -l cmd (__fish_lpp_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c lpp -n "__fish_lpp_needs_command" -l kubeconfig -d 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]' -r -F
complete -c lpp -n "__fish_lpp_needs_command" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c lpp -n "__fish_lpp_needs_command" -s n -l namespace -d 'The provisioner\'s namespace [default: local-path-storage]; for `demo`, the namespace the demo\'s claim and pod go to [default: a fresh lpp-demo-* namespace]' -r
complete -c lpp -n "__fish_lpp_needs_command" -l request-timeout -d 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client\'s defaults' -r
complete -c lpp -n "__fish_lpp_needs_command" -s o -l output -d 'Output format, where the command has one' -r -f -a "table\t'Human-readable table'
wide\t'Table with more columns'
json\t'JSON document'
yaml\t'YAML document'
name\t'Names only, one per line'"
complete -c lpp -n "__fish_lpp_needs_command" -l color -d 'When to colour the output; NO_COLOR in the environment means never' -r -f -a "auto\t'Colour when stdout/stderr is a terminal and NO_COLOR is unset'
always\t'Always colour'
never\t'Never colour'"
complete -c lpp -n "__fish_lpp_needs_command" -s y -l yes -d 'Answer yes to confirmations (needed to change things without a terminal)'
complete -c lpp -n "__fish_lpp_needs_command" -s v -l verbose -d 'More log output; repeat for more (-vv)'
complete -c lpp -n "__fish_lpp_needs_command" -s q -l quiet -d 'Only errors on stderr'
complete -c lpp -n "__fish_lpp_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lpp -n "__fish_lpp_needs_command" -s V -l version -d 'Print version'
complete -c lpp -n "__fish_lpp_needs_command" -f -a "install" -d 'Install the provisioner\'s objects into the cluster (server-side apply)'
complete -c lpp -n "__fish_lpp_needs_command" -f -a "manifests" -d 'Print the objects `install` would apply, without contacting a cluster'
complete -c lpp -n "__fish_lpp_needs_command" -f -a "uninstall" -d 'Remove what `install` created; data directories on nodes are never touched'
complete -c lpp -n "__fish_lpp_needs_command" -f -a "status" -d 'Show what is installed, who provisions, volumes per node and what needs attention'
complete -c lpp -n "__fish_lpp_needs_command" -f -a "run" -d 'Run the provisioning loop in the foreground until Ctrl-C'
complete -c lpp -n "__fish_lpp_needs_command" -f -a "gc" -d 'List volume directories on nodes that no PV references (see `gc prune`)'
complete -c lpp -n "__fish_lpp_needs_command" -f -a "demo" -d 'Walk through provisioning a volume and reclaiming it, narrated'
complete -c lpp -n "__fish_lpp_needs_command" -f -a "sandbox" -d 'The embedded single-machine Kubernetes API whose nodes are local directories'
complete -c lpp -n "__fish_lpp_needs_command" -f -a "completion" -d 'Print a shell completion script'
complete -c lpp -n "__fish_lpp_needs_command" -f -a "version" -d 'Print the client\'s version, git revision and target, and the server\'s version when reachable'
complete -c lpp -n "__fish_lpp_needs_command" -f -a "generate" -d 'Write the completion scripts and man pages into a directory (used to refresh the repository)'
complete -c lpp -n "__fish_lpp_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lpp -n "__fish_lpp_using_subcommand install" -l storage-class -d 'Name of the StorageClass to create' -r
complete -c lpp -n "__fish_lpp_using_subcommand install" -l provisioner-name -d 'Provisioner name the StorageClass names and the provisioner serves' -r
complete -c lpp -n "__fish_lpp_using_subcommand install" -l path -d 'Base directory for volumes on every node [default: /opt/local-path-provisioner]' -r
complete -c lpp -n "__fish_lpp_using_subcommand install" -l node-path -d 'Base directory for volumes on one node, as NODE=DIR; repeatable' -r
complete -c lpp -n "__fish_lpp_using_subcommand install" -l shared-path -d 'A filesystem shared by all nodes (RWX volumes, no node affinity)' -r
complete -c lpp -n "__fish_lpp_using_subcommand install" -l reclaim-policy -d 'What happens to a volume\'s data when its claim is deleted' -r -f -a "Delete\t'Delete the directory and the PV when the claim goes'
Retain\t'Keep the directory and the PV'"
complete -c lpp -n "__fish_lpp_using_subcommand install" -l binding-mode -d 'When a volume is provisioned' -r -f -a "WaitForFirstConsumer\t'Provision on the node the scheduler picks for the first pod'
Immediate\t'Provision at once (shared filesystem, or claims naming a node)'"
complete -c lpp -n "__fish_lpp_using_subcommand install" -l volume-type -d 'PV source type of new volumes' -r -f -a "hostPath\t'A hostPath PV (type DirectoryOrCreate)'
local\t'A local PV'"
complete -c lpp -n "__fish_lpp_using_subcommand install" -l helper-image -d 'Image of the helper pods that create and delete directories on nodes' -r
complete -c lpp -n "__fish_lpp_using_subcommand install" -l image -d 'Image of the in-cluster Deployment [default: the image the Containerfile builds, tagged with this version]' -r
complete -c lpp -n "__fish_lpp_using_subcommand install" -l dry-run -d 'Only show what would be applied: `client` renders locally, `server` asks the API server' -r -f -a "client\t'Render locally, contact nothing'
server\t'Send to the API server with dryRun=All; nothing is stored'"
complete -c lpp -n "__fish_lpp_using_subcommand install" -l timeout -d 'How long --wait waits' -r
complete -c lpp -n "__fish_lpp_using_subcommand install" -l kubeconfig -d 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]' -r -F
complete -c lpp -n "__fish_lpp_using_subcommand install" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c lpp -n "__fish_lpp_using_subcommand install" -s n -l namespace -d 'The provisioner\'s namespace [default: local-path-storage]; for `demo`, the namespace the demo\'s claim and pod go to [default: a fresh lpp-demo-* namespace]' -r
complete -c lpp -n "__fish_lpp_using_subcommand install" -l request-timeout -d 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client\'s defaults' -r
complete -c lpp -n "__fish_lpp_using_subcommand install" -s o -l output -d 'Output format, where the command has one' -r -f -a "table\t'Human-readable table'
wide\t'Table with more columns'
json\t'JSON document'
yaml\t'YAML document'
name\t'Names only, one per line'"
complete -c lpp -n "__fish_lpp_using_subcommand install" -l color -d 'When to colour the output; NO_COLOR in the environment means never' -r -f -a "auto\t'Colour when stdout/stderr is a terminal and NO_COLOR is unset'
always\t'Always colour'
never\t'Never colour'"
complete -c lpp -n "__fish_lpp_using_subcommand install" -l default-class -d 'Make the StorageClass the cluster\'s default'
complete -c lpp -n "__fish_lpp_using_subcommand install" -l in-cluster -d 'Also run the provisioner in the cluster, as a Deployment running `lpp run`'
complete -c lpp -n "__fish_lpp_using_subcommand install" -l wait -d 'Wait until the installed objects are ready (the Deployment with --in-cluster)'
complete -c lpp -n "__fish_lpp_using_subcommand install" -s y -l yes -d 'Answer yes to confirmations (needed to change things without a terminal)'
complete -c lpp -n "__fish_lpp_using_subcommand install" -s v -l verbose -d 'More log output; repeat for more (-vv)'
complete -c lpp -n "__fish_lpp_using_subcommand install" -s q -l quiet -d 'Only errors on stderr'
complete -c lpp -n "__fish_lpp_using_subcommand install" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lpp -n "__fish_lpp_using_subcommand install" -s V -l version -d 'Print version'
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -l storage-class -d 'Name of the StorageClass to create' -r
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -l provisioner-name -d 'Provisioner name the StorageClass names and the provisioner serves' -r
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -l path -d 'Base directory for volumes on every node [default: /opt/local-path-provisioner]' -r
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -l node-path -d 'Base directory for volumes on one node, as NODE=DIR; repeatable' -r
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -l shared-path -d 'A filesystem shared by all nodes (RWX volumes, no node affinity)' -r
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -l reclaim-policy -d 'What happens to a volume\'s data when its claim is deleted' -r -f -a "Delete\t'Delete the directory and the PV when the claim goes'
Retain\t'Keep the directory and the PV'"
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -l binding-mode -d 'When a volume is provisioned' -r -f -a "WaitForFirstConsumer\t'Provision on the node the scheduler picks for the first pod'
Immediate\t'Provision at once (shared filesystem, or claims naming a node)'"
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -l volume-type -d 'PV source type of new volumes' -r -f -a "hostPath\t'A hostPath PV (type DirectoryOrCreate)'
local\t'A local PV'"
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -l helper-image -d 'Image of the helper pods that create and delete directories on nodes' -r
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -l image -d 'Image of the in-cluster Deployment [default: the image the Containerfile builds, tagged with this version]' -r
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -l kubeconfig -d 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]' -r -F
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -s n -l namespace -d 'The provisioner\'s namespace [default: local-path-storage]; for `demo`, the namespace the demo\'s claim and pod go to [default: a fresh lpp-demo-* namespace]' -r
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -l request-timeout -d 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client\'s defaults' -r
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -s o -l output -d 'Output format, where the command has one' -r -f -a "table\t'Human-readable table'
wide\t'Table with more columns'
json\t'JSON document'
yaml\t'YAML document'
name\t'Names only, one per line'"
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -l color -d 'When to colour the output; NO_COLOR in the environment means never' -r -f -a "auto\t'Colour when stdout/stderr is a terminal and NO_COLOR is unset'
always\t'Always colour'
never\t'Never colour'"
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -l default-class -d 'Make the StorageClass the cluster\'s default'
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -l in-cluster -d 'Also run the provisioner in the cluster, as a Deployment running `lpp run`'
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -s y -l yes -d 'Answer yes to confirmations (needed to change things without a terminal)'
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -s v -l verbose -d 'More log output; repeat for more (-vv)'
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -s q -l quiet -d 'Only errors on stderr'
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lpp -n "__fish_lpp_using_subcommand manifests" -s V -l version -d 'Print version'
complete -c lpp -n "__fish_lpp_using_subcommand uninstall" -l timeout -d 'How long --wait waits' -r
complete -c lpp -n "__fish_lpp_using_subcommand uninstall" -l kubeconfig -d 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]' -r -F
complete -c lpp -n "__fish_lpp_using_subcommand uninstall" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c lpp -n "__fish_lpp_using_subcommand uninstall" -s n -l namespace -d 'The provisioner\'s namespace [default: local-path-storage]; for `demo`, the namespace the demo\'s claim and pod go to [default: a fresh lpp-demo-* namespace]' -r
complete -c lpp -n "__fish_lpp_using_subcommand uninstall" -l request-timeout -d 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client\'s defaults' -r
complete -c lpp -n "__fish_lpp_using_subcommand uninstall" -s o -l output -d 'Output format, where the command has one' -r -f -a "table\t'Human-readable table'
wide\t'Table with more columns'
json\t'JSON document'
yaml\t'YAML document'
name\t'Names only, one per line'"
complete -c lpp -n "__fish_lpp_using_subcommand uninstall" -l color -d 'When to colour the output; NO_COLOR in the environment means never' -r -f -a "auto\t'Colour when stdout/stderr is a terminal and NO_COLOR is unset'
always\t'Always colour'
never\t'Never colour'"
complete -c lpp -n "__fish_lpp_using_subcommand uninstall" -l force -d 'Uninstall even while PVs of the served StorageClasses exist (their data stays on the nodes)'
complete -c lpp -n "__fish_lpp_using_subcommand uninstall" -l dry-run -d 'Only show what would be deleted'
complete -c lpp -n "__fish_lpp_using_subcommand uninstall" -l wait -d 'Wait until the deleted objects are gone'
complete -c lpp -n "__fish_lpp_using_subcommand uninstall" -s y -l yes -d 'Answer yes to confirmations (needed to change things without a terminal)'
complete -c lpp -n "__fish_lpp_using_subcommand uninstall" -s v -l verbose -d 'More log output; repeat for more (-vv)'
complete -c lpp -n "__fish_lpp_using_subcommand uninstall" -s q -l quiet -d 'Only errors on stderr'
complete -c lpp -n "__fish_lpp_using_subcommand uninstall" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lpp -n "__fish_lpp_using_subcommand uninstall" -s V -l version -d 'Print version'
complete -c lpp -n "__fish_lpp_using_subcommand status" -l provisioner-name -d 'Provisioner name whose Lease, classes and volumes to show' -r
complete -c lpp -n "__fish_lpp_using_subcommand status" -l events-since -d 'How far back to show Warning events' -r
complete -c lpp -n "__fish_lpp_using_subcommand status" -l kubeconfig -d 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]' -r -F
complete -c lpp -n "__fish_lpp_using_subcommand status" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c lpp -n "__fish_lpp_using_subcommand status" -s n -l namespace -d 'The provisioner\'s namespace [default: local-path-storage]; for `demo`, the namespace the demo\'s claim and pod go to [default: a fresh lpp-demo-* namespace]' -r
complete -c lpp -n "__fish_lpp_using_subcommand status" -l request-timeout -d 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client\'s defaults' -r
complete -c lpp -n "__fish_lpp_using_subcommand status" -s o -l output -d 'Output format, where the command has one' -r -f -a "table\t'Human-readable table'
wide\t'Table with more columns'
json\t'JSON document'
yaml\t'YAML document'
name\t'Names only, one per line'"
complete -c lpp -n "__fish_lpp_using_subcommand status" -l color -d 'When to colour the output; NO_COLOR in the environment means never' -r -f -a "auto\t'Colour when stdout/stderr is a terminal and NO_COLOR is unset'
always\t'Always colour'
never\t'Never colour'"
complete -c lpp -n "__fish_lpp_using_subcommand status" -s y -l yes -d 'Answer yes to confirmations (needed to change things without a terminal)'
complete -c lpp -n "__fish_lpp_using_subcommand status" -s v -l verbose -d 'More log output; repeat for more (-vv)'
complete -c lpp -n "__fish_lpp_using_subcommand status" -s q -l quiet -d 'Only errors on stderr'
complete -c lpp -n "__fish_lpp_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lpp -n "__fish_lpp_using_subcommand status" -s V -l version -d 'Print version'
complete -c lpp -n "__fish_lpp_using_subcommand run" -l provisioner-name -d 'Provisioner name to serve; StorageClasses naming it are ours' -r
complete -c lpp -n "__fish_lpp_using_subcommand run" -l config-map -d 'ConfigMap (in the provisioner\'s namespace) holding config.json, setup, teardown and helperPod.yaml; watched and reloaded on change' -r
complete -c lpp -n "__fish_lpp_using_subcommand run" -l config -d 'Read config.json from this file instead of the ConfigMap (reloaded when it changes)' -r -F
complete -c lpp -n "__fish_lpp_using_subcommand run" -l helper-pod-file -d 'Read the helper pod template from this file instead of the ConfigMap' -r -F
complete -c lpp -n "__fish_lpp_using_subcommand run" -l service-account-name -d 'ServiceAccount the helper pods run as' -r
complete -c lpp -n "__fish_lpp_using_subcommand run" -l helper-image -d 'Image of the helper pods, replacing the template\'s [default: the template\'s image]' -r
complete -c lpp -n "__fish_lpp_using_subcommand run" -l workers -d 'Operations in flight at once (waiting on a helper pod holds no worker)' -r
complete -c lpp -n "__fish_lpp_using_subcommand run" -l provisioning-retry-count -d 'Retries of a failed provisioning before giving up until the claim changes; 0 retries forever (as upstream)' -r
complete -c lpp -n "__fish_lpp_using_subcommand run" -l deletion-retry-count -d 'Retries of a failed reclaim before giving up until the volume changes; 0 retries forever (as upstream)' -r
complete -c lpp -n "__fish_lpp_using_subcommand run" -l metrics-addr -d 'Serve Prometheus metrics on /metrics and health on /healthz and /readyz at this address' -r
complete -c lpp -n "__fish_lpp_using_subcommand run" -l log-format -d 'Log line format: text (one line per action), or json (one object per line; action lines carry action, object, node, path and seconds fields)' -r -f -a "text\t'One concise human line per action'
json\t'One JSON object per line'"
complete -c lpp -n "__fish_lpp_using_subcommand run" -l lease-name -d 'Name of the Lease [default: the provisioner name with \'/\' replaced by \'-\']' -r
complete -c lpp -n "__fish_lpp_using_subcommand run" -l kubeconfig -d 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]' -r -F
complete -c lpp -n "__fish_lpp_using_subcommand run" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c lpp -n "__fish_lpp_using_subcommand run" -s n -l namespace -d 'The provisioner\'s namespace [default: local-path-storage]; for `demo`, the namespace the demo\'s claim and pod go to [default: a fresh lpp-demo-* namespace]' -r
complete -c lpp -n "__fish_lpp_using_subcommand run" -l request-timeout -d 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client\'s defaults' -r
complete -c lpp -n "__fish_lpp_using_subcommand run" -s o -l output -d 'Output format, where the command has one' -r -f -a "table\t'Human-readable table'
wide\t'Table with more columns'
json\t'JSON document'
yaml\t'YAML document'
name\t'Names only, one per line'"
complete -c lpp -n "__fish_lpp_using_subcommand run" -l color -d 'When to colour the output; NO_COLOR in the environment means never' -r -f -a "auto\t'Colour when stdout/stderr is a terminal and NO_COLOR is unset'
always\t'Always colour'
never\t'Never colour'"
complete -c lpp -n "__fish_lpp_using_subcommand run" -l allow-unsafe-helper-pod-template -d 'Accept a helper pod template that fails the safety checks (extra volumes, privileges, ...)'
complete -c lpp -n "__fish_lpp_using_subcommand run" -l no-leader-election -d 'Do not take the provisioner Lease (two provisioners may then both act)'
complete -c lpp -n "__fish_lpp_using_subcommand run" -s y -l yes -d 'Answer yes to confirmations (needed to change things without a terminal)'
complete -c lpp -n "__fish_lpp_using_subcommand run" -s v -l verbose -d 'More log output; repeat for more (-vv)'
complete -c lpp -n "__fish_lpp_using_subcommand run" -s q -l quiet -d 'Only errors on stderr'
complete -c lpp -n "__fish_lpp_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lpp -n "__fish_lpp_using_subcommand run" -s V -l version -d 'Print version'
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -l node -d 'Only this node; repeatable' -r
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -l storage-class -d 'Only the base paths of this StorageClass' -r
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -l older-than -d 'Only entries not modified for this long (so nothing being provisioned right now is listed)' -r
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -l provisioner-name -d 'Provisioner name whose ConfigMap names the base paths' -r
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -l config-map -d 'ConfigMap (in the provisioner\'s namespace) naming the base paths and the helper template' -r
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -l helper-image -d 'Image of the inventory helper pods [default: the template\'s image]' -r
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -l kubeconfig -d 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]' -r -F
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -s n -l namespace -d 'The provisioner\'s namespace [default: local-path-storage]; for `demo`, the namespace the demo\'s claim and pod go to [default: a fresh lpp-demo-* namespace]' -r
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -l request-timeout -d 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client\'s defaults' -r
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -s o -l output -d 'Output format, where the command has one' -r -f -a "table\t'Human-readable table'
wide\t'Table with more columns'
json\t'JSON document'
yaml\t'YAML document'
name\t'Names only, one per line'"
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -l color -d 'When to colour the output; NO_COLOR in the environment means never' -r -f -a "auto\t'Colour when stdout/stderr is a terminal and NO_COLOR is unset'
always\t'Always colour'
never\t'Never colour'"
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -l exit-code -d 'Fail (exit 1) when orphans are found, for cron and CI'
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -s y -l yes -d 'Answer yes to confirmations (needed to change things without a terminal)'
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -s v -l verbose -d 'More log output; repeat for more (-vv)'
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -s q -l quiet -d 'Only errors on stderr'
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -s V -l version -d 'Print version'
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -f -a "prune" -d 'Delete (or --archive) what `gc` lists, after confirmation'
complete -c lpp -n "__fish_lpp_using_subcommand gc; and not __fish_seen_subcommand_from prune help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from prune" -l node -d 'Only this node; repeatable' -r
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from prune" -l storage-class -d 'Only the base paths of this StorageClass' -r
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from prune" -l older-than -d 'Only entries not modified for this long (so nothing being provisioned right now is listed)' -r
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from prune" -l provisioner-name -d 'Provisioner name whose ConfigMap names the base paths' -r
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from prune" -l config-map -d 'ConfigMap (in the provisioner\'s namespace) naming the base paths and the helper template' -r
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from prune" -l helper-image -d 'Image of the inventory helper pods [default: the template\'s image]' -r
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from prune" -l kubeconfig -d 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]' -r -F
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from prune" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from prune" -s n -l namespace -d 'The provisioner\'s namespace [default: local-path-storage]; for `demo`, the namespace the demo\'s claim and pod go to [default: a fresh lpp-demo-* namespace]' -r
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from prune" -l request-timeout -d 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client\'s defaults' -r
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from prune" -s o -l output -d 'Output format, where the command has one' -r -f -a "table\t'Human-readable table'
wide\t'Table with more columns'
json\t'JSON document'
yaml\t'YAML document'
name\t'Names only, one per line'"
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from prune" -l color -d 'When to colour the output; NO_COLOR in the environment means never' -r -f -a "auto\t'Colour when stdout/stderr is a terminal and NO_COLOR is unset'
always\t'Always colour'
never\t'Never colour'"
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from prune" -l dry-run -d 'Only show what would be deleted'
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from prune" -l archive -d 'Move each directory to <base>/.lpp-trash/ instead of deleting it'
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from prune" -s y -l yes -d 'Answer yes to confirmations (needed to change things without a terminal)'
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from prune" -s v -l verbose -d 'More log output; repeat for more (-vv)'
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from prune" -s q -l quiet -d 'Only errors on stderr'
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from prune" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from prune" -s V -l version -d 'Print version'
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from help" -f -a "prune" -d 'Delete (or --archive) what `gc` lists, after confirmation'
complete -c lpp -n "__fish_lpp_using_subcommand gc; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lpp -n "__fish_lpp_using_subcommand demo" -l storage-class -d 'StorageClass of the demo\'s claim' -r
complete -c lpp -n "__fish_lpp_using_subcommand demo" -l image -d 'Image of the demo pod' -r
complete -c lpp -n "__fish_lpp_using_subcommand demo" -l timeout -d 'How long each step may wait' -r
complete -c lpp -n "__fish_lpp_using_subcommand demo" -l kubeconfig -d 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]' -r -F
complete -c lpp -n "__fish_lpp_using_subcommand demo" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c lpp -n "__fish_lpp_using_subcommand demo" -s n -l namespace -d 'The provisioner\'s namespace [default: local-path-storage]; for `demo`, the namespace the demo\'s claim and pod go to [default: a fresh lpp-demo-* namespace]' -r
complete -c lpp -n "__fish_lpp_using_subcommand demo" -l request-timeout -d 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client\'s defaults' -r
complete -c lpp -n "__fish_lpp_using_subcommand demo" -s o -l output -d 'Output format, where the command has one' -r -f -a "table\t'Human-readable table'
wide\t'Table with more columns'
json\t'JSON document'
yaml\t'YAML document'
name\t'Names only, one per line'"
complete -c lpp -n "__fish_lpp_using_subcommand demo" -l color -d 'When to colour the output; NO_COLOR in the environment means never' -r -f -a "auto\t'Colour when stdout/stderr is a terminal and NO_COLOR is unset'
always\t'Always colour'
never\t'Never colour'"
complete -c lpp -n "__fish_lpp_using_subcommand demo" -l sandbox -d 'Run against the embedded sandbox cluster instead of the current context'
complete -c lpp -n "__fish_lpp_using_subcommand demo" -l non-interactive -d 'Run straight through without waiting for Enter (automatic when stdin is not a terminal)'
complete -c lpp -n "__fish_lpp_using_subcommand demo" -l keep -d 'Leave the demo\'s objects in place at the end'
complete -c lpp -n "__fish_lpp_using_subcommand demo" -s y -l yes -d 'Answer yes to confirmations (needed to change things without a terminal)'
complete -c lpp -n "__fish_lpp_using_subcommand demo" -s v -l verbose -d 'More log output; repeat for more (-vv)'
complete -c lpp -n "__fish_lpp_using_subcommand demo" -s q -l quiet -d 'Only errors on stderr'
complete -c lpp -n "__fish_lpp_using_subcommand demo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lpp -n "__fish_lpp_using_subcommand demo" -s V -l version -d 'Print version'
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and not __fish_seen_subcommand_from up help" -l kubeconfig -d 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]' -r -F
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and not __fish_seen_subcommand_from up help" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and not __fish_seen_subcommand_from up help" -s n -l namespace -d 'The provisioner\'s namespace [default: local-path-storage]; for `demo`, the namespace the demo\'s claim and pod go to [default: a fresh lpp-demo-* namespace]' -r
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and not __fish_seen_subcommand_from up help" -l request-timeout -d 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client\'s defaults' -r
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and not __fish_seen_subcommand_from up help" -s o -l output -d 'Output format, where the command has one' -r -f -a "table\t'Human-readable table'
wide\t'Table with more columns'
json\t'JSON document'
yaml\t'YAML document'
name\t'Names only, one per line'"
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and not __fish_seen_subcommand_from up help" -l color -d 'When to colour the output; NO_COLOR in the environment means never' -r -f -a "auto\t'Colour when stdout/stderr is a terminal and NO_COLOR is unset'
always\t'Always colour'
never\t'Never colour'"
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and not __fish_seen_subcommand_from up help" -s y -l yes -d 'Answer yes to confirmations (needed to change things without a terminal)'
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and not __fish_seen_subcommand_from up help" -s v -l verbose -d 'More log output; repeat for more (-vv)'
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and not __fish_seen_subcommand_from up help" -s q -l quiet -d 'Only errors on stderr'
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and not __fish_seen_subcommand_from up help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and not __fish_seen_subcommand_from up help" -s V -l version -d 'Print version'
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and not __fish_seen_subcommand_from up help" -f -a "up" -d 'Serve a sandbox cluster on 127.0.0.1 in the foreground until Ctrl-C'
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and not __fish_seen_subcommand_from up help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -l dir -d 'Directory holding the nodes\' filesystems and the sandbox\'s state' -r -F
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -l nodes -d 'Number of nodes' -r
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -l port -d 'Port on 127.0.0.1; 0 picks a free one' -r
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -l write-kubeconfig -d 'Write a kubeconfig (context lpp-sandbox) here once the API is ready' -r -F
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -l disk -d 'Declare a node path a disk of SIZE, e.g. node-1:/opt/local-path-provisioner=10Gi; options ,fs=TYPE (default ext4) and ,mountpoint=false (a directory on a disk mounted higher up); repeatable. The directory is made on the node; used is what is stored under it, available the rest of SIZE' -r
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -l fault-error-rate -d 'Fault injection: fraction of requests answered 500 Internal Server Error (0..1)' -r
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -l fault-throttle-rate -d 'Fault injection: fraction of requests answered 429 Too Many Requests (0..1)' -r
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -l fault-watch-drop-rate -d 'Fault injection: chance per event that a watch stream is dropped (0..1)' -r
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -l fault-latency -d 'Fault injection: latency added to every request, e.g. 20ms' -r
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -l kubeconfig -d 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]' -r -F
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -s n -l namespace -d 'The provisioner\'s namespace [default: local-path-storage]; for `demo`, the namespace the demo\'s claim and pod go to [default: a fresh lpp-demo-* namespace]' -r
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -l request-timeout -d 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client\'s defaults' -r
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -s o -l output -d 'Output format, where the command has one' -r -f -a "table\t'Human-readable table'
wide\t'Table with more columns'
json\t'JSON document'
yaml\t'YAML document'
name\t'Names only, one per line'"
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -l color -d 'When to colour the output; NO_COLOR in the environment means never' -r -f -a "auto\t'Colour when stdout/stderr is a terminal and NO_COLOR is unset'
always\t'Always colour'
never\t'Never colour'"
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -s y -l yes -d 'Answer yes to confirmations (needed to change things without a terminal)'
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -s v -l verbose -d 'More log output; repeat for more (-vv)'
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -s q -l quiet -d 'Only errors on stderr'
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from up" -s V -l version -d 'Print version'
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from help" -f -a "up" -d 'Serve a sandbox cluster on 127.0.0.1 in the foreground until Ctrl-C'
complete -c lpp -n "__fish_lpp_using_subcommand sandbox; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lpp -n "__fish_lpp_using_subcommand completion" -l kubeconfig -d 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]' -r -F
complete -c lpp -n "__fish_lpp_using_subcommand completion" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c lpp -n "__fish_lpp_using_subcommand completion" -s n -l namespace -d 'The provisioner\'s namespace [default: local-path-storage]; for `demo`, the namespace the demo\'s claim and pod go to [default: a fresh lpp-demo-* namespace]' -r
complete -c lpp -n "__fish_lpp_using_subcommand completion" -l request-timeout -d 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client\'s defaults' -r
complete -c lpp -n "__fish_lpp_using_subcommand completion" -s o -l output -d 'Output format, where the command has one' -r -f -a "table\t'Human-readable table'
wide\t'Table with more columns'
json\t'JSON document'
yaml\t'YAML document'
name\t'Names only, one per line'"
complete -c lpp -n "__fish_lpp_using_subcommand completion" -l color -d 'When to colour the output; NO_COLOR in the environment means never' -r -f -a "auto\t'Colour when stdout/stderr is a terminal and NO_COLOR is unset'
always\t'Always colour'
never\t'Never colour'"
complete -c lpp -n "__fish_lpp_using_subcommand completion" -s y -l yes -d 'Answer yes to confirmations (needed to change things without a terminal)'
complete -c lpp -n "__fish_lpp_using_subcommand completion" -s v -l verbose -d 'More log output; repeat for more (-vv)'
complete -c lpp -n "__fish_lpp_using_subcommand completion" -s q -l quiet -d 'Only errors on stderr'
complete -c lpp -n "__fish_lpp_using_subcommand completion" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lpp -n "__fish_lpp_using_subcommand completion" -s V -l version -d 'Print version'
complete -c lpp -n "__fish_lpp_using_subcommand version" -l kubeconfig -d 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]' -r -F
complete -c lpp -n "__fish_lpp_using_subcommand version" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c lpp -n "__fish_lpp_using_subcommand version" -s n -l namespace -d 'The provisioner\'s namespace [default: local-path-storage]; for `demo`, the namespace the demo\'s claim and pod go to [default: a fresh lpp-demo-* namespace]' -r
complete -c lpp -n "__fish_lpp_using_subcommand version" -l request-timeout -d 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client\'s defaults' -r
complete -c lpp -n "__fish_lpp_using_subcommand version" -s o -l output -d 'Output format, where the command has one' -r -f -a "table\t'Human-readable table'
wide\t'Table with more columns'
json\t'JSON document'
yaml\t'YAML document'
name\t'Names only, one per line'"
complete -c lpp -n "__fish_lpp_using_subcommand version" -l color -d 'When to colour the output; NO_COLOR in the environment means never' -r -f -a "auto\t'Colour when stdout/stderr is a terminal and NO_COLOR is unset'
always\t'Always colour'
never\t'Never colour'"
complete -c lpp -n "__fish_lpp_using_subcommand version" -s y -l yes -d 'Answer yes to confirmations (needed to change things without a terminal)'
complete -c lpp -n "__fish_lpp_using_subcommand version" -s v -l verbose -d 'More log output; repeat for more (-vv)'
complete -c lpp -n "__fish_lpp_using_subcommand version" -s q -l quiet -d 'Only errors on stderr'
complete -c lpp -n "__fish_lpp_using_subcommand version" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lpp -n "__fish_lpp_using_subcommand version" -s V -l version -d 'Print version'
complete -c lpp -n "__fish_lpp_using_subcommand generate" -l kubeconfig -d 'Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as kubectl does]' -r -F
complete -c lpp -n "__fish_lpp_using_subcommand generate" -l context -d 'The kubeconfig context to use [default: the current context]' -r
complete -c lpp -n "__fish_lpp_using_subcommand generate" -s n -l namespace -d 'The provisioner\'s namespace [default: local-path-storage]; for `demo`, the namespace the demo\'s claim and pod go to [default: a fresh lpp-demo-* namespace]' -r
complete -c lpp -n "__fish_lpp_using_subcommand generate" -l request-timeout -d 'How long to wait for a single API request, e.g. 30s or 2m; 0 means the client\'s defaults' -r
complete -c lpp -n "__fish_lpp_using_subcommand generate" -s o -l output -d 'Output format, where the command has one' -r -f -a "table\t'Human-readable table'
wide\t'Table with more columns'
json\t'JSON document'
yaml\t'YAML document'
name\t'Names only, one per line'"
complete -c lpp -n "__fish_lpp_using_subcommand generate" -l color -d 'When to colour the output; NO_COLOR in the environment means never' -r -f -a "auto\t'Colour when stdout/stderr is a terminal and NO_COLOR is unset'
always\t'Always colour'
never\t'Never colour'"
complete -c lpp -n "__fish_lpp_using_subcommand generate" -s y -l yes -d 'Answer yes to confirmations (needed to change things without a terminal)'
complete -c lpp -n "__fish_lpp_using_subcommand generate" -s v -l verbose -d 'More log output; repeat for more (-vv)'
complete -c lpp -n "__fish_lpp_using_subcommand generate" -s q -l quiet -d 'Only errors on stderr'
complete -c lpp -n "__fish_lpp_using_subcommand generate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lpp -n "__fish_lpp_using_subcommand generate" -s V -l version -d 'Print version'
complete -c lpp -n "__fish_lpp_using_subcommand help; and not __fish_seen_subcommand_from install manifests uninstall status run gc demo sandbox completion version generate help" -f -a "install" -d 'Install the provisioner\'s objects into the cluster (server-side apply)'
complete -c lpp -n "__fish_lpp_using_subcommand help; and not __fish_seen_subcommand_from install manifests uninstall status run gc demo sandbox completion version generate help" -f -a "manifests" -d 'Print the objects `install` would apply, without contacting a cluster'
complete -c lpp -n "__fish_lpp_using_subcommand help; and not __fish_seen_subcommand_from install manifests uninstall status run gc demo sandbox completion version generate help" -f -a "uninstall" -d 'Remove what `install` created; data directories on nodes are never touched'
complete -c lpp -n "__fish_lpp_using_subcommand help; and not __fish_seen_subcommand_from install manifests uninstall status run gc demo sandbox completion version generate help" -f -a "status" -d 'Show what is installed, who provisions, volumes per node and what needs attention'
complete -c lpp -n "__fish_lpp_using_subcommand help; and not __fish_seen_subcommand_from install manifests uninstall status run gc demo sandbox completion version generate help" -f -a "run" -d 'Run the provisioning loop in the foreground until Ctrl-C'
complete -c lpp -n "__fish_lpp_using_subcommand help; and not __fish_seen_subcommand_from install manifests uninstall status run gc demo sandbox completion version generate help" -f -a "gc" -d 'List volume directories on nodes that no PV references (see `gc prune`)'
complete -c lpp -n "__fish_lpp_using_subcommand help; and not __fish_seen_subcommand_from install manifests uninstall status run gc demo sandbox completion version generate help" -f -a "demo" -d 'Walk through provisioning a volume and reclaiming it, narrated'
complete -c lpp -n "__fish_lpp_using_subcommand help; and not __fish_seen_subcommand_from install manifests uninstall status run gc demo sandbox completion version generate help" -f -a "sandbox" -d 'The embedded single-machine Kubernetes API whose nodes are local directories'
complete -c lpp -n "__fish_lpp_using_subcommand help; and not __fish_seen_subcommand_from install manifests uninstall status run gc demo sandbox completion version generate help" -f -a "completion" -d 'Print a shell completion script'
complete -c lpp -n "__fish_lpp_using_subcommand help; and not __fish_seen_subcommand_from install manifests uninstall status run gc demo sandbox completion version generate help" -f -a "version" -d 'Print the client\'s version, git revision and target, and the server\'s version when reachable'
complete -c lpp -n "__fish_lpp_using_subcommand help; and not __fish_seen_subcommand_from install manifests uninstall status run gc demo sandbox completion version generate help" -f -a "generate" -d 'Write the completion scripts and man pages into a directory (used to refresh the repository)'
complete -c lpp -n "__fish_lpp_using_subcommand help; and not __fish_seen_subcommand_from install manifests uninstall status run gc demo sandbox completion version generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lpp -n "__fish_lpp_using_subcommand help; and __fish_seen_subcommand_from gc" -f -a "prune" -d 'Delete (or --archive) what `gc` lists, after confirmation'
complete -c lpp -n "__fish_lpp_using_subcommand help; and __fish_seen_subcommand_from sandbox" -f -a "up" -d 'Serve a sandbox cluster on 127.0.0.1 in the foreground until Ctrl-C'
