//! Silver end to end: recorded Spotify responses (and their Development
//! Mode variants) through landing and bronze into typed tables; drift and
//! quarantine; incremental runs equal full rebuilds; random documents lose
//! no value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use chrono::TimeDelta;
use futures::TryStreamExt;
use serde_json::{Value, json};
use soundlake::bronze::{self, Bronze, BronzeTable, Extract};
use soundlake::clock::{SharedClock, VirtualClock};
use soundlake::lake::Lake;
use soundlake::landing::{self, Batch, Collection, SharedStore};
use soundlake::silver::{self, Scope, Silver, SilverReport, SilverTable};

use crate::support::{files_ending, kill_when, t0};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/spotify");

/// Which collection each recorded response lands in.
const LANDED: [(&str, Collection); 19] = [
    ("artist_full.json", Collection::Artists),
    ("artists_several.json", Collection::Artists),
    ("search_artists_page.json", Collection::Artists),
    ("search_artists_small.json", Collection::Artists),
    ("album_full_with_label.json", Collection::Albums),
    ("album_full_year_precision.json", Collection::Albums),
    ("albums_several_empty.json", Collection::Albums),
    (
        "albums_several_month_precision_unicode.json",
        Collection::Albums,
    ),
    ("albums_several_year_precision.json", Collection::Albums),
    ("artist_albums_page.json", Collection::Albums),
    ("artist_albums_page_with_markets.json", Collection::Albums),
    ("search_albums_year_precision.json", Collection::Albums),
    ("track_full.json", Collection::Tracks),
    ("tracks_several.json", Collection::Tracks),
    ("tracks_several_with_null.json", Collection::Tracks),
    ("artist_top_tracks.json", Collection::Tracks),
    ("album_tracks_page.json", Collection::Tracks),
    ("me_top_tracks_page_linked_from.json", Collection::Tracks),
    (
        "audio_features_several_with_null.json",
        Collection::AudioFeatures,
    ),
];

/// Fields Development Mode removes, by object type
/// (reference/spotify-api.md §4.2).
const DEV_MODE_REMOVED: [(&str, &[&str]); 3] = [
    (
        "track",
        &[
            "available_markets",
            "external_ids",
            "linked_from",
            "popularity",
        ],
    ),
    (
        "album",
        &[
            "album_group",
            "available_markets",
            "external_ids",
            "label",
            "popularity",
        ],
    ),
    ("artist", &["followers", "popularity"]),
];

pub struct Env {
    pub _dir: tempfile::TempDir,
    pub store: SharedStore,
    pub lake: Lake,
    pub clock: Arc<VirtualClock>,
}

pub async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let clock = VirtualClock::starting_at(t0());
    let shared: SharedClock = clock.clone();
    let url = format!("embedded://{}/landing.db", dir.path().display());
    let store = landing::open(&url, shared).await.unwrap();
    Env {
        _dir: dir,
        store,
        lake: Lake::in_memory(),
        clock,
    }
}

/// An [`env`] whose lake is a folder on disk (returned, removed when
/// dropped), for tests that look at or damage its files.
pub async fn env_on_files() -> (tempfile::TempDir, Env) {
    let dir = tempfile::tempdir().unwrap();
    let mut env = env().await;
    env.lake = Lake::open(&soundlake::lake::LakeSettings {
        url: format!("file://{}", dir.path().display()),
        ..Default::default()
    })
    .unwrap();
    (dir, env)
}

use crate::support::shipped as root;

pub fn bronze_defs() -> Vec<BronzeTable> {
    bronze::load(&root().join("bronze")).unwrap()
}

pub fn silver_defs() -> Vec<SilverTable> {
    silver::load(&root().join("silver"), &bronze_defs()).unwrap()
}

impl Env {
    fn shared_clock(&self) -> SharedClock {
        self.clock.clone()
    }

    /// Bronze, then silver, for every shipped definition; the silver
    /// reports by table.
    pub async fn layers(&self, full_refresh: bool) -> BTreeMap<String, SilverReport> {
        let bronze = bronze_defs();
        let job = Bronze::new(self.store.clone(), self.lake.clone(), self.shared_clock());
        for def in &bronze {
            job.run(def, Extract::Incremental, "bronze-test")
                .await
                .unwrap();
        }
        let mut reports = BTreeMap::new();
        for def in silver_defs() {
            let source = bronze.iter().find(|b| b.name == def.source).unwrap();
            reports.insert(
                def.name.clone(),
                self.silver(&def, source, full_refresh).await,
            );
        }
        reports
    }

    pub async fn silver(
        &self,
        def: &SilverTable,
        source: &BronzeTable,
        full: bool,
    ) -> SilverReport {
        Silver::new(self.store.clone(), self.lake.clone(), self.shared_clock())
            .run(
                def,
                source,
                if full { Scope::Full } else { Scope::New },
                "silver-test",
            )
            .await
            .unwrap()
    }

    /// Land one batch (a later duplicate id replaces an earlier one).
    pub async fn land(&self, collection: Collection, docs: Vec<(String, Value)>) {
        let mut last = std::collections::HashMap::new();
        for (at, (id, _)) in docs.iter().enumerate() {
            last.insert(id.clone(), at);
        }
        let docs: Vec<(String, Value)> = docs
            .into_iter()
            .enumerate()
            .filter(|(at, (id, _))| last[id] == *at)
            .map(|(_, doc)| doc)
            .collect();
        self.clock.advance(std::time::Duration::from_secs(1));
        let batch = Batch::new("test", &format!("GET /{collection}"), docs);
        self.store.upsert(collection, batch).await.unwrap();
    }
}

/// Every row of a silver table as JSON objects, sorted.
pub async fn rows(lake: &Lake, table: &str) -> Vec<BTreeMap<String, Value>> {
    layer_rows(lake, silver::LAYER, table).await
}

/// Every row of a table of `layer` as JSON objects, sorted.
pub async fn layer_rows(lake: &Lake, layer: &str, table: &str) -> Vec<BTreeMap<String, Value>> {
    let table = lake.table(layer, table);
    let snapshot = table.snapshot().await.unwrap();
    let mut out = Vec::new();
    for file in &snapshot.files {
        let batches: Vec<RecordBatch> = table
            .read(file, 1024)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        for b in &batches {
            for r in 0..b.num_rows() {
                let row = b
                    .schema()
                    .fields()
                    .iter()
                    .zip(b.columns())
                    .map(|(f, c)| (f.name().clone(), cell(c, r)))
                    .collect();
                out.push(row);
            }
        }
    }
    out.sort_by_cached_key(|r| serde_json::to_string(r).unwrap());
    out
}

/// The Arrow types of a silver table's columns, by name.
async fn types(lake: &Lake, table: &str) -> BTreeMap<String, DataType> {
    let table = lake.table(silver::LAYER, table);
    let snapshot = table.snapshot().await.unwrap();
    let file = snapshot.files.first().expect("the table has a file");
    let batch: Vec<RecordBatch> = table
        .read(file, 1)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    batch[0]
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect()
}

fn cell(array: &ArrayRef, i: usize) -> Value {
    if array.is_null(i) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Utf8 => json!(array.as_string::<i32>().value(i)),
        DataType::Boolean => json!(array.as_boolean().value(i)),
        DataType::Int32 => json!(array.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(i)),
        DataType::Float64 => json!(array.as_primitive::<Float64Type>().value(i)),
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(i);
            let date =
                chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + TimeDelta::days(days.into());
            json!(date.to_string())
        }
        DataType::Timestamp(..) => json!(array.as_primitive::<TimestampMicrosecondType>().value(i)),
        DataType::List(_) => {
            let list = array.as_list::<i32>().value(i);
            Value::Array((0..list.len()).map(|j| cell(&list, j)).collect())
        }
        other => panic!("silver wrote an unexpected type {other}"),
    }
}

fn fixture(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(Path::new(FIXTURES).join(name)).unwrap()).unwrap()
}

/// The Spotify objects of a recorded response, as the crawl lands them.
fn objects(value: Value) -> Vec<Value> {
    let Value::Object(map) = value else {
        return vec![];
    };
    if map.contains_key("id") {
        return vec![Value::Object(map)];
    }
    let inner = map.into_iter().find_map(|(_, v)| match v {
        Value::Array(items) => Some(items),
        Value::Object(mut page) => match page.remove("items") {
            Some(Value::Array(items)) => Some(items),
            _ => None,
        },
        _ => None,
    });
    inner
        .unwrap_or_default()
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// Remove what Development Mode removes, at every depth.
fn development_mode(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(kind) = map.get("type").and_then(Value::as_str)
                && let Some((_, fields)) = DEV_MODE_REMOVED.iter().find(|(t, _)| *t == kind)
            {
                for field in *fields {
                    map.remove(*field);
                }
            }
            map.values_mut().for_each(development_mode);
        }
        Value::Array(items) => items.iter_mut().for_each(development_mode),
        _ => {}
    }
}

async fn land_fixtures(env: &Env, dev_mode: bool) {
    for (name, collection) in LANDED {
        let docs = objects(fixture(name))
            .into_iter()
            .map(|mut doc| {
                if dev_mode {
                    development_mode(&mut doc);
                }
                (doc["id"].as_str().unwrap().to_string(), doc)
            })
            .collect();
        env.land(collection, docs).await;
    }
}

fn find<'r>(
    rows: &'r [BTreeMap<String, Value>],
    column: &str,
    value: &str,
) -> &'r BTreeMap<String, Value> {
    rows.iter()
        .find(|r| r[column] == json!(value))
        .unwrap_or_else(|| panic!("no row with {column} = {value}"))
}

#[tokio::test]
async fn recorded_responses_flatten_to_exact_rows_and_types() {
    let env = env().await;
    land_fixtures(&env, false).await;
    let reports = env.layers(false).await;
    for (table, report) in &reports {
        assert_eq!(report.drift.quarantined, 0, "{table}: {report:?}");
        assert_eq!(report.mode, "full_refresh");
    }

    // A full track: nested album flattened, artists a child table, the
    // release date parsed, markets a list.
    let track_doc = fixture("track_full.json");
    let id = track_doc["id"].as_str().unwrap();
    let tracks = rows(&env.lake, "tracks").await;
    let track = find(&tracks, "id", id);
    assert_eq!(track["name"], track_doc["name"]);
    assert_eq!(track["duration_ms"], track_doc["duration_ms"]);
    assert_eq!(track["explicit"], track_doc["explicit"]);
    assert_eq!(track["isrc"], track_doc["external_ids"]["isrc"]);
    assert_eq!(track["album__id"], track_doc["album"]["id"]);
    assert_eq!(track["available_markets"], track_doc["available_markets"]);
    assert!(!track.contains_key("id_0000") && !track.contains_key("artists"));
    let types = types(&env.lake, "tracks").await;
    assert_eq!(types["duration_ms"], DataType::Int64);
    assert_eq!(types["explicit"], DataType::Boolean);
    assert_eq!(types["album__release_date"], DataType::Date32);
    assert_eq!(types["popularity"], DataType::Int64);
    assert!(matches!(types["available_markets"], DataType::List(_)));
    assert!(matches!(types["_ingested_at"], DataType::Timestamp(..)));

    let artists_of_track: Vec<_> = rows(&env.lake, "tracks__artists")
        .await
        .into_iter()
        .filter(|r| r["track_id"] == json!(id))
        .collect();
    let expected = track_doc["artists"].as_array().unwrap();
    assert_eq!(artists_of_track.len(), expected.len());
    for (i, artist) in expected.iter().enumerate() {
        let row = artists_of_track
            .iter()
            .find(|r| r["idx"] == json!(i))
            .unwrap();
        assert_eq!(row["id"], artist["id"]);
        assert_eq!(row["name"], artist["name"]);
        assert_eq!(
            row["external_urls__spotify"],
            artist["external_urls"]["spotify"]
        );
    }

    // Albums: month precision parsed to the first of the month, unicode kept.
    let albums_doc = fixture("albums_several_month_precision_unicode.json");
    let album_doc = &albums_doc["albums"][0];
    let albums = rows(&env.lake, "albums").await;
    let album = find(&albums, "id", album_doc["id"].as_str().unwrap());
    assert_eq!(album["name"], album_doc["name"]);
    assert_eq!(
        album["release_date_precision"],
        album_doc["release_date_precision"]
    );
    let raw_date = album_doc["release_date"].as_str().unwrap();
    let expected_date = match raw_date.len() {
        4 => format!("{raw_date}-01-01"),
        7 => format!("{raw_date}-01"),
        _ => raw_date.to_string(),
    };
    assert_eq!(album["release_date"], json!(expected_date));
    let page_tracks: Vec<_> = rows(&env.lake, "albums__tracks__items")
        .await
        .into_iter()
        .filter(|r| r["album_id"] == album_doc["id"])
        .collect();
    assert_eq!(
        page_tracks.len(),
        album_doc["tracks"]["items"].as_array().unwrap().len()
    );
    let grandchildren: Vec<_> = rows(&env.lake, "albums__tracks__items__artists")
        .await
        .into_iter()
        .filter(|r| r["album_id"] == album_doc["id"] && r["tracks__items_idx"] == json!(0))
        .collect();
    assert_eq!(
        grandchildren.len(),
        album_doc["tracks"]["items"][0]["artists"]
            .as_array()
            .unwrap()
            .len()
    );

    // Artists: followers renamed and typed, genres a child table of values.
    let artist_doc = fixture("artist_full.json");
    let artists = rows(&env.lake, "artists").await;
    let artist = find(&artists, "id", artist_doc["id"].as_str().unwrap());
    assert_eq!(artist["followers"], artist_doc["followers"]["total"]);
    assert!(!artist.contains_key("followers__href"));
    let genres: Vec<Value> = rows(&env.lake, "artists__genres")
        .await
        .into_iter()
        .filter(|r| r["artist_id"] == artist_doc["id"])
        .map(|r| r["value"].clone())
        .collect();
    let mut expected: Vec<Value> = artist_doc["genres"].as_array().unwrap().clone();
    expected.sort_by_key(|v| v.to_string());
    let mut got = genres;
    got.sort_by_key(|v| v.to_string());
    assert_eq!(got, expected);

    // Audio features: declared floats, a null entry in the response skipped.
    let features = rows(&env.lake, "audio_features").await;
    let recorded = objects(fixture("audio_features_several_with_null.json"));
    assert_eq!(features.len(), recorded.len());
    let f = find(&features, "id", recorded[0]["id"].as_str().unwrap());
    assert_eq!(f["tempo"].as_f64(), recorded[0]["tempo"].as_f64());
    assert_eq!(f["key"], recorded[0]["key"]);

    // A second run has nothing new.
    let again = env.layers(false).await;
    for report in again.values() {
        assert_eq!(report.version, None, "{report:?}");
    }
}

#[tokio::test]
async fn development_mode_responses_flatten_with_the_removed_fields_null() {
    let env = env().await;
    land_fixtures(&env, true).await;
    let reports = env.layers(false).await;
    for (table, report) in &reports {
        assert_eq!(report.drift.quarantined, 0, "{table}: {report:?}");
    }
    let tracks = rows(&env.lake, "tracks").await;
    assert!(!tracks.is_empty());
    for track in &tracks {
        assert_eq!(track["popularity"], Value::Null);
        assert_eq!(track["isrc"], Value::Null);
        assert!(!track.contains_key("available_markets"));
    }
    let types = types(&env.lake, "tracks").await;
    assert_eq!(
        types["popularity"],
        DataType::Int64,
        "declared, so typed even when absent"
    );
    let artists = rows(&env.lake, "artists").await;
    for artist in &artists {
        assert_eq!(artist["followers"], Value::Null);
    }
    let albums = rows(&env.lake, "albums").await;
    for album in &albums {
        assert_eq!(album["label"], Value::Null);
        assert_eq!(album["upc"], Value::Null);
    }
}

/// Every table of a family, its rows by table name.
async fn family(lake: &Lake, def: &SilverTable) -> BTreeMap<String, Vec<BTreeMap<String, Value>>> {
    let snapshot = lake
        .table(silver::LAYER, &def.name)
        .snapshot()
        .await
        .unwrap();
    let recorded: silver::Recorded =
        serde_json::from_value(snapshot.properties["schema"].clone()).unwrap();
    let mut names: Vec<String> = silver::shapes(def, &recorded)
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    names.push(format!("{}_quarantine", def.name));
    let mut out = BTreeMap::new();
    for name in names {
        out.insert(name.clone(), rows(lake, &name).await);
    }
    out
}

fn silver_def(name: &str) -> SilverTable {
    silver_defs().into_iter().find(|d| d.name == name).unwrap()
}

fn bronze_def(name: &str) -> BronzeTable {
    bronze_defs().into_iter().find(|d| d.name == name).unwrap()
}

fn song(id: &str, tempo: Value, score: Value, extra: Option<(&str, Value)>) -> (String, Value) {
    let mut doc = json!({
        "id": id,
        "name": format!("Song {id}"),
        "tempo_label": tempo,
        "score": score,
        "artists": [{"id": "a1", "name": "Ánna"}, {"id": "a2", "name": "Bo"}],
    });
    if let Some((key, value)) = extra {
        doc[key] = value;
    }
    (id.to_string(), doc)
}

#[tokio::test]
async fn a_type_change_mid_history_quarantines_exactly_those_rows() {
    let env = env().await;
    let ids: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    env.land(
        Collection::Tracks,
        ids.iter()
            .map(|id| song(id, json!(3), json!(1), None))
            .collect(),
    )
    .await;
    let first = env.layers(false).await;
    assert_eq!(first["tracks"].drift.quarantined, 0);

    env.land(
        Collection::Tracks,
        vec![
            song("t1", json!("fast"), json!(1), None),
            song("t2", json!("slow"), json!(1), None),
            song("t3", json!("fast"), json!(1), None),
            song("t4", json!(4), json!(2.5), None),
            song("t5", json!(3), json!(1), Some(("mood", json!("calm")))),
        ],
    )
    .await;
    let report = env.layers(false).await.remove("tracks").unwrap();
    assert_eq!(report.mode, "incremental");
    assert_eq!(report.keys_changed, 5);
    assert_eq!(report.passes, 1);
    assert_eq!(report.drift.quarantined, 3, "{report:?}");
    assert_eq!(
        report.drift.columns_widened,
        vec!["tracks.score: int → float"]
    );
    assert_eq!(report.drift.columns_added, vec!["tracks.mood: string"]);

    let quarantined = rows(&env.lake, "tracks_quarantine").await;
    let keys: Vec<&Value> = quarantined.iter().map(|r| &r["id"]).collect();
    assert_eq!(keys, vec![&json!("t1"), &json!("t2"), &json!("t3")]);
    for row in &quarantined {
        let reason = row["reason"].as_str().unwrap();
        assert!(
            reason.contains("`tempo_label` is int, found \""),
            "{reason}"
        );
        let doc: Value = serde_json::from_str(row["doc"].as_str().unwrap()).unwrap();
        assert_eq!(doc["id"], row["id"], "the whole version is kept");
    }
    let tracks = rows(&env.lake, "tracks").await;
    assert_eq!(tracks.len(), 7);
    assert_eq!(find(&tracks, "id", "t4")["score"], json!(2.5));
    assert_eq!(
        find(&tracks, "id", "t0")["score"],
        json!(1.0),
        "old files widened"
    );
    assert_eq!(find(&tracks, "id", "t5")["mood"], json!("calm"));
    assert_eq!(find(&tracks, "id", "t0")["mood"], Value::Null);
    let artists = rows(&env.lake, "tracks__artists").await;
    assert_eq!(
        artists.len(),
        14,
        "the quarantined tracks' artists are gone too"
    );

    // A full rebuild decides the same: the type that came first wins, even
    // though both kinds are new to it (it takes a second pass).
    let def = silver_def("tracks");
    let incremental = family(&env.lake, &def).await;
    let full = env.silver(&def, &bronze_def("tracks"), true).await;
    assert_eq!(full.passes, 2);
    assert_eq!(full.drift.quarantined, 3);
    assert_eq!(family(&env.lake, &def).await, incremental);
}

#[tokio::test]
async fn incremental_runs_equal_a_rebuild_and_stale_versions_change_nothing() {
    let env = env().await;
    let def = silver_def("tracks");
    let source = bronze_def("tracks");
    let ids: Vec<String> = (0..60).map(|i| format!("t{i:03}")).collect();
    env.land(
        Collection::Tracks,
        ids.iter()
            .map(|id| song(id, json!(1), json!(1), None))
            .collect(),
    )
    .await;
    env.layers(false).await;
    for round in 2..5 {
        let changed: Vec<(String, Value)> = ids
            .iter()
            .step_by(round * 3)
            .map(|id| song(id, json!(round), json!(round), None))
            .chain([song(&format!("new{round}"), json!(1), json!(1), None)])
            .collect();
        let expected = changed.len() as u64;
        env.land(Collection::Tracks, changed).await;
        let report = env.layers(false).await.remove("tracks").unwrap();
        assert_eq!(report.keys_changed, expected);
        assert_eq!(report.tables["tracks"], 60 + round as u64 - 1);
    }
    // A new version without artists takes the old artists' rows away.
    let (id, mut lonely) = song("t001", json!(9), json!(9), None);
    lonely["artists"] = json!([]);
    env.land(Collection::Tracks, vec![(id, lonely)]).await;
    env.layers(false).await;
    let incremental = family(&env.lake, &def).await;
    assert!(
        !incremental["tracks__artists"]
            .iter()
            .any(|r| r["track_id"] == json!("t001"))
    );
    assert_eq!(
        find(&incremental["tracks"], "id", "t000")["tempo_label"],
        json!(4)
    );

    // Rewriting a bronze interval re-reads old versions: none may win.
    let bronze = Bronze::new(env.store.clone(), env.lake.clone(), env.shared_clock());
    bronze
        .run(
            &source,
            Extract::Interval {
                from: t0() - TimeDelta::days(1),
                to: t0() + TimeDelta::days(1),
            },
            "bronze-rewrite",
        )
        .await
        .unwrap();
    let report = env.silver(&def, &source, false).await;
    assert!(report.bronze_files_read > 0);
    assert_eq!(report.keys_changed, 0, "{report:?}");
    assert_eq!(family(&env.lake, &def).await, incremental);

    let rebuilt = env.silver(&def, &source, true).await;
    assert_eq!(rebuilt.mode, "full_refresh");
    assert_eq!(family(&env.lake, &def).await, incremental);
}

/// Enough rows for every worker to flatten some (a worker takes 16,384
/// bronze rows at a time): each table still comes out as one file, as its
/// rows fit in one, whichever worker flattened them.
#[tokio::test]
async fn the_workers_write_each_table_into_one_file_when_it_fits() {
    let env = env().await;
    let def = silver_def("tracks");
    let songs: Vec<(String, Value)> = (0..40_000_usize)
        .map(|i| {
            let extra = i.is_multiple_of(7).then(|| ("explicit", json!(true)));
            song(&format!("t{i:05}"), json!(i), json!(1), extra)
        })
        .collect();
    env.land(Collection::Tracks, songs).await;
    let report = env.layers(true).await.remove("tracks").unwrap();
    assert_eq!(report.tables["tracks"], 40_000);
    for table in ["tracks", "tracks__artists"] {
        let snapshot = env.lake.table("silver", table).snapshot().await.unwrap();
        assert_eq!(snapshot.files.len(), 1, "{table}: {:?}", snapshot.files);
    }
    let family = family(&env.lake, &def).await;
    assert_eq!(family["tracks__artists"].len(), 80_000);
    for row in &family["tracks"] {
        let i: usize = row["id"].as_str().unwrap()[1..].parse().unwrap();
        let explicit = if i.is_multiple_of(7) {
            json!(true)
        } else {
            Value::Null
        };
        assert_eq!(row["explicit"], explicit, "{row:?}");
        assert_eq!(row["tempo_label"], json!(i), "{row:?}");
    }
}

#[tokio::test]
async fn hostile_documents_are_flattened_or_quarantined_with_a_reason() {
    let env = env().await;
    let mut deep = json!("bottom");
    for _ in 0..100 {
        deep = json!({ "d": deep });
    }
    let long = "ü".repeat(1 << 20);
    env.land(
        Collection::Tracks,
        vec![
            ("deep".into(), json!({"id": "deep", "nest": deep})),
            (
                "odd".into(),
                json!({
                    "id": "odd",
                    "long": long,
                    "名前": "ビョーク",
                    "a.b": 1,
                    "CamelCase": true,
                    "idx": "not the position",
                    "empty": [],
                    "holes": [null, {"x": 1}, null],
                    "nested": [[1, 2], [], [3]],
                    "nothing": null,
                    "blank": {},
                }),
            ),
        ],
    )
    .await;
    let report = env.layers(false).await.remove("tracks").unwrap();
    assert_eq!(report.drift.quarantined, 1);
    let quarantined = rows(&env.lake, "tracks_quarantine").await;
    assert_eq!(quarantined[0]["id"], json!("deep"));
    assert!(
        quarantined[0]["reason"]
            .as_str()
            .unwrap()
            .contains("64 levels")
    );

    let tracks = rows(&env.lake, "tracks").await;
    let odd = find(&tracks, "id", "odd");
    assert_eq!(odd["long"].as_str().unwrap().len(), long.len());
    let value_of = |prefix: &str| {
        odd.iter()
            .find(|(k, _)| k.starts_with(prefix) && k.len() == prefix.len() + 5)
            .unwrap_or_else(|| panic!("no column for {prefix} in {:?}", odd.keys()))
            .1
            .clone()
    };
    assert_eq!(value_of("c"), json!("ビョーク"));
    assert_eq!(value_of("a_b"), json!(1));
    assert_eq!(value_of("camelcase"), json!(true));
    assert_eq!(odd["nothing"], Value::Null);
    let holes = rows(&env.lake, "tracks__holes").await;
    assert_eq!(holes.len(), 3, "null entries keep their positions");
    assert_eq!(holes[1]["x"], json!(1));
    assert!(rows(&env.lake, "tracks__empty").await.is_empty());
    let inner = rows(&env.lake, "tracks__nested__items").await;
    let mut values: Vec<(i64, i64, Value)> = inner
        .iter()
        .map(|r| {
            (
                r["nested_idx"].as_i64().unwrap(),
                r["idx"].as_i64().unwrap(),
                r["value"].clone(),
            )
        })
        .collect();
    values.sort_by_key(|v| (v.0, v.1));
    assert_eq!(
        values,
        vec![(0, 0, json!(1)), (0, 1, json!(2)), (2, 0, json!(3))]
    );
}

// ---- property: nothing lost, reruns identical ---------------------------------

/// A random document whose keys say their type (`s…` text, `i…` int, `f…`
/// float, `b…` bool, `n…` null, `o…` object, `a…` array of objects, `l…`
/// array of ints, `m…` array of arrays), so no path changes type and every
/// version must flatten.
fn random_doc(rng: &mut soundlake::rng::Rng, depth: u32) -> Value {
    let mut doc = serde_json::Map::new();
    let kinds: &[char] = if depth >= 3 {
        &['s', 'i', 'f', 'b', 'n']
    } else {
        &['s', 'i', 'f', 'b', 'n', 'o', 'a', 'l', 'm']
    };
    for _ in 0..rng.below(6) {
        let kind = kinds[rng.below(kinds.len() as u64) as usize];
        let key = format!("{kind}{}", rng.below(3));
        let value = match kind {
            's' => {
                let texts = ["", "plain", "Sigur Rós", "日本語 🎵", "\"quoted\"\n\\", "x"];
                let text = texts[rng.below(texts.len() as u64) as usize];
                json!(text.repeat(1 + rng.below(3) as usize))
            }
            'i' => json!([0i64, -1, 42, i64::MAX, i64::MIN][rng.below(5) as usize]),
            'f' => json!([0.5f64, -2.25, 1e-7, 3.0e10][rng.below(4) as usize]),
            'b' => json!(rng.below(2) == 1),
            'n' => Value::Null,
            'o' => random_doc(rng, depth + 1),
            'a' => Value::Array(
                (0..rng.below(4))
                    .map(|_| {
                        if rng.below(5) == 0 {
                            Value::Null
                        } else {
                            random_doc(rng, depth + 1)
                        }
                    })
                    .collect(),
            ),
            'l' => Value::Array((0..rng.below(4)).map(|i| json!(i * 7)).collect()),
            _ => Value::Array(
                (0..rng.below(3))
                    .map(|_| {
                        Value::Array((0..rng.below(3)).map(|i| json!(format!("e{i}"))).collect())
                    })
                    .collect(),
            ),
        };
        doc.insert(key, value);
    }
    Value::Object(doc)
}

/// Every non-null scalar of a document as (position chain, path, value),
/// positions and paths as silver's walk forms them.
fn scalars(
    value: &Value,
    path: &str,
    table: &str,
    chain: &mut Vec<i64>,
    out: &mut Vec<(Vec<i64>, String, Value)>,
) {
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                scalars(v, &p, table, chain, out);
            }
        }
        Value::Array(items) => {
            let child = if path == table {
                format!("{path}[]")
            } else {
                path.to_string()
            };
            for (i, item) in items.iter().enumerate() {
                chain.push(i as i64);
                scalars(item, &child, &child, chain, out);
                chain.pop();
            }
        }
        scalar => out.push((chain.clone(), path.to_string(), scalar.clone())),
    }
}

/// The same triples read back from a family's tables.
async fn scalars_in_silver(
    lake: &Lake,
    def: &SilverTable,
    key: &str,
) -> Vec<(Vec<i64>, String, Value)> {
    let snapshot = lake
        .table(silver::LAYER, &def.name)
        .snapshot()
        .await
        .unwrap();
    let recorded: silver::Recorded =
        serde_json::from_value(snapshot.properties["schema"].clone()).unwrap();
    let mut out = Vec::new();
    for shape in silver::shapes(def, &recorded).unwrap() {
        let keys = shape.schema.fields().len()
            - shape.columns.len()
            - usize::from(shape.path.is_empty()) * 2;
        for row in rows(lake, &shape.name).await {
            let values: Vec<&Value> = shape
                .schema
                .fields()
                .iter()
                .map(|f| &row[f.name()])
                .collect();
            if values[0] != &json!(key) {
                continue;
            }
            let chain: Vec<i64> = values[1..keys]
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect();
            for column in &shape.columns {
                let value = &row[&column.name];
                if !value.is_null() {
                    out.push((chain.clone(), column.path.clone(), value.clone()));
                }
            }
        }
    }
    out
}

fn sorted(mut v: Vec<(Vec<i64>, String, Value)>) -> Vec<(Vec<i64>, String, Value)> {
    v.sort_by_key(|t| format!("{t:?}"));
    v
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 12, ..Default::default() })]

    #[test]
    fn random_documents_lose_no_value_and_reruns_are_identical(seed in proptest::prelude::any::<u64>()) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let env = env().await;
            let mut rng = soundlake::rng::Rng::seeded(seed);
            let docs: Vec<(String, Value)> = (0..20)
                .map(|i| {
                    let mut doc = random_doc(&mut rng, 0);
                    doc["id"] = json!(format!("r{i}"));
                    (format!("r{i}"), doc)
                })
                .collect();
            env.land(Collection::Tracks, docs.clone()).await;
            let report = env.layers(false).await.remove("tracks").unwrap();
            assert_eq!(report.drift.quarantined, 0, "{report:?}");
            let def = silver_def("tracks");
            for (id, doc) in &docs {
                let mut expected = Vec::new();
                let mut body = doc.clone();
                body.as_object_mut().unwrap().remove("id");
                scalars(&body, "", "", &mut Vec::new(), &mut expected);
                let found = scalars_in_silver(&env.lake, &def, id).await;
                assert_eq!(sorted(found), sorted(expected), "document {id}: {doc}");
            }
            let before = family(&env.lake, &def).await;
            env.silver(&def, &bronze_def("tracks"), true).await;
            assert_eq!(family(&env.lake, &def).await, before, "a rebuild gives identical rows");
        });
    }
}

// ---- the command: kill -9 and bad input -------------------------------------

/// `soundlake silver tracks --json` as a process, small files so a run has
/// many kill points.
fn silver_command(landing_url: &str, lake: &Path, definitions: &Path) -> std::process::Command {
    let mut cmd = crate::support::soundlake(definitions);
    cmd.args(["silver", "tracks", "--json"])
        .env("SOUNDLAKE__LANDING__URL", landing_url)
        .env("SOUNDLAKE__LAKE__URL", format!("file://{}", lake.display()))
        .env("SOUNDLAKE__LAKE__FILE_MIB", "1")
        .env("SOUNDLAKE__LAKE__ROW_GROUP_MIB", "1");
    cmd
}

#[tokio::test]
async fn killed_at_any_point_and_rerun_silver_converges_to_the_same_rows() {
    let (dir, env) = env_on_files().await;
    let docs: Vec<(String, Value)> = (0..6000)
        .map(|i| {
            let id = format!("k{i:05}");
            let mut doc = song(&id, json!(i % 7), json!(i), None).1;
            let mut rng = soundlake::rng::Rng::derived(7, &id);
            let lyrics: String = (0..4000)
                .map(|_| char::from(b'a' + rng.below(26) as u8))
                .collect();
            doc["lyrics"] = json!(lyrics);
            doc["tags"] = json!([format!("t{}", i % 5), format!("u{}", i % 3)]);
            (id, doc)
        })
        .collect();
    env.land(Collection::Tracks, docs).await;
    let bronze = Bronze::new(env.store.clone(), env.lake.clone(), env.shared_clock());
    bronze
        .run(&bronze_def("tracks"), Extract::Incremental, "b")
        .await
        .unwrap();

    let landing_url = env.store.describe();
    let root = dir.path().join("silver/tracks");
    let points: [(PathBuf, &str, usize); 2] = [
        (root.clone(), ".parquet", 2),
        // Version 0 creates the table with the first data.
        (root.join("_delta_log"), ".json", 1),
    ];
    for (watched, suffix, count) in &points {
        let killed = kill_when(
            &mut silver_command(&landing_url, dir.path(), self::root()),
            watched,
            suffix,
            *count,
        );
        if *suffix == ".parquet" {
            assert!(killed, "killed while writing");
            let root = env
                .lake
                .table(silver::LAYER, "tracks")
                .snapshot()
                .await
                .unwrap();
            assert_eq!(
                (root.exists(), root.files.len()),
                (false, 0),
                "nothing visible before a commit"
            );
        }
    }

    let out = silver_command(&landing_url, dir.path(), self::root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["tables"][0]["tables"]["tracks"],
        json!(6000),
        "{report}"
    );
    let def = silver_def("tracks");
    let resumed = family(&env.lake, &def).await;
    assert_eq!(resumed["tracks__artists"].len(), 12_000);
    assert_eq!(resumed["tracks__tags"].len(), 12_000);
    // The killed runs' files are in no version; vacuum deletes them.
    let table = env.lake.table(silver::LAYER, "tracks");
    let deleted = table
        .vacuum(chrono::TimeDelta::zero(), chrono::Utc::now(), false)
        .await
        .unwrap();
    assert!(!deleted.is_empty(), "the killed runs left files");
    assert_eq!(
        files_ending(&root, ".parquet"),
        table.snapshot().await.unwrap().files.len(),
        "only the committed files are left"
    );
    assert_eq!(
        family(&env.lake, &def).await,
        resumed,
        "vacuum changes no row"
    );

    env.silver(&def, &bronze_def("tracks"), true).await;
    assert_eq!(
        family(&env.lake, &def).await,
        resumed,
        "the same rows as a clean rebuild"
    );
}

/// A bronze file whose documents no longer decode (its footer and keys
/// still do, so the run gets as far as flattening it) fails the run with
/// the file's name and a fix, and commits nothing.
#[tokio::test]
async fn a_bronze_file_damaged_under_its_documents_fails_the_run_naming_it() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let (dir, env) = env_on_files().await;
    let docs = (0..3000)
        .map(|i| song(&format!("k{i:05}"), json!(i % 7), json!(i), None))
        .collect();
    env.land(Collection::Tracks, docs).await;
    Bronze::new(env.store.clone(), env.lake.clone(), env.shared_clock())
        .run(&bronze_def("tracks"), Extract::Incremental, "b")
        .await
        .unwrap();
    let bronze = env
        .lake
        .table(bronze::LAYER, "tracks")
        .snapshot()
        .await
        .unwrap();
    let written = bronze.files.first().expect("bronze wrote a file");
    let file = dir.path().join("bronze/tracks").join(&written.path);
    let (start, len) = {
        let reader = SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
        let group = reader.metadata().row_group(0);
        let doc = (0..group.num_columns())
            .find(|&c| group.column(c).column_descr().name() == "doc")
            .expect("bronze keeps the document");
        group.column(doc).byte_range()
    };
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[start as usize..(start + len) as usize].fill(0xA5);
    std::fs::write(&file, bytes).unwrap();

    let err = Silver::new(env.store.clone(), env.lake.clone(), env.shared_clock())
        .run(
            &silver_def("tracks"),
            &bronze_def("tracks"),
            Scope::New,
            "silver-test",
        )
        .await
        .expect_err("a file that does not decode fails the run");
    let message = err.to_string();
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(message.contains(&*name), "{message}");
    assert!(message.contains("--full-refresh"), "{message}");
    let tracks = env
        .lake
        .table(silver::LAYER, "tracks")
        .snapshot()
        .await
        .unwrap();
    assert!(!tracks.exists(), "nothing committed");
}

#[tokio::test]
async fn a_run_that_dies_between_a_child_commit_and_the_root_commit_converges() {
    use crate::lake::Dying;

    let healthy: Arc<dyn object_store::ObjectStore> =
        Arc::new(object_store::memory::InMemory::new());
    let lake_on = |store: Arc<dyn object_store::ObjectStore>| {
        Lake::with_store(
            store,
            "memory://",
            &soundlake::lake::LakeSettings::default(),
        )
        .unwrap()
    };
    let mut env = env().await;
    env.lake = lake_on(healthy.clone());
    let ids: Vec<String> = (0..50).map(|i| format!("t{i:02}")).collect();
    env.land(
        Collection::Tracks,
        ids.iter()
            .map(|id| song(id, json!(1), json!(1), None))
            .collect(),
    )
    .await;
    env.layers(false).await;
    env.land(
        Collection::Tracks,
        ids.iter()
            .step_by(5)
            .map(|id| song(id, json!(2), json!(2), None))
            .collect(),
    )
    .await;
    let def = silver_def("tracks");
    let source = bronze_def("tracks");
    Bronze::new(env.store.clone(), env.lake.clone(), env.shared_clock())
        .run(&source, Extract::Incremental, "b")
        .await
        .unwrap();

    // The children commit, then the root's commit record cannot be written.
    let dying: Arc<dyn object_store::ObjectStore> = Arc::new(Dying(healthy.clone(), |op, path| {
        op == "put" && path.as_ref().starts_with("silver/tracks/_delta_log/")
    }));
    let err = Silver::new(env.store.clone(), lake_on(dying), env.shared_clock())
        .run(&def, &source, Scope::New, "dies")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("the writer died here"), "{err}");
    let children = env
        .lake
        .table(silver::LAYER, "tracks__artists")
        .snapshot()
        .await
        .unwrap();
    assert_eq!(children.version, 1, "the child table committed");
    assert_eq!(
        env.lake
            .table(silver::LAYER, "tracks")
            .snapshot()
            .await
            .unwrap()
            .version,
        0,
        "the root stays at the first run's version"
    );

    let report = env.silver(&def, &source, false).await;
    assert_eq!(report.keys_changed, 10, "the same keys are re-derived");
    let resumed = family(&env.lake, &def).await;
    assert_eq!(resumed["tracks__artists"].len(), 100);
    env.silver(&def, &source, true).await;
    assert_eq!(family(&env.lake, &def).await, resumed);
}

#[test]
fn bad_definitions_and_arguments_exit_2_with_the_place_and_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let definitions = dir.path().join("defs");
    std::fs::create_dir_all(definitions.join("silver")).unwrap();
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    };
    copy(&root().join("bronze"), &definitions.join("bronze"));
    std::fs::write(
        definitions.join("silver/tracks.toml"),
        "source = \"tracks\"\n[columns.name]\ntype = \"text\"\n",
    )
    .unwrap();
    std::fs::write(
        definitions.join("silver/songs.toml"),
        "source = \"songs\"\n",
    )
    .unwrap();
    let landing = format!("embedded://{}/landing.db", dir.path().display());
    let run = |cmd: &mut std::process::Command| {
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };

    let (code, err) = run(&mut silver_command(&landing, dir.path(), &definitions));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("tracks.toml: line 3, column 8: unknown variant `text`"),
        "{err}"
    );
    assert!(
        err.contains("songs.toml: source \"songs\" is not a bronze table"),
        "{err}"
    );

    let (code, err) = run(silver_command(&landing, dir.path(), root()).arg("songs"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no silver table \"songs\"") && err.contains("tracks"),
        "{err}"
    );

    std::fs::remove_dir_all(definitions.join("silver")).unwrap();
    let (code, err) = run(&mut silver_command(&landing, dir.path(), &definitions));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("silver definitions folder"), "{err}");
}

/// The tests that need the real servers or Python readers `tests/run.sh`
/// installs.
#[cfg(feature = "servers")]
mod with_servers {
    use super::*;

    #[tokio::test]
    async fn duckdb_and_pyarrow_read_silver_with_the_same_rows_and_types() {
        let (dir, env) = super::env_on_files().await;
        land_fixtures(&env, false).await;
        env.layers(false).await;

        let tables = ["tracks", "tracks__artists", "albums", "artists__genres"];
        let mut args = vec![dir.path().as_os_str()];
        args.extend(tables.iter().map(std::ffi::OsStr::new));
        let seen = crate::servers::python("tests/readers/read_silver.py", args);
        let seen: Value = serde_json::from_str(&seen).unwrap();
        for table in tables {
            let ours = rows(&env.lake, table).await.len();
            assert_eq!(seen[table]["duckdb_rows"], json!(ours), "{table}");
            assert_eq!(seen[table]["pyarrow_rows"], json!(ours), "{table}");
        }
        let duck = &seen["tracks"]["duckdb_types"];
        assert_eq!(duck["album__release_date"], json!("DATE"));
        assert_eq!(duck["available_markets"], json!("VARCHAR[]"));
        assert_eq!(duck["popularity"], json!("BIGINT"));
        assert_eq!(duck["_ingested_at"], json!("TIMESTAMP WITH TIME ZONE"));
        assert_eq!(
            seen["tracks"]["pyarrow_types"]["_ingested_at"],
            json!("timestamp[us, tz=UTC]")
        );

        // The join an analyst writes first, against soundlake's own rows.
        let tracks = rows(&env.lake, "tracks").await;
        let artists = rows(&env.lake, "tracks__artists").await;
        let mut expected: Vec<Value> = tracks
            .iter()
            .filter_map(|t| {
                let n = artists.iter().filter(|a| a["track_id"] == t["id"]).count();
                (n > 0).then(|| {
                    let markets = t["available_markets"].as_array().map(|m| json!(m.len()));
                    json!([
                        t["id"],
                        t["album__release_date"],
                        markets.unwrap_or(Value::Null),
                        n
                    ])
                })
            })
            .collect();
        expected.sort_by_key(|v| v[0].as_str().unwrap().to_string());
        assert_eq!(seen["tracks_with_artists"], Value::Array(expected));
    }
}
