//! A real Trino reads the gold tables `soundlake register` registers with
//! it, over the local file system and over S3: every table's row count and
//! a checksum of all its columns equal what `soundlake query` answers, and
//! a new version is read with no further statement.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use soundlake::trino::{Answer, Trino, TrinoError, TrinoSettings};

use crate::gold_inputs::{RECORDED, soundlake};
use crate::servers::{S3_ACCESS_KEY, S3_SECRET_KEY, S3Server, TrinoServer};
use crate::support::succeed;

/// A table as its row count and a checksum of every value of every row,
/// each value spelled one way whichever engine read it; the sorted rows
/// themselves, to show where two differ.
#[derive(Debug)]
struct Digest {
    rows: usize,
    checksum: String,
    sorted: Vec<String>,
}

impl PartialEq for Digest {
    fn eq(&self, other: &Digest) -> bool {
        (self.rows, &self.checksum) == (other.rows, &other.checksum)
    }
}

impl Digest {
    /// The first row where two digests differ, for a failure message.
    fn first_difference(&self, other: &Digest) -> String {
        let pairs = self.sorted.iter().zip(&other.sorted);
        match pairs.into_iter().find(|(a, b)| a != b) {
            Some((a, b)) => format!("first difference:\n  {a}\n  {b}"),
            None => format!("{} rows against {}", self.rows, other.rows),
        }
    }
}

/// One value of a column of Trino type `kind`, spelled the same from
/// Trino's JSON and from `soundlake query --format json`. Trino reads Delta
/// timestamps rounded to the millisecond.
fn canonical(value: &Value, kind: &str) -> String {
    match value {
        Value::Null => "null".into(),
        Value::String(text) if kind.starts_with("timestamp") => {
            let iso = text.replace(" UTC", "Z").replacen(' ', "T", 1);
            let at = chrono::DateTime::parse_from_rfc3339(&iso)
                .unwrap_or_else(|e| panic!("{text:?} is not a timestamp: {e}"));
            (at.timestamp_micros() + 500).div_euclid(1000).to_string()
        }
        Value::Number(n) if kind == "double" || kind == "real" => {
            format!("{:?}", n.as_f64().unwrap())
        }
        other => other.to_string(),
    }
}

fn digest(mut rows: Vec<String>) -> Digest {
    rows.sort();
    let mut hash = Sha256::new();
    for row in &rows {
        hash.update(row.as_bytes());
        hash.update(b"\n");
    }
    Digest {
        rows: rows.len(),
        checksum: format!("{:x}", hash.finalize()),
        sorted: rows,
    }
}

/// A row's values in the order of Trino's columns, unit-separated.
fn row_text(values: impl Iterator<Item = String>) -> String {
    values.collect::<Vec<_>>().join("\u{1f}")
}

/// `soundlake` in `dir` with `env`, on the shipped definitions.
fn cli(dir: &Path, env: &[(&str, String)], args: &[&str]) -> String {
    let mut cmd = soundlake(dir);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    succeed(cmd.args(args))
}

/// Every gold table soundlake has, as Trino's answer and as soundlake's.
async fn both_digests(
    dir: &Path,
    env: &[(&str, String)],
    trino: &Trino,
) -> BTreeMap<String, (Digest, Digest)> {
    let query = |sql: &str| -> Vec<serde_json::Map<String, Value>> {
        serde_json::from_str(&cli(dir, env, &["query", "--format", "json", sql])).unwrap()
    };
    let tables =
        query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'gold'");
    let mut digests = BTreeMap::new();
    for table in tables {
        let name = table["table_name"].as_str().unwrap().to_string();
        let Answer { columns, rows } = trino
            .query(&format!("SELECT * FROM delta.gold.{name}"))
            .await
            .unwrap_or_else(|e| panic!("Trino cannot read gold.{name}: {e}"));
        let theirs = digest(
            rows.iter()
                .map(|row| {
                    row_text(
                        row.iter()
                            .zip(&columns)
                            .map(|(value, column)| canonical(value, &column.kind)),
                    )
                })
                .collect(),
        );
        let ours = digest(
            query(&format!("SELECT * FROM gold.{name}"))
                .iter()
                .map(|row| {
                    row_text(columns.iter().map(|column| {
                        let value = row.get(&column.name).unwrap_or_else(|| {
                            panic!("soundlake's gold.{name} has no column {}", column.name)
                        });
                        canonical(value, &column.kind)
                    }))
                })
                .collect(),
        );
        digests.insert(name, (theirs, ours));
    }
    digests
}

/// Trino's answers equal soundlake's for every gold table; how many rows
/// `gold.dim_track` has.
async fn trino_agrees(dir: &Path, env: &[(&str, String)], trino: &Trino) -> usize {
    let digests = both_digests(dir, env, trino).await;
    assert!(digests.len() >= 12, "gold tables: {:?}", digests.keys());
    for (table, (theirs, ours)) in &digests {
        assert!(
            theirs == ours,
            "Trino reads gold.{table} differently ({})",
            theirs.first_difference(ours)
        );
    }
    digests["dim_track"].1.rows
}

fn import(dir: &Path, env: &[(&str, String)], recorded: &[(&str, &str)]) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spotify");
    for (file, collection) in recorded {
        let path = fixtures.join(file);
        cli(dir, env, &["import", collection, path.to_str().unwrap()]);
    }
    let run = cli(
        dir,
        env,
        &["run", "spotify_catalog", "--select", "bronze.*+"],
    );
    assert!(run.contains(": succeeded ("), "{run}");
}

/// What `soundlake register` says it did with gold table `table`.
fn outcome<'a>(printed: &'a str, table: &str) -> &'a str {
    let name = format!("delta.gold.{table} ");
    printed
        .lines()
        .find_map(|line| line.strip_prefix(&name))
        .unwrap_or_else(|| panic!("no line for {table}:\n{printed}"))
        .trim()
}

fn client(server: &TrinoServer) -> Trino {
    Trino::new(&TrinoSettings {
        url: server.url(),
        ..TrinoSettings::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trino_reads_every_registered_gold_table_as_soundlake_does_at_each_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let env = [(
        "SOUNDLAKE__LAKE__URL",
        format!("file://{}", dir.path().join("lake").display()),
    )];
    // Artists, albums and the first tracks first; the rest later.
    let (first, later) = RECORDED.split_at(14);
    import(dir.path(), &env, first);
    let server = TrinoServer::local();
    let url = server.url();
    let register = || cli(dir.path(), &env, &["register", "--url", &url]);
    let registered = register();
    assert_eq!(outcome(&registered, "dim_track"), "registered");
    assert_eq!(outcome(&registered, "dim_track_quarantine"), "registered");
    // Listening marts are not built by the catalog pipeline.
    assert_eq!(
        outcome(&registered, "mart_sessions"),
        "skipped: no version yet (run the gold layer first)"
    );
    let again = register();
    assert_eq!(outcome(&again, "dim_track"), "already registered");
    assert!(
        again
            .lines()
            .filter_map(|line| line.split_once(' '))
            .all(|(_, done)| done.trim() != "registered"),
        "a second run registers nothing: {again}"
    );

    let trino = client(&server);
    let tracks = trino_agrees(dir.path(), &env, &trino).await;
    assert!(tracks > 0);

    // New versions of every table, with no statement to Trino.
    import(dir.path(), &env, later);
    let more = trino_agrees(dir.path(), &env, &trino).await;
    assert!(
        more > tracks,
        "{more} tracks after the second import, {tracks} before"
    );

    // Trino's own errors come back named.
    let missing = trino
        .query("SELECT * FROM delta.gold.no_such_table")
        .await
        .unwrap_err();
    let named = missing
        .source_error::<TrinoError>()
        .and_then(TrinoError::error_name);
    assert_eq!(named, Some("TABLE_NOT_FOUND"), "{missing}");
    assert!(missing.is_permanent());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trino_reads_the_gold_tables_of_a_lake_on_s3() {
    let s3 = S3Server::start(&["lake"]);
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("SOUNDLAKE__LAKE__URL", "s3://lake/soundlake".to_string()),
        ("SOUNDLAKE__LAKE__S3__ENDPOINT", s3.endpoint()),
        ("SOUNDLAKE__LAKE__S3__REGION", "us-east-1".to_string()),
        (
            "SOUNDLAKE__LAKE__S3__ACCESS_KEY_ID",
            S3_ACCESS_KEY.to_string(),
        ),
        (
            "SOUNDLAKE__LAKE__S3__SECRET_ACCESS_KEY",
            S3_SECRET_KEY.to_string(),
        ),
        ("SOUNDLAKE__LAKE__S3__PATH_STYLE", "true".to_string()),
    ];
    import(dir.path(), &env, &RECORDED);
    let server = TrinoServer::s3(&s3, "lake");
    let registered = cli(
        dir.path(),
        &env,
        &["register", "--url", &server.url(), "--json"],
    );
    assert!(!registered.contains(S3_SECRET_KEY));
    let registered: Vec<Value> = serde_json::from_str(&registered).unwrap();
    let dim_track = registered
        .iter()
        .find(|r| r["table"] == "delta.gold.dim_track")
        .unwrap();
    assert_eq!(dim_track["location"], "s3://lake/soundlake/gold/dim_track");
    assert_eq!(dim_track["outcome"], "registered");
    let tracks = trino_agrees(dir.path(), &env, &client(&server)).await;
    assert!(tracks > 20, "{tracks} tracks");
}

/// `'text'` as a SQL string literal, NULL for none.
fn literal(text: Option<&str>) -> String {
    text.map_or("CAST(NULL AS VARCHAR)".into(), |t| {
        format!("'{}'", t.replace('\'', "''"))
    })
}

/// The one column of `sql`'s rows, ordered by the query, as numbers or
/// null: from Trino, and from `soundlake query`.
async fn both_columns(dir: &Path, trino: &Trino, sql: &str) -> (Vec<Value>, Vec<Value>) {
    (trino_column(trino, sql).await, our_column(dir, sql))
}

/// The one column of `sql`'s rows, as Trino answers them.
async fn trino_column(trino: &Trino, sql: &str) -> Vec<Value> {
    trino
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("Trino: {e}"))
        .rows
        .into_iter()
        .map(|mut row| row.remove(0))
        .collect()
}

/// The column `v` of `sql`'s rows, as `soundlake query` answers them.
fn our_column(dir: &Path, sql: &str) -> Vec<Value> {
    let env = [(
        "SOUNDLAKE__LAKE__URL",
        format!("file://{}", dir.join("lake").display()),
    )];
    let ours: Vec<serde_json::Map<String, Value>> =
        serde_json::from_str(&cli(dir, &env, &["query", "--format", "json", sql])).unwrap();
    ours.into_iter().map(|row| row["v"].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trino_with_soundlakes_functions_computes_the_keys_and_json_values_soundlake_does() {
    let dir = tempfile::tempdir().unwrap();
    let server = TrinoServer::local();
    let trino = client(&server);

    // Parts of every length XXH3 treats apart (up to 16, 128 and 240 bytes,
    // and longer), empty, NULL, quotes and characters beyond ASCII.
    let long = |n: usize| "é".repeat(n / 2);
    let texts: Vec<Option<String>> = [
        Some("4Z8W4fKeB5YxbusRsdQVPb".to_string()),
        Some(String::new()),
        None,
        Some("it's".into()),
        Some("a".into()),
        Some(long(40)),
        Some(long(200)),
        Some(long(1000)),
        Some("日本語 🎵".into()),
    ]
    .into_iter()
    .collect();
    let mut rows = Vec::new();
    for (i, a) in texts.iter().enumerate() {
        let b = &texts[(i + 1) % texts.len()];
        let c = &texts[(i + 4) % texts.len()];
        rows.push(format!(
            "({i}, {}, {}, {})",
            literal(a.as_deref()),
            literal(b.as_deref()),
            literal(c.as_deref())
        ));
    }
    for parts in ["a", "a, b", "a, b, c", "c, b, a, b, c, a"] {
        let sql = format!(
            "SELECT surrogate_key({parts}) AS v FROM (VALUES {}) AS t(i, a, b, c) ORDER BY i",
            rows.join(", ")
        );
        let (theirs, ours) = both_columns(dir.path(), &trino, &sql).await;
        assert_eq!(theirs.len(), texts.len());
        assert_eq!(theirs, ours, "surrogate_key({parts})");
    }
    let (fixed, _) = both_columns(
        dir.path(),
        &trino,
        "SELECT surrogate_key('4Z8W4fKeB5YxbusRsdQVPb') AS v",
    )
    .await;
    assert_eq!(fixed, [serde_json::json!(6_406_336_228_339_052_549_i64)]);

    // Documents as bronze keeps them, and hostile ones.
    let docs = [
        (
            r#"{"popularity": 7, "followers": {"total": 12}}"#,
            "popularity",
        ),
        (
            r#"{"popularity": 7, "followers": {"total": 12}}"#,
            "followers.total",
        ),
        (r#"{"followers": {"total": 12.5}}"#, "followers.total"),
        (r#"{"n": 1.0}"#, "n"),
        (r#"{"n": 1e3}"#, "n"),
        (r#"{"n": -9223372036854775808}"#, "n"),
        (r#"{"n": 9223372036854775808}"#, "n"),
        (r#"{"n": "12"}"#, "n"),
        (r#"{"n": [1]}"#, "n"),
        (r#"{"n": null}"#, "n"),
        (r#"{"n": 1, "n": 2}"#, "n"),
        (r#"{"pop\u0075larity": 9}"#, "popularity"),
        (r#"{"a": {"b": {"c": 3}}}"#, "a.b.c"),
        (r#"{"a": {"b": 3}}"#, "a.b.c"),
        (r#"{"a": 1} trailing"#, "a"),
        ("not json", "a"),
        ("", "a"),
        (r#"  {"a": 5}  "#, "a"),
        (r#"[{"a": 1}]"#, "a"),
    ];
    let rows: Vec<String> = docs
        .iter()
        .enumerate()
        .map(|(i, (doc, path))| format!("({i}, {}, {})", literal(Some(doc)), literal(Some(path))))
        .collect();
    let sql = format!(
        "SELECT json_bigint(doc, path) AS v FROM (VALUES {}) AS t(i, doc, path) ORDER BY i",
        rows.join(", ")
    );
    let (theirs, ours) = both_columns(dir.path(), &trino, &sql).await;
    for (i, (doc, path)) in docs.iter().enumerate() {
        assert_eq!(theirs[i], ours[i], "json_bigint({doc:?}, {path:?})");
    }
    assert_eq!(
        ours[1],
        serde_json::json!(12),
        "the test reads real values too"
    );

    // soundlake_text, which a model's CAST(… AS VARCHAR) becomes on Trino,
    // spells values as soundlake's cast does: timestamps at each precision
    // included, which a key of mart_sessions is made of.
    let utc =
        |at: &str| format!("arrow_cast(TIMESTAMP '{at}', 'Timestamp(Microsecond, Some(\"UTC\"))')");
    for (theirs, ours) in [
        (
            "TIMESTAMP '2026-11-20 10:00:00 UTC'",
            utc("2026-11-20T10:00:00"),
        ),
        (
            "TIMESTAMP '2026-11-20 10:00:00.120 UTC'",
            utc("2026-11-20T10:00:00.120"),
        ),
        (
            "TIMESTAMP '1969-12-31 23:59:59.999 UTC'",
            utc("1969-12-31T23:59:59.999"),
        ),
        (
            "TIMESTAMP '2026-11-20 10:00:00.123456 UTC'",
            utc("2026-11-20T10:00:00.123456"),
        ),
        ("DATE '2026-01-02'", "DATE '2026-01-02'".into()),
        ("BIGINT '-42'", "CAST(-42 AS BIGINT)".into()),
        ("7", "CAST(7 AS INT)".into()),
        ("false", "false".into()),
        ("'it''s é'", "'it''s é'".into()),
    ] {
        let trino_text =
            trino_column(&trino, &format!("SELECT soundlake_text({theirs}) AS v")).await;
        let our_text = our_column(dir.path(), &format!("SELECT CAST({ours} AS VARCHAR) AS v"));
        assert_eq!(trino_text, our_text, "soundlake_text({theirs})");
    }
}
