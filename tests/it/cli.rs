//! The binary: `soundlake sim` as a user runs it, bad arguments, and no
//! secret in anything soundlake prints.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use soundlake::sim::{Faults, SimOptions};
use soundlake::spotify::{ALL_GROUPS, SpotifySettings};

use crate::support::{Harness, UNKNOWN_ID, canned, names};

fn soundlake() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_soundlake"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
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
        &SpotifySettings::for_simulator(&base),
        soundlake::clock::system(),
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
    assert_eq!(out.status.code(), Some(1));
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
