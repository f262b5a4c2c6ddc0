//! The `lpp` binary: parse, set up logging, run, map the outcome to an exit code.

use std::process::ExitCode;
use std::time::Duration;

use clap::FromArgMatches;
use lpp::ui::eprint_line;

fn main() -> ExitCode {
    // `COMPLETE=bash lpp` and friends: the shells' dynamic completion (contexts, namespaces,
    // nodes from the cluster) is answered here, before anything else.
    if lpp::cli::complete_from_env() {
        return ExitCode::SUCCESS;
    }
    let matches = match lpp::cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(e) => return clap_exit(&e),
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
    let forced_stop = invocation.plan.stops_gracefully();
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
    let outcome = runtime.block_on(async {
        let second_interrupt = async {
            if forced_stop {
                lpp::app::interrupted_twice().await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            outcome = lpp::app::execute(invocation) => Some(outcome),
            () = second_interrupt => None,
        }
    });
    let Some(outcome) = outcome else {
        // A second Ctrl-C does not wait for the operations under way.
        eprint_line(
            "lpp: stopping now; the next run resumes the unfinished operations \
             (the Lease expires by itself)",
        );
        runtime.shutdown_background();
        return ExitCode::from(lpp::Exit::Interrupted.code());
    };
    if matches!(&outcome, Err(e) if e.exit() == lpp::Exit::Interrupted) {
        // Ctrl-C: do not wait for a thread still blocked reading the terminal.
        runtime.shutdown_background();
    } else {
        runtime.shutdown_timeout(Duration::from_secs(2));
    }
    match outcome {
        Ok(exit) => ExitCode::from(exit.code()),
        // Whoever read the output is gone (`lpp manifests | head -1`): nothing to say, and
        // nobody to say it to.
        Err(lpp::Error::Ui(lpp::ui::Error::StdoutClosed)) => ExitCode::SUCCESS,
        Err(e) => {
            let exit = e.exit();
            report(&anyhow::Error::new(e), verbosity, color, exit)
        }
    }
}

/// What clap says about the command line: help and version on stdout (exit 0), usage errors on
/// stderr (exit 2). `lpp` alone, or a command group alone, prints its help as kubectl does.
fn clap_exit(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ =
            std::io::Write::write_all(&mut std::io::stdout(), e.render().to_string().as_bytes());
        return ExitCode::SUCCESS;
    }
    let _ = e.print();
    ExitCode::from(if e.use_stderr() { 2 } else { 0 })
}

/// Prints the error as one line; under `-v`, the causes not already in that line follow.
/// A Kubernetes client error anywhere in the chain is shown as [`lpp::cluster::describe`]
/// words it, never as the client library's `Debug` text.
fn report(error: &anyhow::Error, verbosity: i8, color: bool, exit: lpp::Exit) -> ExitCode {
    let label = console::Style::new()
        .red()
        .bold()
        .force_styling(color)
        .apply_to("error:");
    let plain = |text: String| {
        error
            .chain()
            .filter_map(|e| e.downcast_ref::<kube::Error>())
            .fold(text, |text, kube_error| {
                text.replace(&kube_error.to_string(), &lpp::cluster::describe(kube_error))
            })
    };
    let headline = plain(error.to_string());
    eprint_line(&format!("{label} {headline}"));
    if verbosity > 0 {
        let mut shown = headline;
        for cause in error.chain().skip(1) {
            let text = plain(cause.to_string());
            if !shown.contains(&text) {
                eprint_line(&format!("  caused by: {text}"));
                shown.push_str(&text);
            }
        }
    }
    ExitCode::from(exit.code())
}
