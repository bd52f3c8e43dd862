//! `soundlake import`: every accepted shape, and malformed, missing, huge
//! and hostile input.

use std::path::{Path, PathBuf};

use serde_json::json;
use soundlake::clock::{SharedClock, VirtualClock};
use soundlake::import::{ImportReport, WRITE_BYTES, WRITE_DOCUMENTS};
use soundlake::landing::{self, Collection, SharedStore, UpsertCounts};

use crate::support::t0;

/// `soundlake::import::import` with no progress shown.
async fn import(
    store: &SharedStore,
    collection: Collection,
    path: &Path,
    strict: bool,
    run_id: &str,
) -> soundlake::Result<ImportReport> {
    let hidden = soundlake::progress::Bar::default();
    soundlake::import::import(store, collection, path, strict, run_id, &hidden).await
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/spotify");

struct Env {
    dir: tempfile::TempDir,
    store: SharedStore,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let clock: SharedClock = VirtualClock::manual(t0());
    let url = format!("embedded://{}/landing.db", dir.path().display());
    let store = landing::open(&url, clock).await.unwrap();
    Env { dir, store }
}

impl Env {
    fn file(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

#[tokio::test]
async fn saved_api_responses_load_like_the_crawl_landed_them() {
    let e = env().await;
    let r = import(
        &e.store,
        Collection::Tracks,
        &fixture("tracks_several_with_null.json"),
        false,
        "imp",
    )
    .await
    .unwrap();
    assert_eq!(r.format, "json");
    assert!(r.rejects.is_empty(), "{:?}", r.rejects);
    let raw: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("tracks_several_with_null.json")).unwrap(),
    )
    .unwrap();
    let expected: Vec<&serde_json::Value> = raw["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t.is_null())
        .collect();
    assert_eq!(r.loaded.new as usize, expected.len());
    let first = expected[0];
    let stored = e
        .store
        .get(Collection::Tracks, first["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(stored.doc == *first, "landed exactly as returned");
    assert_eq!(stored.run_id, "imp");
    assert_eq!(stored.endpoint, "import:tracks_several_with_null.json");

    // The same file again: nothing new.
    let again = import(
        &e.store,
        Collection::Tracks,
        &fixture("tracks_several_with_null.json"),
        false,
        "imp2",
    )
    .await
    .unwrap();
    assert_eq!(
        again.loaded,
        UpsertCounts {
            new: 0,
            changed: 0,
            unchanged: expected.len() as u64
        }
    );
}

#[tokio::test]
async fn ndjson_arrays_pages_and_single_objects_are_accepted() {
    let e = env().await;
    let ndjson = e.file(
        "artists.ndjson",
        "{\"id\":\"a1\",\"type\":\"artist\",\"name\":\"Ä\"}\n\n{\"artists\":[{\"id\":\"a2\",\"type\":\"artist\"},null]}\r\n{\"artists\":{\"items\":[{\"id\":\"a3\",\"type\":\"artist\"}]}}\n",
    );
    let r = import(&e.store, Collection::Artists, &ndjson, true, "r")
        .await
        .unwrap();
    assert_eq!((r.format, r.loaded.new), ("ndjson", 3));

    let array = e.file(
        "albums.json",
        "[\n {\"id\": \"b1\", \"type\": \"album\"},\n {\"id\": \"b2\"}\n]",
    );
    let r = import(&e.store, Collection::Albums, &array, true, "r")
        .await
        .unwrap();
    assert_eq!((r.format, r.loaded.new), ("json", 2));

    let pretty = e.file(
        "one.json",
        "{\n  \"id\": \"t1\",\n  \"type\": \"track\"\n}\n",
    );
    let r = import(&e.store, Collection::Tracks, &pretty, true, "r")
        .await
        .unwrap();
    assert_eq!((r.format, r.loaded.new), ("json", 1));

    let page = e.file(
        "page.json",
        r#"{"items": [{"id": "t2"}, {"id": "t3"}], "next": null}"#,
    );
    let r = import(&e.store, Collection::Tracks, &page, true, "r")
        .await
        .unwrap();
    assert_eq!(r.loaded.new, 2);

    // One id twice in a file: the later copy wins, one version.
    let twice = e.file(
        "twice.ndjson",
        "{\"id\":\"t9\",\"v\":1}\n{\"id\":\"t9\",\"v\":2}\n",
    );
    import(&e.store, Collection::Tracks, &twice, false, "r")
        .await
        .unwrap();
    let t9 = e
        .store
        .get(Collection::Tracks, "t9")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((t9.doc["v"].clone(), t9.versions), (json!(2), 1));
}

#[tokio::test]
async fn malformed_lines_are_listed_by_number_and_strict_loads_nothing() {
    let e = env().await;
    let lines = [
        r#"{"id": "ok1", "type": "track"}"#,
        r#"{"id": "broken""#,
        r#"{"name": "no id"}"#,
        r#"{"id": 42}"#,
        r#"{"id": "wrong", "type": "album"}"#,
        r#"["not", "an", "object"]"#,
        r#"{"id": "ok2"}"#,
    ];
    let file = e.file("mixed.ndjson", lines.join("\n"));

    let err = import(&e.store, Collection::Tracks, &file, true, "r")
        .await
        .unwrap_err();
    let text = err.to_string();
    for line in ["line 2", "line 3", "line 4", "line 5", "line 6"] {
        assert!(text.contains(line), "{line} missing from: {text}");
    }
    assert!(
        text.contains("nothing loaded") && text.contains("without --strict"),
        "{text}"
    );
    assert_eq!(
        e.store.count(Collection::Tracks).await.unwrap(),
        0,
        "strict loads nothing"
    );

    let r = import(&e.store, Collection::Tracks, &file, false, "r")
        .await
        .unwrap();
    assert_eq!(r.loaded.new, 2);
    let places: Vec<&str> = r.rejects.iter().map(|r| r.place.as_str()).collect();
    assert_eq!(places, ["line 2", "line 3", "line 4", "line 5", "line 6"]);
    assert!(
        r.rejects[3].reason.contains("\"album\""),
        "{}",
        r.rejects[3].reason
    );
}

#[tokio::test]
async fn missing_empty_broken_and_hostile_files_get_clear_errors() {
    let e = env().await;
    let missing = e.dir.path().join("nope.json");
    let err = import(&e.store, Collection::Tracks, &missing, false, "r")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope.json"), "{err}");

    let empty = e.file("empty.json", "  \n\n");
    let err = import(&e.store, Collection::Tracks, &empty, false, "r")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");

    let truncated = e.file("cut.json", "[{\"id\": \"x\"},\n {\"id\": ");
    let err = import(&e.store, Collection::Tracks, &truncated, false, "r")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cut.json:2:") && err.contains("nothing loaded"),
        "{err}"
    );

    let binary = e.file("blob.bin", [0xff_u8, 0xfe, 0x00, 0x9c, b'\n', 0x80]);
    let err = import(&e.store, Collection::Tracks, &binary, false, "r")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("rejected"), "{err}");

    let err = import(&e.store, Collection::Searches, &empty, false, "r")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("import artists"), "{err}");

    // Deeply nested JSON is refused by the parser's depth limit, not a crash.
    let deep = e.file(
        "deep.ndjson",
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
    );
    let r = import(&e.store, Collection::Tracks, &deep, false, "r")
        .await
        .unwrap_err();
    assert!(r.to_string().contains("deep.ndjson:1:"), "{r}");
    assert_eq!(e.store.count(Collection::Tracks).await.unwrap(), 0);
}

/// `lines`, then one line longer than an import takes.
fn then_too_long(lines: String) -> String {
    format!(
        "{lines}{{\"id\":\"x\",\"pad\":\"{}\"}}\n",
        "y".repeat(65 << 20)
    )
}

#[tokio::test]
async fn a_huge_ndjson_file_streams_in_bounded_writes() {
    let e = env().await;
    let path = e.dir.path().join("huge.ndjson");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..25_000 {
            writeln!(
                f,
                r#"{{"id":"t{i}","type":"track","name":"{}"}}"#,
                "x".repeat(200)
            )
            .unwrap();
        }
    }
    let r = import(&e.store, Collection::Tracks, &path, true, "r")
        .await
        .unwrap();
    assert_eq!(r.loaded.new, 25_000);
    assert_eq!(e.store.count(Collection::Tracks).await.unwrap(), 25_000);

    // Two and a half writes' worth of good lines, then one too long: the
    // two whole writes before it are loaded, the one in flight included,
    // and nothing after.
    let good: String = (0..WRITE_DOCUMENTS * 5 / 2)
        .map(|i| format!("{{\"id\":\"u{i}\",\"type\":\"track\"}}\n"))
        .collect();
    let long = e.file("long.ndjson", then_too_long(good));
    let err = import(&e.store, Collection::Tracks, &long, false, "r")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("long.ndjson:{}", WRITE_DOCUMENTS * 5 / 2 + 1))
            && err.to_string().contains("MiB"),
        "{err}"
    );
    assert_eq!(
        e.store.count(Collection::Tracks).await.unwrap(),
        25_000 + 2 * WRITE_DOCUMENTS as u64
    );

    // Large documents make smaller writes: 80 of 1 MiB, then the line too
    // long; the two writes of 32 MiB before it are loaded.
    let before = e.store.count(Collection::Tracks).await.unwrap();
    let pad = "z".repeat(1 << 20);
    let large: String = (0..80)
        .map(|i| format!("{{\"id\":\"b{i}\",\"pad\":\"{pad}\"}}\n"))
        .collect();
    let long = e.file("large.ndjson", then_too_long(large));
    assert!(
        import(&e.store, Collection::Tracks, &long, false, "r")
            .await
            .is_err()
    );
    let per_write = (WRITE_BYTES >> 20) as u64;
    assert_eq!(
        e.store.count(Collection::Tracks).await.unwrap(),
        before + 2 * per_write
    );
}

#[tokio::test]
async fn album_track_pages_are_keyed_by_album_and_offset_and_bad_pages_say_why() {
    let e = env().await;
    let r = import(
        &e.store,
        Collection::AlbumTracks,
        &fixture("album_tracks_page.json"),
        true,
        "imp",
    )
    .await
    .unwrap();
    assert_eq!(r.loaded.new, 1);
    let page = e
        .store
        .get(Collection::AlbumTracks, "6akEvsycLGftJxYudPjmqK:0")
        .await
        .unwrap()
        .expect("keyed by the album its href names and its offset");
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("album_tracks_page.json")).unwrap())
            .unwrap();
    assert_eq!(page.doc, raw, "the page as saved");

    let page = |href: serde_json::Value, offset: serde_json::Value| {
        json!({"href": href, "offset": offset, "items": [], "limit": 50, "total": 0}).to_string()
    };
    let album = "https://api.spotify.com/v1/albums/abc/tracks?offset=50";
    let lines = [
        page(json!(album), json!(50)),
        page(json!(null), json!(0)),
        page(
            json!("https://api.spotify.com/v1/artists/abc/albums"),
            json!(0),
        ),
        page(json!("not a url"), json!(0)),
        page(json!(album), json!("fifty")),
        json!({"href": album, "offset": 100}).to_string(),
        "[1, 2]".to_string(),
    ];
    let file = e.file("pages.ndjson", lines.join("\n"));
    let r = import(&e.store, Collection::AlbumTracks, &file, false, "r")
        .await
        .unwrap();
    assert_eq!(r.loaded.new, 1);
    assert!(
        e.store
            .get(Collection::AlbumTracks, "abc:50")
            .await
            .unwrap()
            .is_some()
    );
    let rejects: Vec<(&str, &str)> = r
        .rejects
        .iter()
        .map(|r| (r.place.as_str(), r.reason.as_str()))
        .collect();
    let expected = [
        ("line 2", "no `href`"),
        ("line 3", "is not an album's track listing"),
        ("line 4", "is not an album's track listing"),
        ("line 5", "no whole-number `offset`"),
        ("line 6", "no `items` array"),
        ("line 7", "no `href`"),
    ];
    assert_eq!(rejects.len(), expected.len(), "{rejects:?}");
    for ((place, reason), (want_place, want)) in rejects.iter().zip(expected) {
        assert_eq!(*place, want_place);
        assert!(reason.contains(want), "{place}: {reason}");
    }
}
