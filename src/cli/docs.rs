//! Help examples, completion (scripts and the shells' dynamic requests) and man pages, generated
//! from the clap command itself.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::time::Duration;

use clap::CommandFactory;
use clap_complete::CompletionCandidate;
use clap_complete::env::EnvCompleter;

use super::{Cli, Shell};

/// Examples for each command, by its path (`""` is `lpp` itself), shown under `Examples:` in
/// `--help` and as the man pages' EXAMPLES.
pub fn examples(path: &str) -> &'static str {
    match path {
        "" => {
            "lpp demo --sandbox                   # the walkthrough, with no cluster at all
lpp install && lpp run               # install, then provision from this machine
lpp status                           # what is installed and what needs attention
lpp gc                               # directories no PV references any more"
        }
        "install" => {
            "lpp install                          # apply the provisioner's objects
lpp install --dry-run=server         # ask the server what would change
lpp install --in-cluster --wait      # and run the provisioner as a Deployment
lpp install --path /mnt/disks --default-class --yes"
        }
        "manifests" => {
            "lpp manifests | kubectl apply -f -   # what install applies, through kubectl
lpp manifests --in-cluster -o json
lpp manifests --node-path node-1=/mnt/ssd > local-path.yaml"
        }
        "uninstall" => {
            "lpp uninstall --dry-run              # what would be deleted, and the data left
lpp uninstall                        # refuses while volumes exist
lpp uninstall --force --yes          # goes ahead; data stays on the nodes"
        }
        "status" => {
            "lpp status                           # exit 3 when something needs attention
lpp status -o wide                   # with claim uids, classes and the helper image
lpp status -w                        # print again on every change until Ctrl-C
lpp status -o json | jq .attention"
        }
        "check" => {
            "lpp check                            # every group; exit 3 when something failed
lpp check --pre                      # before `lpp install`: what it would meet
lpp check --node node-1 --timeout 30s
lpp check --strict -o json | jq '.checks[] | select(.status != \"ok\")'"
        }
        "run" => {
            "lpp run                              # in the foreground, until Ctrl-C
lpp run -v 2>&1 | tee run.log        # with lpp's debug lines
lpp run --config config.json --helper-pod-file helperPod.yaml
lpp run --metrics-addr 127.0.0.1:8080 --log-format json"
        }
        "gc" => {
            "lpp gc                               # orphaned directories on every node
lpp gc --node node-1 --older-than 7d -o json
lpp gc --older-than 0                # also entries modified in the last 24h
lpp gc --exit-code                   # exit 1 when anything is found (cron, CI)"
        }
        "usage" => {
            "lpp usage                            # size, used, available and volumes per node and path
lpp usage --volumes                  # also each volume's request and real usage
lpp df --node node-1 -o json         # the same (df is an alias), for machines
lpp usage -o wide                    # with filesystem type and mount point"
        }
        "gc prune" => {
            "lpp gc prune --dry-run               # what would go
lpp gc prune                         # lists them, then asks
lpp gc prune --archive --yes         # move them to <base>/.lpp-trash/ instead"
        }
        "demo" => {
            "lpp demo --sandbox                   # on the embedded sandbox cluster
lpp demo                             # on the current context, after asking
lpp demo --yes -o json               # straight through, one JSON object per step
lpp demo --keep -n walk              # leave namespace walk with the claim and pod"
        }
        "adopt" => {
            "lpp adopt node-1:/opt/local-path-provisioner/restored --claim default/data --dry-run
lpp adopt node-1:/opt/local-path-provisioner/restored --claim default/data --size 20Gi --yes
lpp adopt node-2:/srv/old-data --claim apps/db --allow-outside-base --reclaim-policy Delete"
        }
        "move" => {
            "lpp move default/data --to node-2         # refuses while a pod uses the claim
lpp move default/data --to node-2 --wait --yes   # waits until you scaled its owners down
lpp move default/data --to node-2 --delete-source
lpp move --all-from node-1 --to node-2    # evacuate a node, after showing the plan"
        }
        "sandbox" | "sandbox up" => {
            "lpp sandbox up --dir /tmp/lpp-sandbox
export KUBECONFIG=/tmp/lpp-sandbox/kubeconfig
lpp sandbox up --dir /tmp/s --nodes 3 --fault-error-rate 0.05"
        }
        "completion" => {
            "lpp completion bash > ~/.local/share/bash-completion/completions/lpp
lpp completion zsh > \"${fpath[1]}/_lpp\"
lpp completion fish > ~/.config/fish/completions/lpp.fish
source <(COMPLETE=bash lpp)          # the same, for this shell only"
        }
        "version" => {
            "lpp version                          # client and server; exit 1 without a server
lpp version --client -o json"
        }
        _ => "",
    }
}

/// Environment variables lpp reads, for the man pages.
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "KUBECONFIG",
        "A list of kubeconfig files (separated by ':'), merged as kubectl merges them; entries that \
         do not exist are skipped. Without it, ~/.kube/config. --kubeconfig overrides both.",
    ),
    (
        "NO_COLOR",
        "When set and not empty, no colour (as --color never).",
    ),
    (
        "LPP_LOG",
        "A log filter directive (tracing's env-filter syntax, e.g. lpp=debug or \
         lpp=debug,kube=info) that replaces the level -v and -q set.",
    ),
    (
        "LPP_MOVE_PAUSE_AFTER",
        "Test hook of lpp move, not for everyday use: hold the move after a step (created, \
         copied, retained, claim-deleted or rebound), printing 'lpp move: paused after STEP' on \
         stderr, until LPP_MOVE_PAUSE_FILE exists (else 10 minutes), so that a test can kill lpp \
         at that step and prove the rerun finishes or rolls back the move.",
    ),
    (
        "LPP_MOVE_PAUSE_FILE",
        "With LPP_MOVE_PAUSE_AFTER: the move carries on once this file exists.",
    ),
    (
        "COMPLETE",
        "Set by the completion scripts (COMPLETE=bash lpp prints one): lpp then answers the \
         shell's completion request and exits.",
    ),
];

const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "Success."),
    (
        "1",
        "Failure (with gc --exit-code: orphans found; with version: the server did not answer; \
         with usage: a node could not be measured).",
    ),
    ("2", "Usage error: the command line is wrong."),
    (
        "3",
        "Refused: a confirmation is needed (--yes without a terminal), status found something \
         that needs attention, a check failed (with check --strict, also warned), or a check \
         of adopt or move refused (nothing was changed).",
    ),
    (
        "130",
        "Interrupted by Ctrl-C (demo, or a second Ctrl-C during run).",
    ),
];

/// The clap command as the user sees it: examples under every command's help.
pub fn base_command() -> clap::Command {
    with_examples(Cli::command(), "")
}

fn with_examples(cmd: clap::Command, path: &str) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    let mut cmd = cmd;
    for name in names {
        let sub_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path} {name}")
        };
        cmd = cmd.mut_subcommand(&name, |sub| with_examples(sub, &sub_path));
    }
    let examples = examples(path);
    if examples.is_empty() {
        return cmd;
    }
    let indented: Vec<String> = examples.lines().map(|l| format!("  {l}")).collect();
    let text = match cmd.get_after_help() {
        Some(after) => format!("Examples:\n{}\n\n{after}", indented.join("\n")),
        None => format!("Examples:\n{}", indented.join("\n")),
    };
    cmd.after_help(text)
}

/// The clap command, named as it is invoked: `kubectl lpp` when run as the kubectl plugin
/// `kubectl-lpp`, else `lpp`.
pub fn command() -> clap::Command {
    let cmd = base_command();
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

/// The environment variable the completion scripts set to ask lpp for completions.
const COMPLETE_VAR: &str = "COMPLETE";

/// Answers a shell's dynamic completion request (`COMPLETE=<shell>` in the environment): prints
/// the candidates (or, with no words, the shell's registration script) and returns `true`.
/// Returns `false` at once for a normal run.
pub fn complete_from_env() -> bool {
    let args: Vec<OsString> = std::env::args_os().collect();
    let current_dir = std::env::current_dir().ok();
    match clap_complete::CompleteEnv::with_factory(base_command)
        .var(COMPLETE_VAR)
        .try_complete(args, current_dir.as_deref())
    {
        Ok(done) => done,
        Err(e) => {
            let _ = e.print();
            true
        }
    }
}

fn env_completer(shell: Shell) -> &'static dyn EnvCompleter {
    match shell {
        Shell::Bash => &clap_complete::env::Bash,
        Shell::Zsh => &clap_complete::env::Zsh,
        Shell::Fish => &clap_complete::env::Fish,
        Shell::Powershell => &clap_complete::env::Powershell,
        Shell::Elvish => &clap_complete::env::Elvish,
    }
}

/// Writes one shell's completion script: it registers `lpp` with the shell, which then asks
/// `lpp` itself at every TAB (`COMPLETE=<shell> lpp -- <words>`), so that contexts, namespaces
/// and nodes complete from the kubeconfig and the cluster.
pub fn write_completion(shell: Shell, out: &mut dyn io::Write) -> io::Result<()> {
    env_completer(shell).write_registration(COMPLETE_VAR, "lpp", "lpp", "lpp", out)
}

/// The script kubectl (1.26+) runs to complete `kubectl lpp ...`: installed on PATH as
/// `kubectl_complete-lpp`, it gets the words after `kubectl lpp` and answers as a Cobra program
/// does (one candidate per line, then `:4`, "no file completion").
pub const KUBECTL_COMPLETE_SCRIPT: &str = r#"#!/bin/sh
# Completion of `kubectl lpp ...` (kubectl 1.26+): install on PATH as kubectl_complete-lpp.
# kubectl passes the words after `kubectl lpp`, the last being the one completed.
bin=$(command -v kubectl-lpp || command -v lpp) || exit 0
COMPLETE=fish "$bin" -- lpp "$@"
echo :4
"#;

/// Contexts of the kubeconfig, for `--context <TAB>`.
fn complete_contexts() -> Vec<CompletionCandidate> {
    crate::cluster::context_names()
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

/// Names of `kind` in the current context's cluster, asked within a second or two.
fn complete_from_cluster(kind: crate::cluster::Listed) -> Vec<CompletionCandidate> {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    runtime
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(2),
                crate::cluster::names(&crate::cluster::Target::default(), kind),
            )
            .await
            .unwrap_or_default()
        })
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

/// Namespaces of the cluster, for `-n <TAB>`.
pub(super) fn complete_namespaces() -> Vec<CompletionCandidate> {
    complete_from_cluster(crate::cluster::Listed::Namespaces)
}

/// Nodes of the cluster, for `--node <TAB>`.
pub(super) fn complete_nodes() -> Vec<CompletionCandidate> {
    complete_from_cluster(crate::cluster::Listed::Nodes)
}

/// `--context <TAB>`.
pub(super) fn context_candidates() -> clap_complete::ArgValueCandidates {
    clap_complete::ArgValueCandidates::new(complete_contexts)
}

/// Writes `completions/` (bash, zsh, fish, PowerShell, and kubectl's plugin completion) and
/// `man/` (one page per command) under `dir`, as committed in the repository.
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
        write_completion(shell, &mut script)?;
        let path = completions.join(file);
        std::fs::write(&path, script)?;
        written.push(path);
    }
    let kubectl = completions.join("kubectl_complete-lpp");
    std::fs::write(&kubectl, KUBECTL_COMPLETE_SCRIPT)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o755))?;
    }
    written.push(kubectl);

    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    let mut cmd = base_command();
    cmd.build();
    write_man_pages(&cmd, "lpp", "", &man, &mut written)?;
    Ok(written)
}

/// Text for roff: no line may start with `.` or `'`, and backslashes are escaped.
fn roff_text(text: &str) -> String {
    let escaped = text.replace('\\', "\\e");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

fn write_man_pages(
    cmd: &clap::Command,
    name: &str,
    path: &str,
    dir: &Path,
    written: &mut Vec<std::path::PathBuf>,
) -> io::Result<()> {
    if cmd.is_hide_set() {
        return Ok(());
    }
    // The examples get a section of their own below, not clap_mangen's EXTRA.
    let page = cmd.clone().name(name.to_owned()).after_help("");
    let man = clap_mangen::Man::new(page.clone());
    let mut roff = Vec::new();
    man.render_title(&mut roff)?;
    man.render_name_section(&mut roff)?;
    man.render_synopsis_section(&mut roff)?;
    man.render_description_section(&mut roff)?;
    if page.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut roff)?;
    }
    if page.has_subcommands() {
        man.render_subcommands_section(&mut roff)?;
    }
    let mut extra = String::new();
    let examples = examples(path);
    if !examples.is_empty() {
        extra.push_str(".SH EXAMPLES\n.nf\n");
        for line in examples.lines() {
            extra.push_str(&roff_text(line));
            extra.push('\n');
        }
        extra.push_str(".fi\n");
    }
    extra.push_str(".SH \"EXIT STATUS\"\n");
    for (code, meaning) in EXIT_STATUS {
        extra.push_str(&format!(".TP\n\\fB{code}\\fR\n{}\n", roff_text(meaning)));
    }
    extra.push_str(".SH ENVIRONMENT\n");
    for (variable, meaning) in ENVIRONMENT {
        extra.push_str(&format!(
            ".TP\n\\fB{variable}\\fR\n{}\n",
            roff_text(meaning)
        ));
    }
    extra.push_str(".SH \"SEE ALSO\"\n");
    let mut see: Vec<String> = Vec::new();
    if name != "lpp" {
        see.push("\\fBlpp\\fR(1)".to_owned());
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() != "help" {
            see.push(format!("\\fB{name}\\-{}\\fR(1)", sub.get_name()));
        }
    }
    see.push("\\fBkubectl\\fR(1)".to_owned());
    extra.push_str(&see.join(", "));
    extra.push('\n');
    roff.extend_from_slice(extra.as_bytes());
    man.render_version_section(&mut roff)?;
    let file = dir.join(format!("{name}.1"));
    std::fs::write(&file, roff)?;
    written.push(file);
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let sub_path = if path.is_empty() {
            sub.get_name().to_owned()
        } else {
            format!("{path} {}", sub.get_name())
        };
        write_man_pages(
            sub,
            &format!("{name}-{}", sub.get_name()),
            &sub_path,
            dir,
            written,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_visible_command_has_examples() {
        fn walk(cmd: &clap::Command, path: &str) {
            if cmd.is_hide_set() || cmd.get_name() == "help" {
                return;
            }
            assert!(!examples(path).is_empty(), "`lpp {path}` has no examples");
            for sub in cmd.get_subcommands() {
                let sub_path = if path.is_empty() {
                    sub.get_name().to_owned()
                } else {
                    format!("{path} {}", sub.get_name())
                };
                walk(sub, &sub_path);
            }
        }
        let mut cmd = base_command();
        cmd.build();
        walk(&cmd, "");
    }

    #[test]
    fn roff_text_is_never_a_request() {
        assert_eq!(roff_text(".hidden"), "\\&.hidden");
        assert_eq!(roff_text("a\\b"), "a\\eb");
    }
}
