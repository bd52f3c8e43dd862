//! The request loop every endpoint goes through: governor slot, bearer
//! token, send, classify, and then retry, pause, refresh or fail.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::auth::Auth;
use super::governor::{Governor, GovernorSettings, RateScope};
use super::{ApiError, AppMode, Endpoint, SpotifySettings, WaitReason};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Bodies larger than this are refused rather than buffered.
pub const MAX_BODY_BYTES: usize = 64 << 20;
/// 429s one request may sit out before giving up: a server that keeps
/// answering 429 after every pause it asked for is not going to recover.
const MAX_THROTTLES_PER_REQUEST: u32 = 20;
const SNIPPET_CHARS: usize = 160;

/// The production Spotify client. Cheap to clone; clones share the token,
/// the statistics and the rate governor of the credential.
#[derive(Debug, Clone)]
pub struct SpotifyClient {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    http: reqwest::Client,
    pub api_base: url::Url,
    auth: Auth,
    governor: Arc<Governor>,
    clock: SharedClock,
    backoff: Backoff,
    mode: AtomicU8,
    pub audio_features_refused: AtomicBool,
    stats: Mutex<ClientStats>,
}

/// What a client did, for run reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientStats {
    /// HTTP requests sent, by endpoint, including retries and refused ones.
    pub requests: BTreeMap<Endpoint, u64>,
    /// Requests repeated after a 5xx, timeout, connection error or malformed body.
    pub retries: u64,
    /// 429 answers.
    pub throttled: u64,
    /// Token refreshes forced by a 401.
    pub reauthentications: u64,
}

impl ClientStats {
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// What happened after `earlier`, a snapshot of the same client.
    pub fn since(&self, earlier: &ClientStats) -> ClientStats {
        ClientStats {
            requests: self
                .requests
                .iter()
                .map(|(e, n)| (*e, n - earlier.requests.get(e).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            retries: self.retries - earlier.retries,
            throttled: self.throttled - earlier.throttled,
            reauthentications: self.reauthentications - earlier.reauthentications,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Backoff {
    pub max_retries: u32,
    initial: Duration,
    max: Duration,
    rng: Mutex<Rng>,
}

impl Backoff {
    /// Full jitter: uniform in `[0, min(max, initial * 2^(attempt-1))]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(30)))
            .min(self.max);
        let fraction = self.rng.lock().expect("jitter lock").unit();
        ceiling.mul_f64(fraction)
    }
}

/// How one attempt ended, when it did not succeed.
enum Failure {
    Retry(Error),
    Throttled(Option<Duration>, WaitReason),
    Unauthorized(Error),
    Fatal(Error),
}

impl SpotifyClient {
    /// A client for the configured credentials, keeping the credential's
    /// rate ledger in `scope`. Fails with a message naming what to set when
    /// the credentials are missing.
    pub fn new(settings: &SpotifySettings, clock: SharedClock, scope: RateScope) -> Result<Self> {
        if settings.client_id.is_empty() || settings.client_secret.is_empty() {
            return Err(Error::MissingCredentials);
        }
        let mut api_base =
            url::Url::parse(settings.api_url.trim_end_matches('/')).map_err(|e| {
                Error::config(
                    "[spotify] api_url",
                    e.to_string(),
                    "use a URL such as https://api.spotify.com/v1",
                )
            })?;
        if !api_base.path().ends_with('/') {
            let path = format!("{}/", api_base.path());
            api_base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.request_timeout_ms))
            .user_agent(concat!("soundlake/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Server {
                what: "HTTP client".into(),
                message: e.to_string(),
            })?;
        let governor = Governor::for_credential(
            &format!("{}\u{0}{}", settings.token_url, settings.client_id),
            GovernorSettings {
                budget: settings.requests_per_window,
                window: Duration::from_secs(settings.window_secs),
                max_wait: Duration::from_secs(settings.max_wait_secs),
            },
            clock.clone(),
            scope,
        );
        let seed = clock.now().timestamp_nanos_opt().unwrap_or_default() as u64;
        Ok(SpotifyClient {
            inner: Arc::new(Inner {
                http,
                api_base,
                auth: Auth::new(
                    settings.token_url.clone(),
                    settings.client_id.clone(),
                    settings.client_secret.clone(),
                ),
                governor,
                clock,
                backoff: Backoff {
                    max_retries: settings.max_retries,
                    initial: Duration::from_millis(settings.backoff_initial_ms),
                    max: Duration::from_millis(settings.backoff_max_ms),
                    rng: Mutex::new(Rng::seeded(seed)),
                },
                mode: AtomicU8::new(mode_code(settings.mode)),
                audio_features_refused: AtomicBool::new(false),
                stats: Mutex::new(ClientStats::default()),
            }),
        })
    }

    /// The app mode in force: the configured one, or development once the
    /// API has shown it.
    pub fn mode(&self) -> AppMode {
        match self.inner.mode.load(Ordering::Relaxed) {
            0 => AppMode::Extended,
            _ => AppMode::Development,
        }
    }

    /// Switch to Development Mode behaviour; logs once per client.
    pub(super) fn detected_development(&self, evidence: &str) {
        let switched = self
            .inner
            .mode
            .compare_exchange(
                mode_code(AppMode::Extended),
                mode_code(AppMode::Development),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok();
        if switched {
            tracing::warn!(
                evidence,
                "The Spotify app behaves as a Development Mode app; switching to single-item reads \
                 and page limit 10 (set [spotify] mode = \"development\" to skip detection)"
            );
        }
    }

    /// The client id of the credential (public, unlike the secret).
    pub fn client_id(&self) -> &str {
        self.inner.auth.client_id()
    }

    /// The credential's shared rate governor.
    pub fn governor(&self) -> &Arc<Governor> {
        &self.inner.governor
    }

    pub fn stats(&self) -> ClientStats {
        self.inner.stats.lock().expect("stats lock").clone()
    }

    /// GET `url` as `endpoint`, with governor, auth, retries and pauses.
    /// Returns the parsed JSON body of a 2xx answer, which must not be an
    /// error object.
    pub(super) async fn get(&self, endpoint: Endpoint, url: url::Url) -> Result<Value> {
        let inner = &self.inner;
        let mut attempt = 0u32;
        let mut reauthenticated = false;
        let mut throttles = 0u32;
        loop {
            inner.governor.acquire().await?;
            let token = inner
                .auth
                .token(&inner.http, &inner.clock, &inner.backoff)
                .await?;
            self.count(|s| *s.requests.entry(endpoint).or_default() += 1);
            let sent = inner
                .http
                .get(url.clone())
                .bearer_auth(token.value.expose())
                .send()
                .await;
            let failure = match classify(endpoint, sent).await {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            match failure {
                Failure::Fatal(e) => return Err(e),
                Failure::Retry(e) => {
                    attempt += 1;
                    if attempt > inner.backoff.max_retries {
                        return Err(match e.source_error() {
                            Some(ApiError::Transport {
                                endpoint, message, ..
                            }) => Error::from(ApiError::Transport {
                                endpoint: *endpoint,
                                message: message.clone(),
                                attempts: attempt,
                            }),
                            _ => e,
                        });
                    }
                    self.count(|s| s.retries += 1);
                    tracing::debug!(endpoint = %endpoint, attempt, error = %e, "Retrying request");
                    inner.clock.sleep(inner.backoff.delay(attempt)).await;
                }
                Failure::Throttled(retry_after, reason) => {
                    self.count(|s| s.throttled += 1);
                    throttles += 1;
                    tracing::info!(
                        endpoint = %endpoint,
                        retry_after_secs = retry_after.map(|d| d.as_secs()),
                        %reason,
                        "Rate limited; pausing every caller of this credential"
                    );
                    inner.governor.throttled(retry_after, reason).await?;
                    if throttles > MAX_THROTTLES_PER_REQUEST {
                        return Err(Error::from(ApiError::Api {
                            endpoint,
                            status: 429,
                            message: format!(
                                "still rate limited after {MAX_THROTTLES_PER_REQUEST} pauses; \
                                 lower [spotify] requests_per_window"
                            ),
                        }));
                    }
                }
                Failure::Unauthorized(e) => {
                    if reauthenticated {
                        return Err(e);
                    }
                    reauthenticated = true;
                    self.count(|s| s.reauthentications += 1);
                    inner.auth.invalidate(token.generation).await;
                }
            }
        }
    }

    fn count(&self, f: impl FnOnce(&mut ClientStats)) {
        f(&mut self.inner.stats.lock().expect("stats lock"));
    }
}

fn mode_code(mode: AppMode) -> u8 {
    match mode {
        AppMode::Extended => 0,
        AppMode::Development => 1,
    }
}

/// What went wrong on the wire, in words: reqwest's own message says only
/// "error sending request"; the cause (a timeout, a refused connection)
/// is what a reader can act on. URLs are left out.
fn transport_problem(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer within [spotify] request_timeout_ms".into();
    }
    crate::error::with_causes(&e.without_url())
}

async fn classify(
    endpoint: Endpoint,
    sent: reqwest::Result<reqwest::Response>,
) -> std::result::Result<Value, Failure> {
    let response = sent.map_err(|e| {
        Failure::Retry(Error::from(ApiError::Transport {
            endpoint,
            message: transport_problem(e),
            attempts: 1,
        }))
    })?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let bytes = read_body(endpoint, response)
        .await
        .map_err(Failure::Retry)?;
    let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
    let api_error = || {
        Error::from(ApiError::Api {
            endpoint,
            status,
            message: error_message(parsed.as_ref()).unwrap_or_else(|| snippet(&bytes)),
        })
    };
    match status {
        200..=299 => match parsed {
            Some(value) if error_message(Some(&value)).is_some() => {
                Err(Failure::Retry(Error::from(ApiError::MalformedBody {
                    endpoint,
                    status,
                    problem: "a success status with an error object".into(),
                    snippet: snippet(&bytes),
                })))
            }
            Some(value) => Ok(value),
            None => Err(Failure::Retry(Error::from(ApiError::MalformedBody {
                endpoint,
                status,
                problem: json_problem(&bytes),
                snippet: snippet(&bytes),
            }))),
        },
        429 => {
            let quota = parsed
                .as_ref()
                .and_then(|v| v.pointer("/error/reason"))
                .and_then(Value::as_str)
                == Some("QUOTA_EXCEEDED");
            let reason = if quota {
                WaitReason::QuotaExceeded
            } else {
                WaitReason::RateLimit
            };
            Err(Failure::Throttled(retry_after, reason))
        }
        401 => Err(Failure::Unauthorized(api_error())),
        403 if error_message(parsed.as_ref()).is_some_and(|m| is_app_blocked(&m)) => {
            Err(Failure::Fatal(app_blocked(endpoint, parsed.as_ref())))
        }
        500..=599 => Err(Failure::Retry(api_error())),
        _ => Err(Failure::Fatal(api_error())),
    }
}

/// The body, refusing more than [`MAX_BODY_BYTES`].
pub(super) async fn read_body(
    endpoint: Endpoint,
    mut response: reqwest::Response,
) -> Result<Vec<u8>> {
    let status = response.status().as_u16();
    let too_large = |bytes: &[u8]| {
        Error::from(ApiError::MalformedBody {
            endpoint,
            status,
            problem: format!("the body is larger than {} MiB", MAX_BODY_BYTES >> 20),
            snippet: snippet(bytes),
        })
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(too_large(&[]));
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(too_large(&body));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(Error::from(ApiError::Transport {
                    endpoint,
                    message: format!("reading the body: {}", transport_problem(e)),
                    attempts: 1,
                }));
            }
        }
    }
}

/// Whether a 403's message says Spotify blocks the whole application (a
/// Development Mode app whose owner's Premium subscription lapsed: "Your
/// application is blocked from accessing the Web API since you do not have
/// a Spotify Premium subscription."), rather than refusing one endpoint.
fn is_app_blocked(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("application is blocked") || message.contains("premium subscription")
}

/// A blocked application: no retry can help until its owner acts, so it is
/// a configuration error with the fix.
fn app_blocked(endpoint: Endpoint, body: Option<&Value>) -> Error {
    Error::config(
        "[spotify] client_id",
        format!(
            "Spotify blocks this application ({endpoint} answered 403: {})",
            error_message(body).unwrap_or_default()
        ),
        "a Development Mode app works only while its owner has Spotify Premium: renew the \
         owner's subscription (the app works again once it is active) or use an Extended Quota \
         Mode app's credentials; nothing is retried until then",
    )
}

/// The `error.message` (or `error` string) of an API error body.
fn error_message(body: Option<&Value>) -> Option<String> {
    let error = body?.get("error")?;
    match error {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => Some(
            o.get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| error.to_string()),
        ),
        _ => None,
    }
}

fn json_problem(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "the body is empty".into();
    }
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).to_ascii_lowercase();
    if head.trim_start().starts_with('<') {
        return "an HTML page instead of JSON".into();
    }
    match serde_json::from_slice::<Value>(bytes) {
        Err(e) if e.is_eof() => format!("truncated JSON ({e})"),
        Err(e) => format!("invalid JSON ({e})"),
        Ok(_) => "unexpected JSON".into(),
    }
}

/// The start of a body, safe to print: one line, bounded, printable.
pub(super) fn snippet(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(SNIPPET_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
