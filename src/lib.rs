//! lpp: local-path volumes for Kubernetes.
//!
//! One binary that does the job of rancher/local-path-provisioner from a laptop through a
//! kubeconfig, and more. The crate is laid out as `../DESIGN.md` describes: `cli` parses, pure
//! modules (`config`, `provision`, the core of `gc`) decide, and thin async layers (`controller`,
//! `install`, `gc`, `demo`) carry the decisions out against a `kube::Client` built once at the
//! edge. `sandbox` is an independent model of Kubernetes for tests and the demo.

#![warn(missing_docs)]

pub mod app;
pub mod capacity;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod controller;
pub mod demo;
pub mod error;
pub mod executor;
pub mod exit;
pub mod gc;
pub mod install;
pub mod logging;
pub mod mobility;
pub mod provision;
pub mod records;
pub mod sandbox;
pub mod ui;
pub mod upstream;

pub use error::Error;
pub use exit::Exit;
