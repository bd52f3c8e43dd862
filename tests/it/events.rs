//! `soundlake generate events` over a catalog built by the CLI: exact
//! counts, determinism, the catalog's tracks only, daily and weekly
//! rhythms, skips that depend on the track, late and duplicate deliveries,
//! both formats, and refused input.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// A deployment in a temporary folder, driven through the CLI.
pub struct Lake {
    pub dir: tempfile::TempDir,
}

impl Lake {
    /// An empty deployment.
    pub fn new() -> Lake {
        Lake {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A lake whose silver.tracks holds a generated catalog.
    pub fn with_catalog() -> Lake {
        let lake = Lake::new();
        let data = lake.dir.path().join("data");
        lake.ok(&[
            "generate",
            "catalog",
            "--tracks",
            "600",
            "--out",
            data.to_str().unwrap(),
        ]);
        for c in ["artists", "albums", "tracks", "audio_features"] {
            let file = data.join(format!("{c}.ndjson"));
            lake.ok(&["import", c, file.to_str().unwrap(), "--strict"]);
        }
        lake.ok(&["bronze", "tracks"]);
        lake.ok(&["silver", "tracks"]);
        lake
    }

    /// `soundlake <args>` in the deployment's folder, on the shipped
    /// definitions.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = crate::support::soundlake(crate::support::shipped());
        command
            .env("SOUNDLAKE_LOG", "warn")
            .current_dir(self.dir.path())
            .args(args);
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, &[])
    }

    /// As [`Lake::ok`], with settings overridden through the environment.
    pub fn ok_with(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        crate::support::succeed(self.command(args).envs(env.iter().copied()))
    }

    /// The deployment's landing store (the embedded default).
    pub async fn landing_store(&self) -> soundlake::landing::EmbeddedStore {
        let file = self.dir.path().join(".soundlake/landing");
        soundlake::landing::EmbeddedStore::open(file.to_str().unwrap(), soundlake::clock::system())
            .await
            .unwrap()
    }

    pub fn landing(&self) -> std::path::PathBuf {
        self.dir.path().join("lake/landing/events")
    }

    /// Every file of the landing folder, by name.
    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(self.landing())
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                (name, std::fs::read(&path).unwrap())
            })
            .collect()
    }

    /// `soundlake query` as JSON rows.
    pub fn query(&self, sql: &str) -> Vec<Value> {
        serde_json::from_str(&self.ok(&["query", "--format", "json", sql])).unwrap()
    }

    fn catalog(&self) -> HashMap<String, i64> {
        self.query("SELECT id, popularity FROM silver.tracks")
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_string(),
                    r["popularity"].as_i64().unwrap(),
                )
            })
            .collect()
    }
}

const ARGS: [&str; 12] = [
    "generate",
    "events",
    "--users",
    "80",
    "--events",
    "30000",
    "--days",
    "14",
    "--end",
    "2026-11-15",
    "--seed",
    "5",
];

fn parse(files: &BTreeMap<String, Vec<u8>>) -> Vec<(String, Value)> {
    files
        .iter()
        .flat_map(|(name, bytes)| {
            std::str::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|l| (name.clone(), serde_json::from_str(l).unwrap()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn generated_events_follow_the_catalog_and_the_rhythms_of_listening() {
    let lake = Lake::with_catalog();
    let report: Value = serde_json::from_str(&lake.ok(&[&ARGS[..], &["--json"]].concat())).unwrap();
    let files = lake.files();
    let lines = parse(&files);
    let (dups, late) = (
        report["duplicates"].as_u64().unwrap(),
        report["late"].as_u64().unwrap(),
    );
    assert_eq!(
        lines.len() as u64,
        30_000 + dups,
        "every event once, plus the duplicates"
    );
    assert!(dups > 0 && late > 0, "{report}");

    // Exactly-the-same deliveries share the id; every other id is unique.
    let mut by_id: HashMap<&str, Vec<&Value>> = HashMap::new();
    for (_, e) in &lines {
        by_id
            .entry(e["event_id"].as_str().unwrap())
            .or_default()
            .push(e);
    }
    assert_eq!(by_id.len(), 30_000);
    for copies in by_id.values().filter(|c| c.len() > 1) {
        assert!(copies.len() == 2 && copies[0] == copies[1]);
    }

    let catalog = lake.catalog();
    let users: BTreeSet<&str> = lines
        .iter()
        .map(|(_, e)| e["user_id"].as_str().unwrap())
        .collect();
    assert!(
        users.len() <= 80 && users.len() > 40,
        "{} users",
        users.len()
    );
    let mut sessions: HashMap<&str, (&str, &str)> = HashMap::new();
    let mut late_seen = 0;
    for (file, e) in &lines {
        assert!(catalog.contains_key(e["track_id"].as_str().unwrap()), "{e}");
        let kind = e["event_type"].as_str().unwrap();
        assert!(["play", "pause", "skip", "like", "complete"].contains(&kind));
        let ts = e["event_ts"].as_str().unwrap();
        let file_day = &file["events-".len().."events-2026-11-15".len()];
        assert!(("2026-11-02".."2026-11-17").contains(&ts), "{ts}");
        if &ts[..10] < file_day {
            late_seen += 1;
            assert_eq!(e["device"], "mobile", "late events come from phones");
            let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
            assert_eq!(day(file_day) - day(&ts[..10]), chrono::Duration::days(1));
        }
        let session = (e["user_id"].as_str().unwrap(), e["city"].as_str().unwrap());
        let first = sessions
            .entry(e["session_id"].as_str().unwrap())
            .or_insert(session);
        assert_eq!(*first, session, "a session is one user in one place");
    }
    // Late arrivals land a day late (those of sessions that crossed
    // midnight land on their own day's date).
    assert!(
        late_seen > 0 && late_seen as u64 <= late,
        "{late_seen} of {late}"
    );

    // Weekends (the 7th, 8th, 14th and 15th) carry more listening.
    let per_day = |day: &str| lines.iter().filter(|(f, _)| f.contains(day)).count();
    assert!(per_day("2026-11-14") > per_day("2026-11-12") + 200);

    // Local night is quiet, the evening busy: British listeners by UTC hour.
    let hours: Vec<usize> = lines
        .iter()
        .filter(|(_, e)| e["country"] == "GB" && e["event_type"] == "play")
        .map(|(_, e)| e["event_ts"].as_str().unwrap()[11..13].parse().unwrap())
        .collect();
    let night = hours.iter().filter(|h| (2..6).contains(*h)).count();
    let evening = hours.iter().filter(|h| (18..22).contains(*h)).count();
    assert!(
        evening > 4 * night.max(1),
        "night {night}, evening {evening}"
    );

    // Skips depend on the track: popular tracks are skipped less.
    let mut plays: HashMap<&str, (u32, u32)> = HashMap::new();
    for (_, e) in &lines {
        let entry = plays.entry(e["track_id"].as_str().unwrap()).or_default();
        match e["event_type"].as_str().unwrap() {
            "play" => entry.0 += 1,
            "skip" => entry.1 += 1,
            _ => {}
        }
    }
    let skip_rate = |popular: bool| {
        let (p, s) = plays
            .iter()
            .filter(|(t, _)| (catalog[**t] >= 60) == popular)
            .fold((0, 0), |(p, s), (_, (tp, ts))| (p + tp, s + ts));
        f64::from(s) / f64::from(p.max(1))
    };
    assert!(
        skip_rate(true) < 0.8 * skip_rate(false),
        "popular {:.3}, others {:.3}",
        skip_rate(true),
        skip_rate(false)
    );

    // The same seed gives the same files; CSV holds the same events.
    std::fs::remove_dir_all(lake.landing()).unwrap();
    lake.ok(&ARGS);
    assert_eq!(lake.files(), files, "not deterministic");
    std::fs::remove_dir_all(lake.landing()).unwrap();
    lake.ok(&[&ARGS[..], &["--format", "csv"]].concat());
    let csv = lake.files();
    let mut rows = 0;
    for bytes in csv.values() {
        let text = std::str::from_utf8(bytes).unwrap();
        let mut it = text.lines();
        assert_eq!(it.next().unwrap(), soundlake::events::CSV_HEADER);
        for line in it {
            let id = line.split(',').next().unwrap();
            assert!(by_id.contains_key(id), "{line}");
            assert_eq!(line.split(',').count(), 11, "{line}");
            rows += 1;
        }
    }
    assert_eq!(rows, lines.len());
}

#[test]
fn bad_requests_and_a_missing_catalog_get_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake { dir };
    let out = lake.run(&[
        "generate", "events", "--users", "5", "--events", "10", "--days", "1",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("silver/tracks") && stderr.contains("soundlake demo"),
        "{stderr}"
    );
    assert!(!Path::new(&lake.landing()).exists(), "nothing written");

    for (args, says) in [
        (
            vec!["--users", "0", "--events", "10", "--days", "1"],
            "at least 1",
        ),
        (
            vec!["--users", "5", "--events", "0", "--days", "1"],
            "at least 1",
        ),
        (
            vec!["--users", "5", "--events", "10", "--days", "0"],
            "at least 1",
        ),
        (
            vec!["--users", "5", "--events", "60000000", "--days", "2"],
            "more --days",
        ),
        (
            vec![
                "--users",
                "5",
                "--events",
                "10",
                "--days",
                "1",
                "--end",
                "2026-13-01",
            ],
            "--end",
        ),
        (
            vec![
                "--users", "5", "--events", "10", "--days", "1", "--format", "xml",
            ],
            "ndjson",
        ),
        (
            vec!["--users", "-1", "--events", "10", "--days", "1"],
            "--users",
        ),
    ] {
        let out = lake.run(&[&["generate", "events"][..], &args].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
