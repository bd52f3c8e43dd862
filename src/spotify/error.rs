//! What the Spotify API answers that is not data: refusals, failures that
//! outlived the retries, and requests to wait. They convert into the crate's
//! [`Error`] as a [`SourceError`], so the layers above learn whether to retry
//! and when to come back without knowing Spotify.

use chrono::{DateTime, Utc};

use super::Endpoint;
use crate::error::{Error, SourceError};

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
pub enum ApiError {
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
}

impl SourceError for ApiError {
    fn is_permanent(&self) -> bool {
        matches!(self, ApiError::Auth { .. })
    }

    fn come_back_at(&self) -> Option<DateTime<Utc>> {
        match self {
            ApiError::ComeBackAt { until, .. } => Some(*until),
            _ => None,
        }
    }
}

impl From<ApiError> for Error {
    fn from(error: ApiError) -> Error {
        Error::Source(Box::new(error))
    }
}
