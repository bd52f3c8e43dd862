//! The binary: `soundlake sim` as a user runs it, bad arguments, and no
//! secret in anything soundlake prints.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use soundlake::sim::{Faults, SimOptions};
use soundlake::spotify::{ALL_GROUPS, SpotifySettings};

use crate::support::{Harness, UNKNOWN_ID, canned, names};

/// `soundlake` in the repository's folder, on the shipped definitions.
fn soundlake() -> Command {
    let mut c = crate::support::soundlake(crate::support::shipped());
    c.current_dir(crate::support::shipped());
    c
}

#[test]
fn sim_help_describes_the_simulator() {
    let out = soundlake().args(["sim", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--port",
        "--mode",
        "--seed",
        "--names",
        "--rate-limit",
        "--quota",
        "--fault-5xx",
        "--fault-slow",
        "--fault-malformed",
        "--fault-expire-token",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[tokio::test]
async fn sim_on_port_zero_prints_its_address_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let names = dir.path().join("names.txt");
    std::fs::write(&names, "Björk\nMuse\n").unwrap();
    let mut child = soundlake()
        .args(["sim", "--port", "0", "--mode", "development", "--names"])
        .arg(&names)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    assert!(first.contains("development mode"), "{first}");

    let client = soundlake::spotify::SpotifyClient::new(
        &soundlake::sim::client_settings(&base),
        soundlake::clock::system(),
        soundlake::spotify::RateScope::Process,
    )
    .unwrap();
    let found = client.search_artists("bjork", 10, 0).await.unwrap();
    assert_eq!(found["artists"]["items"][0]["name"], "Björk");

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "exit on SIGTERM: {status}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(rest.contains("SOUNDLAKE__SPOTIFY__API_URL="), "{rest}");
}

#[test]
fn bad_arguments_and_files_exit_2_with_the_place_and_a_fix() {
    let out = soundlake()
        .args(["sim", "--fault-5xx", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("between 0.0 and 1.0"));

    let out = soundlake()
        .args(["sim", "--mode", "turbo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"extended\" or \"development\""));

    let out = soundlake()
        .args(["sim", "--names", "/nonexistent/names.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/names.txt"));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[spotify]\nclient_secret = \"s3cr3t-in-file\"\nratelimit = 3\n",
    )
    .unwrap();
    let out = soundlake()
        .arg("--config")
        .arg(&config)
        .arg("sim")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("ratelimit") && stderr.contains("bad.toml") && stderr.contains("fix:"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cr3t-in-file"), "{stderr}");
}

/// Collects everything the tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_or_token_in_logs_errors_or_statistics() {
    const CANARY_TOKEN: &str = "CANARY-TOKEN-5d1e0c";
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let token_body =
        format!(r#"{{"access_token":"{CANARY_TOKEN}","token_type":"Bearer","expires_in":3600}}"#);
    let mut token = canned("/api/token", 200, &token_body);
    token.times = Some(1);
    let h = Harness::start(SimOptions {
        names: names(3),
        canned: vec![token],
        faults: Faults {
            server_errors: 0.2,
            malformed: 0.1,
            expire_token: 0.1,
            ..Faults::default()
        },
        ..SimOptions::default()
    })
    .await;
    let client = h.client_with(SpotifySettings {
        max_retries: 10,
        ..h.settings()
    });
    let mut printed = Vec::new();
    for name in names(3) {
        match client.search_artists(&name, 5, 0).await {
            Ok(v) => {
                let id = v["artists"]["items"][0]["id"].as_str().unwrap().to_string();
                if let Err(e) = client.artist_albums(&id, ALL_GROUPS).await {
                    printed.push(format!("{e} {e:?}"));
                }
            }
            Err(e) => printed.push(format!("{e} {e:?}")),
        }
    }
    let bad = h.client_with(SpotifySettings {
        client_secret: soundlake::secret::Secret::new("WRONG-SECRET-77"),
        ..h.settings()
    });
    let e = bad.artist(UNKNOWN_ID).await.unwrap_err();
    printed.push(format!("{e} {e:?}"));
    printed.push(format!(
        "{:?} {}",
        h.settings(),
        serde_json::to_string(&client.stats()).unwrap()
    ));

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("Retrying request"),
        "the capture works: {logs}"
    );
    let everything = format!("{logs}\n{}", printed.join("\n"));
    for secret in [
        soundlake::sim::CLIENT_SECRET,
        "WRONG-SECRET-77",
        CANARY_TOKEN,
        "Bearer ",
    ] {
        assert!(!everything.contains(secret), "{secret:?} leaked");
    }
}

/// `names` as the artists file in `dir`, and the settings that point a
/// crawl at the simulator with its credentials.
fn crawl_env(dir: &std::path::Path, h: &Harness, names: &[String]) -> Vec<(&'static str, String)> {
    std::fs::write(dir.join("artists.txt"), names.join("\n")).unwrap();
    let base = h.sim.base_url();
    vec![
        ("SOUNDLAKE__SPOTIFY__API_URL", format!("{base}/v1")),
        ("SOUNDLAKE__SPOTIFY__TOKEN_URL", format!("{base}/api/token")),
        ("SPOTIFY_CLIENT_ID", soundlake::sim::CLIENT_ID.to_string()),
        (
            "SPOTIFY_CLIENT_SECRET",
            soundlake::sim::CLIENT_SECRET.to_string(),
        ),
    ]
}

/// `soundlake crawl` pointed at a simulator and an embedded store in `dir`.
fn crawl_in(dir: &std::path::Path, h: &Harness, names: &[String]) -> Command {
    let mut c = soundlake();
    c.current_dir(dir)
        .env_clear()
        .envs(crawl_env(dir, h, names))
        .env("SOUNDLAKE__SPOTIFY__REQUESTS_PER_WINDOW", "100000")
        .env("SOUNDLAKE__CRAWL__NAMES_PER_RUN", "10");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawl_reports_as_json_and_exits_75_while_paused() {
    let names = names(2);
    let mut pause = canned("/v1/search", 429, "");
    pause.headers.push(("retry-after".into(), "86400".into()));
    pause.times = Some(1);
    let h = Harness::start(SimOptions {
        names: names.clone(),
        rate_limit: 0,
        canned: vec![pause],
        ..SimOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();

    let out = crawl_in(dir.path(), &h, &names)
        .args(["crawl", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("resumes after that time"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"]["status"], "paused");
    assert_eq!(report["outcome"]["reason"], "rate_limit");
    assert!(
        dir.path().join(".soundlake/landing").exists(),
        "the embedded default"
    );

    let answered = h.sim.request_log().len();
    let out = crawl_in(dir.path(), &h, &names)
        .arg("crawl")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75));
    assert!(String::from_utf8_lossy(&out.stdout).contains("paused until"));
    assert_eq!(
        h.sim.request_log().len(),
        answered,
        "no request before the deadline"
    );
    for text in [&out.stdout, &out.stderr] {
        assert!(!String::from_utf8_lossy(text).contains(soundlake::sim::CLIENT_SECRET));
    }
}

#[tokio::test]
async fn crawl_says_what_is_missing() {
    let h = Harness::start(SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();

    let out = crawl_in(dir.path(), &h, &[])
        .env_remove("SPOTIFY_CLIENT_SECRET")
        .arg("crawl")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("artists.txt") && stderr.contains("no artist names"),
        "{stderr}"
    );

    let out = crawl_in(dir.path(), &h, &names(1))
        .env_remove("SPOTIFY_CLIENT_SECRET")
        .arg("crawl")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SPOTIFY_CLIENT_SECRET"));

    let port = crate::support::free_port();
    let out = crawl_in(dir.path(), &h, &names(1))
        .env(
            "SOUNDLAKE__LANDING__URL",
            format!(
                "mongodb://app:PASSWORD-CANARY@127.0.0.1:{port}/x?serverSelectionTimeoutMS=200"
            ),
        )
        .arg("crawl")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("MongoDB is running"), "{stderr}");
    assert!(!stderr.contains("PASSWORD-CANARY"), "{stderr}");
}

#[test]
fn import_exit_codes_tell_rejects_from_success() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tracks.ndjson");
    std::fs::write(&file, "{\"id\":\"t1\"}\nnot json\n").unwrap();
    let import = |strict: bool| {
        let mut c = soundlake();
        c.current_dir(dir.path())
            .env_clear()
            .args(["import", "tracks"])
            .arg(&file);
        if strict {
            c.arg("--strict");
        }
        c.output().unwrap()
    };
    let out = import(true);
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
    let out = import(false);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 new") && stdout.contains("rejected line 2"),
        "{stdout}"
    );

    let out = soundlake()
        .current_dir(dir.path())
        .args(["import", "playlists"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("audio_features"));
}

#[test]
fn generated_catalogs_are_deterministic_consistent_and_load_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let generate = |seed: &str, out: &str| {
        soundlake()
            .args([
                "generate", "catalog", "--tracks", "300", "--json", "--seed", seed,
            ])
            .arg("--out")
            .arg(dir.path().join(out))
            .output()
            .unwrap()
    };
    let out = generate("7", "a");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let lines = |name: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.path().join("a").join(format!("{name}.ndjson")))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let mut docs = std::collections::BTreeMap::new();
    for w in &written {
        let name = w["collection"].as_str().unwrap();
        let file = lines(name);
        assert_eq!(
            file.len() as u64,
            w["documents"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            std::fs::metadata(w["file"].as_str().unwrap())
                .unwrap()
                .len(),
            w["bytes"].as_u64().unwrap()
        );
        docs.insert(name.to_string(), file);
    }
    let ids = |name: &str| -> std::collections::BTreeSet<String> {
        docs[name]
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (artists, albums, tracks) = (ids("artists"), ids("albums"), ids("tracks"));
    assert!(tracks.len() >= 300 && tracks.len() == docs["tracks"].len());
    assert!(ids("audio_features").is_subset(&tracks));
    for t in &docs["tracks"] {
        assert!(albums.contains(t["album"]["id"].as_str().unwrap()));
        for a in t["artists"].as_array().unwrap() {
            assert!(artists.contains(a["id"].as_str().unwrap()), "{a}");
        }
        assert!(t["popularity"].is_u64() && t["external_ids"]["isrc"].is_string());
    }
    let leftovers = std::fs::read_dir(dir.path().join("a"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().unwrap() != "ndjson")
        .count();
    assert_eq!(leftovers, 0, "no partial file left behind");

    // The same seed gives the same bytes; another seed another catalog.
    assert!(generate("7", "b").status.success());
    assert!(generate("8", "c").status.success());
    let read = |d: &str| std::fs::read(dir.path().join(d).join("tracks.ndjson")).unwrap();
    assert_eq!(read("a"), read("b"));
    assert_ne!(read("a"), read("c"));

    // Every file loads into the landing store without a reject.
    for w in &written {
        let out = soundlake()
            .env(
                "SOUNDLAKE__LANDING__URL",
                format!("embedded://{}/landing", dir.path().display()),
            )
            .args(["import", w["collection"].as_str().unwrap()])
            .arg(w["file"].as_str().unwrap())
            .args(["--strict", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["loaded"]["new"], w["documents"]);
    }

    for bad in ["0", "20000001", "-5", "many"] {
        let out = soundlake()
            .args(["generate", "catalog", "--tracks", bad, "--out"])
            .arg(dir.path().join("bad"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--tracks {bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--tracks"));
    }
    let file = dir.path().join("a").join("tracks.ndjson");
    let out = soundlake()
        .args(["generate", "catalog", "--tracks", "10", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("tracks.ndjson"),
        "{stderr}"
    );
}

/// The crawl writes to the landing store alone: a lake that cannot be
/// reached and a definitions folder without tables do not stop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawl_needs_neither_the_lake_nor_the_table_definitions() {
    let names = names(2);
    let h = Harness::start(SimOptions {
        names: names.clone(),
        rate_limit: 0,
        ..SimOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let out = crawl_in(dir.path(), &h, &names)
        .env("SOUNDLAKE__DEFINITIONS__DIR", empty.path())
        .env("SOUNDLAKE__LAKE__URL", "s3://nowhere/lake")
        .env("SOUNDLAKE__LAKE__S3__ENDPOINT", "http://127.0.0.1:9")
        .env("SOUNDLAKE__LAKE__S3__ACCESS_KEY_ID", "unused")
        .env("SOUNDLAKE__LAKE__S3__SECRET_ACCESS_KEY", "unused")
        .args(["crawl", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["artists_completed"], 2, "{report}");
    assert!(dir.path().join(".soundlake/landing").exists());
}

/// A layer's own command loads the definitions up to its layer only: a
/// folder with bronze/ and silver/ but no gold/ or pipelines/ runs them,
/// where a pipeline command says what is missing.
#[test]
fn layer_commands_need_only_their_layers_definitions() {
    let defs = crate::support::copy_of_shipped(&["bronze", "silver"]);
    let work = tempfile::tempdir().unwrap();
    let command = |args: &[&str]| {
        let mut c = crate::support::soundlake(defs.path());
        c.current_dir(work.path()).args(args);
        c
    };
    let bronze = crate::support::succeed(&mut command(&["bronze", "tracks", "--json"]));
    assert!(bronze.contains("\"table\": \"tracks\""), "{bronze}");
    let silver = crate::support::succeed(&mut command(&["silver", "tracks", "--json"]));
    assert!(silver.contains("\"table\": \"tracks\""), "{silver}");
    let out = command(&["validate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pipelines"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A reader that stops early (`soundlake … | head`) ends the output; the
/// command neither panics nor reports an error for it.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::io::Read;

    let defs = crate::support::copy_of_shipped(&["bronze", "silver", "gold", "pipelines"]);
    std::fs::write(
        defs.path().join("pipelines/every_minute.toml"),
        "schedule = \"* * * * *\"\n[tasks.bronze]\n",
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    // Five days of minutes: far more than a pipe holds.
    let mut child = crate::support::soundlake(defs.path())
        .current_dir(work.path())
        .args(["backfill", "every_minute", "--dry-run"])
        .args(["--from", "2026-11-01", "--to", "2026-11-05"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(String::from_utf8_lossy(&first).starts_with("every_minute: 7200 intervals"));
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");

    // `query` writes its own way; a closed pipe ends it as quietly.
    let mut child = crate::support::soundlake(defs.path())
        .current_dir(work.path())
        .args(["query", "--format", "csv"])
        .arg("SELECT value FROM generate_series(1, 200000)")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(String::from_utf8_lossy(&first).starts_with("value\n1\n2\n"));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

/// Spotify's answer to a Development Mode app whose owner's Premium lapsed.
const APP_BLOCKED: &str = "{\"error\": {\"status\": 403, \"message\": \"Your application is blocked \
     from accessing the Web API since you do not have a Spotify Premium subscription.\"}}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_application_is_a_configuration_error_and_is_not_retried() {
    let names = names(2);
    let h = Harness::start(SimOptions {
        names: names.clone(),
        rate_limit: 0,
        canned: vec![canned("/v1/search", 403, APP_BLOCKED)],
        ..SimOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let searches = || {
        h.sim
            .request_log()
            .iter()
            .filter(|r| r.path.starts_with("/v1/search"))
            .count()
    };

    let out = crawl_in(dir.path(), &h, &names)
        .arg("crawl")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("Spotify blocks this application")
            && stderr.contains("renew the owner's subscription"),
        "{stderr}"
    );
    assert_eq!(searches(), 1, "one request, no retry");

    // A pipeline's crawl task is not retried either (it allows 2 retries).
    let out = crawl_in(dir.path(), &h, &names)
        .env("SOUNDLAKE__DEFINITIONS__DIR", crate::support::shipped())
        .args(["run", "spotify_catalog", "--select", "crawl"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(searches(), 2, "one more request for the one attempt");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(soundlake::sim::CLIENT_SECRET));
}

/// `soundlake args…` in `dir` under a pseudo-terminal (util-linux
/// `script`), as a person at a terminal runs it: everything the terminal
/// showed.
fn under_a_terminal(dir: &std::path::Path, args: &str, env: &[(&str, String)]) -> String {
    let out = Command::new("/usr/bin/script")
        .args([
            "-qec",
            &format!("{} {args}", env!("CARGO_BIN_EXE_soundlake")),
            "/dev/null",
        ])
        .current_dir(dir)
        .env_clear()
        .env("TERM", "xterm")
        .env("SOUNDLAKE__DEFINITIONS__DIR", crate::support::shipped())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{shown}");
    shown
}

#[test]
fn progress_shows_at_a_terminal_and_nowhere_else() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        crate::support::soundlake(crate::support::shipped())
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let generated = run(&["generate", "catalog", "--tracks", "2000", "--out", "."]);
    assert!(generated.status.success());

    // At a terminal: the import's bytes and the run's tasks.
    let shown = under_a_terminal(dir.path(), "import tracks tracks.ndjson", &[]);
    assert!(
        shown.contains("import tracks.ndjson [")
            && shown.contains("MiB/")
            && shown.contains(" documents (")
            && shown.contains("loading"),
        "{shown}"
    );
    let shown = under_a_terminal(
        dir.path(),
        "run spotify_catalog --select bronze.tracks,silver.tracks",
        &[],
    );
    assert!(
        shown.contains("run spotify_catalog [")
            && shown.contains(" tasks")
            && shown.contains(" rows ("),
        "{shown}"
    );

    // A backfill counts its intervals as well as its tasks.
    let defs = crate::support::copy_of_shipped(&["bronze", "silver", "gold", "pipelines"]);
    for shipped in ["spotify_catalog", "listening_events", "lake_maintenance"] {
        std::fs::remove_file(defs.path().join(format!("pipelines/{shipped}.toml"))).unwrap();
    }
    std::fs::write(
        defs.path().join("pipelines/catalog.toml"),
        "schedule = \"0 3 * * *\"\n[tasks.bronze]\ntables = [\"tracks\"]\n\
         [tasks.silver]\ntables = [\"tracks\"]\n",
    )
    .unwrap();
    let shown = under_a_terminal(
        dir.path(),
        "backfill catalog --from 2026-11-01 --to 2026-11-04",
        &[(
            "SOUNDLAKE__DEFINITIONS__DIR",
            defs.path().display().to_string(),
        )],
    );
    assert!(
        shown.contains("run catalog [") && shown.contains("5 of 5 intervals done"),
        "{shown}"
    );

    // JSON logs at a terminal, and a pipe: none.
    let shown = under_a_terminal(
        dir.path(),
        "--log-format json import albums albums.ndjson",
        &[],
    );
    assert!(!shown.contains("albums.ndjson ["), "{shown}");
    let piped = run(&["import", "artists", "artists.ndjson"]);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&piped.stdout),
        String::from_utf8_lossy(&piped.stderr)
    );
    assert!(piped.status.success(), "{printed}");
    assert!(
        !printed.contains('[') && !printed.contains("\u{1b}"),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crawl_shows_a_rate_limit_wait_and_when_it_ends_at_a_terminal() {
    let names = names(1);
    let h = Harness::start(SimOptions {
        names: names.clone(),
        rate_limit: 0,
        ..SimOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // Two requests per two seconds: the crawl of one artist waits.
    let mut env = crawl_env(dir.path(), &h, &names);
    env.push(("SOUNDLAKE__SPOTIFY__REQUESTS_PER_WINDOW", "2".to_string()));
    env.push(("SOUNDLAKE__SPOTIFY__WINDOW_SECS", "2".to_string()));
    let shown = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || under_a_terminal(&dir, "crawl", &env)
    })
    .await
    .unwrap();
    assert!(
        shown.contains("crawl [") && shown.contains("waiting for the rate limit until "),
        "{shown}"
    );
    assert!(!shown.contains(soundlake::sim::CLIENT_SECRET));
}

/// `run --json` says how long bronze waited on the landing store.
#[test]
fn a_run_reports_the_time_it_spent_reading_the_landing_store() {
    let lake = super::events::Lake::with_catalog();
    let out = lake.ok(&[
        "run",
        "spotify_catalog",
        "--select",
        "bronze.albums",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let stages = &report["stages"];
    assert!(stages["landing_read"].as_f64().unwrap() > 0.0, "{stages}");
    assert_eq!(stages["flatten"], 0.0, "no silver task ran: {stages}");
}
