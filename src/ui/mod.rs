//! The only writer to stdout: tables, JSON and YAML documents, names; and the terminal side of
//! stderr: notes, progress bars, spinners and confirmations.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use comfy_table::{Cell, ContentArrangement, Table, presets};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::exit::Exit;

/// `-o/--output`, after the command's default and offer were applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Tables for people.
    Table,
    /// Tables with extra columns.
    Wide,
    /// One JSON document.
    Json,
    /// One YAML document.
    Yaml,
    /// `kind/name` per line, as `kubectl -o name`.
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
    /// `-o/--output`.
    pub format: Format,
    /// Colour on stderr (warnings).
    pub color: bool,
    /// Colour in what goes to stdout (`--color always`, or `auto` with stdout a terminal too:
    /// `lpp check | less` gets plain text).
    pub color_stdout: bool,
    /// `-q`: only errors on stderr; notes and warnings are suppressed.
    pub quiet: bool,
    /// `--yes`: confirmations are answered yes.
    pub yes: bool,
}

/// Why a command could not talk to the user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A confirmation was needed and there was no terminal to ask on.
    #[error("{question}: refusing without a terminal to confirm on; add --yes to go ahead")]
    NeedsYes {
        /// The question that would have been asked.
        question: String,
    },

    /// The user answered no.
    #[error("{question}: not confirmed, nothing changed")]
    Declined {
        /// The question asked.
        question: String,
    },

    /// Writing to stdout or stderr failed.
    #[error("cannot write the output: {0}")]
    Write(#[source] std::io::Error),

    /// Whoever read stdout is gone (`lpp manifests | head -1`): not a failure of lpp's.
    #[error("stdout was closed")]
    StdoutClosed,

    /// The confirmation prompt failed.
    #[error("cannot ask for confirmation: {0}")]
    Prompt(#[source] dialoguer::Error),

    /// A report could not be turned into JSON or YAML.
    #[error("cannot render the output as {format}: {message}")]
    Render {
        /// The format asked for: `json` or `yaml`.
        format: &'static str,
        /// The serializer's message.
        message: String,
    },
}

impl Error {
    /// The process exit status this error maps to.
    pub fn exit(&self) -> Exit {
        match self {
            Error::NeedsYes { .. } | Error::Declined { .. } => Exit::Refused,
            Error::StdoutClosed => Exit::Success,
            _ => Exit::Failure,
        }
    }
}

/// The `apiVersion` of every document lpp prints for machines (`-o json|yaml`).
pub const API_VERSION: &str = "lpp.dev/v1alpha1";

/// `apiVersion` and `kind` of a printed report, as every Kubernetes object has them, so a script
/// can tell documents apart and lpp can change one compatibly. Flatten it first into a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeMeta {
    /// Always `API_VERSION`.
    pub api_version: &'static str,
    /// The report's kind, such as `InstallReport`.
    pub kind: &'static str,
}

impl TypeMeta {
    /// The `TypeMeta` of a report of `kind`.
    pub const fn new(kind: &'static str) -> Self {
        TypeMeta {
            api_version: API_VERSION,
            kind,
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
    /// A user interface with these settings, checking whether stdin and stderr are terminals.
    pub fn new(settings: UiSettings) -> Self {
        Self {
            settings,
            stdin_tty: std::io::stdin().is_terminal(),
            stderr_tty: std::io::stderr().is_terminal(),
        }
    }

    /// The `-o` format.
    pub fn format(&self) -> Format {
        self.settings.format
    }

    /// Whether stderr is coloured.
    pub fn color(&self) -> bool {
        self.settings.color
    }

    /// Whether `-q` was given.
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
        result.and_then(|()| out.flush()).map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                Error::StdoutClosed
            } else {
                Error::Write(e)
            }
        })
    }

    /// A line for people on stderr (suppressed by `-q`).
    pub fn note(&self, line: &str) {
        if !self.settings.quiet {
            eprint_line(line);
        }
    }

    /// A warning line on stderr (suppressed by `-q`).
    pub fn warn(&self, line: &str) {
        if !self.settings.quiet {
            eprint_line(&format!("{} {line}", self.paint_warning("warning:")));
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

    /// Yellow when colour is on: something worth a look, not a failure.
    pub fn caution(&self, text: &str) -> String {
        self.styled(console::Style::new().yellow().bold(), text)
    }

    fn paint_warning(&self, text: &str) -> String {
        console::Style::new()
            .yellow()
            .bold()
            .force_styling(self.settings.color)
            .apply_to(text)
            .to_string()
    }

    /// The painters above style text for stdout.
    fn styled(&self, style: console::Style, text: &str) -> String {
        style
            .force_styling(self.settings.color_stdout)
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

    /// A progress bar counting bytes (`12.5 MiB/40 MiB, 8 MiB/s`), on stderr as
    /// [`Ui::progress`].
    pub fn progress_bytes(&self, len: u64, message: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(len), self.draw_target());
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {elapsed})",
        ) {
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

/// An age or duration as kubectl prints it (its `HumanDuration`): `45s`, `5m30s`, `12m`,
/// `3h12m`, `20h`, `2d3h`, `400d`, `2y30d`.
pub fn age(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    let (minutes, hours, days) = (secs / 60, secs / 3_600, secs / 86_400);
    let pair = |big: u64, big_unit: &str, small: u64, small_unit: &str| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit}{small}{small_unit}")
        }
    };
    if secs < 120 {
        format!("{secs}s")
    } else if minutes < 10 {
        pair(minutes, "m", secs % 60, "s")
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        pair(hours, "h", minutes % 60, "m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        pair(days, "d", hours % 24, "h")
    } else if hours < 24 * 365 * 2 {
        format!("{days}d")
    } else if hours < 24 * 365 * 8 {
        pair(days / 365, "y", days % 365, "d")
    } else {
        format!("{}y", days / 365)
    }
}

/// A duration given on the command line, as typed there: `500ms`, `2s`, `5m30s`.
pub fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        age(d)
    }
}

/// Seconds since the Unix epoch as an age from `now`; a time in the future is `0s`.
pub fn age_since(then: jiff::Timestamp, now: jiff::Timestamp) -> String {
    age(Duration::try_from(now.duration_since(then)).unwrap_or(Duration::ZERO))
}

/// A line on stderr; a closed or broken stderr is ignored (there is nobody to tell).
pub fn eprint_line(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
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
    fn ages_print_as_kubectl_prints_them() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (330, "5m30s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 12 * 60, "3h12m"),
            (20 * 3600, "20h"),
            (2 * 86_400 + 3 * 3600, "2d3h"),
            (3 * 86_400, "3d"),
            (400 * 86_400, "400d"),
            (3 * 365 * 86_400 + 30 * 86_400, "3y30d"),
            (9 * 365 * 86_400, "9y"),
        ];
        for (secs, text) in cases {
            assert_eq!(age(Duration::from_secs(secs)), text, "{secs}s");
        }
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        assert_eq!(duration(Duration::from_secs(2)), "2s");
    }

    #[test]
    fn sizes_are_short() {
        assert_eq!(bytes(100), "100B");
        assert_eq!(bytes(1536), "1.5KiB");
        assert_eq!(bytes(20 * 1024 * 1024), "20MiB");
    }
}
