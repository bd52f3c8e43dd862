//! Bronze end to end: landed versions into Parquet on local disk and on a
//! real S3 server, read back by soundlake, DuckDB and PyArrow; reruns,
//! interval rewrites, kill -9 and bounded memory.

use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use chrono::TimeDelta;
use futures::TryStreamExt;
use serde_json::{Value, json};
use soundlake::bronze::{self, Bronze, BronzeTable, Extract};
use soundlake::clock::{Clock, SharedClock, VirtualClock};
use soundlake::lake::{Lake, Table};
use soundlake::landing::{self, Batch, Collection, SharedStore};

use crate::support::t0;

/// The shipped definitions.
pub fn definitions() -> Vec<BronzeTable> {
    bronze::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("bronze")).unwrap()
}

pub fn definition(name: &str) -> BronzeTable {
    definitions().into_iter().find(|d| d.name == name).unwrap()
}

/// A Spotify-shaped track: nested album, artists array, unicode, nulls.
pub fn track(id: &str, version: u32, pad: usize) -> Value {
    json!({
        "id": id,
        "type": "track",
        "name": format!("Träck {id} — «v{version}» 🎵"),
        "popularity": version,
        "explicit": version.is_multiple_of(2),
        "preview_url": null,
        "album": {"id": format!("al{}", &id[1..]), "name": "Album", "release_date": "2024-05",
                  "images": [{"url": "https://i.scdn.co/image/x", "height": 640, "width": 640}]},
        "artists": [{"id": "ar1", "name": "Björk"}, {"id": "ar2", "name": "Sigur Rós"}],
        "available_markets": [],
        "padding": noise(id, version, pad),
    })
}

/// `len` characters that do not compress, the same for the same input.
fn noise(id: &str, version: u32, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = soundlake::rng::Rng::derived(u64::from(version), id);
    (0..len)
        .map(|_| ALPHABET[rng.below(64) as usize] as char)
        .collect()
}

/// Land `ids` at version `version` as one batch.
pub async fn land(store: &SharedStore, ids: &[String], version: u32, pad: usize) {
    let batch = Batch::new(
        &format!("crawl-v{version}"),
        "GET /tracks",
        ids.iter()
            .map(|id| (id.clone(), track(id, version, pad)))
            .collect(),
    );
    store.upsert(Collection::Tracks, batch).await.unwrap();
}

pub fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("t{i:05}")).collect()
}

/// Every version a bronze table holds, sorted: `(id, stamp, hash, doc)`.
pub async fn versions(table: &Table) -> Vec<(String, i64, String, Value)> {
    let snapshot = table.snapshot().await.unwrap();
    let mut out = Vec::new();
    for file in &snapshot.files {
        let batches: Vec<RecordBatch> = table
            .read(file, 512)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        for b in &batches {
            let text = |i: usize| {
                b.column(i)
                    .as_any()
                    .downcast_ref::<arrow_array::StringArray>()
                    .unwrap()
                    .clone()
            };
            let stamps = b
                .column(1)
                .as_any()
                .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
                .unwrap();
            let (id, hash, doc) = (text(0), text(4), text(5));
            for i in 0..b.num_rows() {
                out.push((
                    id.value(i).to_string(),
                    stamps.value(i),
                    hash.value(i).to_string(),
                    serde_json::from_str(doc.value(i)).unwrap(),
                ));
            }
        }
    }
    out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    out
}

struct Setup {
    store: SharedStore,
    clock: Arc<VirtualClock>,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::manual(t0());
    let shared: SharedClock = clock.clone();
    let url = format!("embedded://{}/landing.db", dir.path().display());
    let store = landing::open(&url, shared).await.unwrap();
    Setup {
        store,
        clock,
        _dir: dir,
    }
}

#[tokio::test]
async fn an_interval_after_the_watermark_also_takes_the_gap_and_moves_it() {
    let s = setup().await;
    let shared: SharedClock = s.clock.clone();
    let job = Bronze::new(s.store.clone(), Lake::in_memory(), shared);
    let def = definition("tracks");
    land(&s.store, &ids(0..10), 1, 0).await;
    job.run(&def, Extract::Incremental, "b1").await.unwrap();
    for day in 1..=3 {
        s.clock.advance(TimeDelta::days(1).to_std().unwrap());
        land(&s.store, &ids(day * 10..day * 10 + 10), 1, 0).await;
    }
    // Only day 3 asked for: days 1 and 2 come too, or bronze would have a hole.
    let r = job
        .run(
            &def,
            Extract::Interval {
                from: t0() + TimeDelta::days(3) - TimeDelta::hours(9),
                to: t0() + TimeDelta::days(4),
            },
            "i",
        )
        .await
        .unwrap();
    assert_eq!((r.rows_written, r.table_rows), (30, 40));
    let next = job.run(&def, Extract::Incremental, "b2").await.unwrap();
    assert_eq!(next.version, None, "nothing left for the incremental run");
    assert_eq!(versions(&job.table(&def)).await.len(), 40);
}

#[tokio::test]
async fn a_second_writer_is_refused_while_the_lock_is_held() {
    let s = setup().await;
    let shared: SharedClock = s.clock.clone();
    let job = Bronze::new(s.store.clone(), Lake::in_memory(), shared);
    let now = s.clock.now();
    assert!(
        s.store
            .try_lock("bronze.tracks", "other-run", now, now + TimeDelta::hours(1))
            .await
            .unwrap()
    );
    let err = job
        .run(&definition("tracks"), Extract::Incremental, "mine")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("another run is writing bronze.tracks"),
        "{err}"
    );
    // Its lease lapses: the next run proceeds.
    s.clock.advance(TimeDelta::minutes(61).to_std().unwrap());
    job.run(&definition("tracks"), Extract::Incremental, "mine")
        .await
        .unwrap();
}

/// `soundlake bronze` as a process over the given store and lake folder,
/// with small files so a run has many kill points.
fn bronze_command(landing_url: &str, lake: &Path) -> std::process::Command {
    bronze_command_at(landing_url, &format!("file://{}", lake.display()))
}

/// `bronze_command` over the lake at `lake_url`.
fn bronze_command_at(landing_url: &str, lake_url: &str) -> std::process::Command {
    let mut cmd = crate::support::soundlake(crate::support::shipped());
    cmd.args(["bronze", "tracks", "--json"])
        .env("SOUNDLAKE__LANDING__URL", landing_url)
        .env("SOUNDLAKE__LAKE__URL", lake_url)
        .env("SOUNDLAKE__LAKE__FILE_MIB", "1")
        .env("SOUNDLAKE__LAKE__ROW_GROUP_MIB", "1");
    cmd
}

/// Run `soundlake bronze` to completion; its JSON report.
fn bronze_report(cmd: &mut std::process::Command) -> Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn memory_stays_flat_however_large_the_interval() {
    // 60 MB of documents, then an interval rewrite over 360 MB: the second
    // run reads six times as much and may not use much more memory, nor
    // half of what it reads.
    const DOC: usize = 100_000;
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let mut cmd = bronze_command(&s.store.describe(), dir.path());
        cmd.args(extra)
            .env("SOUNDLAKE__LAKE__FILE_MIB", "64")
            .env("SOUNDLAKE__LAKE__ROW_GROUP_MIB", "8");
        bronze_report(&mut cmd)
    };
    for chunk in 0..6 {
        land(&s.store, &ids(chunk * 100..chunk * 100 + 100), 1, DOC).await;
    }
    let small = run(&[]);
    assert_eq!(small["tables"][0]["rows_written"], 600);
    for chunk in 6..36 {
        land(&s.store, &ids(chunk * 100..chunk * 100 + 100), 1, DOC).await;
    }
    let large = run(&["--from", "2000-01-01"]);
    assert_eq!(large["tables"][0]["rows_written"], 3600);
    assert_eq!(large["tables"][0]["table_rows"], 3600);

    let peak = |r: &Value| {
        r["peak_rss_bytes"]
            .as_u64()
            .expect("Linux reports peak memory")
    };
    let (a, b) = (peak(&small), peak(&large));
    eprintln!(
        "peak RSS: {} MiB for 60 MB, {} MiB for 360 MB",
        a >> 20,
        b >> 20
    );
    assert!(
        b < a + a / 2,
        "memory grew with the data: {} -> {} MiB",
        a >> 20,
        b >> 20
    );
    // Below the interval's size: the run never held it all. (The process's
    // own footprint, ~130 MiB of it for the debug binary, counts here too.)
    assert!(b < 3600 * DOC as u64, "peak {} MiB", b >> 20);
}

#[tokio::test]
async fn bad_commands_and_settings_exit_with_a_fix_and_no_secret() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let landing_url = s.store.describe();
    let run = |cmd: &mut std::process::Command| {
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };

    let (code, err) = run(bronze_command(&landing_url, dir.path()).arg("songs"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no bronze table \"songs\"") && err.contains("tracks"),
        "{err}"
    );

    let (code, err) = run(bronze_command(&landing_url, dir.path())
        .env("SOUNDLAKE__LAKE__URL", "ftp://lake")
        .env("SOUNDLAKE__LAKE__COMPRESSION", "gzip"));
    assert_eq!(code, Some(2), "{err}");

    let (code, err) = run(
        bronze_command(&landing_url, dir.path()).env("SOUNDLAKE__DEFINITIONS__DIR", dir.path())
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bronze definitions"), "{err}");

    let (code, err) = run(bronze_command(&landing_url, dir.path()).args(["--from", "yesterday"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("neither a date"), "{err}");
}

/// The tests that need the real servers or Python readers `tests/run.sh`
/// installs.
#[cfg(feature = "servers")]
mod with_servers {
    use super::*;
    use crate::servers::{S3_ACCESS_KEY, S3_SECRET_KEY, S3FaultProxy, S3Server};
    use crate::support::kill_when;
    use soundlake::lake::LakeSettings;

    /// What the store holds now, as `(id, stamp, hash, doc)`.
    async fn current(store: &SharedStore) -> Vec<(String, i64, String, Value)> {
        let mut out: Vec<_> = store
            .scan(Collection::Tracks, None, 1_000_000)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.id, s.ingested_at, s.content_hash, s.doc))
            .collect();
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    }

    fn python(args: &[&str]) -> Value {
        serde_json::from_str(&crate::servers::python(
            "tests/readers/count_bronze.py",
            args,
        ))
        .unwrap()
    }

    /// `bronze_command` writing to `lake_url` (`s3://…`) on `s3`.
    fn bronze_command_on_s3(
        landing_url: &str,
        s3: &S3Server,
        lake_url: &str,
    ) -> std::process::Command {
        let mut cmd = bronze_command_at(landing_url, lake_url);
        cmd.env("SOUNDLAKE__LAKE__S3__ENDPOINT", s3.endpoint())
            .env("SOUNDLAKE__LAKE__S3__PATH_STYLE", "true")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY);
        cmd
    }

    /// Vacuum with no retention, then check that the table's folder holds
    /// exactly the files of its current version: what killed or failed
    /// runs left behind was in no version.
    async fn vacuum_leaves_the_current_version(lake: &Lake) {
        let table = lake.table("bronze", "tracks");
        table
            .vacuum(TimeDelta::zero(), chrono::Utc::now(), false)
            .await
            .unwrap();
        let mut on_storage: Vec<String> = lake
            .list_files("bronze/tracks")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.path)
            .filter(|p| p.ends_with(".parquet") && !p.contains("/_delta_log/"))
            .collect();
        on_storage.sort();
        let mut current: Vec<String> = table
            .snapshot()
            .await
            .unwrap()
            .files
            .iter()
            .map(|f| table.file_path(f).to_string())
            .collect();
        current.sort();
        assert_eq!(on_storage, current);
    }

    /// SIGKILL `soundlake bronze` while it writes its first file, further
    /// into writing, and as soon as its first data commit exists; then a
    /// rerun. `table` is the folder the table's files are in on disk (for
    /// S3, in MinIO's drive).
    async fn kill_and_rerun_bronze(
        command: impl Fn() -> std::process::Command,
        lake: &Lake,
        table: &Path,
        expected: &[(String, i64, String, Value)],
    ) {
        let log = table.join("_delta_log");
        let points: [(&Path, &str, usize); 3] = [
            (table, ".parquet", 1),
            (table, ".parquet", 4),
            // Version 0 creates the table with the first data.
            (&log, ".json", 1),
        ];
        for (watched, suffix, count) in points {
            let killed = kill_when(&mut command(), watched, suffix, count);
            if suffix == ".parquet" {
                assert!(killed, "killed while writing");
                let snapshot = lake.table("bronze", "tracks").snapshot().await.unwrap();
                assert_eq!(
                    (snapshot.exists(), snapshot.files.len()),
                    (false, 0),
                    "nothing visible before a commit"
                );
            }
        }

        bronze_report(&mut command());
        assert_eq!(versions(&lake.table("bronze", "tracks")).await, expected);
        vacuum_leaves_the_current_version(lake).await;
        assert_eq!(versions(&lake.table("bronze", "tracks")).await, expected);
    }

    #[tokio::test]
    async fn bronze_keeps_every_version_once_on_disk_and_on_s3() {
        let s = setup().await;
        let shared: SharedClock = s.clock.clone();
        let dir = tempfile::tempdir().unwrap();
        let disk = Lake::open(&LakeSettings {
            url: format!("file://{}", dir.path().display()),
            ..LakeSettings::default()
        })
        .unwrap();
        let s3 = S3Server::start(&["lake"]);
        let remote = Lake::open(&s3.lake("lake", "prod")).unwrap();
        remote.check().await.unwrap();
        let def = definition("tracks");
        let jobs = [
            Bronze::new(s.store.clone(), disk.clone(), shared.clone()),
            Bronze::new(s.store.clone(), remote.clone(), shared.clone()),
        ];

        // Day 1: 300 tracks.
        land(&s.store, &ids(0..300), 1, 10).await;
        let day1 = current(&s.store).await;
        for job in &jobs {
            let r = job.run(&def, Extract::Incremental, "b1").await.unwrap();
            assert_eq!((r.version, r.rows_written), (Some(0), 300));
            assert_eq!(
                r.partitions.keys().collect::<Vec<_>>(),
                ["ingest_date=2026-11-21"]
            );
            let again = job.run(&def, Extract::Incremental, "b2").await.unwrap();
            assert_eq!(
                (again.version, again.rows_written),
                (None, 0),
                "rerun writes nothing"
            );
        }

        // Day 2: 100 changed, 50 new, 50 fetched again unchanged.
        s.clock.advance(TimeDelta::days(1).to_std().unwrap());
        land(&s.store, &ids(0..100), 2, 10).await;
        land(&s.store, &ids(250..350), 1, 10).await;
        let mut expected = day1;
        expected.extend(current(&s.store).await);
        expected.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        expected.dedup();
        assert_eq!(expected.len(), 450);
        for job in &jobs {
            let r = job.run(&def, Extract::Incremental, "b3").await.unwrap();
            assert_eq!(
                (r.version, r.rows_written, r.table_rows),
                (Some(1), 150, 450)
            );
            assert_eq!(
                r.partitions.keys().collect::<Vec<_>>(),
                ["ingest_date=2026-11-22"]
            );
        }
        let on_disk = versions(&jobs[0].table(&def)).await;
        assert_eq!(on_disk, expected);
        assert_eq!(
            versions(&jobs[1].table(&def)).await,
            on_disk,
            "S3 and disk agree"
        );

        // Rerunning day 1 rewrites its files from their own rows and the
        // store: the day-1 versions the store no longer holds are kept, and
        // nothing is doubled, however often it runs.
        let day = Extract::Interval {
            from: t0() - TimeDelta::hours(9),
            to: t0() + TimeDelta::hours(15),
        };
        for job in &jobs {
            for run in ["i1", "i2"] {
                let r = job.run(&def, day, run).await.unwrap();
                assert_eq!(
                    (r.rows_written, r.files_removed, r.table_rows),
                    (300, 1, 450)
                );
                assert_eq!(r.watermark_after, r.watermark_before);
            }
            assert_eq!(versions(&job.table(&def)).await, on_disk);
        }

        // Engines reading the folders see the same rows.
        let folder = dir.path().join("bronze/tracks");
        let folder = folder.to_str().unwrap();
        let duck = python(&["duckdb", folder, "ingest_date"]);
        assert_eq!(duck["rows"], 450, "{duck}");
        assert_eq!(duck["distinct_versions"], 450, "{duck}");
        assert_eq!(
            duck["misplaced"], 0,
            "partition folders match ingest dates: {duck}"
        );
        assert_eq!(duck["docs_matching_id"], 450, "{duck}");
        // delta-rs reads the same history soundlake writes.
        let history = python(&["history", folder]);
        let ours: Vec<Value> = jobs[0]
            .table(&def)
            .history(None)
            .await
            .unwrap()
            .into_iter()
            .map(|c| {
                json!({
                    "version": c.version,
                    "operation": c.operation,
                    "run_id": c.run_id,
                    "timestamp": c.at.timestamp_millis(),
                })
            })
            .collect();
        assert_eq!(history, json!(ours));
        assert!(ours.len() >= 4, "{ours:?}");
        let arrow = python(&["delta-rs", folder, "ingest_date"]);
        assert_eq!(
            (arrow["rows"].clone(), arrow["distinct_versions"].clone()),
            (json!(450), json!(450))
        );
        assert_eq!(
            arrow["columns"],
            json!([
                "id",
                "ingested_at",
                "run_id",
                "endpoint",
                "content_hash",
                "doc",
                "ingest_date"
            ])
        );
        let arrow_s3 = python(&[
            "delta-rs-s3",
            &s3.endpoint(),
            "lake/prod/bronze/tracks",
            "ingest_date",
        ]);
        assert_eq!(arrow_s3["rows"], 450, "{arrow_s3}");
        assert_eq!(arrow_s3["distinct_versions"], 450, "{arrow_s3}");
    }

    #[tokio::test]
    async fn killed_at_any_point_and_rerun_bronze_converges_to_the_same_rows() {
        let s = setup().await;
        land(&s.store, &ids(0..6000), 1, 1500).await;
        let expected = current(&s.store).await;
        let landing_url = s.store.describe();

        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&LakeSettings {
            url: format!("file://{}", dir.path().display()),
            ..LakeSettings::default()
        })
        .unwrap();
        let table = dir.path().join("bronze/tracks");
        let command = || bronze_command(&landing_url, dir.path());
        kill_and_rerun_bronze(command, &lake, &table, &expected).await;
        let duck = python(&["duckdb", table.to_str().unwrap(), "ingest_date"]);
        assert_eq!(duck["rows"], 6000, "engines see each row once: {duck}");
        assert_eq!(duck["distinct_versions"], 6000, "{duck}");

        let s3 = S3Server::start(&["lake"]);
        let lake = Lake::open(&s3.lake("lake", "prod")).unwrap();
        let table = s3.bucket_dir("lake").join("prod/bronze/tracks");
        let command = || bronze_command_on_s3(&landing_url, &s3, "s3://lake/prod");
        kill_and_rerun_bronze(command, &lake, &table, &expected).await;
        let arrow = python(&[
            "delta-rs-s3",
            &s3.endpoint(),
            "lake/prod/bronze/tracks",
            "ingest_date",
        ]);
        assert_eq!(arrow["rows"], 6000, "engines see each row once: {arrow}");
    }

    #[tokio::test]
    async fn a_missing_bucket_ends_the_run_with_the_fix_and_no_secret() {
        let s = setup().await;
        let s3 = S3Server::start(&[]);
        let out = bronze_command_on_s3(&s.store.describe(), &s3, "s3://missing-bucket/lake")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("s3://missing-bucket/lake") && err.contains("create the bucket"),
            "{err}"
        );
        assert!(!err.contains(S3_SECRET_KEY), "{err}");
    }

    #[tokio::test]
    async fn bronze_on_s3_converges_through_refused_and_dropped_requests() {
        let s = setup().await;
        let shared: SharedClock = s.clock.clone();
        let s3 = S3Server::start(&["lake"]);
        // One request in three fails, so some fail again on every retry and
        // end a run: reruns must finish the work, each version once.
        let proxy = S3FaultProxy::start(s3.endpoint(), 3, 7).await;
        let mut settings = s3.lake("lake", "prod");
        settings.s3.endpoint = proxy.endpoint();
        settings.max_retries = 2;
        settings.file_mib = 1;
        settings.row_group_mib = 1;
        let job = Bronze::new(s.store.clone(), Lake::open(&settings).unwrap(), shared);
        let def = definition("tracks");
        let mut failed_runs = Vec::new();
        let mut run_until_done = async |label: &str| {
            for attempt in 0..10 {
                match job
                    .run(&def, Extract::Incremental, &format!("{label}-{attempt}"))
                    .await
                {
                    Ok(_) => return,
                    Err(e) => failed_runs.push(e.to_string()),
                }
            }
            panic!("{label} never converged: {failed_runs:#?}");
        };

        land(&s.store, &ids(0..3000), 1, 1500).await;
        let mut expected = current(&s.store).await;
        run_until_done("day1").await;
        s.clock.advance(TimeDelta::days(1).to_std().unwrap());
        land(&s.store, &ids(0..1000), 2, 1500).await;
        land(&s.store, &ids(3000..4000), 1, 1500).await;
        run_until_done("day2").await;
        expected.extend(current(&s.store).await);
        expected.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        expected.dedup();

        let faults = proxy.faults();
        eprintln!("{faults:?}; runs that failed: {failed_runs:#?}");
        assert!(
            faults.slow_down > 0
                && faults.internal_error > 0
                && faults.dropped_before > 0
                && faults.dropped_after > 0,
            "every kind of fault happened: {faults:?}"
        );
        for err in &failed_runs {
            assert!(
                !err.contains("another writer"),
                "a lost answer is no conflict: {err}"
            );
            assert!(err.contains("s3://lake/prod"), "{err}");
            assert!(!err.contains(S3_SECRET_KEY), "{err}");
        }

        // Read past the proxy: every version once, nothing left over.
        let lake = Lake::open(&s3.lake("lake", "prod")).unwrap();
        let held = versions(&lake.table("bronze", "tracks")).await;
        assert_eq!(held.len(), 5000, "versions lost or doubled");
        assert_eq!(held, expected);
        vacuum_leaves_the_current_version(&lake).await;
        let arrow = python(&[
            "delta-rs-s3",
            &s3.endpoint(),
            "lake/prod/bronze/tracks",
            "ingest_date",
        ]);
        assert_eq!(
            arrow["rows"], 5000,
            "engines see each version once: {arrow}"
        );
    }
}
