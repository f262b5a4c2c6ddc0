//! The embedded cluster: an independent model of Kubernetes (API server, PV controller, scheduler,
//! kubelet) whose nodes are local directories. It never imports lpp's own modules, so a bug cannot
//! hide by being shared between the code and its test double.

pub mod node;

use std::path::PathBuf;
use std::time::Duration;

/// Fault injection, off by default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Fraction of requests answered 500.
    pub error_rate: f64,
    /// Fraction of requests answered 429.
    pub throttle_rate: f64,
    /// Chance per event that a watch stream is dropped.
    pub watch_drop_rate: f64,
    /// Latency added to every request.
    pub latency: Duration,
}

/// `lpp sandbox up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub dir: PathBuf,
    pub nodes: u32,
    pub port: u16,
    pub write_kubeconfig: Option<PathBuf>,
    pub faults: Faults,
}
