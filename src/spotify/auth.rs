//! Client-credentials tokens: fetched on first use, cached, refreshed a
//! minute before expiry, and dropped when a request comes back 401.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::ApiError;
use super::Endpoint;
use super::client::{Backoff, read_body, snippet};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::secret::{Secret, redact_url};

/// Refresh this long before the announced expiry (or at 90% of a short lifetime).
const REFRESH_MARGIN_SECS: i64 = 60;
/// Spotify documents 3600 s; used only when a response leaves `expires_in` out.
const DEFAULT_LIFETIME_SECS: i64 = 3600;

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub value: Secret,
    pub generation: u64,
    refresh_at: DateTime<Utc>,
}

#[derive(Debug)]
pub(super) struct Auth {
    pub token_url: String,
    client_id: String,
    client_secret: Secret,
    current: tokio::sync::Mutex<(Option<Token>, u64)>,
}

impl Auth {
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn new(token_url: String, client_id: String, client_secret: Secret) -> Self {
        Auth {
            token_url,
            client_id,
            client_secret,
            current: tokio::sync::Mutex::new((None, 0)),
        }
    }

    /// A valid token, fetching a new one when none is cached or it is due.
    /// The lock is held across the fetch so concurrent callers share one.
    pub async fn token(
        &self,
        http: &reqwest::Client,
        clock: &SharedClock,
        backoff: &Backoff,
    ) -> Result<Token> {
        let mut guard = self.current.lock().await;
        if let Some(token) = &guard.0
            && clock.now() < token.refresh_at
        {
            return Ok(token.clone());
        }
        let (value, lifetime) = self.fetch(http, clock, backoff).await?;
        let margin = REFRESH_MARGIN_SECS.min(lifetime / 10);
        guard.1 += 1;
        let token = Token {
            value,
            generation: guard.1,
            refresh_at: clock.now() + chrono::Duration::seconds(lifetime - margin),
        };
        guard.0 = Some(token.clone());
        Ok(token)
    }

    /// Forget the token of `generation` after the API rejected it, unless a
    /// newer one has replaced it meanwhile.
    pub async fn invalidate(&self, generation: u64) {
        let mut guard = self.current.lock().await;
        if guard.0.as_ref().is_some_and(|t| t.generation == generation) {
            guard.0 = None;
        }
    }

    async fn fetch(
        &self,
        http: &reqwest::Client,
        clock: &SharedClock,
        backoff: &Backoff,
    ) -> Result<(Secret, i64)> {
        let endpoint = Endpoint::Token;
        let mut attempt = 0;
        loop {
            let sent = http
                .post(&self.token_url)
                .basic_auth(&self.client_id, Some(self.client_secret.expose()))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials")
                .send()
                .await;
            let transient = match sent {
                Err(e) => Error::from(ApiError::Transport {
                    endpoint,
                    message: e.without_url().to_string(),
                    attempts: attempt + 1,
                }),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = read_body(endpoint, response).await;
                    match (status, body) {
                        (_, Err(e)) => e,
                        (200, Ok(bytes)) => return parse_token(&bytes),
                        (s, Ok(bytes)) if s >= 500 => Error::from(ApiError::Api {
                            endpoint,
                            status: s,
                            message: snippet(&bytes),
                        }),
                        (s, Ok(bytes)) => {
                            return Err(Error::from(ApiError::Auth {
                                token_url: redact_url(&self.token_url),
                                status: s,
                                message: oauth_message(&bytes),
                            }));
                        }
                    }
                }
            };
            attempt += 1;
            if attempt > backoff.max_retries {
                return Err(transient);
            }
            tracing::warn!(endpoint = %endpoint, attempt, error = %transient, "Token request failed; retrying");
            clock.sleep(backoff.delay(attempt)).await;
        }
    }
}

fn parse_token(bytes: &[u8]) -> Result<(Secret, i64)> {
    let malformed = |problem: &str| {
        Error::from(ApiError::MalformedBody {
            endpoint: Endpoint::Token,
            status: 200,
            problem: problem.to_string(),
            // The body holds the token itself: never quote it.
            snippet: String::new(),
        })
    };
    let value: Value =
        serde_json::from_slice(bytes).map_err(|_| malformed("the token response is not JSON"))?;
    let token = value
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| malformed("no access_token in the token response"))?;
    if let Some(kind) = value.get("token_type").and_then(Value::as_str)
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(malformed("token_type is not Bearer"));
    }
    let lifetime = value
        .get("expires_in")
        .and_then(Value::as_i64)
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_LIFETIME_SECS);
    Ok((Secret::new(token), lifetime))
}

/// `error_description` (or `error`) of an RFC 6749 error body, else a snippet.
fn oauth_message(bytes: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
    let field = |key: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match (field("error"), field("error_description")) {
        (Some(code), Some(text)) => format!("{code}: {text}"),
        (Some(code), None) => code,
        _ => snippet(bytes),
    }
}
