//! Log output on stderr through `tracing`: human lines by default, JSON for `lpp run --log-format
//! json`. `LPP_LOG` (an env-filter directive such as `lpp=debug`) overrides the level.
//!
//! Only lpp's own lines show by default; `-v` adds its debug lines, `-vv` its trace lines, and
//! the libraries underneath (kube, hyper, h2, rustls, tower) speak only from `-vvv`: their lines
//! (kube-client logs every failed request at ERROR) are noise to a person, and lpp reports what
//! failed itself.

use tracing_subscriber::EnvFilter;

use crate::cli::{Invocation, Plan};
use crate::controller::LogFormat;

/// The env-filter directives for a command whose default level is `base` (`warn` or `info`),
/// after `verbosity` (`-v` count minus `-q`).
pub fn directives(base: &str, verbosity: i8) -> String {
    let own = match verbosity {
        i8::MIN..=-1 => "error",
        0 => base,
        1 => "debug",
        _ => "trace",
    };
    let libraries = match verbosity {
        i8::MIN..=2 => "off",
        3 => "debug",
        _ => "trace",
    };
    format!("{libraries},lpp={own}")
}

/// Installs the global subscriber for this invocation.
pub fn init(invocation: &Invocation) {
    // Long-running commands narrate what they do; one-shot commands only warn.
    let base = match invocation.plan {
        Plan::Run(_) | Plan::SandboxUp(_) => "info",
        _ => "warn",
    };
    let filter = std::env::var("LPP_LOG")
        .ok()
        .and_then(|directive| EnvFilter::try_new(directive).ok())
        .unwrap_or_else(|| EnvFilter::new(directives(base, invocation.verbosity)));
    let json = matches!(&invocation.plan, Plan::Run(run) if run.log_format == LogFormat::Json);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Its own complaint about a failed write goes through eprintln!, which panics on a
        // closed stderr (`lpp run 2>&1 | tee`, then Ctrl-C): a lost log line is not worth dying.
        .log_internal_errors(false)
        .with_target(false);
    // A second init (tests calling in-process) is harmless: the first subscriber stays.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.with_ansi(invocation.ui.color).compact().try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::directives;

    #[test]
    fn libraries_speak_only_from_three_v() {
        assert_eq!(directives("warn", 0), "off,lpp=warn");
        assert_eq!(directives("info", 0), "off,lpp=info");
        assert_eq!(directives("warn", 1), "off,lpp=debug");
        assert_eq!(directives("info", 2), "off,lpp=trace");
        assert_eq!(directives("warn", 3), "debug,lpp=trace");
        assert_eq!(directives("warn", 4), "trace,lpp=trace");
        assert_eq!(directives("info", -1), "off,lpp=error");
    }
}
