//! `lpp demo`: the classic walkthrough as data (steps) plus a runner.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub sandbox: bool,
    /// Run straight through (`--yes`, `--non-interactive`, or stdin not a terminal).
    pub non_interactive: bool,
    pub keep: bool,
    /// The demo's namespace; `None` means a fresh `lpp-demo-*` one.
    pub namespace: Option<String>,
    pub storage_class: String,
    pub image: String,
    pub step_timeout: Duration,
}
