//! Shared set-up: a simulator on loopback sharing a virtual clock with the
//! client under test.

use std::net::SocketAddr;
use std::path::Path;
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

/// The Python of `.venv`, where `bash tests/run.sh` installs DuckDB,
/// PyArrow and PySpark.
pub fn venv_python() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
}

/// A test server from `.venv` (installed by `bash tests/run.sh`), on a free
/// loopback port, killed when dropped.
pub struct Server {
    child: std::process::Child,
    pub port: u16,
}

impl Server {
    /// Start `.venv/bin/<program>` (or the path in `override_var`) with
    /// `args(port)`, and wait until a line of its output contains `ready`.
    fn start(
        program: &str,
        override_var: &str,
        args: impl Fn(u16) -> Vec<String>,
        ready: &str,
    ) -> Server {
        let bin = std::env::var(override_var)
            .unwrap_or_else(|_| format!("{}/.venv/bin/{program}", env!("CARGO_MANIFEST_DIR")));
        Server::start_binary(&bin, args, ready)
    }

    fn start_binary(bin: &str, args: impl Fn(u16) -> Vec<String>, ready: &str) -> Server {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: run `bash tests/run.sh`, which installs the test servers"
        );
        let port = free_port();
        // Servers announce readiness on stdout or stderr: read both.
        let (output, writer) = std::io::pipe().unwrap();
        let child = std::process::Command::new(bin)
            .args(args(port))
            .stdout(writer.try_clone().unwrap())
            .stderr(writer)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        // Ready when it says so; the rest of its log is drained so it never
        // blocks on a full pipe.
        let mut log = std::io::BufReader::new(output);
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            let n = std::io::BufRead::read_line(&mut log, &mut line).unwrap();
            assert!(n > 0, "{bin} exited before it was ready:\n{seen}");
            if line.contains(ready) {
                break;
            }
            seen.push_str(&line);
        }
        std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real MongoDB wire-protocol server, with its data in memory or in a
/// folder of its own.
pub struct MongoServer {
    server: Server,
    _data: Option<tempfile::TempDir>,
}

impl MongoServer {
    /// SecantusDB (WiredTiger), in memory (`SOUNDLAKE_SECANTUSD` points at
    /// another binary).
    pub fn start() -> MongoServer {
        let args = |port: u16| {
            [
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--storage-path",
                ":memory:",
                "--standalone",
                "--log-level",
                "INFO",
            ]
            .map(String::from)
            .to_vec()
        };
        MongoServer {
            server: Server::start("secantusd-py", "SOUNDLAKE_SECANTUSD", args, "listening on"),
            _data: None,
        }
    }

    /// FerretDB v1 on its SQLite backend, built by
    /// `tests/servers/install.sh` into the servers cache.
    pub fn ferretdb() -> MongoServer {
        let data = tempfile::tempdir().unwrap();
        let bin = servers_cache().join("bin/ferretdb-sqlite");
        let dir = data.path().display().to_string();
        let args = |port: u16| {
            vec![
                "-listen".to_string(),
                format!("127.0.0.1:{port}"),
                "-dir".to_string(),
                dir.clone(),
            ]
        };
        MongoServer {
            server: Server::start_binary(&bin.display().to_string(), args, "listening on"),
            _data: Some(data),
        }
    }

    /// A URL naming a database of its own for `name`.
    pub fn url(&self, name: &str) -> String {
        format!("mongodb://127.0.0.1:{}/{name}", self.server.port)
    }
}

/// Where `tests/servers/install.sh` puts the servers it installs.
fn servers_cache() -> std::path::PathBuf {
    std::env::var_os("SOUNDLAKE_SERVERS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/soundlake/servers")
        })
}

/// A real S3 server: moto (`SOUNDLAKE_MOTO_SERVER` points at another binary).
/// Any access key is accepted; buckets are made with [`S3Server::bucket`].
pub struct S3Server(Server);

pub const S3_ACCESS_KEY: &str = "AKIASOUNDLAKETEST";
pub const S3_SECRET_KEY: &str = "soundlake-test-secret-never-printed";

impl S3Server {
    pub fn start() -> S3Server {
        let args = |port: u16| {
            ["-H", "127.0.0.1", "-p", &port.to_string()]
                .map(String::from)
                .to_vec()
        };
        S3Server(Server::start(
            "moto_server",
            "SOUNDLAKE_MOTO_SERVER",
            args,
            "Running on",
        ))
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.0.port)
    }

    /// Create `name`, empty.
    pub async fn bucket(&self, name: &str) {
        let status = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint()))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "creating bucket {name}: {status}");
    }

    /// Lake settings for `s3://<bucket>/<prefix>` on this server.
    pub fn lake(&self, bucket: &str, prefix: &str) -> soundlake::config::LakeSettings {
        soundlake::config::LakeSettings {
            url: format!("s3://{bucket}/{prefix}"),
            max_retries: 2,
            retry_timeout_secs: 10,
            s3: soundlake::config::S3Settings {
                endpoint: self.endpoint(),
                region: "us-east-1".into(),
                access_key_id: S3_ACCESS_KEY.into(),
                secret_access_key: soundlake::secret::Secret::new(S3_SECRET_KEY),
                path_style: true,
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

/// A real Apache Kafka broker in KRaft mode, started by
/// `tests/servers/kafka-broker.sh` from the jars `tests/servers/install.sh`
/// puts in the servers cache; its data in a folder of its own.
pub struct KafkaBroker {
    server: Server,
    _data: tempfile::TempDir,
}

impl KafkaBroker {
    pub fn start() -> KafkaBroker {
        let data = tempfile::tempdir().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/servers/kafka-broker.sh");
        let controller = free_port();
        let dir = data.path().display().to_string();
        let args = |port: u16| {
            vec![
                script.to_string(),
                port.to_string(),
                controller.to_string(),
                dir.clone(),
            ]
        };
        let server = Server::start_binary("/bin/bash", args, "Kafka Server started");
        KafkaBroker {
            server,
            _data: data,
        }
    }

    /// `host:port` for bootstrap.servers.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.server.port)
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Files under `dir` whose path ends with `suffix`.
pub fn files_ending(dir: &Path, suffix: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
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
