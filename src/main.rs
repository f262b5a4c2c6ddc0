//! The `lpp` binary: parse, set up logging, run, map the outcome to an exit code.

use std::process::ExitCode;
use std::time::Duration;

use clap::FromArgMatches;

fn main() -> ExitCode {
    let matches = match lpp::cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let invocation = match lpp::cli::Cli::from_arg_matches(&matches)
        .map_err(|e| lpp::Error::Usage(e.to_string()))
        .and_then(lpp::cli::resolve)
    {
        Ok(invocation) => invocation,
        Err(e) => return report(&anyhow::Error::new(e), 0, false, lpp::Exit::Usage),
    };
    let verbosity = invocation.verbosity;
    let color = invocation.ui.color;
    lpp::logging::init(&invocation);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let e = anyhow::Error::new(e).context("cannot start the async runtime");
            return report(&e, verbosity, color, lpp::Exit::Failure);
        }
    };
    let outcome = runtime.block_on(lpp::app::execute(invocation));
    runtime.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            let exit = e.exit();
            report(&anyhow::Error::new(e), verbosity, color, exit)
        }
    }
}

/// Prints the error as one line; under `-v`, the causes not already in that line follow.
fn report(error: &anyhow::Error, verbosity: i8, color: bool, exit: lpp::Exit) -> ExitCode {
    let label = console::Style::new()
        .red()
        .bold()
        .force_styling(color)
        .apply_to("error:");
    let headline = error.to_string();
    eprintln!("{label} {headline}");
    if verbosity > 0 {
        let mut shown = headline;
        for cause in error.chain().skip(1) {
            let text = cause.to_string();
            if !shown.contains(&text) {
                eprintln!("  caused by: {text}");
                shown.push_str(&text);
            }
        }
    }
    ExitCode::from(exit.code())
}
