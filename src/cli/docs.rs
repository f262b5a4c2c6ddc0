//! Completion scripts and man pages, generated from the clap command itself.

use std::io;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell as CompleteShell;

use super::{Cli, Shell};

/// The clap command, named as it is invoked: `kubectl lpp` when run as the kubectl plugin
/// `kubectl-lpp`, else `lpp`.
pub fn command() -> clap::Command {
    let cmd = Cli::command();
    if invoked_as_kubectl_plugin() {
        cmd.bin_name("kubectl lpp").display_name("kubectl lpp")
    } else {
        cmd
    }
}

fn invoked_as_kubectl_plugin() -> bool {
    std::env::args_os()
        .next()
        .and_then(|arg0| {
            Path::new(&arg0)
                .file_name()
                .map(|name| name.to_string_lossy().starts_with("kubectl-lpp"))
        })
        .unwrap_or(false)
}

/// Writes one shell's completion script.
pub fn write_completion(shell: Shell, out: &mut dyn io::Write) {
    let mut cmd = Cli::command();
    clap_complete::generate(complete_shell(shell), &mut cmd, "lpp", out);
}

fn complete_shell(shell: Shell) -> CompleteShell {
    match shell {
        Shell::Bash => CompleteShell::Bash,
        Shell::Zsh => CompleteShell::Zsh,
        Shell::Fish => CompleteShell::Fish,
        Shell::Powershell => CompleteShell::PowerShell,
        Shell::Elvish => CompleteShell::Elvish,
    }
}

/// Writes `completions/` (bash, zsh, fish, PowerShell) and `man/` (one page per command) under
/// `dir`, as committed in the repository.
pub fn write_docs(dir: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::new();
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions)?;
    for (shell, file) in [
        (Shell::Bash, "lpp.bash"),
        (Shell::Zsh, "_lpp"),
        (Shell::Fish, "lpp.fish"),
        (Shell::Powershell, "_lpp.ps1"),
    ] {
        let mut script = Vec::new();
        write_completion(shell, &mut script);
        let path = completions.join(file);
        std::fs::write(&path, script)?;
        written.push(path);
    }

    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    let mut cmd = Cli::command();
    cmd.build();
    write_man_pages(&cmd, "lpp", &man, &mut written)?;
    Ok(written)
}

fn write_man_pages(
    cmd: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<std::path::PathBuf>,
) -> io::Result<()> {
    if cmd.is_hide_set() {
        return Ok(());
    }
    let page = cmd.clone().name(name.to_owned());
    let mut roff = Vec::new();
    clap_mangen::Man::new(page).render(&mut roff)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, roff)?;
    written.push(path);
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        write_man_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
