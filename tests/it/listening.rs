//! The listening-events pipeline through the CLI: event files into
//! bronze.events exactly once (growing files, bad lines, SIGKILL mid-file),
//! silver.events typed, deduplicated and partitioned by event date (late
//! events in their day, backfills rebuilding just their days), and the
//! marts, which DuckDB recomputes independently from silver.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use super::events::Lake;

impl Lake {
    /// A lake with the whole generated catalog through gold (the marts
    /// join its dimensions and bridges).
    pub fn with_gold_catalog() -> Lake {
        let lake = Lake::with_catalog();
        lake.ok(&[
            "run",
            "spotify_catalog",
            "--select",
            "bronze.*,silver.*,gold.*",
        ]);
        lake
    }

    fn count(&self, sql: &str) -> i64 {
        self.query(sql)[0]["n"].as_i64().unwrap()
    }

    fn drop_file(&self, name: &str, text: &str) {
        std::fs::create_dir_all(self.landing()).unwrap();
        std::fs::write(self.landing().join(name), text).unwrap();
    }

    fn append(&self, name: &str, text: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.landing().join(name))
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// Parquet files of silver.events by partition folder.
    fn silver_files(&self) -> BTreeMap<String, Vec<String>> {
        partition_files(&self.dir.path().join("lake/silver/events"), "event_date")
    }
}

/// The Parquet files of a table partitioned by `key`, by partition value.
fn partition_files(root: &Path, key: &str) -> BTreeMap<String, Vec<String>> {
    let prefix = format!("{key}=");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if let Some(value) = name.strip_prefix(&prefix) {
            let mut files: Vec<String> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .collect();
            files.sort();
            out.insert(value.to_string(), files);
        }
    }
    out
}

/// A copy of the shipped definitions to change.
pub fn copy_of_definitions() -> tempfile::TempDir {
    let defs = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for folder in ["bronze", "silver", "gold", "pipelines"] {
        std::fs::create_dir(defs.path().join(folder)).unwrap();
        for entry in std::fs::read_dir(root.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(
                &path,
                defs.path().join(folder).join(path.file_name().unwrap()),
            )
            .unwrap();
        }
    }
    defs
}

fn event(id: &str, user: &str, track: &str, kind: &str, ts: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","user_id":"{user}","track_id":"{track}","event_type":"{kind}","event_ts":"{ts}","device":"desktop","country":"DE","city":"Berlin","session_id":"s-{user}"}}"#
    )
}

#[test]
fn growing_files_are_taken_line_by_line_and_odd_files_explained() {
    let lake = Lake::new();
    let e = |i: u32| {
        event(
            &format!("e{i}"),
            "u1",
            "t1",
            "play",
            &format!("2026-11-20T10:00:{i:02}Z"),
        )
    };
    // A writer mid-line: the whole lines now, the rest when it is whole.
    lake.drop_file(
        "live.ndjson",
        &format!("{}\n{}\n{}", e(1), e(2), &e(3)[..20]),
    );
    lake.drop_file(".hidden.ndjson", &format!("{}\n", e(90)));
    lake.drop_file("upload.ndjson.tmp", &format!("{}\n", e(91)));
    lake.drop_file("notes.txt", "not events\n");
    let first = lake.ok(&["bronze", "events"]);
    assert!(
        first.contains("landing/events/live.ndjson: 2 lines"),
        "{first}"
    );
    assert!(
        first.contains("skipped landing/events/notes.txt: not .ndjson, .jsonl, .json or .csv"),
        "{first}"
    );
    assert!(
        !first.contains("hidden") && !first.contains(".tmp"),
        "{first}"
    );

    lake.append("live.ndjson", &format!("{}\n{}", &e(3)[20..], e(4)));
    let second = lake.ok(&["bronze", "events"]);
    assert!(second.contains("live.ndjson: 1 lines"), "{second}");
    // A last line without a break is whole once the file settled.
    let settled = lake.ok_with(
        &["bronze", "events"],
        &[("SOUNDLAKE__INGEST__SETTLE_SECS", "0")],
    );
    assert!(settled.contains("live.ndjson: 1 lines"), "{settled}");

    // Huge and binary lines are quarantined; the rest of the file is read.
    let huge = format!(
        "{{\"event_id\":\"big\",\"pad\":\"{}\"}}",
        "x".repeat(3 << 20)
    );
    let mut mixed = format!("{huge}\n").into_bytes();
    mixed.extend_from_slice(b"\xff\xfe\x00binary\n");
    mixed.extend_from_slice(format!("{}\n", e(5)).as_bytes());
    std::fs::write(lake.landing().join("mixed.ndjson"), mixed).unwrap();
    let third = lake.ok(&["bronze", "events"]);
    assert!(third.contains("mixed.ndjson: 1 lines"), "{third}");
    assert!(third.contains("2 lines quarantined"), "{third}");
    let problems = lake.query(
        "SELECT line, problem, length(text) AS kept FROM bronze.events_quarantine ORDER BY line",
    );
    assert!(
        problems[0]["problem"]
            .as_str()
            .unwrap()
            .starts_with("longer than")
    );
    assert!(
        problems[0]["kept"].as_i64().unwrap() <= 4096,
        "only the start is kept"
    );
    assert_eq!(problems[1]["problem"], "not UTF-8 text");

    // A file that shrank is left alone, with the reason.
    std::fs::write(lake.landing().join("live.ndjson"), "{}\n").unwrap();
    let shrunk = lake.ok(&["bronze", "events"]);
    assert!(
        shrunk.contains("skipped landing/events/live.ndjson: shrank"),
        "{shrunk}"
    );
    let ids = lake.ok(&[
        "query",
        "--format",
        "csv",
        "SELECT event_id FROM bronze.events ORDER BY event_id",
    ]);
    assert_eq!(
        ids, "event_id\ne1\ne2\ne3\ne4\ne5\n",
        "each whole line once"
    );

    // Bad settings are refused with the key and a fix.
    let bad = lake
        .command(&["bronze", "events"])
        .env("SOUNDLAKE__INGEST__COMMIT_MIB", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("[ingest] commit_mib"),
        "{err}"
    );
}

#[test]
fn a_key_an_event_repeats_counts_once_with_its_last_value() {
    let lake = Lake::new();
    let repeated = [
        // At the top, in a nested object and as an array (a child table).
        r#"{"event_id":"e1","user_id":"u1","track_id":"t1","event_type":"play","event_ts":"2026-11-20T10:00:00Z","device":"desktop","context":{"source":"radio","source":"search"},"tags":["a"],"device":"phone","tags":["b","c"]}"#,
        // The event's own key, twice.
        r#"{"event_id":"e2","user_id":"u2","track_id":"t2","event_type":"skip","event_ts":"2026-11-20T10:00:01Z","device":"tv","event_id":"e2"}"#,
    ];
    let plain = event("e3", "u3", "t3", "play", "2026-11-20T10:00:02Z");
    lake.drop_file(
        "repeats.ndjson",
        &format!("{}\n{}\n{plain}\n", repeated[0], repeated[1]),
    );
    lake.ok(&["bronze", "events"]);
    lake.ok(&["silver", "events"]);
    let rows = lake.query(
        "SELECT event_id, device, context__source AS source FROM silver.events ORDER BY event_id",
    );
    let got: Vec<(&str, &str, Option<&str>)> = rows
        .iter()
        .map(|r| {
            (
                r["event_id"].as_str().unwrap(),
                r["device"].as_str().unwrap(),
                r["source"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("e1", "phone", Some("search")),
            ("e2", "tv", None),
            ("e3", "desktop", None)
        ]
    );
    let tags = lake
        .query("SELECT event_event_id AS id, idx, value FROM silver.events__tags ORDER BY id, idx");
    assert_eq!(
        tags,
        [
            serde_json::json!({"id": "e1", "idx": 0, "value": "b"}),
            serde_json::json!({"id": "e1", "idx": 1, "value": "c"}),
        ],
        "only the last array, not both"
    );
}

#[test]
fn events_silver_cannot_read_are_quarantined_each_not_merged_as_duplicates() {
    let lake = Lake::new();
    // Bronze takes these lines (it reads only the fields it checks); the
    // extra fields are not JSON silver's parser accepts.
    let unreadable = |id: &str, extra: &str| {
        let e = event(id, "u1", "t1", "play", "2026-11-20T10:00:00Z");
        format!("{},{extra}}}", &e[..e.len() - 1])
    };
    let lines = [
        unreadable("bad-surrogate", r#""note":"\ud800""#),
        unreadable("bad-number", r#""n":184467440737095516150"#),
        event("fine", "u2", "t2", "play", "2026-11-20T10:00:01Z"),
    ];
    lake.drop_file("odd.ndjson", &(lines.join("\n") + "\n"));
    lake.ok(&["bronze", "events"]);
    assert_eq!(lake.count("SELECT count(*) AS n FROM bronze.events"), 3);
    lake.ok(&["silver", "events"]);
    let landed = lake.query(
        "SELECT event_id, 'kept' AS place FROM silver.events
         UNION ALL SELECT event_id, reason AS place FROM silver.events_quarantine
         ORDER BY event_id",
    );
    let places: Vec<(&str, &str)> = landed
        .iter()
        .map(|r| {
            (
                r["event_id"].as_str().unwrap(),
                r["place"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(places.len(), 3, "every event once: {places:?}");
    assert_eq!(places[2], ("fine", "kept"));
    for (id, place) in &places[..2] {
        assert!(
            id.starts_with("bad-") && place.starts_with("the document is not valid JSON"),
            "{places:?}"
        );
    }
}

#[tokio::test]
async fn ingestion_killed_mid_file_loses_and_doubles_no_line() {
    use std::os::unix::process::ExitStatusExt;

    let lake = Lake::with_catalog();
    lake.ok(&[
        "generate",
        "events",
        "--users",
        "300",
        "--events",
        "40000",
        "--days",
        "1",
        "--end",
        "2026-11-20",
        "--seed",
        "3",
    ]);
    // Bad lines spread through the file.
    let file = std::fs::read_dir(lake.landing())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for i in (1000..lines.len()).step_by(4000) {
        lines[i] = format!("garbage {i}");
    }
    let bad = lines.iter().filter(|l| l.starts_with("garbage")).count();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    assert!(text.len() > 8 << 20, "the file spans many 1 MiB commits");

    let commits = lake.dir.path().join("lake/bronze/events/_delta_log");
    let count = |dir: &Path| crate::support::files_ending(dir, ".json");
    let ingest = || {
        let mut c = lake.command(&["bronze", "events"]);
        c.env("SOUNDLAKE__INGEST__COMMIT_MIB", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        tokio::process::Command::from(c).spawn().unwrap()
    };
    // Kill after the 1st, 3rd and 6th commit of the runs so far: each time
    // the file is part read.
    for target in [1, 3, 6] {
        let mut child = ingest();
        loop {
            if count(&commits) >= target {
                child.start_kill().unwrap();
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the ingestion ended before its kill point: {status:?}");
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let status = child.wait().await.unwrap();
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL");
    }
    let status = ingest().wait().await.unwrap();
    assert!(status.success());

    let rows =
        lake.query("SELECT count(*) AS n, count(DISTINCT endpoint) AS places FROM bronze.events");
    let expected = (lines.len() - bad) as i64;
    assert_eq!(rows[0]["n"], expected, "every good line, none twice");
    assert_eq!(rows[0]["places"], expected);
    let quarantined = lake
        .query("SELECT count(*) AS n, count(DISTINCT line) AS lines FROM bronze.events_quarantine");
    assert_eq!(quarantined[0]["n"], bad as i64);
    assert_eq!(quarantined[0]["lines"], bad as i64);
}

#[test]
fn a_backfill_rebuilds_exactly_the_days_of_its_interval() {
    let lake = Lake::with_gold_catalog();
    lake.ok(&[
        "generate",
        "events",
        "--users",
        "40",
        "--events",
        "4000",
        "--days",
        "5",
        "--end",
        "2026-11-15",
        "--seed",
        "4",
    ]);
    lake.ok(&["run", "listening_events"]);
    let before = lake.silver_files();
    assert!(before.contains_key("2026-11-11") && before.contains_key("2026-11-15"));

    let report: Value = serde_json::from_str(&lake.ok(&[
        "silver",
        "events",
        "--from",
        "2026-11-12",
        "--to",
        "2026-11-14",
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        report["tables"][0]["partitions_rebuilt"],
        serde_json::json!(["2026-11-12", "2026-11-13"])
    );
    let after = lake.silver_files();
    for (day, files) in &before {
        let rebuilt = ["2026-11-12", "2026-11-13"].contains(&day.as_str());
        assert_eq!(
            &after[day] != files,
            rebuilt,
            "{day}: {files:?} → {:?}",
            after[day]
        );
    }
    let rows = |l: &Lake| l.count("SELECT count(*) AS n FROM silver.events");
    let total = rows(&lake);
    // An entity table has no days to rebuild: say so rather than do nothing.
    let refused = lake.run(&["silver", "tracks", "--from", "2026-11-12"]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        refused.status.code() == Some(2) && err.contains("silver.tracks is not partitioned"),
        "{err}"
    );

    // The pipeline's backfill over two of its hourly intervals (they start
    // at :15), within the 14th, rebuilds that day alone.
    let out = lake.ok(&[
        "backfill",
        "listening_events",
        "--from",
        "2026-11-14T00:15:00Z",
        "--to",
        "2026-11-14T02:15:00Z",
    ]);
    assert!(out.contains("2 intervals"), "{out}");
    let backfilled = lake.silver_files();
    for (day, files) in &after {
        assert_eq!(&backfilled[day] != files, day == "2026-11-14", "{day}");
    }
    assert_eq!(rows(&lake), total, "nothing lost or doubled");
}

/// The report of task `gold.<model>` in a `run ... --json` output.
fn gold_report(run: &str, model: &str) -> Value {
    let run: Value = serde_json::from_str(run).unwrap();
    let task = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == format!("gold.{model}"))
        .unwrap_or_else(|| panic!("no gold.{model} in {run:#}"));
    task["report"].clone()
}

/// Parquet files of a gold table by its day folder.
fn day_files(lake: &Lake, model: &str) -> BTreeMap<String, Vec<String>> {
    partition_files(
        &lake.dir.path().join("lake/gold").join(model),
        "activity_date",
    )
}

#[test]
fn incremental_marts_rebuild_only_the_days_whose_events_changed() {
    let lake = Lake::with_gold_catalog();
    lake.ok(&[
        "generate",
        "events",
        "--users",
        "30",
        "--events",
        "3000",
        "--days",
        "4",
        "--end",
        "2026-11-15",
        "--seed",
        "5",
    ]);
    let first = lake.ok(&["run", "listening_events", "--json"]);
    for mart in ["mart_user_activity", "mart_device_geo"] {
        assert_eq!(gold_report(&first, mart)["whole"], "the first build");
    }
    // The run says where its time went: bronze parsed the lines, silver
    // parsed and flattened them, both encoded, wrote and committed files.
    let stages = &serde_json::from_str::<Value>(&first).unwrap()["stages"];
    for stage in ["parse", "flatten", "encode", "write", "commit"] {
        assert!(stages[stage].as_f64().unwrap() > 0.0, "{stage}: {stages}");
    }
    assert_eq!(
        stages["landing_read"], 0.0,
        "events come from files: {stages}"
    );
    let before = day_files(&lake, "mart_user_activity");
    assert!(
        before.len() >= 4 && before.contains_key("2026-11-13"),
        "{before:?}"
    );

    // A late play of the 13th: that day alone is rebuilt.
    let track = lake.query("SELECT id FROM silver.tracks ORDER BY id LIMIT 1")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let late = event("late-1", "u-late", &track, "play", "2026-11-13T10:00:00Z");
    lake.drop_file("late.ndjson", &format!("{late}\n"));
    let second = lake.ok(&["run", "listening_events", "--json"]);
    for mart in ["mart_user_activity", "mart_device_geo"] {
        let report = gold_report(&second, mart);
        assert_eq!(
            report["days"],
            serde_json::json!(["2026-11-13"]),
            "{report}"
        );
        assert!(report.get("whole").is_none(), "{report}");
    }
    let after = day_files(&lake, "mart_user_activity");
    for (day, files) in &before {
        assert_eq!(&after[day] != files, day == "2026-11-13", "{day}");
    }
    let late_row = lake.query(
        "SELECT events, plays FROM gold.mart_user_activity \
         WHERE user_id = 'u-late' AND activity_date = DATE '2026-11-13'",
    );
    assert_eq!(late_row, [serde_json::json!({"events": 1, "plays": 1})]);

    // The days kept and the day rebuilt are what a full refresh computes.
    let whole_table = |l: &Lake| {
        (
            l.query("SELECT * FROM gold.mart_user_activity ORDER BY user_id, activity_date"),
            l.query("SELECT * FROM gold.mart_device_geo ORDER BY activity_date, country, device"),
        )
    };
    let incremental = whole_table(&lake);
    let refresh = lake.ok(&[
        "run",
        "listening_events",
        "--select",
        "gold.mart_user_activity,gold.mart_device_geo",
        "--full-refresh",
        "--json",
    ]);
    let refreshed = gold_report(&refresh, "mart_user_activity");
    assert_eq!(refreshed["whole"], "a full refresh");
    assert_eq!(whole_table(&lake), incremental);
    assert_eq!(
        refreshed["rows"].as_u64().unwrap(),
        incremental.0.len() as u64
    );

    // Nothing new: no day rebuilt, no new version.
    let idle = lake.ok(&["run", "listening_events", "--json"]);
    let report = gold_report(&idle, "mart_user_activity");
    assert_eq!(report["days"], serde_json::json!([]));
    assert_eq!(report["nothing_to_do"], true);
    assert_eq!(report["version"], refreshed["version"]);

    // A changed model rebuilds every day; a source not partitioned by day
    // is refused, naming the model's file and the fix.
    let defs = copy_of_definitions();
    let sql = defs.path().join("gold/mart_user_activity.sql");
    let text = std::fs::read_to_string(&sql).unwrap();
    std::fs::write(&sql, format!("-- Reworded.\n{text}")).unwrap();
    std::fs::write(
        defs.path().join("gold/mart_tracks_by_day.sql"),
        "SELECT CAST(ingested_at AS DATE) AS day, count(*) AS tracks FROM silver.tracks GROUP BY 1",
    )
    .unwrap();
    std::fs::write(
        defs.path().join("gold/mart_tracks_by_day.toml"),
        "comment = \"Tracks by day.\"\ngrain = \"one row per day\"\nkey = [\"day\"]\n\
         [incremental]\nby = \"day\"\nsource = \"silver.tracks\"\n\
         [[columns]]\nname = \"day\"\ntype = \"date\"\ncomment = \"Day.\"\n\
         [[columns]]\nname = \"tracks\"\ntype = \"bigint\"\ncomment = \"Tracks.\"\n",
    )
    .unwrap();
    let dir = defs.path().to_str().unwrap();
    let changed = lake.ok_with(
        &[
            "run",
            "listening_events",
            "--select",
            "gold.mart_user_activity",
            "--json",
        ],
        &[("SOUNDLAKE__DEFINITIONS__DIR", dir)],
    );
    assert_eq!(
        gold_report(&changed, "mart_user_activity")["whole"],
        "the model changed since the last build"
    );
    // What a run on the changed definitions says when it fails.
    let refused = |args: &[&str]| {
        let out = lake
            .command(args)
            .env("SOUNDLAKE__DEFINITIONS__DIR", dir)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    };
    let select = ["run", "listening_events", "--select"];
    let err = refused(&[select.as_slice(), &["gold.mart_tracks_by_day"]].concat());
    assert!(
        err.contains("mart_tracks_by_day.toml")
            && err.contains("silver.tracks must be partitioned by one date"),
        "{err}"
    );

    // A model whose rows of a day come from the day before builds whole,
    // and fails naming the day once a run rebuilds only some days.
    std::fs::write(
        defs.path().join("gold/mart_next_day.sql"),
        "SELECT CAST(CAST(event_ts AS DATE) + INTERVAL '1 day' AS DATE) AS day, \
         count(*) AS events FROM silver.events GROUP BY 1",
    )
    .unwrap();
    std::fs::write(
        defs.path().join("gold/mart_next_day.toml"),
        "comment = \"Events of the day before.\"\ngrain = \"one row per day\"\n\
         key = [\"day\"]\n[incremental]\nby = \"day\"\nsource = \"silver.events\"\n\
         [[columns]]\nname = \"day\"\ntype = \"date\"\ncomment = \"Day.\"\n\
         [[columns]]\nname = \"events\"\ntype = \"bigint\"\ncomment = \"Events.\"\n",
    )
    .unwrap();
    let next_day = [
        select.as_slice(),
        &["bronze.events,silver.events,gold.mart_next_day"],
    ]
    .concat();
    lake.ok_with(&next_day, &[("SOUNDLAKE__DEFINITIONS__DIR", dir)]);
    let later = event("late-2", "u-late", &track, "play", "2026-11-14T10:00:00Z");
    lake.drop_file("later.ndjson", &format!("{later}\n"));
    let err = refused(&next_day);
    assert!(
        err.contains("rows for day 2026-11-15 came from source rows of other days")
            && err.contains("this run rebuilt the days 2026-11-14"),
        "{err}"
    );
}

#[tokio::test]
async fn the_daemon_runs_the_listening_events_pipeline() {
    let lake = Lake::with_gold_catalog();
    lake.ok(&[
        "generate",
        "events",
        "--users",
        "20",
        "--events",
        "500",
        "--days",
        "2",
        "--end",
        "2026-11-15",
    ]);
    // The shipped definitions, firing every second.
    let defs = copy_of_definitions();
    for other in ["spotify_catalog", "lake_maintenance"] {
        std::fs::remove_file(defs.path().join(format!("pipelines/{other}.toml"))).unwrap();
    }
    let pipeline = defs.path().join("pipelines/listening_events.toml");
    let text = std::fs::read_to_string(&pipeline)
        .unwrap()
        .replace("schedule = \"15 * * * *\"", "schedule = \"* * * * * *\"");
    std::fs::write(&pipeline, text).unwrap();

    let mut command = lake.command(&["daemon"]);
    command.env("SOUNDLAKE__DEFINITIONS__DIR", defs.path());
    let (mut child, base) = super::orchestrator::start_daemon(command).await;
    let status = super::orchestrator::poll(&format!("{base}/status.json"), |s| {
        serde_json::from_str::<Value>(s)
            .is_ok_and(|v| v["pipelines"][0]["runs"]["succeeded"].as_u64().unwrap_or(0) >= 1)
    })
    .await;
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["pipelines"][0]["name"], "listening_events");
    child.kill().await.unwrap();
    assert!(lake.count("SELECT count(*) AS n FROM gold.mart_track_engagement") > 0);
}

/// The tests that need the real servers or Python readers `tests/run.sh`
/// installs.
#[cfg(feature = "servers")]
mod with_servers {
    use super::*;

    #[test]
    fn events_flow_into_marts_that_duckdb_recomputes_alike() {
        let lake = Lake::with_gold_catalog();
        let track = lake.query("SELECT id FROM silver.tracks ORDER BY id LIMIT 1")[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        lake.ok(&[
            "generate",
            "events",
            "--users",
            "60",
            "--events",
            "12000",
            "--days",
            "10",
            "--end",
            "2026-11-15",
            "--seed",
            "9",
        ]);
        // A hand-made file: an event from the 3rd arriving late, the same play
        // twice under two ids (and once more in another form of its time), a
        // line of every kind of bad.
        let late = event("late-1", "u9", &track, "play", "2026-11-03T23:59:59.500Z");
        let twin_a = event("twin-a", "u9", &track, "skip", "2026-11-14T10:00:00Z");
        let twin_b = event("twin-b", "u9", &track, "skip", "2026-11-14T10:00:00.000Z");
        let twin_c = event("twin-c", "u9", &track, "skip", "2026-11-14T11:00:00+01:00");
        let no_user = r#"{"event_id":"x1","track_id":"t","event_type":"play","event_ts":"2026-11-14T10:00:00Z"}"#;
        let bad_time = event("x2", "u9", &track, "play", "yesterday");
        let text = [
            late.as_str(),
            &twin_a,
            "",
            &twin_b,
            &twin_c,
            "{not json",
            no_user,
            &bad_time,
            "[1,2]",
        ]
        .join("\n")
            + "\n";
        lake.drop_file("extra.ndjson", &text);
        // The same kind of data as CSV (values are text; silver types them).
        lake.drop_file(
            "extra.csv",
            &format!(
                "event_id,user_id,track_id,event_type,event_ts,shuffle,device\n\
             csv-1,u8,{track},play,2026-11-14T09:00:00Z,true,web\n\
             csv-2,u8,{track},like,2026-11-14T09:01:00Z,false,web\n\
             csv-3,u8,{track}\n"
            ),
        );

        let out = lake.ok(&["run", "listening_events"]);
        assert!(out.contains("succeeded (13 tasks)"), "{out}");

        // The marts, recomputed by DuckDB from silver alone.
        let said = crate::servers::python("tests/marts_check.py", [lake.dir.path().join("lake")]);
        assert_eq!(said.matches("rows agree").count(), 10, "{said}");

        // Silver: each event once. The generator's repeats share an id; the
        // twins are one event under three ids and two spellings of one time.
        let distinct = 12_000 + 1 + 1 + 2;
        assert_eq!(
            lake.count("SELECT count(*) AS n FROM silver.events"),
            distinct
        );
        let twins = lake.query(
            "SELECT event_id FROM silver.events WHERE user_id = 'u9' AND event_type = 'skip'",
        );
        assert_eq!(twins, [serde_json::json!({"event_id": "twin-a"})]);
        // The late event sits in its own day, typed.
        let late = lake.query(
        "SELECT event_date, CAST(event_ts AS VARCHAR) AS ts FROM silver.events WHERE event_id = 'late-1'",
    );
        assert_eq!(late[0]["event_date"], "2026-11-03", "{late:?}");
        let csv = lake.query("SELECT shuffle, device FROM silver.events WHERE event_id = 'csv-1'");
        assert_eq!(
            csv[0]["shuffle"], true,
            "CSV text typed as the definition says"
        );

        // Bad lines are in quarantine with their file and line, once.
        let quarantined = lake
            .query("SELECT file, line, problem FROM bronze.events_quarantine ORDER BY file, line");
        let places: Vec<(String, i64)> = quarantined
            .iter()
            .map(|q| {
                (
                    q["file"].as_str().unwrap().to_string(),
                    q["line"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            places,
            [
                ("landing/events/extra.csv".to_string(), 4),
                ("landing/events/extra.ndjson".to_string(), 6),
                ("landing/events/extra.ndjson".to_string(), 7),
                ("landing/events/extra.ndjson".to_string(), 8),
                ("landing/events/extra.ndjson".to_string(), 9),
            ]
        );
        let problems: Vec<&str> = quarantined
            .iter()
            .map(|q| q["problem"].as_str().unwrap())
            .collect();
        for (problem, needle) in problems.iter().zip([
            "fields where the header has 7",
            "not JSON",
            "no user_id",
            "\"yesterday\" is not an RFC 3339 time",
            "a JSON array is not a record",
        ]) {
            assert!(problem.contains(needle), "{problem:?} lacks {needle:?}");
        }

        // A second run finds nothing new and changes nothing.
        let before = lake.silver_files();
        let again = lake.ok(&["bronze", "events"]);
        assert!(again.contains("no new lines"), "{again}");
        lake.ok(&["run", "listening_events"]);
        assert_eq!(lake.silver_files(), before);
        assert_eq!(
            lake.count("SELECT count(*) AS n FROM bronze.events_quarantine"),
            5
        );
    }

    #[tokio::test]
    async fn events_also_land_in_mongodb_once_when_asked() {
        use soundlake::landing::Collection;

        let mongo = crate::servers::MongoServer::start();
        let url = mongo.url("events");
        let defs = copy_of_definitions();
        let bronze = defs.path().join("bronze/events.toml");
        let text = std::fs::read_to_string(&bronze).unwrap() + "copy_to_landing = \"events\"\n";
        std::fs::write(&bronze, text).unwrap();

        let lake = Lake::new();
        let e = |i: u32| {
            event(
                &format!("m{i}"),
                "u1",
                "t1",
                "play",
                &format!("2026-11-20T10:00:{i:02}Z"),
            )
        };
        // One event delivered twice, and a bad line.
        lake.drop_file(
            "a.ndjson",
            &format!("{}\n{}\n{}\nnot json\n", e(1), e(2), e(1)),
        );
        let defs_dir = defs.path().to_str().unwrap();
        let ingest = || {
            lake.ok_with(
                &["bronze", "events"],
                &[
                    ("SOUNDLAKE__DEFINITIONS__DIR", defs_dir),
                    ("SOUNDLAKE__LANDING__URL", &url),
                ],
            )
        };
        ingest();
        lake.append("a.ndjson", &format!("{}\n", e(3)));
        ingest();
        ingest();

        let store = soundlake::landing::open(&url, soundlake::clock::system())
            .await
            .unwrap();
        assert_eq!(store.count(Collection::Events).await.unwrap(), 3);
        let stored = store.get(Collection::Events, "m2").await.unwrap().unwrap();
        assert_eq!(stored.doc["track_id"], "t1");
        assert_eq!(
            stored.versions, 1,
            "a replayed event leaves the stored one as it was"
        );
    }
}
