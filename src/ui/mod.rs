//! The only writer to stdout: tables, JSON and YAML documents, names; and the terminal side of
//! stderr: notes, progress bars, spinners and confirmations.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use comfy_table::{Cell, ContentArrangement, Table, presets};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::error::Exit;

/// `-o/--output`, after the command's default and offer were applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Wide,
    Json,
    Yaml,
    Name,
}

impl Format {
    /// The name as typed after `-o`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Wide => "wide",
            Format::Json => "json",
            Format::Yaml => "yaml",
            Format::Name => "name",
        }
    }
}

/// How the user wants to be talked to.
#[derive(Debug, Clone)]
pub struct UiSettings {
    pub format: Format,
    pub color: bool,
    pub quiet: bool,
    /// `--yes`: confirmations are answered yes.
    pub yes: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A confirmation was needed and there was no terminal to ask on.
    #[error("{question}: refusing without a terminal to confirm on; add --yes to go ahead")]
    NeedsYes { question: String },

    /// The user answered no.
    #[error("{question}: not confirmed, nothing changed")]
    Declined { question: String },

    #[error("cannot write the output: {0}")]
    Write(#[source] std::io::Error),

    #[error("cannot ask for confirmation: {0}")]
    Prompt(#[source] dialoguer::Error),

    #[error("cannot render the output as {format}: {message}")]
    Render {
        format: &'static str,
        message: String,
    },
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::NeedsYes { .. } | Error::Declined { .. } => Exit::Refused,
            _ => Exit::Failure,
        }
    }
}

/// A result a command prints: a table for people, and a document for `-o json|yaml`.
pub trait Report: Serialize {
    /// The table (`wide` adds columns). May return several tables, printed with a blank line
    /// between them.
    fn tables(&self, wide: bool) -> Vec<Table>;

    /// One line per object for `-o name`, like `persistentvolume/pvc-1234`.
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The user interface of one command run.
#[derive(Debug, Clone)]
pub struct Ui {
    settings: UiSettings,
    stdin_tty: bool,
    stderr_tty: bool,
}

impl Ui {
    pub fn new(settings: UiSettings) -> Self {
        Self {
            settings,
            stdin_tty: std::io::stdin().is_terminal(),
            stderr_tty: std::io::stderr().is_terminal(),
        }
    }

    pub fn format(&self) -> Format {
        self.settings.format
    }

    pub fn color(&self) -> bool {
        self.settings.color
    }

    pub fn quiet(&self) -> bool {
        self.settings.quiet
    }

    /// Whether a person can answer prompts (stdin and stderr are terminals).
    pub fn interactive(&self) -> bool {
        self.stdin_tty && self.stderr_tty
    }

    /// Prints a report in the chosen format on stdout.
    pub fn print<R: Report>(&self, report: &R) -> Result<(), Error> {
        let text = match self.settings.format {
            Format::Table | Format::Wide => {
                let tables = report.tables(self.settings.format == Format::Wide);
                let rendered: Vec<String> = tables.iter().map(render_table).collect();
                rendered.join("\n\n")
            }
            Format::Json => to_json(report)?,
            Format::Yaml => to_yaml(report)?,
            Format::Name => report.names().join("\n"),
        };
        self.write_stdout(&text)
    }

    /// Writes text on stdout, adding the final newline.
    pub fn write_stdout(&self, text: &str) -> Result<(), Error> {
        let mut out = std::io::stdout().lock();
        let result = if text.is_empty() || text.ends_with('\n') {
            out.write_all(text.as_bytes())
        } else {
            writeln!(out, "{text}")
        };
        result.and_then(|()| out.flush()).map_err(Error::Write)
    }

    /// A line for people on stderr (suppressed by `-q`).
    pub fn note(&self, line: &str) {
        if !self.settings.quiet {
            eprintln!("{line}");
        }
    }

    /// A warning line on stderr (suppressed by `-q`).
    pub fn warn(&self, line: &str) {
        if !self.settings.quiet {
            eprintln!("{} {line}", self.paint_warning("warning:"));
        }
    }

    /// Bold when colour is on.
    pub fn bold(&self, text: &str) -> String {
        self.styled(console::Style::new().bold(), text)
    }

    /// Dimmed when colour is on.
    pub fn dim(&self, text: &str) -> String {
        self.styled(console::Style::new().dim(), text)
    }

    /// Green when colour is on.
    pub fn good(&self, text: &str) -> String {
        self.styled(console::Style::new().green(), text)
    }

    /// Red when colour is on.
    pub fn bad(&self, text: &str) -> String {
        self.styled(console::Style::new().red().bold(), text)
    }

    fn paint_warning(&self, text: &str) -> String {
        self.styled(console::Style::new().yellow().bold(), text)
    }

    fn styled(&self, style: console::Style, text: &str) -> String {
        style
            .force_styling(self.settings.color)
            .apply_to(text)
            .to_string()
    }

    /// Asks to go ahead with something that changes or deletes things. `--yes` answers yes;
    /// without a terminal the answer is a refusal naming `--yes` (exit code 3).
    pub fn confirm(&self, question: &str) -> Result<(), Error> {
        if self.settings.yes {
            return Ok(());
        }
        if !self.interactive() {
            return Err(Error::NeedsYes {
                question: question.to_owned(),
            });
        }
        let yes = dialoguer::Confirm::new()
            .with_prompt(question)
            .default(false)
            .interact()
            .map_err(Error::Prompt)?;
        if yes {
            Ok(())
        } else {
            Err(Error::Declined {
                question: question.to_owned(),
            })
        }
    }

    /// A progress bar on stderr, hidden when stderr is not a terminal or with `-q`.
    pub fn progress(&self, len: u64, message: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(len), self.draw_target());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} ({elapsed})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message.to_owned());
        bar
    }

    /// A spinner on stderr, hidden when stderr is not a terminal or with `-q`.
    pub fn spinner(&self, message: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(None, self.draw_target());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }

    fn draw_target(&self) -> ProgressDrawTarget {
        if self.stderr_tty && !self.settings.quiet {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        }
    }
}

/// A table in kubectl's style: upper-case headers, no borders, columns three spaces apart.
pub fn table<I, S>(headers: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(
            headers
                .into_iter()
                .map(|h| Cell::new(h.into().to_uppercase())),
        );
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
    }
    table
}

/// Renders a table with the padding of the last column and trailing blanks removed.
pub fn render_table(table: &Table) -> String {
    let mut table = table.clone();
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
    }
    let lines: Vec<String> = table
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect();
    lines.join("\n")
}

/// Pretty JSON with a final newline.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    serde_json::to_string_pretty(value)
        .map(|mut text| {
            text.push('\n');
            text
        })
        .map_err(|e| Error::Render {
            format: "json",
            message: e.to_string(),
        })
}

/// YAML.
pub fn to_yaml<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_saphyr::to_string(value).map_err(|e| Error::Render {
        format: "yaml",
        message: e.to_string(),
    })
}

/// A Kubernetes-style age: `45s`, `12m`, `3h`, `5d`.
pub fn age(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    match secs {
        0..120 => format!("{secs}s"),
        120..7_200 => format!("{}m", secs / 60),
        7_200..172_800 => format!("{}h", secs / 3_600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// Bytes as people read them: `512B`, `1.5KiB`, `20MiB`, `3.2GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_look_like_kubectl() {
        let mut t = table(["name", "status"]);
        t.add_row(["pvc-1", "Bound"]);
        t.add_row(["a-much-longer-name", "Pending"]);
        assert_eq!(
            render_table(&t),
            "NAME                 STATUS\npvc-1                Bound\na-much-longer-name   Pending"
        );
    }

    #[test]
    fn ages_and_sizes_are_short() {
        assert_eq!(age(Duration::from_secs(5)), "5s");
        assert_eq!(age(Duration::from_secs(600)), "10m");
        assert_eq!(age(Duration::from_secs(3 * 3600)), "3h");
        assert_eq!(age(Duration::from_secs(3 * 86_400)), "3d");
        assert_eq!(bytes(100), "100B");
        assert_eq!(bytes(1536), "1.5KiB");
        assert_eq!(bytes(20 * 1024 * 1024), "20MiB");
    }
}
