//! The sandbox's nodes: the PV controller, the scheduler and a kubelet per Node object, all
//! talking to the sandbox's API server through a `kube::Client` as real controllers do.
//!
//! Decisions are pure functions ([`schedule::place`], [`binding::reconcile`], the path mapping
//! in [`mounts`], the termination message in [`termination`]); thin async loops carry them out.
//!
//! # How container paths reach node directories
//!
//! Containers run as local processes (the local `sh` stands in for the image's), so every path
//! a container names must be translated to a directory on this machine, and nothing else of
//! this machine may be reachable by name:
//!
//! - node `N`'s root is `<dir>/nodes/N`; a node path `/p` is `<dir>/nodes/N/p`, joined
//!   lexically, and a path that climbs above `/` with `..` is refused;
//! - each volumeMount maps its `mountPath` to a host directory: hostPath `/p` → the node path
//!   `/p`; a PVC → its bound PV's `hostPath.path` or `local.path` → the node path; emptyDir,
//!   configMap and secret volumes → directories materialised under the pod's own directory;
//!   `subPath` is joined to the host directory the same way;
//! - `/tmp` is the pod's own `tmp` directory and `/dev/termination-log` (or the container's
//!   `terminationMessagePath`) a file in the pod's directory;
//! - every argv element, every env value, and the text of materialised configMap and secret
//!   files has each mount path that starts at a path boundary (start, whitespace, quote, `=`,
//!   `:`, a shell operator) rewritten to its host directory, longest mount path first; a path
//!   followed by more name characters (`/data-old` for `/data`) is not that mount;
//! - any other absolute path at a boundary must be a system path ([`mounts::SYSTEM_PATHS`]:
//!   `/bin`, `/usr`, `/lib*`, `/sbin`, `/dev/null` and friends, a few read-only files of
//!   `/etc`), or the container is not started: it terminates with exit code 126, reason
//!   `Error`, and a message naming the path and where it was found;
//! - output (logs, termination messages, exec output) has host directories mapped back to
//!   container paths;
//! - processes start with no inherited environment (only `PATH`, `HOME` and `HOSTNAME` plus the
//!   container's `env`), in the pod's own directory (or the mapped `workingDir`).
//!
//! Limits: the rewrite is textual. A path assembled at run time (`d=/da; rm -r ${d}ta`), a
//! relative climb out of a mount (`cd /data && rm -r ../..`) or a symlink planted inside a
//! mount is not caught; processes run as the user running the sandbox, with no mount
//! namespace, so they are as strong as that user. Images are not pulled or run: only their
//! registry host matters (a host ending in `.invalid` can never be pulled).

pub mod binding;
pub mod mounts;
pub mod runtime;
pub mod schedule;
pub mod termination;
pub mod volumes;
