//! Shared set-up: the soundlake binary as tests run it, and a simulator
//! on loopback sharing a virtual clock with the client under test. The
//! real servers are in `servers.rs`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use soundlake::clock::{SharedClock, VirtualClock};
use soundlake::sim::{Canned, SimOptions, Simulator};
use soundlake::spotify::{SpotifyClient, SpotifySettings};

/// `soundlake` as a test runs it: a clean environment (nothing of the
/// machine's leaks in), the definitions in `definitions`, stdin closed.
pub fn soundlake(definitions: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_soundlake"));
    cmd.env_clear()
        .env("SOUNDLAKE__DEFINITIONS__DIR", definitions)
        .stdin(Stdio::null());
    cmd
}

/// The shipped definitions: the repository's own folders.
pub fn shipped() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of the shipped definitions' `folders`, to change or break.
pub fn copy_of_shipped(folders: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for folder in folders {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        for entry in std::fs::read_dir(shipped().join(folder)).unwrap() {
            let entry = entry.unwrap();
            let to = dir.path().join(folder).join(entry.file_name());
            std::fs::copy(entry.path(), to).unwrap();
        }
    }
    dir
}

/// `soundlake demo` in `dir` over three artists: a small lake with every
/// layer, listening marts and similar tracks, and the runs that built it.
#[cfg(feature = "servers")]
pub fn demo_lake(dir: &Path) {
    let names = ["Elvis Presley", "Chuck Berry", "Little Richard"];
    std::fs::write(dir.join("names.txt"), names.join("\n")).unwrap();
    succeed(
        soundlake(shipped())
            .env("SOUNDLAKE__CRAWL__ARTISTS_FILE", "names.txt")
            .current_dir(dir)
            .arg("demo"),
    );
}

/// The rows `soundlake query` answers in `dir`, as JSON objects.
#[cfg(feature = "servers")]
pub fn query(dir: &Path, sql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let out = succeed(
        soundlake(shipped())
            .current_dir(dir)
            .args(["query", "--format", "json", sql]),
    );
    serde_json::from_str(&out).unwrap()
}

/// The 20 neighbours `soundlake recommend --format json` lists in `dir` for
/// `track` by `by` (sound or listening), as its JSON rows.
#[cfg(feature = "servers")]
pub fn recommend(dir: &Path, track: &str, by: &str) -> Vec<serde_json::Value> {
    let out = succeed(soundlake(shipped()).current_dir(dir).args([
        "recommend",
        track,
        "--by",
        by,
        "-k",
        "20",
        "--format",
        "json",
    ]));
    serde_json::from_str(&out).unwrap()
}

/// Held by the tests that keep both cores busy for long (a whole demo, a
/// browser) and by those that measure real time (processes sharing a rate
/// limit), so that the second never run beside the first: a late request
/// there is the machine's fault, not the product's.
#[cfg(feature = "servers")]
pub fn machine() -> tokio::sync::MutexGuard<'static, ()> {
    MACHINE.blocking_lock()
}

/// [`machine`] for a test on tokio's runtime.
pub async fn machine_async() -> tokio::sync::MutexGuard<'static, ()> {
    MACHINE.lock().await
}

static MACHINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Run `cmd`: its stdout, or a panic with everything it printed.
pub fn succeed(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{cmd:?}:\n{stdout}\n{stderr}");
    // A command that succeeded has no error to log.
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(
        errors.is_empty(),
        "{cmd:?} succeeded and logged errors:\n{}",
        errors.join("\n")
    );
    stdout
}

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
    let mut all = soundlake::artist_names::read(std::path::Path::new(path)).unwrap();
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
            ..soundlake::sim::client_settings(&self.sim.base_url())
        }
    }

    pub fn client(&self) -> SpotifyClient {
        self.client_with(self.settings())
    }

    pub fn client_with(&self, settings: SpotifySettings) -> SpotifyClient {
        SpotifyClient::new(
            &settings,
            self.clock.clone(),
            soundlake::spotify::RateScope::Process,
        )
        .unwrap()
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Files under `dir` whose path ends with `suffix`. On a MinIO drive an
/// object is a folder of that name holding its `xl.meta`, and counts as one.
pub fn files_ending(dir: &Path, suffix: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| {
            let path = e.path();
            if path.join("xl.meta").is_file() {
                usize::from(path.to_string_lossy().ends_with(suffix))
            } else if path.is_dir() {
                files_ending(&path, suffix)
            } else {
                usize::from(path.to_string_lossy().ends_with(suffix))
            }
        })
        .sum()
}

/// Start `cmd` and kill it with SIGKILL as soon as `count` files ending in
/// `suffix` exist under `watched`; a run that ends before the point fails
/// the test. `false` when the run finished successfully at the point itself,
/// between the test seeing it and the kill: only possible when the point is
/// the run's last step (a commit record), so callers of other points assert
/// the kill.
pub fn kill_when(
    cmd: &mut std::process::Command,
    watched: &std::path::Path,
    suffix: &str,
    count: usize,
) -> bool {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if files_ending(watched, suffix) >= count {
            child.kill().unwrap();
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the run finished ({status}) before the kill point {suffix} x{count}: {err}");
        }
        std::thread::yield_now();
    }
    let status = child.wait().unwrap();
    if status.success() {
        return false;
    }
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status}"
    );
    true
}
