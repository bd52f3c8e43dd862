//! Notifications: a project whose `[[notify]]` names a webhook on a real
//! HTTP receiver on loopback (and a command) hears about every event kind
//! from the commands that cause them, with no secret in any notice and the
//! webhook's secret path in no log.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use soundlake::sim::SimOptions;

use crate::gold_inputs::RECORDED;
use crate::support::names;

/// `soundlake` run in the project folder `dir`.
fn soundlake(dir: &Path) -> std::process::Command {
    let mut cmd = crate::support::soundlake(dir);
    cmd.current_dir(dir);
    cmd
}

/// An HTTP server on loopback that answers 200 to every POST and keeps
/// what it was sent: the request paths and the JSON bodies.
struct Receiver {
    port: u16,
    received: Arc<Mutex<Vec<(String, Value)>>>,
    arrived: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        use http_body_util::BodyExt;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(tokio::sync::Notify::new());
        let (kept, told) = (received.clone(), arrived.clone());
        let task = tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                let (kept, told) = (kept.clone(), told.clone());
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let (kept, told) = (kept.clone(), told.clone());
                        async move {
                            let path = request.uri().path().to_string();
                            let body = request.into_body().collect().await?.to_bytes();
                            let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            kept.lock().unwrap().push((path, value));
                            told.notify_waiters();
                            Ok::<_, hyper::Error>(hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from_static(b"ok"),
                            )))
                        }
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(socket), service),
                );
            }
        });
        Receiver {
            port,
            received,
            arrived,
            task,
        }
    }

    fn bodies(&self, event: &str) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, body)| body["event"] == event)
            .map(|(_, body)| body.clone())
            .collect()
    }

    /// Wait for a notice of `event` whose text contains `text` (the daemon
    /// is a process on the real clock: this waits for it, it does not time
    /// it).
    async fn wait_for(&self, event: &str, text: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let arrived = self.arrived.notified();
            if let Some(found) = self
                .bodies(event)
                .into_iter()
                .find(|b| b["text"].as_str().unwrap_or_default().contains(text))
            {
                return found;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                tokio::time::timeout(left, arrived).await.is_ok(),
                "no {event} notice containing {text:?}; received {:?}",
                self.received.lock().unwrap()
            );
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The secret part of the webhook's URL, as Slack's carry one.
const HOOK_SECRET: &str = "hook-secret-path-never-logged";

/// A project in `dir` (from `soundlake init`) whose gold has a model that
/// fails its data test (`orphans`) and one that quarantines the same rows
/// (`orphans_set_aside`), notifying the receiver of everything and a
/// command of finished backfills.
fn project(dir: &Path, receiver: &Receiver) {
    crate::support::succeed(soundlake(dir).args(["init", "."]));
    let config = format!(
        "[[notify]]\n\
         url = \"http://127.0.0.1:{}/services/T0/B0/{HOOK_SECRET}\"\n\
         retries = 0\n\n\
         [[notify]]\n\
         command = [\"sh\", \"-c\", \"cat >> backfills.jsonl && echo >> backfills.jsonl\"]\n\
         events = [\"backfill_finished\"]\n",
        receiver.port
    );
    std::fs::write(dir.join("soundlake.toml"), config).unwrap();
    let sql = "SELECT artist_key, name FROM gold.dim_artist \
               UNION ALL SELECT surrogate_key('no-such-artist') AS artist_key, 'Nobody' AS name";
    for (model, on_failure) in [("orphans", "error"), ("orphans_set_aside", "quarantine")] {
        std::fs::write(dir.join(format!("gold/{model}.sql")), sql).unwrap();
        std::fs::write(
            dir.join(format!("gold/{model}.toml")),
            format!(
                "comment = \"Artists, and one that does not exist.\"\n\
                 grain = \"one row per artist\"\nkey = [\"artist_key\"]\n\
                 [[columns]]\nname = \"artist_key\"\ntype = \"bigint\"\n\
                 comment = \"The artist.\"\nreferences = \"gold.dim_artist.artist_key\"\n\
                 on_failure = {{ references = \"{on_failure}\" }}\n\
                 [[columns]]\nname = \"name\"\ntype = \"string\"\ncomment = \"Name.\"\n"
            ),
        )
        .unwrap();
    }
}

/// Run `args` in `dir`; its standard error, whether it succeeded or not.
fn stderr_of(dir: &Path, env: &[(&str, String)], args: &[&str]) -> String {
    let out = soundlake(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ndjson(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_kind_reaches_the_webhook_without_a_secret() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), &receiver);
    let mut logs = String::new();
    let layers = ["run", "spotify_catalog", "--select", "bronze.*+"];

    // The recorded catalog: `orphans` fails its test, `orphans_set_aside`
    // quarantines the row, the run fails.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spotify");
    for (file, collection) in RECORDED {
        let path = fixtures.join(file);
        logs += &stderr_of(
            dir.path(),
            &[],
            &["import", collection, path.to_str().unwrap()],
        );
    }
    logs += &stderr_of(dir.path(), &[], &layers);
    let failed = receiver.wait_for("data_tests_failed", "orphans").await;
    assert_eq!(failed["task"], "gold.orphans", "{failed}");
    assert!(failed["run_id"].as_str().is_some(), "{failed}");
    receiver
        .wait_for("quarantined", "gold.orphans_set_aside_quarantine")
        .await;
    let run = receiver.wait_for("run_failed", "gold.orphans failed").await;
    assert_eq!(run["pipeline"], "spotify_catalog", "{run}");
    assert!(
        receiver.bodies("schema_drift").is_empty(),
        "a table's first version is no drift"
    );

    // A track with a new field, and one whose duration turned to text.
    let track: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("track_full.json")).unwrap())
            .unwrap();
    let mut moody = track.clone();
    moody["mood"] = json!("calm");
    let mut wordy = track;
    wordy["id"] = json!("0aNotifyTrackWithWords");
    wordy["duration_ms"] = json!("long");
    std::fs::write(dir.path().join("changed.ndjson"), ndjson(&[moody, wordy])).unwrap();
    logs += &stderr_of(dir.path(), &[], &["import", "tracks", "changed.ndjson"]);
    logs += &stderr_of(dir.path(), &[], &layers);
    receiver
        .wait_for(
            "schema_drift",
            "silver.tracks: the schema drifted: added tracks.mood",
        )
        .await;
    receiver
        .wait_for("quarantined", "silver.tracks: 1 versions quarantined")
        .await;

    // A backfill, to the webhook and to the command.
    logs += &stderr_of(
        dir.path(),
        &[],
        &[
            "backfill",
            "spotify_catalog",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-02",
        ],
    );
    receiver
        .wait_for("backfill_finished", "backfill of spotify_catalog")
        .await;
    let by_command = std::fs::read_to_string(dir.path().join("backfills.jsonl")).unwrap();
    let by_command: Value = serde_json::from_str(by_command.trim()).unwrap();
    assert_eq!(by_command["event"], "backfill_finished");

    // A crawl Spotify asks to come back tomorrow.
    let names = names(2);
    let mut pause = crate::support::canned("/v1/search", 429, "");
    pause.headers.push(("retry-after".into(), "86400".into()));
    let h = crate::support::Harness::start(SimOptions {
        names: names.clone(),
        rate_limit: 0,
        canned: vec![pause],
        ..SimOptions::default()
    })
    .await;
    std::fs::write(dir.path().join("artists.txt"), names.join("\n")).unwrap();
    let base = h.sim.base_url();
    let spotify = [
        ("SOUNDLAKE__SPOTIFY__API_URL", format!("{base}/v1")),
        ("SOUNDLAKE__SPOTIFY__TOKEN_URL", format!("{base}/api/token")),
        ("SPOTIFY_CLIENT_ID", soundlake::sim::CLIENT_ID.to_string()),
        (
            "SPOTIFY_CLIENT_SECRET",
            soundlake::sim::CLIENT_SECRET.to_string(),
        ),
    ];
    logs += &stderr_of(dir.path(), &spotify, &["crawl"]);
    receiver.wait_for("crawl_paused", "wait until").await;

    // A daemon takes leadership, and hands it back when stopped.
    let mut daemon = soundlake(dir.path());
    daemon
        .envs(spotify.iter().map(|(k, v)| (k, v)))
        .env("SOUNDLAKE__DAEMON__LISTEN", "127.0.0.1:0")
        .arg("daemon")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let daemon = daemon.spawn().unwrap();
    receiver.wait_for("leadership", "leading").await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = daemon.wait_with_output().unwrap();
    logs += &String::from_utf8_lossy(&out.stderr);
    receiver.wait_for("leadership", "handed back").await;

    // Every event kind arrived, on the path configured; nothing secret
    // went out, and the secret path stayed out of the logs.
    let received = receiver.received.lock().unwrap().clone();
    for event in soundlake::notify::Event::ALL {
        let name = serde_json::to_value(event).unwrap();
        assert!(
            received.iter().any(|(_, body)| body["event"] == name),
            "no {name} notice"
        );
    }
    for (path, body) in &received {
        assert_eq!(path, &format!("/services/T0/B0/{HOOK_SECRET}"));
        let text = body.to_string();
        assert!(!text.contains(soundlake::sim::CLIENT_SECRET), "{text}");
        assert!(!text.contains("Bearer"), "{text}");
    }
    assert!(!logs.contains(HOOK_SECRET), "{logs}");
}
