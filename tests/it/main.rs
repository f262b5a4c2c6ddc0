//! lpp's integration tests: one binary (link time matters on 2 cores), one module per area.
//!
//! User-facing flows run the real `lpp` binary; anything that talks to a cluster talks HTTP to the
//! sandbox; the real `kubectl` proves the sandbox and our YAML are real Kubernetes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agent;
mod capacity;
mod check;
mod cli;
mod demo;
mod expand;
mod gc;
mod house;
mod install;
mod kubectl;
mod mobility;
mod provision;
mod resilience;
mod run;
mod safety;
mod sandbox;
mod sandbox_node;
mod soak;
mod support;
