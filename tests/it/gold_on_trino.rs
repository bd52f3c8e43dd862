//! Gold models run on the real Trino of the server suite (`[gold] engine =
//! "trino"`): every shipped model, over the same silver tables, gives what
//! soundlake's own engine gives, table by table; a failing data test on
//! Trino leaves the published version as it was; and nothing staged stays
//! behind in the lake or in Trino's catalog.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use soundlake::trino::{Trino, TrinoSettings};

use crate::gold_inputs::RECORDED;
use crate::servers::TrinoServer;
use crate::support::{copy_of_shipped, soundlake, succeed};

/// A lake with every input the shipped models read: the recorded catalog
/// and a fortnight of generated listening, through silver and gold.
struct Lake {
    dir: tempfile::TempDir,
    definitions: std::path::PathBuf,
    env: Vec<(&'static str, String)>,
}

impl Lake {
    fn command(&self, extra: &[(&str, &str)], args: &[&str]) -> std::process::Command {
        let mut cmd = soundlake(&self.definitions);
        cmd.current_dir(self.dir.path())
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(extra.iter().copied())
            .args(args);
        cmd
    }

    fn run(&self, extra: &[(&str, &str)], args: &[&str]) -> std::process::Output {
        self.command(extra, args).output().unwrap()
    }

    fn ok(&self, extra: &[(&str, &str)], args: &[&str]) -> String {
        succeed(&mut self.command(extra, args))
    }

    fn lake(&self) -> std::path::PathBuf {
        self.dir.path().join("lake")
    }

    /// Every gold table as its rows, each row's values spelled one way and
    /// sorted. Trino's Delta writer keeps timestamps to the millisecond, so
    /// timestamps are compared at milliseconds (rounded, as Trino does).
    fn gold(&self) -> BTreeMap<String, Vec<String>> {
        let query = |sql: &str| -> Vec<serde_json::Map<String, Value>> {
            serde_json::from_str(&self.ok(&[], &["query", "--format", "json", sql])).unwrap()
        };
        let mut tables = BTreeMap::new();
        for row in
            query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'gold'")
        {
            let name = row["table_name"].as_str().unwrap().to_string();
            let mut rows: Vec<String> = query(&format!("SELECT * FROM gold.{name}"))
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|(column, value)| format!("{column}={}", at_millis(value)))
                        .collect::<Vec<_>>()
                        .join("\u{1f}")
                })
                .collect();
            rows.sort();
            tables.insert(name, rows);
        }
        tables
    }
}

/// A value as text; a timestamp rounded to the millisecond.
fn at_millis(value: &Value) -> String {
    if let Some(text) = value.as_str()
        && let Ok(at) = chrono::DateTime::parse_from_rfc3339(text)
    {
        return format!("@{}", (at.timestamp_micros() + 500).div_euclid(1000));
    }
    value.to_string()
}

fn built_lake(definitions: &Path) -> Lake {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![(
        "SOUNDLAKE__LAKE__URL",
        format!("file://{}", dir.path().join("lake").display()),
    )];
    let lake = Lake {
        dir,
        definitions: definitions.to_path_buf(),
        env,
    };
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spotify");
    for (file, collection) in RECORDED {
        let path = fixtures.join(file);
        lake.ok(&[], &["import", collection, path.to_str().unwrap()]);
    }
    lake.ok(&[], &["run", "spotify_catalog", "--select", "bronze.*+"]);
    lake.ok(
        &[],
        &[
            "generate", "events", "--users", "40", "--events", "3000", "--days", "14",
        ],
    );
    lake.ok(&[], &["run", "listening_events"]);
    lake
}

/// What makes soundlake run gold on `server`.
fn on_trino(server: &TrinoServer) -> [(&'static str, String); 2] {
    [
        ("SOUNDLAKE__GOLD__ENGINE", "trino".to_string()),
        ("SOUNDLAKE__TRINO__URL", server.url()),
    ]
}

fn as_refs<'e>(env: &'e [(&'static str, String)]) -> Vec<(&'e str, &'e str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The staged tables Trino still has in its gold schema.
async fn staged_in_trino(server: &TrinoServer) -> Vec<String> {
    let trino = Trino::new(&TrinoSettings {
        url: server.url(),
        ..TrinoSettings::default()
    })
    .unwrap();
    trino
        .query("SELECT table_name FROM delta.information_schema.tables WHERE table_schema = 'gold'")
        .await
        .unwrap()
        .rows
        .iter()
        .filter_map(|row| row[0].as_str().map(str::to_string))
        .filter(|name| name.contains("__staged_"))
        .collect()
}

/// The files of a table's newest version, from its Delta log.
fn published_files(table: &Path) -> Vec<String> {
    let mut entries: Vec<_> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    let mut files = std::collections::BTreeSet::new();
    for entry in entries {
        for line in std::fs::read_to_string(entry).unwrap().lines() {
            let action: Value = serde_json::from_str(line).unwrap();
            if let Some(path) = action["add"]["path"].as_str() {
                files.insert(path.to_string());
            }
            if let Some(path) = action["remove"]["path"].as_str() {
                files.remove(path);
            }
        }
    }
    files.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_model_on_trino_equals_soundlakes_own_table_by_table() {
    let lake = built_lake(crate::support::shipped());
    let ours = lake.gold();
    assert!(ours.len() >= 22, "gold tables: {:?}", ours.keys());
    let with_rows = ours.values().filter(|rows| !rows.is_empty()).count();
    assert!(
        with_rows >= 22,
        "the models have rows to compare: {with_rows}"
    );
    // Rows set aside exercise quarantine on Trino too.
    let set_aside: Vec<&String> = ours
        .iter()
        .filter(|(table, rows)| table.ends_with("_quarantine") && !rows.is_empty())
        .map(|(table, _)| table)
        .collect();
    assert!(!set_aside.is_empty(), "no model quarantined a row");

    let server = TrinoServer::local();
    let env = on_trino(&server);
    // Trino first knows the tables at another lake's folders (the lake
    // moved): the runs below register them anew, many models side by side.
    let elsewhere = lake.dir.path().join("elsewhere");
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(lake.lake())
        .arg(&elsewhere)
        .status()
        .unwrap();
    assert!(copied.success());
    let elsewhere_url = format!("file://{}", elsewhere.display());
    let mut moved = as_refs(&env);
    moved.push(("SOUNDLAKE__LAKE__URL", &elsewhere_url));
    lake.ok(&moved, &["run", "spotify_catalog", "--select", "gold.*"]);
    for pipeline in ["spotify_catalog", "listening_events"] {
        let run = lake.ok(&as_refs(&env), &["run", pipeline, "--select", "gold.*"]);
        assert!(run.contains(": succeeded ("), "{run}");
    }
    let theirs = lake.gold();
    assert_eq!(
        theirs.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>()
    );
    for (table, rows) in &ours {
        let trino_rows = &theirs[table];
        let first_difference = rows
            .iter()
            .zip(trino_rows)
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("\n  soundlake: {a}\n  Trino:     {b}"))
            .unwrap_or_default();
        assert!(
            rows == trino_rows,
            "gold.{table}: {} rows from soundlake, {} from Trino{first_difference}",
            rows.len(),
            trino_rows.len()
        );
    }

    // Trino wrote every table's newest version, in a staged folder of the
    // table's own (soundlake adds an empty file where Trino wrote no rows,
    // so readers see the columns); the staged logs and catalog entries
    // are gone.
    for (table, rows) in &ours {
        let folder = lake.lake().join("gold").join(table);
        let files = published_files(&folder);
        assert!(!files.is_empty(), "gold.{table} has files");
        for file in &files {
            if !file.starts_with("staged-") {
                assert!(rows.is_empty(), "gold.{table}: {file}");
                continue;
            }
            let staged = folder.join(file.split('/').next().unwrap());
            assert!(
                !staged.join("_delta_log").exists(),
                "{} keeps its log",
                staged.display()
            );
        }
    }
    assert_eq!(staged_in_trino(&server).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_data_test_on_trino_leaves_the_published_version_as_it_was() {
    let definitions = copy_of_shipped(&["bronze", "silver", "gold", "pipelines"]);
    let lake = built_lake(definitions.path());
    let before = lake.gold()["dim_genre"].clone();
    assert!(before.len() > 1, "{before:?}");
    let published = published_files(&lake.lake().join("gold/dim_genre"));

    // A contract the data breaks: at most one genre.
    let contract = definitions.path().join("gold/dim_genre.toml");
    let text = std::fs::read_to_string(&contract).unwrap();
    std::fs::write(&contract, format!("max_rows = 1\n{text}")).unwrap();

    let server = TrinoServer::local();
    let env = on_trino(&server);
    let out = lake.run(
        &as_refs(&env),
        &["run", "spotify_catalog", "--select", "gold.dim_genre"],
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{printed}");
    assert!(printed.contains("at most 1 rows"), "{printed}");

    assert_eq!(lake.gold()["dim_genre"], before);
    let folder = lake.lake().join("gold/dim_genre");
    assert_eq!(published_files(&folder), published);
    let leftovers: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name.starts_with("staged-"))
        .collect();
    assert_eq!(leftovers, Vec::<String>::new(), "nothing staged stays");
    assert_eq!(staged_in_trino(&server).await, Vec::<String>::new());

    // With the contract back, the same run publishes.
    std::fs::write(&contract, text).unwrap();
    lake.ok(
        &as_refs(&env),
        &["run", "spotify_catalog", "--select", "gold.dim_genre"],
    );
    assert_eq!(lake.gold()["dim_genre"], before);
    assert!(
        published_files(&folder)
            .iter()
            .all(|f| f.starts_with("staged-"))
    );

    // The model's input deleted and rebuilt in place, as a damaged table is
    // recovered: Trino reads the new files, not the ones it saw before.
    for table in std::fs::read_dir(lake.lake().join("silver")).unwrap() {
        let table = table.unwrap();
        if table.file_name().to_string_lossy().starts_with("artists") {
            std::fs::remove_dir_all(table.path()).unwrap();
        }
    }
    lake.ok(
        &[],
        &["run", "spotify_catalog", "--select", "silver.artists"],
    );
    lake.ok(
        &as_refs(&env),
        &["run", "spotify_catalog", "--select", "gold.dim_genre"],
    );
    assert_eq!(lake.gold()["dim_genre"], before);
}
