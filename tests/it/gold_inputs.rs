//! Gold from whatever a user lands: every subset of a catalog's tracks,
//! albums, artists and audio features, imported through the CLI and run
//! through the shipped pipeline, publishes exactly what those inputs imply,
//! as DuckDB computes it from the same NDJSON (`tests/catalog_check.py`,
//! written apart from the models); and the recorded Spotify responses
//! import and pass every data test.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// `soundlake` in `dir` on the shipped definitions.
pub fn soundlake(dir: &Path) -> Command {
    let mut cmd = crate::support::soundlake(crate::support::shipped());
    cmd.current_dir(dir);
    cmd
}

/// Run `args` in `dir`; stdout, or a panic with everything it said.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    crate::support::succeed(soundlake(dir).args(args))
}

/// Run the shipped catalog pipeline's layers (everything after the crawl)
/// over what was imported into `dir`; the run's summary.
fn run_layers(dir: &Path) -> String {
    ok(
        dir,
        &[
            "--log-format",
            "json",
            "run",
            "spotify_catalog",
            "--select",
            "bronze.*+",
        ],
    )
}

/// Rows as `catalog_check.py` prints them: each value's JSON text, sorted.
fn rows(json: &str) -> Vec<Vec<String>> {
    let parsed: Vec<Value> = serde_json::from_str(json).unwrap();
    let mut rows: Vec<Vec<String>> = parsed
        .iter()
        .map(|row| {
            row.as_object()
                .unwrap()
                .values()
                .map(Value::to_string)
                .collect()
        })
        .collect();
    rows.sort();
    rows
}

/// The recorded responses, each imported into the collection a user would
/// put it in (a saved album-tracks page into `tracks` and `album_tracks`).
pub const RECORDED: [(&str, &str); 22] = [
    ("artist_full.json", "artists"),
    ("artists_several.json", "artists"),
    ("search_artists_page.json", "artists"),
    ("search_artists_small.json", "artists"),
    ("artist_albums_page.json", "albums"),
    ("artist_albums_page_with_markets.json", "albums"),
    ("search_albums_year_precision.json", "albums"),
    ("album_full_with_label.json", "albums"),
    ("album_full_year_precision.json", "albums"),
    ("albums_several_empty.json", "albums"),
    ("albums_several_month_precision_unicode.json", "albums"),
    ("albums_several_year_precision.json", "albums"),
    ("track_full.json", "tracks"),
    ("tracks_several.json", "tracks"),
    ("tracks_several_with_null.json", "tracks"),
    ("artist_top_tracks.json", "tracks"),
    ("album_tracks_page.json", "tracks"),
    ("album_tracks_page.json", "album_tracks"),
    ("me_top_tracks_page_linked_from.json", "tracks"),
    ("audio_features_several_with_null.json", "audio_features"),
    ("audio_features_several.json", "audio_features"),
    ("audio_features_single.json", "audio_features"),
];

#[test]
fn the_recorded_responses_import_and_pass_every_gold_test() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spotify");
    for (file, collection) in RECORDED {
        let path = fixtures.join(file);
        ok(dir.path(), &["import", collection, path.to_str().unwrap()]);
    }
    let run = run_layers(dir.path());
    assert!(run.contains(": succeeded ("), "{run}");
    assert!(!run.contains("warning:"), "no test even warns: {run}");
    let query = |sql: &str| rows(&ok(dir.path(), &["query", "--format", "json", sql]));
    assert!(
        query("SELECT count(*) AS n FROM gold.dim_track")[0][0]
            .parse::<u64>()
            .unwrap()
            > 20,
        "the recorded tracks are in gold"
    );
    // The only rows set aside: the two tracks of a saved album-tracks page
    // whose album was never landed (known by its id alone), and their credits.
    let page_album = "6akEvsycLGftJxYudPjmqK";
    let listed = query(&format!(
        "SELECT id FROM silver.album_tracks__items WHERE page_key = '{page_album}:0'"
    ));
    assert_eq!(listed.len(), 2);
    assert_eq!(
        query("SELECT track_id AS id FROM gold.dim_track_quarantine"),
        listed,
        "tracks of an album not landed"
    );
    assert!(
        query(&format!(
            "SELECT 1 FROM gold.dim_album WHERE album_id = '{page_album}'"
        ))
        .is_empty()
    );
    assert_eq!(
        query("SELECT DISTINCT failed_test FROM gold.bridge_track_artist_quarantine"),
        [["\"track_key references gold.dim_track.track_key\"".to_string()]]
    );
    for set_aside in [
        "bridge_album_artist",
        "bridge_album_image",
        "bridge_artist_genre",
        "bridge_artist_image",
        "fact_audio_features",
        "fact_artist_popularity",
        "fact_track_popularity",
    ] {
        assert!(
            query(&format!("SELECT * FROM gold.{set_aside}_quarantine")).is_empty(),
            "{set_aside}"
        );
    }
    // A track of the page whose album is landed later is tied to it.
    let album = serde_json::json!({
        "id": page_album, "name": "Recorded elsewhere", "album_type": "Album",
        "release_date": "2014", "release_date_precision": "year", "total_tracks": 11,
        "type": "album", "artists": [], "images": []
    });
    std::fs::write(dir.path().join("album.json"), album.to_string()).unwrap();
    ok(dir.path(), &["import", "albums", "album.json"]);
    ok(
        dir.path(),
        &["run", "spotify_catalog", "--select", "bronze.albums+"],
    );
    assert!(query("SELECT * FROM gold.dim_track_quarantine").is_empty());
    assert_eq!(
        query(&format!(
            "SELECT count(*) AS n FROM gold.dim_track t JOIN gold.dim_album a \
             ON a.album_key = t.album_key WHERE a.album_id = '{page_album}'"
        )),
        [["2".to_string()]]
    );
}

/// A backfill from before anything was landed to after it: the empty
/// intervals have nothing to do, the one holding the data derives it, and
/// gold runs once over the tables the range leaves.
#[test]
fn a_backfill_from_before_the_first_landing_reaches_it() {
    let dir = tempfile::tempdir().unwrap();
    ok(
        dir.path(),
        &["generate", "catalog", "--tracks", "100", "--out", "."],
    );
    ok(dir.path(), &["import", "tracks", "tracks.ndjson"]);
    let today = chrono::Utc::now().date_naive();
    let from = (today - chrono::Days::new(3)).to_string();
    let to = (today + chrono::Days::new(1)).to_string();
    let out = ok(
        dir.path(),
        &[
            "backfill",
            "spotify_catalog",
            "--from",
            &from,
            "--to",
            &to,
            "--json",
        ],
    );
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["status"], "succeeded", "{report:#}");
    let statuses: Vec<&str> = report["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "succeeded").count(),
        1,
        "one interval holds the landing: {statuses:?}"
    );
    assert!(
        statuses.iter().filter(|s| **s == "nothing_to_do").count() >= 3,
        "the days before it are empty, and say so: {statuses:?}"
    );
    let after: Vec<(&str, &str)> = report["after_range"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["task"].as_str().unwrap(), t["status"].as_str().unwrap()))
        .collect();
    assert!(
        after.contains(&("gold.dim_track", "succeeded")),
        "{after:?}"
    );
    assert!(after.iter().all(|(_, s)| *s == "succeeded"), "{after:?}");
    let gold_runs = report["run"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["id"].as_str().unwrap().ends_with("/gold.dim_track"))
        .count();
    assert_eq!(gold_runs, 1, "gold runs once, not per interval");
    let tracks = rows(&ok(
        dir.path(),
        &[
            "query",
            "--format",
            "json",
            "SELECT count(*) AS n FROM gold.dim_track",
        ],
    ));
    let landed = std::fs::read_to_string(dir.path().join("tracks.ndjson"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(tracks, [[landed.to_string()]]);
}

/// The tests that need the real servers or Python readers `tests/run.sh`
/// installs.
#[cfg(feature = "servers")]
mod with_servers {
    use super::*;
    use std::collections::BTreeMap;

    const COLLECTIONS: [&str; 4] = ["tracks", "albums", "artists", "audio_features"];

    /// Every gold table's rows (all columns), sorted.
    fn gold_tables(dir: &Path, lake_url: &str) -> BTreeMap<String, Vec<Vec<String>>> {
        let query = |sql: &str| {
            rows(&crate::support::succeed(
                soundlake(dir)
                    .env("SOUNDLAKE__LAKE__URL", lake_url)
                    .args(["query", "--format", "json", sql]),
            ))
        };
        query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'gold'")
            .into_iter()
            .map(|row| {
                let name = row[0].trim_matches('"').to_string();
                let content = query(&format!("SELECT * FROM gold.{name}"));
                (name, content)
            })
            .collect()
    }

    /// The whole catalog pipeline on an `hdfs://` lake (a real NameNode and
    /// DataNode) builds the same gold tables as on local disk.
    #[test]
    fn the_catalog_pipeline_on_hdfs_builds_what_it_builds_on_disk() {
        let hdfs = crate::servers::HdfsCluster::start();
        let dir = tempfile::tempdir().unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spotify");
        for (file, collection) in RECORDED {
            let path = fixtures.join(file);
            ok(dir.path(), &["import", collection, path.to_str().unwrap()]);
        }
        let on_disk = format!("file://{}", dir.path().join("lake").display());
        let on_hdfs = format!("{}/soundlake/lake", hdfs.url());
        for url in [&on_disk, &on_hdfs] {
            let run = crate::support::succeed(
                soundlake(dir.path())
                    .env("SOUNDLAKE__LAKE__URL", url)
                    .args(["run", "spotify_catalog", "--select", "bronze.*+"]),
            );
            assert!(run.contains(": succeeded ("), "{url}: {run}");
        }
        let disk = gold_tables(dir.path(), &on_disk);
        assert!(disk.len() >= 12, "{:?}", disk.keys());
        assert!(disk["dim_track"].len() > 20);
        assert_eq!(gold_tables(dir.path(), &on_hdfs), disk);
    }

    /// Each gold table as `catalog_check.py` computes it: natural ids in place
    /// of surrogate keys, in the same column order.
    const GOLD: [(&str, &str); 8] = [
        (
            "dim_album",
            "SELECT album_id, name, album_type, is_crawled FROM gold.dim_album",
        ),
        (
            "dim_artist",
            "SELECT artist_id, name, is_crawled FROM gold.dim_artist",
        ),
        (
            "dim_track",
            "SELECT t.track_id, a.album_id FROM gold.dim_track t \
         LEFT JOIN gold.dim_album a ON a.album_key = t.album_key",
        ),
        (
            "bridge_track_artist",
            "SELECT t.track_id, a.artist_id, b.position FROM gold.bridge_track_artist b \
         JOIN gold.dim_track t ON t.track_key = b.track_key \
         JOIN gold.dim_artist a ON a.artist_key = b.artist_key",
        ),
        (
            "bridge_album_artist",
            "SELECT al.album_id, a.artist_id, b.position FROM gold.bridge_album_artist b \
         JOIN gold.dim_album al ON al.album_key = b.album_key \
         JOIN gold.dim_artist a ON a.artist_key = b.artist_key",
        ),
        (
            "bridge_album_image",
            "SELECT al.album_id, b.position, b.url FROM gold.bridge_album_image b \
         JOIN gold.dim_album al ON al.album_key = b.album_key",
        ),
        (
            "fact_audio_features",
            "SELECT t.track_id FROM gold.fact_audio_features f \
         JOIN gold.dim_track t ON t.track_key = f.track_key",
        ),
        (
            "dim_genre",
            "SELECT genre, artist_count FROM gold.dim_genre",
        ),
    ];

    /// The objects of a saved response as `soundlake import` reads them: the
    /// object itself, or the items of a batch, page or search response.
    fn objects_of(response: Value, collection: &str) -> Vec<Value> {
        if response.get("id").is_some() {
            return vec![response];
        }
        let listing = response
            .get(collection)
            .map(|inner| inner.get("items").unwrap_or(inner))
            .or_else(|| response.get("items"))
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("a saved {collection} response: {response}"));
        listing.iter().filter(|v| v.is_object()).cloned().collect()
    }

    /// What DuckDB makes of the NDJSON files in `dir`.
    fn expected(dir: &Path) -> BTreeMap<String, Vec<Vec<String>>> {
        serde_json::from_str(&crate::servers::python("tests/catalog_check.py", [dir])).unwrap()
    }

    /// A generated catalog whose album types are spelled as real responses
    /// spell them: "EP", "Album " and one value Spotify might add later.
    fn catalog(dir: &Path) {
        ok(
            dir,
            &["generate", "catalog", "--tracks", "400", "--out", "."],
        );
        let spellings = [
            "\"album_type\":\"EP\"",
            "\"album_type\":\"Album \"",
            "\"album_type\":\"audiobook\"",
        ];
        for collection in ["tracks", "albums"] {
            let path = dir.join(format!("{collection}.ndjson"));
            let text = std::fs::read_to_string(&path).unwrap();
            let mut seen = 0;
            let mut odd = String::with_capacity(text.len());
            for line in text.lines() {
                let spelled = if line.contains("\"album_type\":\"single\"") {
                    seen += 1;
                    line.replacen(
                        "\"album_type\":\"single\"",
                        spellings[seen % spellings.len()],
                        1,
                    )
                } else {
                    line.to_string()
                };
                odd.push_str(&spelled);
                odd.push('\n');
            }
            assert!(seen >= 3, "the catalog has singles to respell");
            std::fs::write(path, odd).unwrap();
        }
    }

    /// Import every non-empty subset of the `<collection>.ndjson` files in
    /// `source`, run the layers, and compare gold with DuckDB's reading of the
    /// same files; `check` looks further at each subset's run summary.
    fn every_subset_publishes_what_it_implies(source: &Path, check: impl Fn(&[&str], &Path, &str)) {
        for mask in 1..(1u32 << COLLECTIONS.len()) {
            let subset: Vec<&str> = COLLECTIONS
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, c)| *c)
                .collect();
            let dir = tempfile::tempdir().unwrap();
            for collection in &subset {
                let file = format!("{collection}.ndjson");
                std::fs::copy(source.join(&file), dir.path().join(&file)).unwrap();
                ok(dir.path(), &["import", collection, &file]);
            }
            let run = run_layers(dir.path());
            assert!(run.contains(": succeeded ("), "{subset:?}: {run}");
            let expected = expected(dir.path());
            for (table, sql) in GOLD {
                let ours = rows(&ok(dir.path(), &["query", "--format", "json", sql]));
                assert_eq!(
                    &ours, &expected[table],
                    "{subset:?}: gold.{table} differs from DuckDB's"
                );
            }
            check(&subset, dir.path(), &run);
        }
    }

    #[test]
    fn every_subset_of_a_generated_catalog_publishes_what_it_implies() {
        let source = tempfile::tempdir().unwrap();
        catalog(source.path());
        every_subset_publishes_what_it_implies(source.path(), |subset, dir, run| {
            let odd = rows(&ok(
                dir,
                &[
                    "query",
                    "--format",
                    "json",
                    "SELECT album_type, count(*) AS n FROM gold.dim_album GROUP BY album_type",
                ],
            ));
            let types: Vec<&str> = odd.iter().map(|r| r[0].as_str()).collect();
            if subset.contains(&"tracks") || subset.contains(&"albums") {
                assert!(
                    !types.contains(&"\"EP\"") && !types.contains(&"\"Album \""),
                    "{subset:?}: normalized: {types:?}"
                );
                assert!(
                    types.contains(&"\"audiobook\""),
                    "{subset:?}: an unknown type is kept: {types:?}"
                );
                assert!(
                    run.contains("warning: album_type in ('album', 'single', 'compilation')"),
                    "{subset:?}: and reported: {run}"
                );
            }
        });
    }

    #[test]
    fn every_subset_of_the_recorded_responses_publishes_what_it_implies() {
        // The recorded responses as one NDJSON file per collection, the later
        // copy of an id winning as it does in the store.
        let source = tempfile::tempdir().unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spotify");
        for collection in COLLECTIONS {
            let mut latest: Vec<(String, Value)> = Vec::new();
            for (file, _) in RECORDED.iter().filter(|(_, c)| *c == collection) {
                let text = std::fs::read_to_string(fixtures.join(file)).unwrap();
                for object in objects_of(serde_json::from_str(&text).unwrap(), collection) {
                    let id = object["id"].as_str().unwrap().to_string();
                    latest.retain(|(kept, _)| *kept != id);
                    latest.push((id, object));
                }
            }
            let lines: Vec<String> = latest.iter().map(|(_, o)| o.to_string()).collect();
            std::fs::write(
                source.path().join(format!("{collection}.ndjson")),
                lines.join("\n"),
            )
            .unwrap();
        }
        every_subset_publishes_what_it_implies(source.path(), |_, _, _| {});
    }
}
