//! Retention within Spotify's terms: `soundlake purge` deletes bronze's
//! old versions past `[retention] history_days` and keeps the current
//! ones; `purge --artist` leaves no landing document and no lake row of
//! the artist, its albums or its tracks, and the crawl does not land them
//! again.

use std::collections::HashSet;

use serde_json::Value;
use soundlake::landing::{Collection, DocumentStore};

use crate::events::Lake;

/// The Spotify ids a text names (runs of 22 letters and digits).
fn ids_in(text: &str) -> HashSet<String> {
    soundlake::retention::spotify_ids(text)
        .map(str::to_string)
        .collect()
}

/// Every row of every table of the deployment's lake, as JSON.
fn every_row(lake: &Lake) -> Vec<(String, Value)> {
    let mut rows = Vec::new();
    for layer in ["bronze", "silver", "gold"] {
        let folder = lake.dir.path().join("lake").join(layer);
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let table = format!("{layer}.{name}");
            let sql = format!("SELECT * FROM {table}");
            let out = lake.run(&["query", "--format", "json", &sql]);
            if !out.status.success() {
                // A table with no data yet is not queryable.
                assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
                continue;
            }
            let found: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
            rows.extend(found.into_iter().map(|row| (table.clone(), row)));
        }
    }
    rows
}

/// The first artist of the lake's generated catalog, and the ids that
/// name it: its own, its albums' and their tracks'.
fn an_artist_and_its_ids(lake: &Lake) -> (String, HashSet<String>) {
    let data = lake.dir.path().join("data");
    let line = |collection: &str| -> Vec<String> {
        std::fs::read_to_string(data.join(format!("{collection}.ndjson")))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let artist: Value = serde_json::from_str(&line("artists")[0]).unwrap();
    let artist = artist["id"].as_str().unwrap().to_string();
    let mut named: HashSet<String> = [artist.clone()].into();
    for collection in ["albums", "tracks"] {
        for text in line(collection) {
            if !ids_in(&text).is_disjoint(&named) {
                let doc: Value = serde_json::from_str(&text).unwrap();
                named.insert(doc["id"].as_str().unwrap().to_string());
            }
        }
    }
    assert!(
        named.len() > 3,
        "the artist has albums and tracks: {named:?}"
    );
    (artist, named)
}

/// The tables of the rows that name an id of `named` (or its surrogate key).
fn tables_naming(rows: &[(String, Value)], named: &HashSet<String>) -> Vec<String> {
    let keys: HashSet<i64> = named
        .iter()
        .map(|id| soundlake::sql::functions::surrogate_key(&[Some(id)]))
        .collect();
    rows.iter()
        .filter(|(_, row)| {
            row.as_object().unwrap().values().any(|v| match v {
                Value::Number(n) => n.as_i64().is_some_and(|n| keys.contains(&n)),
                other => !ids_in(&other.to_string()).is_disjoint(named),
            })
        })
        .map(|(table, _)| table.clone())
        .collect()
}

#[tokio::test]
async fn purging_an_artist_leaves_no_document_and_no_row_of_it() {
    let lake = Lake::with_gold_catalog();
    let (artist, named) = an_artist_and_its_ids(&lake);
    let mentions = |rows: &[(String, Value)]| tables_naming(rows, &named);
    let before = every_row(&lake);
    let tables_before: HashSet<String> = mentions(&before).into_iter().collect();
    for table in [
        "bronze.artists",
        "silver.tracks",
        "gold.dim_track",
        "gold.bridge_track_artist",
    ] {
        assert!(
            tables_before.contains(table),
            "{table} names the artist: {tables_before:?}"
        );
    }

    // A dry run deletes nothing; a bad id is refused with the fix.
    let dry = lake.ok(&["purge", "--artist", &artist, "--dry-run"]);
    assert!(dry.contains("would delete"), "{dry}");
    assert_eq!(every_row(&lake).len(), before.len());
    let refused = lake.run(&["purge", "--artist", "radiohead"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("22-character"));

    let url = format!("https://open.spotify.com/artist/{artist}");
    let report: Value =
        serde_json::from_str(&lake.ok(&["purge", "--artist", &url, "--json"])).unwrap();
    assert_eq!(report["takedown"]["artist"], artist.as_str());
    let after = every_row(&lake);
    assert_eq!(
        mentions(&after),
        Vec::<String>::new(),
        "rows of the artist left"
    );
    assert!(after.len() < before.len());
    // Only rows naming the artist went.
    assert_eq!(before.len() - after.len(), mentions(&before).len());

    // Nothing of it is left in the landing store, and every superseded
    // file is gone from disk.
    let store = lake.landing_store().await;
    for collection in Collection::ALL {
        let docs = store.scan_text(collection, None, usize::MAX).await.unwrap();
        for doc in docs {
            assert!(
                ids_in(&doc.doc).is_disjoint(&named) && ids_in(&doc.id).is_disjoint(&named),
                "{collection}/{} names the artist",
                doc.id
            );
        }
    }
    let parquet = crate::support::files_ending(&lake.dir.path().join("lake"), ".parquet");
    let vacuumed = lake.ok(&["vacuum", "--retain-hours", "0", "--dry-run"]);
    assert!(
        vacuumed.contains("would delete 0 files in all"),
        "{parquet}: {vacuumed}"
    );

    // The shipped maintenance pipeline purges bronze's history, then
    // vacuums.
    let run: Value =
        serde_json::from_str(&lake.ok(&["run", "lake_maintenance", "--json"])).unwrap();
    let tasks = run["tasks"].as_array().unwrap();
    let purge = tasks.iter().find(|t| t["id"] == "purge").unwrap();
    assert_eq!(purge["status"], "succeeded", "{run}");
    assert_eq!(purge["report"]["history_days"], 30, "{run}");
    assert!(
        tasks
            .iter()
            .any(|t| t["id"] == "vacuum" && t["status"] == "succeeded")
    );
}

/// Every row of silver.tracks, sorted.
async fn silver_rows(lake: &soundlake::lake::Lake) -> Vec<String> {
    use futures::TryStreamExt;
    let table = lake.table("silver", "tracks");
    let snapshot = table.snapshot().await.unwrap();
    let mut rows = Vec::new();
    for file in &snapshot.files {
        let batches: Vec<arrow_array::RecordBatch> = table
            .read(file, 512)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        for batch in batches {
            let text = |name: &str| {
                batch
                    .column(batch.schema().index_of(name).unwrap())
                    .as_any()
                    .downcast_ref::<arrow_array::StringArray>()
                    .unwrap()
                    .clone()
            };
            let (id, name) = (text("id"), text("name"));
            for row in 0..batch.num_rows() {
                rows.push(format!("{} {}", id.value(row), name.value(row)));
            }
        }
    }
    rows.sort();
    rows
}

#[tokio::test]
async fn history_goes_once_replaced_longer_ago_than_history_days_and_the_current_versions_stay() {
    use chrono::TimeDelta;
    use soundlake::bronze::{Bronze, Extract};
    use soundlake::clock::{Clock, SharedClock, VirtualClock};
    use soundlake::silver::{Scope, Silver};

    use crate::bronze::{definition, ids, land, versions};

    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::manual(crate::support::t0());
    let shared: SharedClock = clock.clone();
    let url = format!("embedded://{}/landing.db", dir.path().display());
    let store = soundlake::landing::open(&url, shared.clone())
        .await
        .unwrap();
    let lake = soundlake::lake::Lake::in_memory();
    let def = definition("tracks");
    let bronze = Bronze::new(store.clone(), lake.clone(), shared.clone());
    let silver_def = crate::silver::silver_defs()
        .into_iter()
        .find(|d| d.name == "tracks")
        .unwrap();
    let silver = Silver::new(store.clone(), lake.clone(), shared.clone());
    let day = |n: i64| TimeDelta::days(n).to_std().unwrap();

    // Day 0: ten tracks; day 10: five of them change; day 40: two again.
    land(&store, &ids(0..10), 1, 10).await;
    bronze.run(&def, Extract::Incremental, "b1").await.unwrap();
    clock.advance(day(10));
    land(&store, &ids(0..5), 2, 10).await;
    bronze.run(&def, Extract::Incremental, "b2").await.unwrap();
    clock.advance(day(30));
    land(&store, &ids(0..2), 3, 10).await;
    bronze.run(&def, Extract::Incremental, "b3").await.unwrap();
    silver
        .run(&silver_def, &def, Scope::New, "s1")
        .await
        .unwrap();
    let silver_before = silver_rows(&lake).await;
    assert_eq!(silver_before.len(), 10, "{silver_before:?}");
    let table = lake.table("bronze", "tracks");
    let all = versions(&table).await;
    assert_eq!(all.len(), 17);

    // Day 45, 30 days kept: the cutoff is day 15. Day 0's versions were
    // replaced on day 10, before it: they go. Day 10's two replaced on day
    // 40 stay, as do the current versions.
    clock.advance(day(5));
    let now = clock.now();
    let defs = [def.clone()];
    let dry = soundlake::retention::purge_history(&lake, &defs, 30, now, "p0", true)
        .await
        .unwrap();
    assert_eq!((dry.tables[0].rows, dry.tables[0].version), (5, None));
    assert_eq!(versions(&table).await, all, "a dry run deletes nothing");
    let purged = soundlake::retention::purge_history(&lake, &defs, 30, now, "p1", false)
        .await
        .unwrap();
    assert_eq!(purged.tables[0].rows, 5);
    let kept = versions(&table).await;
    let expected: Vec<_> = all
        .iter()
        .filter(|v| !(v.0.as_str() < "t00005" && v.1 == all[0].1))
        .cloned()
        .collect();
    assert_eq!(kept, expected);
    assert_eq!(kept.len(), 12);
    let history = table.history(Some(1)).await.unwrap();
    assert_eq!(history[0].mode.as_deref(), Some("delete"));
    // The day-0 file's ten rows, rewritten as its five that stay.
    assert_eq!(
        (history[0].rows_removed, history[0].rows_added),
        (Some(10), Some(5))
    );

    // Again: nothing more goes, and no version is written.
    let again = soundlake::retention::purge_history(&lake, &defs, 30, now, "p2", false)
        .await
        .unwrap();
    assert_eq!((again.tables[0].rows, again.tables[0].version), (0, None));

    // Silver reads the rewritten bronze files and keeps what it held.
    silver
        .run(&silver_def, &def, Scope::New, "s2")
        .await
        .unwrap();
    assert_eq!(silver_rows(&lake).await, silver_before);

    // With no history kept, only the current version of each track stays,
    // and bronze still extracts what lands next.
    soundlake::retention::purge_history(&lake, &defs, 0, now, "p3", false)
        .await
        .unwrap();
    assert_eq!(versions(&table).await.len(), 10);
    land(&store, &ids(9..11), 4, 10).await;
    let next = bronze.run(&def, Extract::Incremental, "b4").await.unwrap();
    assert_eq!(next.rows_written, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crawl_lands_nothing_naming_a_taken_down_artist() {
    use soundlake::sim::SimOptions;

    use crate::crawl::{Setup, all_at_once};

    let names = crate::support::names(6);
    let options = || SimOptions {
        names: names.clone(),
        rate_limit: 0,
        ..SimOptions::default()
    };
    let first = Setup::start(options()).await;
    first
        .crawler(first.h.settings(), all_at_once(6))
        .run(&names, "look")
        .await
        .unwrap();
    let artists = first
        .store
        .scan_text(Collection::Artists, None, usize::MAX)
        .await
        .unwrap();
    let artist = artists[0].id.clone();
    let taken: HashSet<String> = [artist.clone()].into();

    let s = Setup::start(options()).await;
    s.store
        .put_state(
            &format!("{}{artist}", soundlake::retention::TAKEDOWN),
            &serde_json::json!({"at": "2026-11-21T00:00:00Z"}),
        )
        .await
        .unwrap();
    let report = s
        .crawler(s.h.settings(), all_at_once(6))
        .run(&names, "crawl")
        .await
        .unwrap();
    assert!(report.withheld > 0, "{report:?}");
    let shown = soundlake::crawl::render(&report);
    assert!(
        shown.contains(&format!("withheld {} documents", report.withheld)),
        "{shown}"
    );
    let mut landed = 0;
    for collection in Collection::ALL {
        for doc in s
            .store
            .scan_text(collection, None, usize::MAX)
            .await
            .unwrap()
        {
            landed += 1;
            assert!(
                !soundlake::retention::names_any(&doc.doc, &taken),
                "{collection}/{} names the taken-down artist",
                doc.id
            );
        }
    }
    assert!(landed > 0, "the other artists were landed");
}

/// `purge --artist` killed with SIGKILL after it deleted the landing
/// documents and before the lake rows: the documents that linked the
/// albums and tracks to the artist are gone, yet the rerun deletes every
/// lake row of them, from the ids the takedown recorded before deleting.
#[cfg(feature = "failpoints")]
#[tokio::test]
async fn a_takedown_killed_between_the_store_and_the_lake_finishes_on_rerun() {
    let lake = Lake::with_gold_catalog();
    let (artist, named) = an_artist_and_its_ids(&lake);
    let store = lake.landing_store().await;
    assert!(
        store
            .get(Collection::Artists, &artist)
            .await
            .unwrap()
            .is_some()
    );

    let mut child = lake
        .command(&["purge", "--artist", &artist])
        .env(
            "FAILPOINTS",
            "takedown-between-store-and-lake=sleep(120000)",
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while store
        .get(Collection::Artists, &artist)
        .await
        .unwrap()
        .is_some()
    {
        assert!(child.try_wait().unwrap().is_none(), "purge ended early");
        assert!(
            std::time::Instant::now() < deadline,
            "purge never deleted the documents"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(
        !tables_naming(&every_row(&lake), &named).is_empty(),
        "killed before the lake: its rows are still there"
    );

    lake.ok(&["purge", "--artist", &artist]);
    let left: std::collections::BTreeSet<String> = tables_naming(&every_row(&lake), &named)
        .into_iter()
        .collect();
    assert!(
        left.is_empty(),
        "rows of the artist, its albums or its tracks left after the rerun in {left:?}"
    );
}
