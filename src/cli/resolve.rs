//! Turns the parsed command line into plain settings, once.

use std::io::IsTerminal;
use std::path::PathBuf;

use super::{
    Cli, ColorWhen, Command, DEFAULT_NAMESPACE, GcCommand, GcScanArgs, ManifestOptions,
    OutputFormat, SandboxCommand, Shell,
};
use crate::cluster::Target;
use crate::controller::{self, LogFormat, RunOptions};
use crate::demo::DemoOptions;
use crate::error::Error;
use crate::gc::{ListOptions, PruneOptions, ScanOptions};
use crate::install::{
    BasePaths, DryRun, InstallOptions, ManifestSettings, StatusOptions, UninstallOptions,
};
use crate::sandbox::{Faults, UpOptions};
use crate::ui::{Format, UiSettings};

/// A command ready to be carried out.
#[derive(Debug)]
pub struct Invocation {
    /// How to reach the cluster (unused by commands that need none).
    pub target: Target,
    /// Output format, colour, prompts and progress, as the global options set them.
    pub ui: UiSettings,
    /// `-v` count minus `-q`: 0 is the command's default log level.
    pub verbosity: i8,
    /// The command to run, with its settings.
    pub plan: Plan,
}

/// Which command, with its settings.
#[derive(Debug)]
pub enum Plan {
    /// `lpp install`.
    Install(InstallOptions),
    /// `lpp manifests`: the objects install would apply.
    Manifests(ManifestSettings),
    /// `lpp uninstall`.
    Uninstall(UninstallOptions),
    /// `lpp status`.
    Status(StatusOptions),
    /// `lpp check`.
    Check(crate::check::CheckOptions),
    /// `lpp run`: the provisioning loop.
    Run(RunOptions),
    /// `lpp gc`: list orphaned volume directories.
    Gc(ListOptions),
    /// `lpp gc prune`: delete or archive them.
    GcPrune(PruneOptions),
    /// `lpp usage` (`df`).
    Usage(crate::capacity::UsageOptions),
    /// `lpp demo`.
    Demo(DemoOptions),
    /// `lpp adopt`.
    Adopt(crate::mobility::adopt::AdoptOptions),
    /// `lpp move`.
    Move(crate::mobility::r#move::MoveOptions),
    /// `lpp sandbox up`.
    SandboxUp(UpOptions),
    /// `lpp completion SHELL`: print the script for this shell.
    Completion(Shell),
    /// `lpp version`; `client_only` with `--client`.
    Version {
        /// `--client`: print only the client's version, contact no server.
        client_only: bool,
    },
    /// The hidden `lpp generate DIR`: write completions/ and man/ under this directory.
    Generate(PathBuf),
}

impl Plan {
    /// The command's name as typed, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Plan::Install(_) => "install",
            Plan::Manifests(_) => "manifests",
            Plan::Uninstall(_) => "uninstall",
            Plan::Status(_) => "status",
            Plan::Check(_) => "check",
            Plan::Run(_) => "run",
            Plan::Gc(_) => "gc",
            Plan::GcPrune(_) => "gc prune",
            Plan::Usage(_) => "usage",
            Plan::Demo(_) => "demo",
            Plan::Adopt(_) => "adopt",
            Plan::Move(_) => "move",
            Plan::SandboxUp(_) => "sandbox up",
            Plan::Completion(_) => "completion",
            Plan::Version { .. } => "version",
            Plan::Generate(_) => "generate",
        }
    }

    /// Whether the first Ctrl-C lets the command finish what it is doing (`run` releases its
    /// Lease), so that a second one must stop it at once.
    pub fn stops_gracefully(&self) -> bool {
        matches!(self, Plan::Run(_))
    }

    /// The output formats this command offers, its default first; empty when `-o` does not apply.
    fn formats(&self) -> &'static [Format] {
        use Format::*;
        match self {
            Plan::Manifests(_) => &[Yaml, Json],
            Plan::Install(_) | Plan::Uninstall(_) => &[Table, Json, Yaml, Name],
            Plan::Status(_) | Plan::Usage(_) => &[Table, Wide, Json, Yaml],
            Plan::Check(_) => &[Table, Json, Yaml],
            Plan::Gc(_) | Plan::GcPrune(_) => &[Table, Wide, Json, Yaml, Name],
            Plan::Demo(_) => &[Table, Json],
            Plan::Adopt(_) | Plan::Move(_) => &[Table, Json, Yaml, Name],
            Plan::Version { .. } => &[Table, Json, Yaml],
            Plan::Run(_) | Plan::SandboxUp(_) | Plan::Completion(_) | Plan::Generate(_) => &[],
        }
    }
}

/// Resolves the parsed command line into an [`Invocation`]; errors are usage errors (exit 2).
pub fn resolve(cli: Cli) -> Result<Invocation, Error> {
    let global = cli.global;
    let namespace = match global.namespace {
        Some(ns) => {
            check_dns_label("--namespace", &ns)?;
            Some(ns)
        }
        None => None,
    };
    let provisioner_ns = || {
        namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
    };

    let plan = match cli.command {
        Command::Install(args) => Plan::Install(InstallOptions {
            manifest: manifest_settings(args.manifest, provisioner_ns())?,
            dry_run: args.dry_run.map(|d| match d {
                super::DryRun::Client => DryRun::Client,
                super::DryRun::Server => DryRun::Server,
            }),
            wait: args.wait.then_some(args.timeout),
        }),
        Command::Manifests(args) => {
            Plan::Manifests(manifest_settings(args.manifest, provisioner_ns())?)
        }
        Command::Uninstall(args) => Plan::Uninstall(UninstallOptions {
            namespace: provisioner_ns(),
            force: args.force,
            dry_run: args.dry_run,
            wait: args.wait.then_some(args.timeout),
        }),
        Command::Status(args) => Plan::Status(StatusOptions {
            namespace: provisioner_ns(),
            provisioner_name: args.provisioner_name,
            events_since: args.events_since,
            watch: args.watch,
        }),
        Command::Check(args) => {
            if args.timeout.is_zero() {
                return Err(Error::Usage(
                    "--timeout 0: every node needs a deadline; give one, e.g. --timeout 1m".into(),
                ));
            }
            Plan::Check(crate::check::CheckOptions {
                namespace: provisioner_ns(),
                provisioner_name: args.provisioner_name,
                config_map: args.config_map,
                nodes: args.nodes,
                pre: args.pre,
                strict: args.strict,
                timeout: args.timeout,
            })
        }
        Command::Run(args)
            if args.capacity_tracking && args.usage_interval.is_some_and(|i| i.is_zero()) =>
        {
            return Err(Error::Usage(
                "--capacity-tracking publishes what each usage refresh measures: give --usage-interval above 0"
                    .into(),
            ));
        }
        Command::Run(args) => Plan::Run(RunOptions {
            namespace: provisioner_ns(),
            lease_name: (!args.no_leader_election).then(|| {
                args.lease_name
                    .clone()
                    .unwrap_or_else(|| controller::lease_name_for(&args.provisioner_name))
            }),
            provisioner_name: args.provisioner_name,
            config_map: args.config_map,
            config_file: args.config,
            helper_pod_file: args.helper_pod_file,
            service_account_name: args.service_account_name,
            helper_image: args.helper_image,
            workers: args.workers,
            // 0 means no limit, as upstream's flags (and its library) read it.
            provisioning_retry_count: Some(args.provisioning_retry_count).filter(|n| *n > 0),
            deletion_retry_count: Some(args.deletion_retry_count).filter(|n| *n > 0),
            allow_unsafe_helper_pod_template: args.allow_unsafe_helper_pod_template,
            metrics_addr: args.metrics_addr,
            origin: String::new(),
            executor: args.executor.map(super::Executor::kind),
            usage_interval: args
                .usage_interval
                .unwrap_or(controller::DEFAULT_USAGE_INTERVAL),
            usage_with_helper_pods: args.usage_interval.is_some() || args.capacity_tracking,
            extra_provisioner_names: if args.capacity_tracking {
                vec![crate::provision::capacity::CAPACITY_PROVISIONER.to_owned()]
            } else {
                Vec::new()
            },
            log_format: match args.log_format {
                super::LogFormat::Text => LogFormat::Text,
                super::LogFormat::Json => LogFormat::Json,
            },
        }),
        Command::Gc(args) => match args.command {
            None => Plan::Gc(ListOptions {
                scan: scan_options(args.scan, provisioner_ns()),
                exit_code: args.exit_code,
            }),
            Some(GcCommand::Prune(prune)) => Plan::GcPrune(PruneOptions {
                scan: scan_options(prune.scan, provisioner_ns()),
                dry_run: prune.dry_run,
                archive: prune.archive,
            }),
        },
        Command::Usage(args) => Plan::Usage(crate::capacity::UsageOptions {
            namespace: provisioner_ns(),
            nodes: args.nodes,
            volumes: args.volumes,
            config_map: args.config_map,
            helper_image: args.helper_image,
        }),
        Command::Demo(args) => Plan::Demo(DemoOptions {
            sandbox: args.sandbox,
            non_interactive: args.non_interactive || global.yes || !std::io::stdin().is_terminal(),
            keep: args.keep,
            namespace: namespace.clone(),
            storage_class: args.storage_class,
            image: args.image,
            step_timeout: args.timeout,
        }),
        Command::Adopt(args) => Plan::Adopt(adopt_options(args, provisioner_ns())?),
        Command::Move(args) => Plan::Move(move_options(args, provisioner_ns())?),
        Command::Sandbox(SandboxCommand::Up(args)) => Plan::SandboxUp(UpOptions {
            dir: args.dir,
            nodes: args.nodes,
            port: args.port,
            write_kubeconfig: args.write_kubeconfig,
            faults: Faults {
                error_rate: args.fault_error_rate,
                throttle_rate: args.fault_throttle_rate,
                watch_drop_rate: args.fault_watch_drop_rate,
                latency: args.fault_latency,
            },
            disks: args.disks,
        }),
        Command::Completion(args) => Plan::Completion(args.shell),
        Command::Version(args) => Plan::Version {
            client_only: args.client,
        },
        Command::Generate(args) => Plan::Generate(args.dir),
    };

    let format = output_format(&plan, global.output)?;
    let auto = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stderr().is_terminal();
    let (color, color_stdout) = match global.color {
        ColorWhen::Always => (true, true),
        ColorWhen::Never => (false, false),
        ColorWhen::Auto => (auto, auto && std::io::stdout().is_terminal()),
    };
    Ok(Invocation {
        target: Target {
            kubeconfig: global.kubeconfig,
            context: global.context,
            request_timeout: global.request_timeout,
            creates_repeatable: false,
        },
        ui: UiSettings {
            format,
            color,
            color_stdout,
            quiet: global.quiet,
            yes: global.yes,
        },
        verbosity: i8::try_from(global.verbose).unwrap_or(i8::MAX) - i8::from(global.quiet),
        plan,
    })
}

fn output_format(plan: &Plan, asked: Option<OutputFormat>) -> Result<Format, Error> {
    let offered = plan.formats();
    let Some(asked) = asked else {
        return Ok(offered.first().copied().unwrap_or(Format::Table));
    };
    let asked = match asked {
        OutputFormat::Table => Format::Table,
        OutputFormat::Wide => Format::Wide,
        OutputFormat::Json => Format::Json,
        OutputFormat::Yaml => Format::Yaml,
        OutputFormat::Name => Format::Name,
    };
    if offered.contains(&asked) {
        return Ok(asked);
    }
    let command = plan.name();
    if offered.is_empty() {
        return Err(Error::Usage(format!(
            "-o/--output does not apply to `lpp {command}`; leave it out"
        )));
    }
    let names: Vec<&str> = offered.iter().map(|f| f.name()).collect();
    Err(Error::Usage(format!(
        "`lpp {command}` cannot print -o {}; use one of: {}",
        asked.name(),
        names.join(", ")
    )))
}

fn manifest_settings(args: ManifestOptions, namespace: String) -> Result<ManifestSettings, Error> {
    let base_paths = match args.shared_path {
        Some(shared) => BasePaths::Shared(shared),
        None => {
            let mut paths = Vec::new();
            if let Some(path) = args.path {
                paths.push((None, path));
            }
            for entry in args.node_paths {
                let Some((node, dir)) = entry.split_once('=') else {
                    return Err(Error::Usage(format!(
                        "--node-path `{entry}` must be NODE=DIR, e.g. --node-path node-1=/mnt/disk1"
                    )));
                };
                if node.is_empty() || dir.is_empty() {
                    return Err(Error::Usage(format!(
                        "--node-path `{entry}` needs both a node and a directory, e.g. node-1=/mnt/disk1"
                    )));
                }
                paths.push((Some(node.to_owned()), dir.to_owned()));
            }
            if paths.iter().all(|(node, _)| node.is_some()) {
                paths.insert(0, (None, "/opt/local-path-provisioner".to_owned()));
            }
            BasePaths::Nodes(paths)
        }
    };
    Ok(ManifestSettings {
        namespace,
        storage_class: args.storage_class,
        provisioner_name: args.provisioner_name,
        base_paths,
        default_class: args.default_class,
        allow_expansion: args.allow_expansion,
        reclaim_policy: match args.reclaim_policy {
            super::ReclaimPolicy::Delete => "Delete",
            super::ReclaimPolicy::Retain => "Retain",
        }
        .to_owned(),
        binding_mode: match args.binding_mode {
            super::BindingMode::WaitForFirstConsumer => "WaitForFirstConsumer",
            super::BindingMode::Immediate => "Immediate",
        }
        .to_owned(),
        volume_type: match args.volume_type {
            super::VolumeType::HostPath => "hostPath",
            super::VolumeType::Local => "local",
        }
        .to_owned(),
        helper_image: args.helper_image,
        in_cluster_image: args.in_cluster.then(|| {
            args.image
                .unwrap_or_else(|| format!("ghcr.io/lpp-dev/lpp:{}", env!("CARGO_PKG_VERSION")))
        }),
        executor: args.executor.kind(),
        capacity_tracking: args.capacity_tracking,
    })
}

fn scan_options(args: GcScanArgs, namespace: String) -> ScanOptions {
    ScanOptions {
        namespace,
        nodes: args.nodes,
        storage_class: args.storage_class,
        older_than: args.older_than,
        provisioner_name: args.provisioner_name,
        config_map: args.config_map,
        helper_image: args.helper_image,
    }
}

fn provisioner_options(
    args: super::MobilityProvisionerArgs,
    namespace: String,
) -> crate::mobility::ProvisionerOptions {
    crate::mobility::ProvisionerOptions {
        namespace,
        provisioner_name: args.provisioner_name,
        config_map: args.config_map,
        helper_image: args.helper_image,
    }
}

fn adopt_options(
    args: super::AdoptArgs,
    namespace: String,
) -> Result<crate::mobility::adopt::AdoptOptions, Error> {
    let (node, path) = args
        .location
        .split_once(':')
        .filter(|(node, path)| !node.is_empty() && !path.is_empty())
        .ok_or_else(|| {
            Error::Usage(format!(
                "`{}` must be NODE:PATH, e.g. node-1:/opt/local-path-provisioner/restored",
                args.location
            ))
        })?;
    let (claim_namespace, claim) = crate::mobility::parse_claim(&args.claim, "--claim")?;
    Ok(crate::mobility::adopt::AdoptOptions {
        provisioner: provisioner_options(args.provisioner, namespace),
        node: node.to_owned(),
        path: path.to_owned(),
        namespace: claim_namespace,
        claim,
        class: args.class,
        size: args.size,
        reclaim_policy: match args.reclaim_policy {
            super::ReclaimPolicy::Delete => "Delete",
            super::ReclaimPolicy::Retain => "Retain",
        }
        .to_owned(),
        allow_outside_base: args.allow_outside_base,
        dry_run: args.dry_run,
    })
}

fn move_options(
    args: super::MoveArgs,
    namespace: String,
) -> Result<crate::mobility::r#move::MoveOptions, Error> {
    let claim = args
        .claim
        .as_deref()
        .map(|c| crate::mobility::parse_claim(c, "the claim"))
        .transpose()?;
    // The test hook that holds a move after a step (documented in the README).
    let pause = match std::env::var("LPP_MOVE_PAUSE_AFTER") {
        Ok(after) if !after.is_empty() => {
            if !crate::mobility::steps::PAUSE_POINTS.contains(&after.as_str()) {
                return Err(Error::Usage(format!(
                    "LPP_MOVE_PAUSE_AFTER={after} is not a step; use one of: {}",
                    crate::mobility::steps::PAUSE_POINTS.join(", ")
                )));
            }
            Some(crate::mobility::r#move::Pause {
                after,
                file: std::env::var_os("LPP_MOVE_PAUSE_FILE").map(PathBuf::from),
            })
        }
        _ => None,
    };
    Ok(crate::mobility::r#move::MoveOptions {
        provisioner: provisioner_options(args.provisioner, namespace),
        claim,
        all_from: args.all_from,
        to: args.to,
        wait: args.wait,
        delete_source: args.delete_source,
        timeout: args.timeout,
        pause,
    })
}

/// A Kubernetes namespace must be a DNS-1123 label.
fn check_dns_label(flag: &str, value: &str) -> Result<(), Error> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{flag} `{value}` is not a valid namespace name: use at most 63 lowercase letters, \
             digits and '-', starting and ending with a letter or digit"
        )))
    }
}
