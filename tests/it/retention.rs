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

#[tokio::test]
async fn purging_an_artist_leaves_no_document_and_no_row_of_it() {
    let lake = Lake::with_catalog();
    lake.ok(&[
        "run",
        "spotify_catalog",
        "--select",
        "bronze.*,silver.*,gold.*",
    ]);
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
    // What names the artist: its albums, their tracks and its tracks.
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
    let keys: HashSet<i64> = named
        .iter()
        .map(|id| soundlake::sql::functions::surrogate_key(&[Some(id)]))
        .collect();
    let mentions = |rows: &[(String, Value)]| -> Vec<String> {
        rows.iter()
            .filter(|(_, row)| {
                row.as_object().unwrap().values().any(|v| match v {
                    Value::Number(n) => n.as_i64().is_some_and(|n| keys.contains(&n)),
                    other => !ids_in(&other.to_string()).is_disjoint(&named),
                })
            })
            .map(|(table, _)| table.clone())
            .collect()
    };
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
    let landing = lake.dir.path().join(".soundlake/landing");
    let store = soundlake::landing::EmbeddedStore::open(
        landing.to_str().unwrap(),
        soundlake::clock::system(),
    )
    .await
    .unwrap();
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
}
