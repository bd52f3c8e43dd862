//! The one error type of the crate.
//!
//! Every variant names the place (file, key, endpoint, URL with credentials
//! redacted) and, where a user can act, the fix. Secrets never enter a message:
//! values that may hold them pass through [`crate::secret`] first.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration file, key or value is wrong.
    #[error("configuration error in {place}: {problem}\n  fix: {fix}")]
    Config {
        place: String,
        problem: String,
        fix: String,
    },

    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Spotify client credentials are missing.
    #[error(
        "Spotify credentials are not set\n  fix: set SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET \
         (or [spotify] client_id / client_secret in soundlake.toml); \
         to run without credentials, use `soundlake demo` or point api_url/token_url at `soundlake sim`"
    )]
    MissingCredentials,

    /// A source outside soundlake (the Spotify API, its token endpoint)
    /// refused, failed or asked to wait. Its own error is kept whole: see
    /// [`Error::source_error`].
    #[error("{0}")]
    Source(Box<dyn SourceError>),

    /// The landing store failed or refused an operation.
    #[error("landing store {store}: {problem}\n  fix: {fix}")]
    Store {
        store: String,
        problem: String,
        fix: String,
    },

    /// The lake (object storage) failed or refused an operation. `url` has
    /// its credentials redacted.
    #[error("lake {url}: {problem}\n  fix: {fix}")]
    Lake {
        url: String,
        problem: String,
        fix: String,
    },

    /// Another writer committed to a lake table after this write began,
    /// and the two writes cannot both stand: nothing of this one is
    /// visible.
    #[error(
        "lake {url}: another writer committed version {version} of {table} while this run was writing\n  fix: run one writer per table at a time (soundlake's scheduler locks each table); run the task again, it starts from the new version"
    )]
    Conflict {
        url: String,
        table: String,
        version: u64,
    },

    /// The Kafka brokers failed or refused, or a Kafka setting is wrong.
    #[error("kafka {brokers}: {problem}\n  fix: {fix}")]
    Kafka {
        brokers: String,
        problem: String,
        fix: String,
    },

    /// An input file (an import, a dump) is malformed; nothing of it was loaded
    /// unless the message says otherwise.
    #[error("{place}: {problem}\n  fix: {fix}")]
    Input {
        place: String,
        problem: String,
        fix: String,
    },

    /// A pipeline run ended with tasks that did not succeed.
    #[error(
        "pipeline {pipeline}: {problems}\n  fix: see each task's error above or in `soundlake runs`; rerun with --select to retry just those tasks"
    )]
    RunFailed { pipeline: String, problems: String },

    /// A run was to start under an id that names a run already started: the
    /// same scheduled fire, or a clash of generated ids. Nothing ran.
    #[error(
        "a run with id {id} was started before, so this one did not start (an id names one run)\n  fix: nothing to do for a scheduled fire, which runs once; otherwise start the run again, which takes a new id"
    )]
    RunExists { id: String },

    /// A gold model's data tests found rows that break them; the table was
    /// not published.
    #[error(
        "{table}: {failed} data test(s) failed, so the new version was not published and the tables built from it were not run:\n{report}\n  fix: correct the rows upstream (or the model's SQL), or change the test in the model's .toml if the expectation is wrong"
    )]
    DataTests {
        table: String,
        failed: usize,
        report: String,
    },

    /// A task that a task started alongside, and had to see succeed
    /// before publishing, did not succeed; nothing was published.
    #[error(
        "{tasks} did not succeed, and this task publishes only after it (its tests read that table), so nothing was published\n  fix: see that task's error; rerun with --select to retry both"
    )]
    UpstreamFailed { tasks: String },

    /// The operating system refused what the process needs (a signal
    /// handler, standard output).
    #[error("{what}: {source}")]
    System {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A server could not start or stopped unexpectedly.
    #[error("{what}: {message}")]
    Server { what: String, message: String },
}

/// The error of a source module, with what the layers above need to know
/// of it without knowing the source: whether retrying can help, and whether
/// it asks for a pause. Sources convert theirs with `From` into
/// [`Error::Source`].
pub trait SourceError: std::error::Error + Send + Sync + 'static {
    /// Retrying cannot help: the configuration or credentials must change.
    fn is_permanent(&self) -> bool;
    /// The time the source asked to be left alone until, if it did.
    fn come_back_at(&self) -> Option<DateTime<Utc>>;
}

impl Error {
    pub fn config(
        place: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Error::Config {
            place: place.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// Whether retrying cannot help: the configuration, the credentials or
    /// the input must change first.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Error::Config { .. }
                | Error::MissingCredentials
                | Error::Input { .. }
                | Error::DataTests { .. }
                | Error::UpstreamFailed { .. }
        ) || matches!(self, Error::Source(e) if e.is_permanent())
    }

    /// The source's own error, when this is one of type `T`.
    pub fn source_error<T: SourceError>(&self) -> Option<&T> {
        match self {
            Error::Source(e) => (&**e as &(dyn std::error::Error + 'static)).downcast_ref(),
            _ => None,
        }
    }

    /// When a source asked to be left alone until a time: not a failure,
    /// the work stops cleanly and resumes after it.
    pub fn come_back_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Error::Source(e) => e.come_back_at(),
            _ => None,
        }
    }

    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// An error's message followed by each of its causes, `: `-separated. A
/// transport error's own message ("error sending request") rarely says
/// what a reader can act on; its causes (a refused connection) do.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
