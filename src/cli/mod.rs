//! The command-line surface: clap types only.
//!
//! Nothing outside this module sees clap. [`resolve`] turns the parsed [`Cli`] into the plain
//! settings structs the rest of the crate reads, once, and reports usage errors (exit code 2).

mod docs;
mod resolve;

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

pub use docs::{
    KUBECTL_COMPLETE_SCRIPT, base_command, command, complete_from_env, examples, write_completion,
    write_docs,
};
pub use resolve::{Invocation, Plan, resolve};

/// The provisioner name upstream registers and lpp serves by default.
pub const DEFAULT_PROVISIONER: &str = crate::upstream::PROVISIONER;
/// The namespace upstream installs into.
pub const DEFAULT_NAMESPACE: &str = crate::upstream::NAMESPACE;

const ABOUT: &str =
    "Local-path volumes for Kubernetes: provision, inspect, garbage-collect and demo";

const LONG_ABOUT: &str = "\
lpp gives Kubernetes PersistentVolumes backed by a directory on a node's own disk, as
rancher/local-path-provisioner does, and is drop-in compatible with its StorageClass, ConfigMap
and PVs. It runs from a laptop through a kubeconfig (or in the cluster), reports failures with
their cause in seconds, finds orphaned volume directories, and brings an embedded sandbox cluster
so everything can be tried with no cluster at all.

Start with `lpp demo --sandbox`.";

const AFTER_HELP: &str = "\
Exit codes: 0 ok, 1 failure, 2 usage error, 3 refused (needs --yes, or a check failed).
Results go to stdout; logs and progress to stderr.";

/// lpp's command line.
#[derive(Debug, Parser)]
#[command(
    name = "lpp",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true,
    arg_required_else_help = true,
    max_term_width = 100
)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes, named as kubectl names them.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Use only this kubeconfig file [default: the KUBECONFIG list, else ~/.kube/config, merged as
    /// kubectl does]
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use [default: the current context]
    #[arg(long, global = true, value_name = "NAME", add = docs::context_candidates())]
    pub context: Option<String>,

    /// The provisioner's namespace [default: local-path-storage]; for `demo`, the namespace the
    /// demo's claim and pod go to [default: a fresh lpp-demo-* namespace]
    #[arg(
        short = 'n',
        long,
        global = true,
        value_name = "NAMESPACE",
        add = clap_complete::ArgValueCandidates::new(docs::complete_namespaces)
    )]
    pub namespace: Option<String>,

    /// How long to wait for a single API request, e.g. 5 (seconds), 30s or 1m; 0 means no
    /// timeout [default: 30s to connect, no limit on answers]
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_request_timeout)]
    pub request_timeout: Option<Duration>,

    /// Output format, where the command has one
    #[arg(short = 'o', long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,

    /// Answer yes to confirmations (needed to change things without a terminal)
    #[arg(short = 'y', long, global = true)]
    pub yes: bool,

    /// When to colour the output; NO_COLOR in the environment means never
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,

    /// More log output: -v adds lpp's debug lines, -vv its trace lines, -vvv the libraries' (kube,
    /// hyper, rustls) too; LPP_LOG=<filter> overrides
    #[arg(short = 'v', long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors on stderr
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
}

/// `-o/--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable table
    Table,
    /// Table with more columns
    Wide,
    /// JSON document
    Json,
    /// YAML document
    Yaml,
    /// Names only, one per line
    Name,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// Colour when stdout/stderr is a terminal and NO_COLOR is unset
    Auto,
    /// Always colour
    Always,
    /// Never colour
    Never,
}

#[derive(Debug, Subcommand)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub enum Command {
    /// Install the provisioner's objects into the cluster (server-side apply)
    #[command(long_about = INSTALL_ABOUT)]
    Install(InstallArgs),

    /// Print the objects `install` would apply, without contacting a cluster
    #[command(long_about = MANIFESTS_ABOUT)]
    Manifests(ManifestsArgs),

    /// Remove what `install` created; data directories on nodes are never touched
    #[command(long_about = UNINSTALL_ABOUT)]
    Uninstall(UninstallArgs),

    /// Show what is installed, who provisions, volumes per node and what needs attention
    #[command(long_about = STATUS_ABOUT)]
    Status(StatusArgs),

    /// Look for what keeps volumes from working, and say what to do about each
    #[command(long_about = CHECK_ABOUT)]
    Check(CheckArgs),

    /// Run the provisioning loop in the foreground until Ctrl-C
    #[command(long_about = RUN_ABOUT)]
    Run(RunArgs),

    /// List volume directories on nodes that no PV references (see `gc prune`)
    #[command(long_about = GC_ABOUT)]
    Gc(GcArgs),

    /// Measure the disks behind the base paths: size, used, available, volumes per node
    #[command(long_about = USAGE_ABOUT, visible_alias = "df")]
    Usage(UsageArgs),

    /// Walk through provisioning a volume and reclaiming it, narrated
    #[command(long_about = DEMO_ABOUT)]
    Demo(DemoArgs),

    /// Make a volume of an existing directory on a node and bind it to a claim
    #[command(long_about = ADOPT_ABOUT, after_help = MOBILITY_AFTER_HELP)]
    Adopt(AdoptArgs),

    /// Move a volume's data to another node and rebind its claim there
    #[command(name = "move", long_about = MOVE_ABOUT, after_help = MOBILITY_AFTER_HELP)]
    Move(MoveArgs),

    /// The embedded single-machine Kubernetes API whose nodes are local directories
    #[command(subcommand)]
    Sandbox(SandboxCommand),

    /// Print a shell completion script
    #[command(long_about = COMPLETION_ABOUT)]
    Completion(CompletionArgs),

    /// Print the client's version, git revision and target, and the server's version
    #[command(long_about = VERSION_ABOUT)]
    Version(VersionArgs),

    /// Write the completion scripts and man pages into a directory (used to refresh the repository)
    #[command(hide = true)]
    Generate(GenerateArgs),
}

const INSTALL_ABOUT: &str = "\
Install the provisioner's objects into the cluster with server-side apply (field manager `lpp`):
Namespace, ServiceAccount, RBAC, ConfigMap `local-path-config`, StorageClass `local-path`, and with
--in-cluster a Deployment running `lpp run`. Running it twice reports every object unchanged.

Before applying it looks for an existing provisioner of the same name, an existing default
StorageClass and a ConfigMap edited by hand, and says what would change. Taking over an install or
changing the default class needs confirmation (--yes without a terminal).";

const MANIFESTS_ABOUT: &str = "\
Print the full set of objects `lpp install` applies, as YAML (or -o json), without contacting a
cluster. Takes the same options as `install`.";

const UNINSTALL_ABOUT: &str = "\
Remove the objects `lpp install` created (found by the app.kubernetes.io/managed-by=lpp label).
Refuses while PVs of the served StorageClasses exist, unless --force; then says which data stays on
which nodes. It never deletes data directories: `lpp gc` finds them.";

const STATUS_ABOUT: &str = "\
Show what is installed and at which version, who holds the provisioner Lease, the StorageClasses
served, PVs per node, Released or stuck PVs, pending claims with the reason from their latest event,
and recent Warning events. Exits 3 when something needs attention.";

const CHECK_ABOUT: &str = "\
The doctor: run groups of checks and print each as ✓ (fine), ! (worth a look) or ✗ (will not
work), with one line of what it saw and, for ! and ✗, what to do (a command to run or a config
key to change).

cluster: reachable and its version; this account's permissions for `lpp install` and for `lpp
run` (SelfSubjectAccessReviews). install: the namespace and its Pod Security level against the
helper pods' hostPath volumes, the ConfigMap, the StorageClasses, a second default class, other
Deployments serving the same provisioner name, k3s's bundled local-storage. provisioning: the
Lease holder alive and renewing, the installed version, stuck claims and Released volumes with
the reason from their events. nodes (each, or --node): Ready, taints that keep helper pods off,
the kubernetes.io/hostname label (and each class's nodeAffinityKey), and through a helper pod:
the helper image pulls, each base path exists, is a directory, is writable by the helper (a file
is made and removed), its filesystem, whether it is a mount of its own, free space, SELinux
context. data: a gc summary (orphaned directories, volumes whose directory is missing).

Each node has a deadline (--timeout); a node that does not answer is reported, not waited for.
--pre checks a cluster before `lpp install`: what install would be refused or would take over.
Exits 0 when nothing failed, 3 when a check failed (with --strict, also when one warned).";

const RUN_ABOUT: &str = "\
Watch PersistentVolumeClaims of the served StorageClasses, create their directories on the chosen
node through a short-lived helper pod, create and bind PVs, and reclaim them when released. Drop-in
compatible with rancher/local-path-provisioner's ConfigMap, StorageClass and PVs. Takes a Lease so
that only one provisioner acts. Ctrl-C or SIGTERM lets the operations under way finish for up to
20 seconds, releases the Lease and exits 0; a second Ctrl-C exits at once and the next run resumes.

Before any work it checks --config and --helper-pod-file (exit 2) and the account's permissions
(exit 1, naming every one missing). Failed helper pods (exit code, output, image pull, scheduling,
admission) become ProvisioningFailed or VolumeFailedDelete events within seconds.

It is also the resizer of its volumes: a Bound claim of a class with allowVolumeExpansion (lpp
install --allow-expansion) whose request grows past its capacity is checked for room on its path,
the ConfigMap's optional `resize` script runs with the new size, then the PV and the claim get it
(events Resizing, VolumeResizeSuccessful; VolumeResizeFailed with the cause, and a claim too big
for its path is marked ControllerResizeInfeasible until its request is lowered).

--metrics-addr serves /metrics (OpenMetrics: lpp_provisions_total and lpp_deletions_total and
lpp_resizes_total by result, lpp_provision_duration_seconds, lpp_deletion_duration_seconds and
lpp_helper_pod_duration_seconds histograms, lpp_operations_in_flight, lpp_queue_depth), /healthz
and /readyz.";

const GC_ABOUT: &str = "\
Inventory the configured base paths on every node through a short-lived helper pod and list the
directories no PV references (of any provisioner), and the PVs whose directory is missing.
Nothing is deleted: `lpp gc prune` does that, after confirmation.";

const USAGE_ABOUT: &str = "\
Measure every node's base paths through its node agent or a short-lived helper pod (busybox df,
stat and du): the size of the filesystem behind each path, what it uses and has available, its
type, whether it is a mount point of its own, and the capacities of the PVs placed there added
up, with how many. --volumes lists each volume with its request and what its directory really
uses, flagging volumes over their request. A path failing its mount guard (pathOptions in
config.json) is said to be unused. Nodes that cannot be measured are reported (exit code 1).";

const DEMO_ABOUT: &str = "\
The classic local-path walkthrough as a narrated script: install, create the claim `local-path-pvc`,
the pod `volume-test`, see the PV bound, write a file by exec, find it in the node's directory; then
the reverse: delete, watch the PV go and the directory disappear. Runs against the current context
or, with --sandbox, against the embedded sandbox cluster.";

const COMPLETION_ABOUT: &str = "\
Print a completion script for the shell to stdout. The script asks lpp itself at every TAB, so
--context completes from the kubeconfig and -n and --node from the cluster (within 2 seconds).
For `kubectl lpp <TAB>` (kubectl 1.26+), put completions/kubectl_complete-lpp from the repository
on PATH next to kubectl-lpp.";

const ADOPT_ABOUT: &str = "\
Make a PersistentVolume of our provisioner, in upstream's shape (node affinity, annotations, volume
type from the class), for a directory that already exists on a node (kept by a Retain policy,
archived by `lpp gc prune --archive`, restored from a backup), and bind it to a claim: a claim that
does not exist is created pre-bound; an existing Pending claim of the class is bound through the
PV's claimRef. The directory stays where it is. The PV is annotated lpp.dev/adopted=true.

Refused (exit 3), each with one line saying why: the node does not exist; the directory does not
exist on it (asked on the node through the executor) or is a symlink; it is not inside a configured
base path of the class on that node (unless --allow-outside-base); a PV uses it, lies inside it or
contains it; the claim is bound, or of another class. The reclaim policy is Retain unless
--reclaim-policy Delete: deleting the claim then keeps the data.";

const MOVE_ABOUT: &str = "\
Copy a volume's data to a new directory on another node (chosen as provisioning would: a base path
of that node, upstream's folder name), verify it, and rebind the claim there, keeping its name,
labels, annotations and spec. The data streams through lpp as tar, from a session on the source
node (its node agent, or a helper pod) into one on the target, with a progress bar in bytes; file
count, bytes and every file's sha256, mode, owner and symlink target are compared before anything
else changes. A claim's spec.volumeName cannot change, so the old PV is set to Retain, the claim
deleted and recreated pre-bound to the new PV.

Refused (exit 3) while a pod uses the claim (naming the pods and their owners; --wait waits until
they are gone), and for a move to the node the volume is on. Each step is recorded in annotations of
the new PV: after an interruption, running the same move again finishes it, and moving the claim
to the node it came from undoes it (or finishes it, once the claim was deleted); the only copy is
never lost. The source directory stays on its node (the summary says where) until --delete-source,
or a later `lpp gc prune`, removes it.

--all-from NODE moves every bound volume of that node, one claim at a time, after showing the plan
and asking.";

const MOBILITY_AFTER_HELP: &str = "\
Exit codes: 0 ok, 1 failure, 2 usage error, 3 refused (a check failed, or needs --yes).";

/// `lpp adopt`.
#[derive(Debug, Args)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub struct AdoptArgs {
    /// The directory to adopt, as NODE:PATH (e.g. node-1:/opt/local-path-provisioner/restored)
    #[arg(value_name = "NODE:PATH")]
    pub location: String,

    /// The claim to bind, as NAMESPACE/NAME: created pre-bound when it does not exist, else it
    /// must be Pending and of the class
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub claim: String,

    /// StorageClass of the volume (and of a new claim)
    #[arg(
        long,
        visible_alias = "storage-class",
        value_name = "NAME",
        default_value = crate::upstream::STORAGE_CLASS
    )]
    pub class: String,

    /// Capacity of the volume [default: the existing claim's request, else 10Gi]
    #[arg(long, value_name = "SIZE")]
    pub size: Option<String>,

    /// What happens to the data when the claim is deleted (Retain keeps it)
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = ReclaimPolicy::Retain)]
    pub reclaim_policy: ReclaimPolicy,

    /// Adopt a directory that is not inside a configured base path of the class on that node
    #[arg(long)]
    pub allow_outside_base: bool,

    /// Check everything and print the PV (and claim) that would be created; change nothing
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub provisioner: MobilityProvisionerArgs,
}

/// `lpp move`.
#[derive(Debug, Args)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub struct MoveArgs {
    /// The claim to move, as NAMESPACE/NAME
    #[arg(
        value_name = "NAMESPACE/NAME",
        required_unless_present = "all_from",
        conflicts_with = "all_from"
    )]
    pub claim: Option<String>,

    /// The node to move to
    #[arg(long, value_name = "NODE", add = clap_complete::ArgValueCandidates::new(docs::complete_nodes))]
    pub to: String,

    /// Move every bound volume of this node, one claim at a time, after showing the plan
    #[arg(long, value_name = "NODE", add = clap_complete::ArgValueCandidates::new(docs::complete_nodes))]
    pub all_from: Option<String>,

    /// Wait until no pod uses the claim (after you scaled its owners down) instead of refusing
    #[arg(long)]
    pub wait: bool,

    /// Remove the source directory once the claim is bound on the target
    #[arg(long)]
    pub delete_source: bool,

    /// How long each wait may take (pods to go, the claim to go and to bind) and each listing
    /// of the data
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,

    #[command(flatten)]
    pub provisioner: MobilityProvisionerArgs,
}

/// Where `adopt` and `move` find the provisioner's configuration.
#[derive(Debug, Args)]
pub struct MobilityProvisionerArgs {
    /// Provisioner name the volumes are annotated with
    #[arg(long, value_name = "NAME", default_value = DEFAULT_PROVISIONER)]
    pub provisioner_name: String,

    /// ConfigMap (in the provisioner's namespace) with the base paths, scripts and helper
    /// template
    #[arg(long, value_name = "NAME", default_value = crate::upstream::CONFIG_MAP)]
    pub config_map: String,

    /// Image of the helper pods [default: the template's image]
    #[arg(long, value_name = "IMAGE")]
    pub helper_image: Option<String>,
}

/// What the installed objects look like; shared by `install` and `manifests`.
#[derive(Debug, Args)]
pub struct ManifestOptions {
    /// Name of the StorageClass to create
    #[arg(long, value_name = "NAME", default_value = crate::upstream::STORAGE_CLASS)]
    pub storage_class: String,

    /// Provisioner name the StorageClass names and the provisioner serves
    #[arg(long, value_name = "NAME", default_value = DEFAULT_PROVISIONER)]
    pub provisioner_name: String,

    /// Base directory for volumes on every node [default: /opt/local-path-provisioner]
    #[arg(long, value_name = "DIR", conflicts_with = "shared_path")]
    pub path: Option<String>,

    /// Base directory for volumes on one node, as NODE=DIR; repeatable
    #[arg(
        long = "node-path",
        value_name = "NODE=DIR",
        conflicts_with = "shared_path"
    )]
    pub node_paths: Vec<String>,

    /// A filesystem shared by all nodes (RWX volumes, no node affinity)
    #[arg(long, value_name = "DIR")]
    pub shared_path: Option<String>,

    /// Make the StorageClass the cluster's default
    #[arg(long)]
    pub default_class: bool,

    /// Let claims of the StorageClass grow (allowVolumeExpansion: true); `lpp run` resizes them
    #[arg(long)]
    pub allow_expansion: bool,

    /// What happens to a volume's data when its claim is deleted
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = ReclaimPolicy::Delete)]
    pub reclaim_policy: ReclaimPolicy,

    /// When a volume is provisioned
    #[arg(long, value_enum, value_name = "MODE", default_value_t = BindingMode::WaitForFirstConsumer)]
    pub binding_mode: BindingMode,

    /// PV source type of new volumes
    #[arg(long, value_enum, value_name = "TYPE", default_value_t = VolumeType::HostPath)]
    pub volume_type: VolumeType,

    /// Image of the helper pods that create and delete directories on nodes
    #[arg(long, value_name = "IMAGE", default_value = "busybox")]
    pub helper_image: String,

    /// Also run the provisioner in the cluster, as a Deployment running `lpp run`
    #[arg(long)]
    pub in_cluster: bool,

    /// Image of the in-cluster Deployment [default: the image the Containerfile builds, tagged with
    /// this version]
    #[arg(long, value_name = "IMAGE", requires = "in_cluster")]
    pub image: Option<String>,

    /// How scripts run on nodes: helperPod (a pod per volume, as upstream) or agent (also install
    /// the local-path-agent DaemonSet and set `executor: agent` in config.json: an exec into the
    /// node's agent, batched, a helper pod where no agent can serve)
    #[arg(long, value_enum, value_name = "EXECUTOR", default_value_t = Executor::HelperPod)]
    pub executor: Executor,

    /// Also install capacity-aware scheduling: the StorageClass local-path-capacity (provisioner
    /// local-path.lpp.dev, served by the same `lpp run --capacity-tracking`), the CSIDriver of
    /// that name with storageCapacity true (kube-scheduler then checks a claim against the
    /// CSIStorageCapacity objects lpp publishes per node), and the permission to publish them
    #[arg(long)]
    pub capacity_tracking: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub enum Executor {
    /// A short-lived helper pod per script, as upstream
    #[value(name = "helperPod")]
    HelperPod,
    /// An exec into the node's agent pod (the local-path-agent DaemonSet)
    #[value(name = "agent")]
    Agent,
}

impl Executor {
    /// The configuration's spelling.
    pub fn kind(self) -> crate::config::ExecutorKind {
        match self {
            Executor::HelperPod => crate::config::ExecutorKind::HelperPod,
            Executor::Agent => crate::config::ExecutorKind::Agent,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub enum ReclaimPolicy {
    /// Delete the directory and the PV when the claim goes
    #[value(name = "Delete")]
    Delete,
    /// Keep the directory and the PV
    #[value(name = "Retain")]
    Retain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub enum BindingMode {
    /// Provision on the node the scheduler picks for the first pod
    #[value(name = "WaitForFirstConsumer")]
    WaitForFirstConsumer,
    /// Provision at once (shared filesystem, or claims naming a node)
    #[value(name = "Immediate")]
    Immediate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub enum VolumeType {
    /// A hostPath PV (type DirectoryOrCreate)
    #[value(name = "hostPath")]
    HostPath,
    /// A local PV
    #[value(name = "local")]
    Local,
}

#[derive(Debug, Args)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub struct InstallArgs {
    #[command(flatten)]
    pub manifest: ManifestOptions,

    /// Only show what would be applied: `client` renders locally, `server` asks the API server
    #[arg(long, value_enum, value_name = "WHERE", num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: Option<DryRun>,

    /// Wait until the installed objects are ready (the Deployment with --in-cluster)
    #[arg(long)]
    pub wait: bool,

    /// How long --wait waits
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub enum DryRun {
    /// Render locally, contact nothing
    Client,
    /// Send to the API server with dryRun=All; nothing is stored
    Server,
}

#[derive(Debug, Args)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub struct ManifestsArgs {
    #[command(flatten)]
    pub manifest: ManifestOptions,
}

#[derive(Debug, Args)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub struct UninstallArgs {
    /// Uninstall even while PVs of the served StorageClasses exist (their data stays on the nodes)
    #[arg(long)]
    pub force: bool,

    /// Only show what would be deleted
    #[arg(long)]
    pub dry_run: bool,

    /// Wait until the deleted objects are gone
    #[arg(long)]
    pub wait: bool,

    /// How long --wait waits
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub struct StatusArgs {
    /// Provisioner name whose Lease, classes and volumes to show
    #[arg(long, value_name = "NAME", default_value = DEFAULT_PROVISIONER)]
    pub provisioner_name: String,

    /// How far back to show Warning events
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub events_since: Duration,

    /// Print again whenever what it shows changes, until Ctrl-C (then exit 0)
    #[arg(short = 'w', long)]
    pub watch: bool,
}

#[derive(Debug, Args)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub struct CheckArgs {
    /// Check a cluster before `lpp install`: permissions for install, what Pod Security and
    /// the cluster's current objects would refuse or have install take over; nothing runs on
    /// nodes
    #[arg(long)]
    pub pre: bool,

    /// Only this node; repeatable
    #[arg(
        long = "node",
        value_name = "NODE",
        add = clap_complete::ArgValueCandidates::new(docs::complete_nodes)
    )]
    pub nodes: Vec<String>,

    /// Exit 3 when a check warns (!), not only when one fails (✗)
    #[arg(long)]
    pub strict: bool,

    /// How long each node's checks may take before the node is reported as not answering
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Provisioner name whose Lease, classes and volumes to check
    #[arg(long, value_name = "NAME", default_value = DEFAULT_PROVISIONER)]
    pub provisioner_name: String,

    /// ConfigMap (in the provisioner's namespace) naming the base paths and the helper template
    #[arg(long, value_name = "NAME", default_value = crate::upstream::CONFIG_MAP)]
    pub config_map: String,
}

#[derive(Debug, Args)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub struct RunArgs {
    /// Provisioner name to serve; StorageClasses naming it are ours
    #[arg(long, value_name = "NAME", default_value = DEFAULT_PROVISIONER)]
    pub provisioner_name: String,

    /// ConfigMap (in the provisioner's namespace) holding config.json, setup, teardown and
    /// helperPod.yaml; watched and reloaded on change
    #[arg(long, value_name = "NAME", default_value = crate::upstream::CONFIG_MAP)]
    pub config_map: String,

    /// Read config.json from this file instead of the ConfigMap (reloaded when it changes)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Read the helper pod template from this file instead of the ConfigMap
    #[arg(long, value_name = "FILE")]
    pub helper_pod_file: Option<PathBuf>,

    /// ServiceAccount the helper pods run as
    #[arg(
        long,
        value_name = "NAME",
        default_value = crate::upstream::SERVICE_ACCOUNT
    )]
    pub service_account_name: String,

    /// Image of the helper pods, replacing the template's [default: the template's image]
    #[arg(long, value_name = "IMAGE")]
    pub helper_image: Option<String>,

    /// Operations talking to the API at once before their script, and as many after it
    /// (waiting on a helper pod or node agent holds no worker)
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub workers: u32,

    /// Retries of a failed provisioning before giving up until the claim changes; 0 retries
    /// forever (as upstream)
    #[arg(long, value_name = "N", default_value_t = 15)]
    pub provisioning_retry_count: u32,

    /// Retries of a failed reclaim before giving up until the volume changes; 0 retries forever
    /// (as upstream)
    #[arg(long, value_name = "N", default_value_t = 15)]
    pub deletion_retry_count: u32,

    /// Accept a helper pod template that fails the safety checks (extra volumes, privileges, ...)
    #[arg(long)]
    pub allow_unsafe_helper_pod_template: bool,

    /// How scripts run on nodes: helperPod (a pod per volume) or agent (exec into the node's
    /// local-path-agent pod; a helper pod, with a NodeAgentUnavailable Warning, where none can
    /// serve) [default: config.json's `executor`, else helperPod]
    #[arg(long, value_enum, value_name = "EXECUTOR")]
    pub executor: Option<Executor>,

    /// Serve Prometheus metrics on /metrics and health on /healthz and /readyz at this address
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,

    /// How often every node's base paths and volumes are measured (for lpp_path_* and
    /// lpp_volume_used_bytes, VolumeOverRequest and MountGuardFailed warnings and capacity
    /// objects); 0 turns it off (a claim whose class needs to know still has its node measured)
    /// [default: 60s where the node agents measure, or with --capacity-tracking; with helper
    /// pods only when given, since each refresh starts a pod per node]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub usage_interval: Option<Duration>,

    /// Also serve the provisioner name local-path.lpp.dev (the class local-path-capacity that
    /// `lpp install --capacity-tracking` creates) and publish one CSIStorageCapacity per node
    /// and such class from every usage refresh, for kube-scheduler's capacity check (needs
    /// --usage-interval above 0)
    #[arg(long)]
    pub capacity_tracking: bool,

    /// Log line format: text (one line per action), or json (one object per line; action lines
    /// carry action, object, node, path and seconds fields)
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Do not take the provisioner Lease (two provisioners may then both act)
    #[arg(long)]
    pub no_leader_election: bool,

    /// Name of the Lease [default: the provisioner name with '/' replaced by '-']
    #[arg(long, value_name = "NAME")]
    pub lease_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub enum LogFormat {
    /// One concise human line per action
    Text,
    /// One JSON object per line
    Json,
}

#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = false,
    subcommand_negates_reqs = true
)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub struct GcArgs {
    #[command(flatten)]
    pub scan: GcScanArgs,

    /// Fail (exit 1) when orphans are found, for cron and CI
    #[arg(long)]
    pub exit_code: bool,

    #[command(subcommand)]
    pub command: Option<GcCommand>,
}

/// What `gc` and `gc prune` look at.
#[derive(Debug, Args)]
pub struct GcScanArgs {
    /// Only this node; repeatable
    #[arg(
        long = "node",
        value_name = "NODE",
        add = clap_complete::ArgValueCandidates::new(docs::complete_nodes)
    )]
    pub nodes: Vec<String>,

    /// Only the base paths of this StorageClass
    #[arg(long, value_name = "NAME")]
    pub storage_class: Option<String>,

    /// Only entries not modified for this long (so nothing being provisioned right now is listed)
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub older_than: Duration,

    /// Provisioner name whose ConfigMap names the base paths
    #[arg(long, value_name = "NAME", default_value = DEFAULT_PROVISIONER)]
    pub provisioner_name: String,

    /// ConfigMap (in the provisioner's namespace) naming the base paths and the helper template
    #[arg(long, value_name = "NAME", default_value = crate::upstream::CONFIG_MAP)]
    pub config_map: String,

    /// Image of the inventory helper pods [default: the template's image]
    #[arg(long, value_name = "IMAGE")]
    pub helper_image: Option<String>,
}

#[derive(Debug, Args)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub struct UsageArgs {
    /// Only this node; repeatable
    #[arg(
        long = "node",
        value_name = "NODE",
        add = clap_complete::ArgValueCandidates::new(docs::complete_nodes)
    )]
    pub nodes: Vec<String>,

    /// Also list each volume: its request, what its directory uses, and whether that is more
    #[arg(long)]
    pub volumes: bool,

    /// ConfigMap (in the provisioner's namespace) naming the base paths and the helper template
    #[arg(long, value_name = "NAME", default_value = "local-path-config")]
    pub config_map: String,

    /// Image of the probe's helper pods [default: the template's image]
    #[arg(long, value_name = "IMAGE")]
    pub helper_image: Option<String>,
}

#[derive(Debug, Subcommand)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub enum GcCommand {
    /// Delete (or --archive) what `gc` lists, after confirmation
    #[command(long_about = PRUNE_ABOUT)]
    Prune(PruneArgs),
}

const PRUNE_ABOUT: &str = "\
Run the same scan as `lpp gc`, then delete what it lists after a confirmation naming the kube
context, the count and the total size (--yes without a terminal). Immediately before deleting it
re-reads the PVs and drops anything now referenced. Only entries directly under a configured base
path are touched, and symlinks are never followed.";

#[derive(Debug, Args)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub struct PruneArgs {
    #[command(flatten)]
    pub scan: GcScanArgs,

    /// Only show what would be deleted
    #[arg(long)]
    pub dry_run: bool,

    /// Move each directory to <base>/.lpp-trash/ instead of deleting it
    #[arg(long)]
    pub archive: bool,
}

#[derive(Debug, Args)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub struct DemoArgs {
    /// Run against the embedded sandbox cluster instead of the current context
    #[arg(long)]
    pub sandbox: bool,

    /// Run straight through without waiting for Enter (automatic when stdin is not a terminal)
    #[arg(long)]
    pub non_interactive: bool,

    /// Leave the demo's objects in place at the end
    #[arg(long)]
    pub keep: bool,

    /// StorageClass of the demo's claim
    #[arg(long, value_name = "NAME", default_value = crate::upstream::STORAGE_CLASS)]
    pub storage_class: String,

    /// Image of the demo pod
    #[arg(long, value_name = "IMAGE", default_value = "busybox")]
    pub image: String,

    /// How long each step may wait
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Subcommand)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub enum SandboxCommand {
    /// Serve a sandbox cluster on 127.0.0.1 in the foreground until Ctrl-C
    #[command(long_about = SANDBOX_UP_ABOUT)]
    Up(SandboxUpArgs),
}

const SANDBOX_UP_ABOUT: &str = "\
Serve an embedded single-machine Kubernetes API on 127.0.0.1 (plain HTTP) until Ctrl-C or SIGTERM.
Nodes node-1..node-N are directories: hostPath /opt/x on node-1 is <DIR>/nodes/node-1/opt/x, and
pods run as local processes. kubectl and lpp work against it through the kubeconfig it writes.";

#[derive(Debug, Args)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub struct SandboxUpArgs {
    /// Directory holding the nodes' filesystems and the sandbox's state
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// Number of nodes
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub nodes: u32,

    /// Port on 127.0.0.1; 0 picks a free one
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub port: u16,

    /// Write a kubeconfig (context lpp-sandbox) here once the API is ready
    #[arg(long, value_name = "FILE")]
    pub write_kubeconfig: Option<PathBuf>,

    /// Declare a node path a disk of SIZE, e.g. node-1:/opt/local-path-provisioner=10Gi;
    /// options ,fs=TYPE (default ext4) and ,mountpoint=false (a directory on a disk mounted
    /// higher up); repeatable. The directory is made on the node; used is what is stored
    /// under it, available the rest of SIZE
    #[arg(long = "disk", value_name = "NODE:PATH=SIZE")]
    pub disks: Vec<crate::sandbox::node::disks::Disk>,

    /// Fault injection: fraction of requests answered 500 Internal Server Error (0..1)
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = parse_rate, help_heading = "Fault injection")]
    pub fault_error_rate: f64,

    /// Fault injection: fraction of requests answered 429 Too Many Requests (0..1)
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = parse_rate, help_heading = "Fault injection")]
    pub fault_throttle_rate: f64,

    /// Fault injection: chance per event that a watch stream is dropped (0..1)
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = parse_rate, help_heading = "Fault injection")]
    pub fault_watch_drop_rate: f64,

    /// Fault injection: latency added to every request, e.g. 20ms
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_duration, help_heading = "Fault injection")]
    pub fault_latency: Duration,
}

#[derive(Debug, Args)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub struct CompletionArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
    Elvish,
}

const VERSION_ABOUT: &str = "\
Print the client's version, git revision and target, and the API server's version. Exits 1 when
the server cannot be reached (the client's version is printed all the same); --client asks no
server.";

#[derive(Debug, Args)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub struct VersionArgs {
    /// Only the client's version; contact no server
    #[arg(long)]
    pub client: bool,
}

#[derive(Debug, Args)]
// Undocumented on purpose: clap would turn a `///` here into --help text.
#[allow(missing_docs)]
pub struct GenerateArgs {
    /// Directory to write completions/ and man/ into
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Parses a kubectl-style duration: `0`, `500ms`, `30s`, `2m`, `1h30m`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let friendly: jiff::SignedDuration = text
        .parse()
        .or_else(|_| {
            // Days are not a fixed-length unit for jiff's SignedDuration; kubectl users write `7d`.
            text.parse::<jiff::Span>()
                .map_err(|e| e.to_string())
                .and_then(|span| {
                    span.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                        .map_err(|e| e.to_string())
                })
        })
        .map_err(|_| format!("`{text}` is not a duration; write it like 30s, 5m, 1h30m or 7d"))?;
    Duration::try_from(friendly)
        .map_err(|_| format!("`{text}` is negative; a duration must be positive"))
}

/// `--request-timeout` as kubectl reads it: a bare number is seconds (`5`), else a duration
/// (`5s`, `1m`); `0` means no timeout.
pub fn parse_request_timeout(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<u64>() {
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
        Err(_) => parse_duration(text),
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "`{text}` is not a rate; give a number from 0 to 1, e.g. 0.05"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_kubectl() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn request_timeouts_read_bare_seconds_as_kubectl() {
        assert_eq!(parse_request_timeout("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_request_timeout("0"), Ok(Duration::ZERO));
        assert_eq!(parse_request_timeout("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_request_timeout("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_request_timeout("-1").is_err());
        assert!(parse_request_timeout("soon").is_err());
    }

    #[test]
    fn rates_are_fractions() {
        assert_eq!(parse_rate("0.25"), Ok(0.25));
        assert!(parse_rate("1.5").is_err());
        assert!(parse_rate("x").is_err());
    }

    #[test]
    fn command_tree_is_consistent() {
        command().debug_assert();
    }

    fn token() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            prop::sample::select(vec![
                "install",
                "manifests",
                "uninstall",
                "status",
                "check",
                "--pre",
                "--strict",
                "run",
                "gc",
                "prune",
                "usage",
                "--volumes",
                "demo",
                "sandbox",
                "up",
                "completion",
                "version",
                "-o",
                "json",
                "wide",
                "-n",
                "--node-path",
                "a=b",
                "=",
                "--older-than",
                "0",
                "--timeout",
                "-vvv",
                "-q",
                "--dry-run",
                "--dry-run=server",
                "--port",
                "--nodes",
                "0",
                "--fault-error-rate",
                "2",
            ])
            .prop_map(str::to_owned),
            any::<String>(),
        ]
    }

    proptest::proptest! {
        #[test]
        fn no_command_line_panics(args in proptest::collection::vec(token(), 0..7)) {
            use clap::Parser;
            if let Ok(cli) = Cli::try_parse_from(std::iter::once("lpp".to_owned()).chain(args)) {
                let _ = resolve(cli);
            }
        }
    }
}
