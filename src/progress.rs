//! Progress for a person watching long work: bars on standard error while
//! standard output is a terminal and logs are text, and nothing at all
//! otherwise (a pipe, a file, JSON logs), so scripts and log collectors
//! never see them. Log lines are written above the bars, not through them.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where bars are drawn, if anywhere. Cloning shares the display.
#[derive(Clone, Default)]
pub struct Progress(Option<MultiProgress>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(shown)"
        } else {
            "Progress(hidden)"
        })
    }
}

/// What a bar counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    /// Things counted one by one, named by the word given (`rows`,
    /// `tasks`, `names`).
    Items(&'static str),
}

impl Progress {
    /// Bars when standard output and standard error are terminals and the
    /// logs are not JSON; none otherwise.
    pub fn for_terminal(json_logs: bool) -> Progress {
        use std::io::IsTerminal;
        if json_logs || !std::io::stdout().is_terminal() || !std::io::stderr().is_terminal() {
            return Progress::default();
        }
        Progress(Some(MultiProgress::with_draw_target(
            ProgressDrawTarget::stderr(),
        )))
    }

    /// A bar of `total` (unknown: a spinner) for `what`, drawn at once
    /// and ticking on its own; hidden when there is no display.
    pub fn bar(&self, what: &str, total: Option<u64>, unit: Unit) -> Bar {
        self.bar_with(what, total, unit, Extras::default())
    }

    /// [`Progress::bar`], also showing `extras`.
    pub fn bar_with(&self, what: &str, total: Option<u64>, unit: Unit, extras: Extras) -> Bar {
        let Extras { note, tally } = extras;
        let (word, tally) = tally.unwrap_or(("", Tally::default()));
        let Some(multi) = &self.0 else {
            return Bar { bar: None, tally };
        };
        let template = match (unit, total) {
            (Unit::Bytes, Some(_)) => {
                "{prefix} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta}){tally} {msg}{note}"
                    .into()
            }
            (Unit::Bytes, None) => {
                "{prefix} {spinner} {bytes} ({bytes_per_sec}){tally} {msg}{note}".into()
            }
            (Unit::Items(word), Some(_)) => {
                format!(
                    "{{prefix}} [{{bar:30}}] {{human_pos}}/{{human_len}} {word} (ETA {{eta}}){{tally}} {{msg}}{{note}}"
                )
            }
            (Unit::Items(word), None) => {
                format!("{{prefix}} {{spinner}} {{human_pos}} {word}{{tally}} {{msg}}{{note}}")
            }
        };
        let counted = tally.clone();
        let style = ProgressStyle::with_template(&template)
            .expect("the templates are valid")
            .with_key(
                "note",
                move |_: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                    if let Some(note) = note.0.as_ref().and_then(|f| f()) {
                        let _ = write!(out, " · {note}");
                    }
                },
            )
            .with_key(
                "tally",
                move |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                    let n = counted.get();
                    if n > 0 {
                        let rate = n as f64 / state.elapsed().as_secs_f64().max(1e-3);
                        let _ = write!(
                            out,
                            ", {} {word} ({}/s)",
                            indicatif::HumanCount(n),
                            indicatif::HumanCount(rate as u64)
                        );
                    }
                },
            )
            .progress_chars("=> ");
        let bar = multi.add(match total {
            Some(total) => ProgressBar::new(total),
            None => ProgressBar::no_length(),
        });
        bar.set_style(style);
        bar.set_prefix(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar {
            bar: Some(bar),
            tally,
        }
    }

    /// A writer for log lines that suspends the bars while it writes.
    pub fn log_writer(&self) -> LogWriter {
        LogWriter(self.0.clone())
    }
}

/// What a bar shows besides its count and message.
#[derive(Clone, Debug, Default)]
pub struct Extras {
    /// Asked each time the bar is drawn.
    pub note: Note,
    /// Things done along the way (`rows`, `documents`), shown with their
    /// rate once there are any.
    pub tally: Option<(&'static str, Tally)>,
}

/// What a bar says besides its count, asked each time it is drawn.
#[derive(Clone, Default)]
pub struct Note(Option<std::sync::Arc<NoteFn>>);

type NoteFn = dyn Fn() -> Option<String> + Send + Sync;

impl Note {
    pub fn new(f: impl Fn() -> Option<String> + Send + Sync + 'static) -> Note {
        Note(Some(std::sync::Arc::new(f)))
    }
}

impl std::fmt::Debug for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Note")
    }
}

/// A count shared by the work that adds to it and the bar that shows it;
/// cheap enough to add to whether or not anything is shown.
#[derive(Clone, Debug, Default)]
pub struct Tally(std::sync::Arc<AtomicU64>);

impl Tally {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// One bar; every method does nothing when progress is not shown.
#[derive(Clone, Default)]
pub struct Bar {
    bar: Option<ProgressBar>,
    tally: Tally,
}

impl Bar {
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Add `n` to the bar's tally.
    pub fn count(&self, n: u64) {
        self.tally.add(n);
    }

    /// Start over from nothing done, for a second pass over the same work.
    pub fn restart(&self) {
        self.tally.reset();
        if let Some(bar) = &self.bar {
            bar.set_position(0);
            bar.reset_elapsed();
            bar.reset_eta();
        }
    }

    pub fn set_message(&self, message: impl Into<String>) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.into());
        }
    }

    /// Leave the bar at its last state, no longer ticking.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// Standard error for log lines, above the bars when there are any.
#[derive(Clone)]
pub struct LogWriter(Option<MultiProgress>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.0 {
            Some(multi) => multi.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        self.clone()
    }
}
