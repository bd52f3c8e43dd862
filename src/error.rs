//! The one error type of the crate.
//!
//! Every variant names the place (file, key, endpoint, URL with credentials
//! redacted) and, where a user can act, the fix. Secrets never enter a message:
//! values that may hold them pass through [`crate::secret`] first.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::spotify::Endpoint;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the Spotify API asked us to stop for longer than we are willing to sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitReason {
    /// A 429 whose `Retry-After` exceeds the configured ceiling.
    RateLimit,
    /// A 429 with `reason: QUOTA_EXCEEDED` (Development Mode quota buckets).
    QuotaExceeded,
}

impl std::fmt::Display for WaitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WaitReason::RateLimit => "rate limit (Retry-After)",
            WaitReason::QuotaExceeded => "quota exceeded (QUOTA_EXCEEDED)",
        })
    }
}

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

    /// The token endpoint refused the credentials.
    #[error(
        "the token endpoint {token_url} refused the client credentials (HTTP {status}: {message})\n  \
         fix: check SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET against the app's dashboard"
    )]
    Auth {
        token_url: String,
        status: u16,
        message: String,
    },

    /// The API answered a request with an error that retrying will not fix.
    #[error("{endpoint} answered HTTP {status}: {message}")]
    Api {
        endpoint: Endpoint,
        status: u16,
        message: String,
    },

    /// The endpoint is not available to this app (Development Mode, or audio
    /// features for apps approved after 2024-11-27).
    #[error("{endpoint} is not available to this app ({why})")]
    Unavailable { endpoint: Endpoint, why: String },

    /// A body that is not the JSON it should be, after retries.
    #[error(
        "{endpoint} returned a malformed body (HTTP {status}): {problem}; body starts: {snippet:?}"
    )]
    MalformedBody {
        endpoint: Endpoint,
        status: u16,
        problem: String,
        snippet: String,
    },

    /// Network failures (timeouts, refused connections) that outlived the retries.
    #[error("{endpoint}: {message} (gave up after {attempts} attempts)")]
    Transport {
        endpoint: Endpoint,
        message: String,
        attempts: u32,
    },

    /// The API told us to wait longer than the configured ceiling. Not a
    /// failure: the caller checkpoints, persists `until` and stops.
    #[error(
        "Spotify asked to wait until {until} ({reason}); the run stops cleanly and resumes after that time"
    )]
    ComeBackAt {
        until: DateTime<Utc>,
        reason: WaitReason,
    },

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

    /// An input file (an import, a dump) is malformed; nothing of it was loaded
    /// unless the message says otherwise.
    #[error("kafka {brokers}: {problem}\n  fix: {fix}")]
    Kafka {
        brokers: String,
        problem: String,
        fix: String,
    },

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

    /// A server could not start or stopped unexpectedly.
    #[error("{what}: {message}")]
    Server { what: String, message: String },
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
                | Error::Auth { .. }
                | Error::Input { .. }
                | Error::DataTests { .. }
        )
    }

    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
