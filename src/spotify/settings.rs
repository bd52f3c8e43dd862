use serde::{Deserialize, Serialize};

use super::AppMode;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// The `[spotify]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpotifySettings {
    /// Base URL of the Web API.
    pub api_url: String,
    /// Client-credentials token endpoint.
    pub token_url: String,
    /// `extended` or `development`; a 403 on a batch endpoint or a 400
    /// "Invalid limit" switches an `extended` client to development at run time.
    pub mode: AppMode,
    /// Also read from `SPOTIFY_CLIENT_ID`.
    pub client_id: String,
    /// Also read from `SPOTIFY_CLIENT_SECRET`. Never logged.
    pub client_secret: Secret,
    /// Request budget per rolling window, shared by every caller of one credential.
    pub requests_per_window: u32,
    /// Length of the rolling window Spotify counts requests over.
    pub window_secs: u64,
    /// Longest wait (Retry-After, quota) the client sleeps through; longer
    /// waits end the run with a saved "come back at" time.
    pub max_wait_secs: u64,
    /// Retries of one request on 5xx, timeouts, connection errors and malformed bodies.
    pub max_retries: u32,
    /// Timeout of one HTTP request.
    pub request_timeout_ms: u64,
    /// First retry delay; doubles per attempt, with full jitter.
    pub backoff_initial_ms: u64,
    /// Cap on one retry delay.
    pub backoff_max_ms: u64,
}

impl Default for SpotifySettings {
    fn default() -> Self {
        SpotifySettings {
            api_url: "https://api.spotify.com/v1".into(),
            token_url: "https://accounts.spotify.com/api/token".into(),
            mode: AppMode::Extended,
            client_id: String::new(),
            client_secret: Secret::default(),
            requests_per_window: 90,
            window_secs: 30,
            max_wait_secs: 900,
            max_retries: 5,
            request_timeout_ms: 30_000,
            backoff_initial_ms: 500,
            backoff_max_ms: 60_000,
        }
    }
}

impl SpotifySettings {
    pub(crate) fn validate(&self) -> Result<()> {
        let place = |key: &str| format!("[spotify] {key}");
        for (key, value) in [("api_url", &self.api_url), ("token_url", &self.token_url)] {
            match url::Url::parse(value) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => {
                    return Err(Error::config(
                        place(key),
                        format!("{value:?} is not an http(s) URL"),
                        "use a full URL such as https://api.spotify.com/v1",
                    ));
                }
            }
        }
        for (key, value) in [
            ("requests_per_window", u64::from(self.requests_per_window)),
            ("window_secs", self.window_secs),
            ("request_timeout_ms", self.request_timeout_ms),
        ] {
            if value == 0 {
                return Err(Error::config(
                    place(key),
                    "must be at least 1",
                    format!("set {key} to a positive number or remove it to use the default"),
                ));
            }
        }
        if self.backoff_initial_ms > self.backoff_max_ms {
            return Err(Error::config(
                place("backoff_initial_ms"),
                "is larger than backoff_max_ms",
                "lower backoff_initial_ms or raise backoff_max_ms",
            ));
        }
        Ok(())
    }
}
