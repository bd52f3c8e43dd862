//! Shared set-up: a simulator on loopback sharing a virtual clock with the
//! client under test.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use soundlake::clock::{SharedClock, VirtualClock};
use soundlake::sim::{Canned, SimOptions, Simulator};
use soundlake::spotify::{SpotifyClient, SpotifySettings};

pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-21T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// The first `n` names of the shipped artists.txt.
pub fn names(n: usize) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/artists.txt");
    let mut all = soundlake::text::read_names(std::path::Path::new(path)).unwrap();
    all.truncate(n);
    all
}

pub struct Harness {
    pub sim: Simulator,
    pub clock: Arc<VirtualClock>,
    mode: soundlake::spotify::AppMode,
}

impl Harness {
    pub async fn start(options: SimOptions) -> Harness {
        let clock = VirtualClock::starting_at(t0());
        let shared: SharedClock = clock.clone();
        let mode = options.mode;
        let sim = Simulator::start(options, shared, loopback()).await.unwrap();
        Harness { sim, clock, mode }
    }

    /// The app mode the simulator plays.
    pub fn sim_mode(&self) -> soundlake::spotify::AppMode {
        self.mode
    }

    /// Client settings for this simulator: fast timeouts and a budget that
    /// stays out of the way unless a test lowers it.
    pub fn settings(&self) -> SpotifySettings {
        SpotifySettings {
            request_timeout_ms: 2_000,
            requests_per_window: 10_000,
            ..SpotifySettings::for_simulator(&self.sim.base_url())
        }
    }

    pub fn client(&self) -> SpotifyClient {
        self.client_with(self.settings())
    }

    pub fn client_with(&self, settings: SpotifySettings) -> SpotifyClient {
        SpotifyClient::new(&settings, self.clock.clone()).unwrap()
    }
}

/// A plain HTTP client and a bearer token from the simulator, for tests
/// that look at raw answers rather than through the soundlake client.
pub async fn raw_api(h: &Harness) -> (reqwest::Client, String) {
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{}/api/token", h.sim.base_url()))
        .basic_auth(
            soundlake::sim::CLIENT_ID,
            Some(soundlake::sim::CLIENT_SECRET),
        )
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (http, token["access_token"].as_str().unwrap().to_string())
}

pub fn canned(path: &str, status: u16, body: &str) -> Canned {
    Canned {
        path: path.to_string(),
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string(),
        times: None,
    }
}

/// A valid-looking Spotify id the simulator's catalog does not hold.
pub const UNKNOWN_ID: &str = "0000000000000000000000";

/// A real MongoDB wire-protocol server (SecantusDB) on a free loopback
/// port, in memory, stopped when dropped. `bash tests/run.sh` installs it
/// into `.venv`; `SOUNDLAKE_SECANTUSD` points elsewhere.
pub struct MongoServer {
    child: std::process::Child,
    pub port: u16,
}

impl MongoServer {
    pub fn start() -> MongoServer {
        let bin = std::env::var("SOUNDLAKE_SECANTUSD").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/secantusd-py").to_string()
        });
        assert!(
            std::path::Path::new(&bin).exists(),
            "{bin} is missing: run `bash tests/run.sh`, which installs SecantusDB into .venv"
        );
        let port = free_port();
        let mut child = std::process::Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--storage-path",
                ":memory:",
                "--standalone",
                "--log-level",
                "INFO",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        // Ready when it says so; the rest of its log is drained so it never
        // blocks on a full pipe.
        let mut log = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            let n = std::io::BufRead::read_line(&mut log, &mut line).unwrap();
            assert!(n > 0, "{bin} exited before listening:\n{seen}");
            if line.contains("listening on") {
                break;
            }
            seen.push_str(&line);
        }
        std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
        MongoServer { child, port }
    }

    /// A URL naming a database of its own for `name`.
    pub fn url(&self, name: &str) -> String {
        format!("mongodb://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
