//! Log output on stderr through `tracing`: human lines by default, JSON for `lpp run --log-format
//! json`. `LPP_LOG` (an env-filter directive such as `lpp=debug`) overrides the level.

use tracing_subscriber::EnvFilter;

use crate::cli::{Invocation, Plan};
use crate::controller::LogFormat;

/// Installs the global subscriber for this invocation.
pub fn init(invocation: &Invocation) {
    // Long-running commands narrate what they do; one-shot commands only warn.
    let base: i8 = match invocation.plan {
        Plan::Run(_) | Plan::SandboxUp(_) => 2,
        _ => 1,
    };
    let level = match base + invocation.verbosity {
        i8::MIN..=0 => "error",
        1 => "warn",
        2 => "info",
        3 => "debug",
        _ => "trace",
    };
    let filter = std::env::var("LPP_LOG")
        .ok()
        .and_then(|directive| EnvFilter::try_new(directive).ok())
        .unwrap_or_else(|| {
            // Our own crate at the chosen level; libraries one step quieter unless tracing.
            let libraries = if level == "trace" { "debug" } else { "warn" };
            EnvFilter::new(format!("{libraries},lpp={level}"))
        });
    let json = matches!(&invocation.plan, Plan::Run(run) if run.log_format == LogFormat::Json);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // A second init (tests calling in-process) is harmless: the first subscriber stays.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.with_ansi(invocation.ui.color).compact().try_init()
    };
}
