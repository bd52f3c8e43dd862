//! The Spotify Web API simulator (`soundlake sim`): the token endpoint and
//! every catalog endpoint the crawl uses, over a deterministic catalog, with
//! both app modes, a rolling-window rate limit, an optional quota and fault
//! injection. The demo, the tests and users without credentials run on it.

mod catalog;
mod dump;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use catalog::{AlbumType, Catalog, Entity, Group, View};
pub use dump::{Written, objects, render as render_written, write_ndjson};

use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::spotify::{AppMode, Endpoint, SpotifySettings};

/// The simulator's one accepted credential.
pub const CLIENT_ID: &str = "soundlake-sim-client";
pub const CLIENT_SECRET: &str = "soundlake-sim-secret";

/// Client settings for a simulator listening at `base` (for example
/// `http://127.0.0.1:8099`, see [`Simulator::base_url`]).
pub fn client_settings(base: &str) -> SpotifySettings {
    let mut settings = SpotifySettings::default();
    point_at(&mut settings, base);
    settings
}

/// Point `settings` at the simulator listening at `base`, with its
/// credential; the rest of the settings stay as they are.
pub fn point_at(settings: &mut SpotifySettings, base: &str) {
    settings.api_url = format!("{base}/v1");
    settings.token_url = format!("{base}/api/token");
    settings.client_id = CLIENT_ID.into();
    settings.client_secret = Secret::new(CLIENT_SECRET);
}

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub mode: AppMode,
    pub seed: u64,
    /// Artist names the catalog is built around (collaborators are added).
    pub names: Vec<String>,
    /// Requests accepted per rolling window; 0 turns the limit off.
    pub rate_limit: u32,
    pub window: Duration,
    /// Requests accepted per quota period before `QUOTA_EXCEEDED`.
    pub quota: Option<u64>,
    pub quota_period: Duration,
    pub token_ttl: Duration,
    pub faults: Faults,
    /// Fixed answers served before anything else, for tests of odd bodies.
    pub canned: Vec<Canned>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            mode: AppMode::Extended,
            seed: 42,
            names: Vec::new(),
            rate_limit: 180,
            window: Duration::from_secs(30),
            quota: None,
            quota_period: Duration::from_secs(24 * 3600),
            token_ttl: Duration::from_secs(3600),
            faults: Faults::default(),
            canned: Vec::new(),
        }
    }
}

/// Shares of requests that fail on purpose (each 0.0 to 1.0).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Answer 500, 502 or 503.
    pub server_errors: f64,
    /// Hold the answer back for `slow_by` of real time first.
    pub slow: f64,
    pub slow_by: Duration,
    /// Answer 200 with a truncated, HTML, empty or error-object body.
    pub malformed: f64,
    /// Expire the caller's token and answer 401.
    pub expire_token: f64,
}

/// A fixed answer for requests to `path` (for example `/v1/tracks`), served
/// `times` times (for ever when `None`).
#[derive(Debug, Clone)]
pub struct Canned {
    pub path: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub times: Option<u32>,
}

/// One request the simulator answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// When the request arrived, on the simulator's clock.
    pub at: chrono::DateTime<chrono::Utc>,
    /// `None` for paths that are not Spotify endpoints.
    pub endpoint: Option<Endpoint>,
    pub path: String,
    pub status: u16,
}

/// A running simulator. Stops when dropped or on [`Simulator::stop`].
pub struct Simulator {
    addr: SocketAddr,
    state: Arc<server::SimState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Simulator {
    /// Bind `addr` (port 0 picks a free port) and serve in the background.
    pub async fn start(options: SimOptions, clock: SharedClock, addr: SocketAddr) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Server {
                what: format!("simulator on {addr}"),
                message: format!("{e}; pick another --port"),
            })?;
        let addr = listener.local_addr().map_err(|e| Error::Server {
            what: "simulator".into(),
            message: e.to_string(),
        })?;
        let state = Arc::new(server::SimState::new(
            options,
            clock,
            format!("http://{addr}"),
        ));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let app = server::router(state.clone());
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "Simulator stopped");
            }
        });
        Ok(Simulator {
            addr,
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:<port>`: `api_url` is this plus `/v1`,
    /// `token_url` this plus `/api/token`.
    /// What a user of the standalone simulator needs to point soundlake
    /// at it.
    pub fn banner(&self) -> String {
        let c = self.catalog();
        let base = self.base_url();
        format!(
            "soundlake sim listening on {base} ({} mode; {} artists, {} albums, {} tracks)\n  \
             SOUNDLAKE__SPOTIFY__API_URL={base}/v1\n  \
             SOUNDLAKE__SPOTIFY__TOKEN_URL={base}/api/token\n  \
             SPOTIFY_CLIENT_ID={CLIENT_ID}\n  \
             SPOTIFY_CLIENT_SECRET={CLIENT_SECRET} (the simulator's public test secret)\n  \
             request log: {base}/sim/log\n",
            self.state.options.mode,
            c.artists.len(),
            c.albums.len(),
            c.tracks.len()
        )
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn catalog(&self) -> &Catalog {
        &self.state.catalog
    }

    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.state.log.lock().expect("log lock").clone()
    }

    /// Requests to `endpoint` answered with `status`.
    pub fn count(&self, endpoint: Endpoint, status: u16) -> usize {
        self.state
            .log
            .lock()
            .expect("log lock")
            .iter()
            .filter(|r| r.endpoint == Some(endpoint) && r.status == status)
            .count()
    }

    /// Resolve once `n` requests have been answered in all.
    pub async fn answered(&self, n: u64) {
        let mut rx = self.state.answered.subscribe();
        let _ = rx.wait_for(|count| *count >= n).await;
    }

    /// Wait until the server has stopped (graceful: in-flight answers finish).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
