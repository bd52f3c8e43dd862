//! Gold over a real crawl of the simulator: the shipped models build and
//! pass their data tests in both app modes; DuckDB, PyArrow and PySpark
//! read every table and, through the DDL `soundlake ddl` prints, give the
//! answers `soundlake query` gives; a broken relationship stops the model
//! and everything after it and names the rows.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use soundlake::bronze::{Bronze, Extract};
use soundlake::clock::SharedClock;
use soundlake::gold::{self, Gold, GoldModel};
use soundlake::lake::Lake;
use soundlake::lake::LakeSettings;
use soundlake::silver::{Scope, Silver};
use soundlake::sim::SimOptions;
use soundlake::spotify::{AppMode, SpotifySettings};

use crate::crawl::{Setup, all_at_once};
use crate::silver::{bronze_defs, silver_defs};
use crate::support::{names, shipped as root, soundlake};

/// A crawled catalog taken through bronze, silver and the shipped gold
/// models into a lake folder; the landing store stays in `setup`.
struct Catalog {
    setup: Setup,
    dir: tempfile::TempDir,
    lake: Lake,
    models: Vec<GoldModel>,
}

impl Catalog {
    async fn build(mode: AppMode, artists: usize) -> Catalog {
        let setup = Setup::start(SimOptions {
            mode,
            names: names(artists),
            ..SimOptions::default()
        })
        .await;
        let spotify = SpotifySettings {
            mode,
            ..setup.h.settings()
        };
        setup
            .crawl_to_the_end(&names(artists), spotify, all_at_once(artists))
            .await;
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&lake_settings(dir.path())).unwrap();
        let clock: SharedClock = setup.h.clock.clone();
        let (bronze_defs, silver_defs) = (bronze_defs(), silver_defs());
        let job = Bronze::new(setup.store.clone(), lake.clone(), clock.clone());
        for def in &bronze_defs {
            job.run(def, Extract::Incremental, "bronze").await.unwrap();
        }
        let job = Silver::new(setup.store.clone(), lake.clone(), clock.clone());
        for def in &silver_defs {
            let source = bronze_defs.iter().find(|b| b.name == def.source).unwrap();
            job.run(def, source, Scope::New, "silver").await.unwrap();
        }
        let models = shipped_models();
        let catalog = Catalog {
            setup,
            dir,
            lake,
            models,
        };
        catalog.build_gold("gold").await.unwrap();
        catalog
    }

    /// Every model, each after the gold models it depends on.
    async fn build_gold(&self, run_id: &str) -> soundlake::error::Result<Vec<gold::GoldReport>> {
        let clock: SharedClock = self.setup.h.clock.clone();
        let job = Gold::new(self.setup.store.clone(), self.lake.clone(), clock);
        let mut done: BTreeSet<String> = BTreeSet::new();
        let mut reports = Vec::new();
        while done.len() < self.models.len() {
            let next = self
                .models
                .iter()
                .find(|m| {
                    !done.contains(&m.name)
                        && m.depends_on()
                            .iter()
                            .all(|t| t.layer != gold::LAYER || done.contains(&t.name))
                })
                .expect("the shipped models have no cycle");
            let referenced = async { Ok(()) };
            reports.push(job.run(next, run_id, false, referenced).await?);
            done.insert(next.name.clone());
        }
        Ok(reports)
    }

    fn lake_dir(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    fn soundlake(&self) -> Command {
        let mut cmd = soundlake(root());
        cmd.env(
            "SOUNDLAKE__LAKE__URL",
            format!("file://{}", self.lake_dir().display()),
        )
        .current_dir(self.dir.path());
        cmd
    }

    /// `soundlake query --format json`'s rows.
    fn query(&self, sql: &str) -> Vec<Value> {
        let out = self
            .soundlake()
            .args(["query", "--format", "json", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// The shipped gold models, read against the shipped bronze and silver.
fn shipped_models() -> Vec<GoldModel> {
    gold::load(
        &root().join("gold"),
        &gold::known(&bronze_defs(), &silver_defs()),
    )
    .unwrap()
}

fn lake_settings(dir: &Path) -> LakeSettings {
    LakeSettings {
        url: format!("file://{}", dir.join("lake").display()),
        ..LakeSettings::default()
    }
}

fn count(catalog: &Catalog, table: &str) -> u64 {
    catalog.query(&format!("SELECT count(*) AS n FROM {table}"))[0]["n"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_mode_builds_every_model_and_leaves_extended_facts_empty() {
    let catalog = Catalog::build(AppMode::Development, 6).await;
    for t in [
        "dim_artist",
        "dim_album",
        "dim_track",
        "bridge_track_artist",
    ] {
        assert!(
            count(&catalog, &format!("gold.{t}")) > 0,
            "gold.{t} is empty"
        );
    }
    for t in [
        "fact_audio_features",
        "fact_artist_popularity",
        "fact_track_popularity",
    ] {
        assert_eq!(count(&catalog, &format!("gold.{t}")), 0, "gold.{t}");
    }
    let nulls = catalog
        .query("SELECT count(*) AS n FROM gold.dim_artist WHERE is_crawled AND popularity IS NULL");
    assert!(
        nulls[0]["n"].as_u64().unwrap() > 0,
        "Development Mode has no popularity"
    );
    // Tracks listed after an album's first 50 carry no album of their own:
    // the page that listed them ties them to it.
    assert!(
        count(&catalog, "silver.album_tracks__items") > 0,
        "the catalog has albums longer than one page"
    );
    let tied = catalog.query(
        "SELECT count(*) AS n FROM gold.dim_track t JOIN gold.dim_album a ON a.album_key = t.album_key",
    );
    assert_eq!(
        tied[0]["n"].as_u64().unwrap(),
        count(&catalog, "silver.tracks"),
        "every track is tied to its album"
    );
    assert_eq!(count(&catalog, "gold.dim_track_quarantine"), 0);
}

/// Definitions with a model whose relationship breaks: `orphans` claims an
/// artist that `dim_artist` lacks, `after_orphans` reads it.
/// A definitions folder with copies of the shipped `folders` and an empty
/// `pipelines/`.
fn shipped_definitions(folders: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for folder in folders {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        for entry in std::fs::read_dir(root().join(folder)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(
                entry.path(),
                dir.path().join(folder).join(entry.file_name()),
            )
            .unwrap();
        }
    }
    std::fs::create_dir_all(dir.path().join("pipelines")).unwrap();
    dir
}

fn broken_definitions() -> tempfile::TempDir {
    let dir = shipped_definitions(&["bronze", "silver", "gold"]);
    let gold = dir.path().join("gold");
    std::fs::write(
        gold.join("orphans.sql"),
        "SELECT artist_key, name FROM gold.dim_artist \
         UNION ALL SELECT surrogate_key('no-such-artist') AS artist_key, 'Nobody' AS name",
    )
    .unwrap();
    std::fs::write(
        gold.join("orphans.toml"),
        r#"
comment = "Artists, and one that does not exist."
grain = "one row per artist"
key = ["artist_key"]
[[columns]]
name = "artist_key"
type = "bigint"
comment = "The artist."
references = "gold.dim_artist.artist_key"
[[columns]]
name = "name"
type = "string"
comment = "Name."
not_null = true
"#,
    )
    .unwrap();
    // The same model twice more: once warning, once quarantining.
    for (name, on_failure) in [
        ("orphans_warned", "warn"),
        ("orphans_set_aside", "quarantine"),
    ] {
        std::fs::copy(gold.join("orphans.sql"), gold.join(format!("{name}.sql"))).unwrap();
        let contract = std::fs::read_to_string(gold.join("orphans.toml"))
            .unwrap()
            .replace(
                "references = \"gold.dim_artist.artist_key\"",
                &format!(
                    "references = \"gold.dim_artist.artist_key\"\n\
                     on_failure = {{ references = \"{on_failure}\" }}"
                ),
            );
        std::fs::write(gold.join(format!("{name}.toml")), contract).unwrap();
    }
    std::fs::write(
        gold.join("after_orphans.sql"),
        "SELECT count(*) AS artists FROM gold.orphans",
    )
    .unwrap();
    std::fs::write(
        gold.join("after_orphans.toml"),
        r#"
comment = "Built from orphans."
grain = "one row"
key = ["artists"]
[[columns]]
name = "artists"
type = "bigint"
comment = "How many."
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("pipelines/gold_only.toml"),
        "schedule = \"0 3 * * *\"\n[tasks.gold]\nretries = 2\n",
    )
    .unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_relationship_blocks_the_model_and_what_follows_and_names_the_rows() {
    let catalog = Catalog::build(AppMode::Extended, 2).await;
    let defs = broken_definitions();
    let landing = catalog.setup.landing_url.clone();
    let out = catalog
        .soundlake()
        .env("SOUNDLAKE__DEFINITIONS__DIR", defs.path())
        .env("SOUNDLAKE__LANDING__URL", &landing)
        .args(["run", "gold_only"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let orphan_key = soundlake::sql::surrogate_key(&[Some("no-such-artist")]);
    let report = format!("{stdout}{stderr}");
    for expected in [
        "gold.orphans",
        "artist_key references gold.dim_artist.artist_key: 1 row broke it",
        &format!("artist_key={orphan_key}"),
        "was not published",
    ] {
        assert!(
            report.contains(expected),
            "{expected:?} missing from:\n{report}"
        );
    }
    // A failed data test is not retried (retries = 2): the data must change.
    assert!(
        report.contains("gold.orphans                 failed     1 attempt"),
        "{report}"
    );
    assert!(
        report.contains("gold.after_orphans           skipped"),
        "the model after the failure must not run:\n{report}"
    );
    // The shipped models of the same run still published; orphans did not.
    assert!(
        report.contains("gold.dim_track               succeeded"),
        "{report}"
    );
    let snapshot = catalog
        .lake
        .table(gold::LAYER, "orphans")
        .snapshot()
        .await
        .unwrap();
    assert!(!snapshot.exists(), "a failing model must not publish");

    // on_failure = "warn": published with the orphan, and the run says so.
    let artists = count(&catalog, "gold.dim_artist");
    assert!(
        report.contains("gold.orphans_warned          succeeded")
            && report.contains(&format!(
                "warning: artist_key references gold.dim_artist.artist_key: 1 row broke it \
                 (artist_key={orphan_key})"
            )),
        "{report}"
    );
    assert_eq!(count(&catalog, "gold.orphans_warned"), artists + 1);
    // on_failure = "quarantine": published without it; the orphan is kept
    // aside with the test it broke.
    assert!(
        report.contains("gold.orphans_set_aside       succeeded"),
        "{report}"
    );
    assert_eq!(count(&catalog, "gold.orphans_set_aside"), artists);
    let set_aside = catalog
        .query("SELECT artist_key, name, failed_test FROM gold.orphans_set_aside_quarantine");
    assert_eq!(
        set_aside,
        vec![serde_json::json!({
            "artist_key": orphan_key,
            "name": "Nobody",
            "failed_test": "artist_key references gold.dim_artist.artist_key"
        })]
    );
    let runs = catalog
        .soundlake()
        .env("SOUNDLAKE__DEFINITIONS__DIR", defs.path())
        .env("SOUNDLAKE__LANDING__URL", &landing)
        .args(["runs", "--json"])
        .output()
        .unwrap();
    let runs: Value = serde_json::from_slice(&runs.stdout).unwrap();
    let attempt = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["task"] == "gold_only/gold.orphans_set_aside")
        .unwrap();
    assert_eq!(attempt["report"]["quarantined"], 1, "{attempt}");
}

#[test]
fn query_and_ddl_refuse_bad_input_with_the_place_and_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], lake: &str| {
        let out = soundlake(root())
            .env("SOUNDLAKE__LAKE__URL", lake)
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let lake = format!("file://{}/lake", dir.path().display());
    let (code, _, err) = run(&["query", "SELECT * FROM silver.tracks"], &lake);
    assert_eq!(code, Some(65), "{err}");
    assert!(
        err.contains("silver.tracks") && err.contains("fix:"),
        "{err}"
    );
    let (code, _, err) = run(&["query", "SELEC 1"], &lake);
    assert_eq!(code, Some(65), "{err}");
    assert!(err.contains("the query"), "{err}");
    let (code, out, err) = run(
        &["query", "--format", "csv", "SELECT 1 AS one, 'a,b' AS two"],
        &lake,
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "one,two\n1,\"a,b\"\n");
    let (code, out, _) = run(
        &["query", "--format", "json", "SELECT 1 AS one WHERE false"],
        &lake,
    );
    assert_eq!((code, out.trim()), (Some(0), "[]"));
    let (code, _, err) = run(&["ddl", "--engine", "trino"], "memory://");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("[lake] url") && err.contains("fix:"), "{err}");
    let (code, _, err) = run(&["ddl", "--engine", "oracle"], &lake);
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn ddl_names_every_gold_table_for_each_engine_without_credentials() {
    let secret = "ddl-secret-never-printed";
    let out = soundlake(root())
        .env("SOUNDLAKE__LAKE__URL", "s3://music/lakehouse")
        .env("SOUNDLAKE__LAKE__S3__ENDPOINT", "http://minio:9000")
        .env("SOUNDLAKE__LAKE__S3__ACCESS_KEY_ID", "AKIADDLTEST")
        .env("SOUNDLAKE__LAKE__S3__SECRET_ACCESS_KEY", secret)
        .args(["ddl", "--engine", "trino"])
        .output()
        .unwrap();
    let trino = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let models = shipped_models();
    for m in &models {
        assert!(
            trino.contains(&format!(
                "CALL \"delta\".system.register_table(schema_name => 'gold', table_name => '{}', \
                 table_location => 's3://music/lakehouse/gold/{}');",
                m.name, m.name
            )),
            "{}",
            m.name
        );
    }
    assert!(trino.contains("s3.endpoint=http://minio:9000"));
    assert!(!trino.contains(secret) && !trino.contains("AKIADDLTEST"));
    for engine in ["dremio", "spark", "duckdb"] {
        let out = soundlake(root())
            .env("SOUNDLAKE__LAKE__URL", "s3://music/lakehouse")
            .env("SOUNDLAKE__LAKE__S3__SECRET_ACCESS_KEY", secret)
            .args(["ddl", "--engine", engine])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success());
        assert!(!text.contains(secret), "{engine} printed the secret");
        for m in &models {
            assert!(text.contains(&m.name), "{engine} lacks {}", m.name);
        }
    }
}

#[test]
fn the_readme_documents_every_gold_table_and_column() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for m in shipped_models() {
        let heading = format!("#### gold.{}\n", m.name);
        let section = readme
            .split_once(&heading)
            .unwrap_or_else(|| panic!("README has no section {heading:?}"))
            .1
            .split("\n#### ")
            .next()
            .unwrap();
        assert!(
            section.contains(&m.grain),
            "README: grain of gold.{}",
            m.name
        );
        for c in &m.columns {
            assert!(
                section.contains(&format!("| `{}` |", c.name)) && section.contains(&c.comment),
                "README: gold.{}.{} or its comment",
                m.name,
                c.name
            );
        }
    }
}

/// Every kind of data test, each on a model whose rows break it: each
/// fails, names itself, and keeps its model unpublished.
#[test]
fn every_kind_of_data_test_fails_on_rows_that_break_it_and_blocks_the_publish() {
    let dir = shipped_definitions(&["bronze", "silver"]);
    let gold = dir.path().join("gold");
    std::fs::create_dir_all(&gold).unwrap();
    std::fs::write(
        dir.path().join("pipelines/gold_only.toml"),
        "schedule = \"0 3 * * *\"\n[tasks.gold]\n",
    )
    .unwrap();
    let column = |name: &str, kind: &str, extra: &str| {
        format!(
            "[[columns]]\nname = \"{name}\"\ntype = \"{kind}\"\ncomment = \"{name}.\"\n{extra}\n"
        )
    };
    let head = |extra: &str| {
        format!("comment = \"A test.\"\ngrain = \"one row per id\"\nkey = [\"id\"]\n{extra}\n")
    };
    let stale = (chrono::Utc::now() - chrono::TimeDelta::hours(100)).format("%Y-%m-%dT%H:%M:%SZ");
    // (model, SELECT, contract, what the report must say)
    let cases: Vec<(&str, String, String, &str)> = vec![
        (
            "target",
            "SELECT 1 AS id".into(),
            head("") + &column("id", "bigint", ""),
            "",
        ),
        (
            "t_key",
            "SELECT id FROM (VALUES (1), (1)) AS v(id)".into(),
            head("") + &column("id", "bigint", ""),
            "key (id) is unique: 1 row broke it",
        ),
        (
            "t_unique",
            "SELECT id, name FROM (VALUES (1, 'a'), (2, 'a')) AS v(id, name)".into(),
            head("") + &column("id", "bigint", "") + &column("name", "string", "unique = true"),
            "name is unique: 1 row broke it",
        ),
        (
            "t_not_null",
            "SELECT id, CAST(NULL AS VARCHAR) AS name FROM (VALUES (1)) AS v(id)".into(),
            head("") + &column("id", "bigint", "") + &column("name", "string", "not_null = true"),
            "a column declared not null (or a key column) holds NULL",
        ),
        (
            "t_not_null_warned_elsewhere",
            "SELECT id, CAST(NULL AS VARCHAR) AS name FROM (VALUES (1), (2)) AS v(id)".into(),
            head("min_rows = 3")
                + &column("id", "bigint", "")
                + &column(
                    "name",
                    "string",
                    "not_null = true\non_failure = { not_null = \"warn\" }",
                ),
            "at least 3 rows: 1 row broke it",
        ),
        (
            "t_accepted",
            "SELECT id, kind FROM (VALUES (1, 'a'), (2, 'c')) AS v(id, kind)".into(),
            head("")
                + &column("id", "bigint", "")
                + &column("kind", "string", "accepted_values = [\"a\", \"b\"]"),
            "kind in ('a', 'b'): 1 row broke it",
        ),
        (
            "t_references",
            "SELECT id FROM (VALUES (1), (2)) AS v(id)".into(),
            head("") + &column("id", "bigint", "references = \"gold.target.id\""),
            "id references gold.target.id: 1 row broke it",
        ),
        (
            "t_max_rows",
            "SELECT id FROM (VALUES (1), (2)) AS v(id)".into(),
            head("max_rows = 1") + &column("id", "bigint", ""),
            "at most 1 rows: 1 row broke it",
        ),
        (
            "t_freshness",
            format!("SELECT 1 AS id, TIMESTAMP '{stale}' AS seen_at"),
            head("freshness = { column = \"seen_at\", max_age_hours = 48 }")
                + &column("id", "bigint", "")
                + &column("seen_at", "timestamp", ""),
            "seen_at within 48 hours: 1 row broke it",
        ),
    ];
    for (name, sql, contract, _) in &cases {
        std::fs::write(gold.join(format!("{name}.sql")), sql).unwrap();
        std::fs::write(gold.join(format!("{name}.toml")), contract).unwrap();
    }
    let work = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        soundlake(dir.path())
            .current_dir(work.path())
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["run", "gold_only"]);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{report}");
    for (name, _, _, says) in &cases {
        let line = report
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("gold.{name} ")))
            .unwrap_or_else(|| panic!("no line for gold.{name}: {report}"));
        let published = run(&["query", &format!("SELECT count(*) AS n FROM gold.{name}")]);
        if says.is_empty() {
            assert!(line.contains("succeeded"), "{line}");
            assert!(published.status.success());
            continue;
        }
        assert!(line.contains("failed"), "gold.{name}: {line}");
        assert!(report.contains(says), "gold.{name}: {says:?} in {report}");
        assert!(
            !published.status.success(),
            "gold.{name} must not be published: {}",
            String::from_utf8_lossy(&published.stdout)
        );
    }
}

/// The tests that need the real servers or Python readers `tests/run.sh`
/// installs.
#[cfg(feature = "servers")]
mod with_servers {
    use super::*;
    use std::collections::BTreeMap;

    /// Analytical questions every engine must answer alike, in SQL that
    /// DataFusion, DuckDB and Spark all take.
    const QUESTIONS: [&str; 5] = [
        "SELECT a.name, count(*) AS tracks FROM gold.bridge_track_artist b \
     JOIN gold.dim_artist a ON a.artist_key = b.artist_key \
     GROUP BY a.name ORDER BY tracks DESC, a.name LIMIT 5",
        "SELECT al.release_year, al.album_type, count(*) AS tracks, sum(t.duration_ms) AS ms \
     FROM gold.dim_track t JOIN gold.dim_album al ON al.album_key = t.album_key \
     GROUP BY al.release_year, al.album_type ORDER BY al.release_year, al.album_type",
        "SELECT al.album_type, round(avg(f.energy), 6) AS energy, max(f.tempo) AS tempo, \
     sum(CASE WHEN f.is_major THEN 1 ELSE 0 END) AS major \
     FROM gold.fact_audio_features f JOIN gold.dim_track t ON t.track_key = f.track_key \
     JOIN gold.dim_album al ON al.album_key = t.album_key \
     GROUP BY al.album_type ORDER BY al.album_type",
        "SELECT count(DISTINCT artist_key) AS artists, min(artist_key) AS low, \
     max(artist_key) AS high, CAST(max(observed_on) AS STRING) AS last_day \
     FROM gold.fact_artist_popularity",
        "SELECT g.genre, count(*) AS artists FROM gold.bridge_artist_genre b \
     JOIN gold.dim_genre g ON g.genre_key = b.genre_key \
     GROUP BY g.genre ORDER BY artists DESC, g.genre LIMIT 5",
    ];

    /// Two answers agree: same rows in the same order, numbers within a
    /// rounding error (engines sum floating point in different orders).
    fn same_answer(ours: &[Value], theirs: &[Value]) -> bool {
        fn same(a: &Value, b: &Value) -> bool {
            match (a, b) {
                (Value::Number(x), Value::Number(y)) => {
                    let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                    (x - y).abs() <= 1e-6 * x.abs().max(1.0)
                }
                _ => a == b,
            }
        }
        ours.len() == theirs.len()
            && ours.iter().zip(theirs).all(|(row, other)| {
                let row: Vec<&Value> = row.as_object().unwrap().values().collect();
                let other = other.as_array().unwrap();
                row.len() == other.len() && row.iter().zip(other).all(|(a, b)| same(a, b))
            })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delta_rs_duckdb_and_spark_read_gold_by_path_and_through_the_ddl_and_agree() {
        let catalog = Catalog::build(AppMode::Extended, 6).await;
        let tables: Vec<String> = catalog.models.iter().map(|m| m.name.clone()).collect();
        let counts: BTreeMap<String, u64> = tables
            .iter()
            .map(|t| (t.clone(), count(&catalog, &format!("gold.{t}"))))
            .collect();
        for t in [
            "dim_artist",
            "dim_album",
            "dim_track",
            "bridge_track_artist",
            "fact_audio_features",
            "fact_artist_popularity",
        ] {
            assert!(counts[t] > 0, "gold.{t} is empty: {counts:?}");
        }
        assert_eq!(
            counts["dim_track"],
            count(&catalog, "silver.tracks"),
            "one dim_track row per silver track"
        );
        let ddl = |engine: &str| {
            let out = catalog
                .soundlake()
                .args(["ddl", "--engine", engine])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let ddl_dir = catalog.dir.path();
        std::fs::write(ddl_dir.join("spark.sql"), ddl("spark")).unwrap();
        std::fs::write(
            ddl_dir.join("questions.json"),
            serde_json::to_string(&QUESTIONS).unwrap(),
        )
        .unwrap();

        let mut args = vec![catalog.lake_dir(), ddl_dir.to_path_buf()];
        args.extend(tables.iter().map(PathBuf::from));
        let seen = crate::servers::python("tests/readers/read_gold.py", args);
        let seen: Value = serde_json::from_str(&seen).unwrap();
        for t in &tables {
            for reader in ["delta_rs", "duckdb", "pyspark", "spark_ddl"] {
                assert_eq!(
                    seen["counts"][reader][t].as_u64(),
                    Some(counts[t]),
                    "{reader} counts gold.{t} differently"
                );
            }
            // No unsigned integers and no nanosecond timestamps reach engines.
            for kind in seen["pyarrow_types"][t].as_object().unwrap().values() {
                let kind = kind.as_str().unwrap();
                assert!(
                    !kind.starts_with("uint") && !kind.contains("[ns"),
                    "gold.{t} has a column of type {kind}"
                );
            }
        }
        for (i, question) in QUESTIONS.iter().enumerate() {
            let ours = catalog.query(question);
            assert!(!ours.is_empty(), "no answer to {question}");
            for engine in ["duckdb", "spark"] {
                let theirs = seen["answers"][engine][i].as_array().unwrap();
                assert!(
                    same_answer(&ours, theirs),
                    "{engine} answers {question}\nwith {theirs:?}\nsoundlake with {ours:?}"
                );
            }
        }
        // Column comments travel in the Delta log, where engines find them.
        assert_eq!(
            seen["spark_comments"]["dim_track"]["track_id"],
            "Spotify track id."
        );

        // A rebuild on the same data gives the same surrogate keys.
        let before =
            catalog.query("SELECT track_key, album_key FROM gold.dim_track ORDER BY track_key");
        catalog.build_gold("gold-again").await.unwrap();
        let after =
            catalog.query("SELECT track_key, album_key FROM gold.dim_track ORDER BY track_key");
        assert_eq!(before, after);
    }
}

#[test]
fn validate_refuses_a_model_that_cannot_run_on_trino_with_the_file_and_the_reason() {
    let dir = shipped_definitions(&["bronze", "silver", "gold"]);
    let gold = dir.path().join("gold");
    std::fs::write(
        gold.join("charts.sql"),
        "SELECT arrow_cast(popularity, 'Int8') AS popularity, artist_key FROM gold.dim_artist",
    )
    .unwrap();
    std::fs::write(
        gold.join("charts.toml"),
        r#"
comment = "Artists by popularity."
grain = "one row per artist"
key = ["artist_key"]
engine = "trino"
[[columns]]
name = "popularity"
type = "int"
comment = "Popularity."
[[columns]]
name = "artist_key"
type = "bigint"
comment = "The artist."
"#,
    )
    .unwrap();
    let validate = |env: &[(&str, &str)]| {
        let out = soundlake(dir.path())
            .envs(env.iter().copied())
            .arg("validate")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // The shipped models run on DataFusion; the one on Trino has no Trino.
    let (code, err) = validate(&[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("charts run on Trino") && err.contains("[trino] url is empty"),
        "{err}"
    );
    let (code, err) = validate(&[("SOUNDLAKE__TRINO__URL", "http://127.0.0.1:1")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "charts.sql: cannot run on Trino: the function arrow_cast has no known \
             Trino equivalent"
        ),
        "{err}"
    );
    assert!(err.contains("fix:"), "{err}");
    // A model kept at home by its own key validates whatever [gold] says,
    // and every shipped model translates for Trino.
    std::fs::write(
        gold.join("charts.toml"),
        std::fs::read_to_string(gold.join("charts.toml"))
            .unwrap()
            .replace("engine = \"trino\"", "engine = \"datafusion\""),
    )
    .unwrap();
    let (code, err) = validate(&[
        ("SOUNDLAKE__GOLD__ENGINE", "trino"),
        ("SOUNDLAKE__TRINO__URL", "http://127.0.0.1:1"),
    ]);
    assert_eq!(code, Some(0), "{err}");
    // An engine soundlake does not know is refused by name.
    let (code, err) = validate(&[("SOUNDLAKE__GOLD__ENGINE", "nosuch")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("engine"), "{err}");
}
