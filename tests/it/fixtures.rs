//! The recorded responses in `tests/fixtures/spotify` against both sides:
//! the simulator must produce their shapes, and the client must take every
//! one of them as the API sent it (or refuse it with a typed error).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use soundlake::sim::{Canned, SimOptions};
use soundlake::spotify::ApiError;
use soundlake::spotify::WaitReason;
use soundlake::spotify::{ALL_GROUPS, AppMode, Endpoint};

use crate::support::{Harness, canned, names, raw_api};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spotify")
}

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(fixtures_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn items<'a>(v: &'a Value, pointer: &str) -> Vec<&'a Value> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter(|x| !x.is_null()).collect())
        .unwrap_or_default()
}

// ---- shapes ------------------------------------------------------------------

/// Keys whose presence depends on the request (`?market=`), not on the object.
const MARKET_DEPENDENT: [&str; 2] = ["available_markets", "is_playable"];
/// Keys the current schema requires (AlbumBase) that older recordings lack:
/// full albums without `total_tracks`, albums inside tracks without release
/// dates (reference/spotify-api.md §5.2).
const NEWER_THAN_RECORDINGS: [&str; 3] = ["total_tracks", "release_date", "release_date_precision"];

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Check `sim` against the recorded `examples` of the same position:
/// its keys are ones Spotify sends, it has every key all recordings have
/// (request-dependent ones aside; with `market` they may also appear where
/// the recordings, made without one, lack them), and values have the
/// recorded JSON types,
/// recursively. Problems are collected with their path.
fn same_shape(
    path: &str,
    sim: &Value,
    examples: &[&Value],
    market: bool,
    problems: &mut Vec<String>,
) {
    let recorded: Vec<&Value> = examples.iter().copied().filter(|e| !e.is_null()).collect();
    if recorded.is_empty() || sim.is_null() {
        return;
    }
    let kinds: BTreeSet<&str> = recorded.iter().map(|e| kind(e)).collect();
    if !kinds.contains(kind(sim)) {
        problems.push(format!(
            "{path}: simulator sends {}, Spotify {kinds:?}",
            kind(sim)
        ));
        return;
    }
    match sim {
        Value::Object(o) => {
            let objects: Vec<_> = recorded.iter().filter_map(|e| e.as_object()).collect();
            let union: BTreeSet<&String> = objects.iter().flat_map(|e| e.keys()).collect();
            for key in o.keys() {
                let requested = market && MARKET_DEPENDENT.contains(&key.as_str());
                if !union.contains(key)
                    && !NEWER_THAN_RECORDINGS.contains(&key.as_str())
                    && !requested
                {
                    problems.push(format!("{path}.{key}: not in any recorded response"));
                }
            }
            for key in &union {
                let everywhere = objects.iter().all(|e| e.contains_key(*key));
                if everywhere && !o.contains_key(*key) && !MARKET_DEPENDENT.contains(&key.as_str())
                {
                    problems.push(format!(
                        "{path}.{key}: every recording has it, the simulator not"
                    ));
                }
            }
            for (key, value) in o {
                let sub: Vec<&Value> = objects.iter().filter_map(|e| e.get(key)).collect();
                same_shape(&format!("{path}.{key}"), value, &sub, market, problems);
            }
        }
        Value::Array(a) => {
            let elements: Vec<&Value> = recorded
                .iter()
                .filter_map(|e| e.as_array())
                .flatten()
                .collect();
            for (i, element) in a.iter().enumerate().take(3) {
                same_shape(
                    &format!("{path}[{i}]"),
                    element,
                    &elements,
                    market,
                    problems,
                );
            }
        }
        _ => {}
    }
}

/// Recorded objects of each kind the simulator serves.
fn recorded_by_kind() -> BTreeMap<&'static str, Vec<Value>> {
    let mut m: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let mut add = |k, vs: Vec<&Value>| m.entry(k).or_default().extend(vs.into_iter().cloned());
    let artist_full = fixture("artist_full.json");
    add("artist", vec![&artist_full]);
    for (file, pointer) in [
        ("artists_several.json", "/artists"),
        ("search_artists_page.json", "/artists/items"),
        ("search_artists_small.json", "/artists/items"),
    ] {
        let v = fixture(file);
        add("artist", items(&v, pointer));
    }
    for file in [
        "album_full_year_precision.json",
        "album_full_with_label.json",
    ] {
        let v = fixture(file);
        add("album", vec![&v]);
    }
    for file in [
        "albums_several_month_precision_unicode.json",
        "albums_several_year_precision.json",
    ] {
        let v = fixture(file);
        add("album", items(&v, "/albums"));
    }
    for file in [
        "artist_albums_page.json",
        "artist_albums_page_with_markets.json",
    ] {
        let v = fixture(file);
        add("discography_page", vec![&v]);
    }
    for file in [
        "album_tracks_page.json",
        "album_tracks_page_preview_null.json",
    ] {
        let v = fixture(file);
        add("album_tracks_page", vec![&v]);
    }
    let track = fixture("track_full.json");
    add("track", vec![&track]);
    for (file, pointer) in [
        ("tracks_several.json", "/tracks"),
        ("tracks_several_with_null.json", "/tracks"),
        ("artist_top_tracks.json", "/tracks"),
        ("me_top_tracks_page_linked_from.json", "/items"),
    ] {
        let v = fixture(file);
        add("track", items(&v, pointer));
    }
    let single = fixture("audio_features_single.json");
    add("audio_features", vec![&single]);
    for file in [
        "audio_features_several.json",
        "audio_features_several_with_null.json",
    ] {
        let v = fixture(file);
        add("audio_features", items(&v, "/audio_features"));
    }
    let search = fixture("search_artists_page.json");
    add("search", vec![&search]);
    m
}

/// Objects of each kind from a simulator, fetched over HTTP.
async fn served_by_kind(mode: AppMode, market: Option<&str>) -> BTreeMap<&'static str, Vec<Value>> {
    let names = names(6);
    let h = Harness::start(SimOptions {
        names: names.clone(),
        mode,
        ..SimOptions::default()
    })
    .await;
    let (http, bearer) = raw_api(&h).await;
    let api = format!("{}/v1", h.sim.base_url());
    let get = |path: String| {
        let (http, bearer) = (http.clone(), bearer.clone());
        let market = market.map(|m| format!("market={m}"));
        async move {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = match market {
                Some(m) => format!("{path}{sep}{m}"),
                None => path,
            };
            let r = http.get(url).bearer_auth(bearer).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let c = h.sim.catalog();
    let mut m: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let search = get(format!("{api}/search?q={}&type=artist&limit=3", names[0])).await;
    m.entry("search").or_default().push(search);
    for (i, artist) in c.artists.iter().enumerate().take(6) {
        m.entry("artist")
            .or_default()
            .push(get(format!("{api}/artists/{}", artist.id)).await);
        let page = get(format!(
            "{api}/artists/{}/albums?include_groups={ALL_GROUPS}&limit=5",
            artist.id
        ))
        .await;
        m.entry("discography_page").or_default().push(page);
        let (album, _) = c.discography[i][0];
        let album_id = &c.albums[album].id;
        m.entry("album")
            .or_default()
            .push(get(format!("{api}/albums/{album_id}")).await);
        let tracks = get(format!("{api}/albums/{album_id}/tracks?limit=2")).await;
        m.entry("album_tracks_page").or_default().push(tracks);
        let track = c.albums[album].tracks.start;
        let track_id = &c.tracks[track].id;
        m.entry("track")
            .or_default()
            .push(get(format!("{api}/tracks/{track_id}")).await);
    }
    if mode == AppMode::Extended {
        let ids: Vec<&str> = c.tracks.iter().take(40).map(|t| t.id.as_str()).collect();
        let features = get(format!("{api}/audio-features?ids={}", ids.join(","))).await;
        let features: Vec<Value> = features["audio_features"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| !f.is_null())
            .cloned()
            .collect();
        m.insert("audio_features", features);
    }
    m
}

#[tokio::test]
async fn simulator_objects_have_the_recorded_keys_and_types() {
    let recorded = recorded_by_kind();
    for market in [None, Some("ES")] {
        let served = served_by_kind(AppMode::Extended, market).await;
        assert_eq!(
            served.keys().collect::<Vec<_>>(),
            recorded.keys().collect::<Vec<_>>()
        );
        let mut problems = Vec::new();
        for (kind, objects) in &served {
            let examples: Vec<&Value> = recorded[kind].iter().collect();
            for o in objects {
                same_shape(kind, o, &examples, market.is_some(), &mut problems);
            }
        }
        problems.sort();
        problems.dedup();
        assert!(
            problems.is_empty(),
            "market {market:?}:\n{}",
            problems.join("\n")
        );
    }
}

#[tokio::test]
async fn development_mode_objects_lack_exactly_the_removed_fields() {
    let recorded = recorded_by_kind();
    let served = served_by_kind(AppMode::Development, None).await;
    let removed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("artist", &["followers", "popularity"][..]),
        ("album", &["available_markets", "label", "popularity"][..]),
        (
            "track",
            &["available_markets", "linked_from", "popularity"][..],
        ),
    ]);
    for (kind, objects) in &served {
        for o in objects {
            let mut problems = Vec::new();
            let examples: Vec<&Value> = recorded[kind].iter().collect();
            same_shape(kind, o, &examples, false, &mut problems);
            // Removed fields may be missing at any depth; anything else
            // missing is a bug.
            let any_removed: BTreeSet<&str> =
                removed.values().flat_map(|v| v.iter().copied()).collect();
            problems.retain(|p| {
                let key = p.split(':').next().unwrap().rsplit('.').next().unwrap();
                !any_removed.contains(key)
            });
            assert!(problems.is_empty(), "{}", problems.join("\n"));
            let gone = removed.get(kind).copied().unwrap_or(&[]);
            for field in gone {
                assert!(
                    o.get(*field).is_none(),
                    "{kind}.{field} present in Development mode"
                );
            }
        }
    }
    for d in &served["discography_page"] {
        for item in d["items"].as_array().unwrap() {
            assert!(item.get("album_group").is_none() && item.get("available_markets").is_none());
        }
    }
}

// ---- the client on every recorded response ----------------------------------

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{i:022}")).collect()
}

/// The body as the simulator serves it: paging `next` links cleared, as the
/// recorded ones point at api.spotify.com (the client refuses to leave the
/// configured API, and paging itself is tested against the simulator).
fn as_served(v: &Value) -> String {
    let mut v = v.clone();
    if v.get("next").is_some() {
        v["next"] = Value::Null;
    }
    v.to_string()
}

#[tokio::test]
async fn the_client_takes_every_recorded_response() {
    let id = ids(1).remove(0);
    let mut seen = BTreeSet::new();
    let mut check = |file: &str| {
        seen.insert(file.to_string());
        fixture(file)
    };

    // Objects come back exactly as recorded: nothing dropped.
    for file in ["artist_full.json"] {
        let v = check(file);
        let h = with(vec![canned(
            &format!("/v1/artists/{id}"),
            200,
            &v.to_string(),
        )])
        .await;
        assert_eq!(h.client().artist(&id).await.unwrap(), Some(v));
    }
    for file in [
        "album_full_year_precision.json",
        "album_full_with_label.json",
    ] {
        let v = check(file);
        let h = with(vec![canned(
            &format!("/v1/albums/{id}"),
            200,
            &v.to_string(),
        )])
        .await;
        assert_eq!(h.client().album(&id).await.unwrap(), Some(v));
    }
    for file in ["track_full.json"] {
        let v = check(file);
        let h = with(vec![canned(
            &format!("/v1/tracks/{id}"),
            200,
            &v.to_string(),
        )])
        .await;
        assert_eq!(h.client().track(&id).await.unwrap(), Some(v));
    }
    for (file, path, key) in [
        ("artists_several.json", "/v1/artists", "artists"),
        (
            "albums_several_month_precision_unicode.json",
            "/v1/albums",
            "albums",
        ),
        ("albums_several_year_precision.json", "/v1/albums", "albums"),
        ("tracks_several.json", "/v1/tracks", "tracks"),
        ("tracks_several_with_null.json", "/v1/tracks", "tracks"),
        ("artist_top_tracks.json", "/v1/tracks", "tracks"),
        (
            "audio_features_several.json",
            "/v1/audio-features",
            "audio_features",
        ),
        (
            "audio_features_several_with_null.json",
            "/v1/audio-features",
            "audio_features",
        ),
    ] {
        let v = check(file);
        let expected: Vec<Option<Value>> = v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (!x.is_null()).then(|| x.clone()))
            .collect();
        let h = with(vec![canned(path, 200, &v.to_string())]).await;
        let client = h.client();
        let wanted = ids(expected.len());
        let got = match key {
            "artists" => client.artists(&wanted).await,
            "albums" => client.albums(&wanted).await,
            "tracks" => client.tracks(&wanted).await,
            _ => client.audio_features(&wanted).await,
        };
        assert_eq!(got.unwrap(), expected, "{file}");
    }
    {
        // One analysis, as the element of a batch answer.
        let v = check("audio_features_single.json");
        let body = serde_json::json!({ "audio_features": [v.clone()] }).to_string();
        let h = with(vec![canned("/v1/audio-features", 200, &body)]).await;
        assert_eq!(
            h.client().audio_features(&ids(1)).await.unwrap(),
            vec![Some(v)]
        );
    }
    for (file, path) in [
        (
            "artist_albums_page.json",
            format!("/v1/artists/{id}/albums"),
        ),
        (
            "artist_albums_page_with_markets.json",
            format!("/v1/artists/{id}/albums"),
        ),
        ("album_tracks_page.json", format!("/v1/albums/{id}/tracks")),
        (
            "album_tracks_page_preview_null.json",
            format!("/v1/albums/{id}/tracks"),
        ),
        (
            "me_top_tracks_page_linked_from.json",
            format!("/v1/albums/{id}/tracks"),
        ),
    ] {
        let v = check(file);
        let h = with(vec![canned(&path, 200, &as_served(&v))]).await;
        let client = h.client();
        let got = if path.ends_with("/albums") {
            client.artist_albums(&id, ALL_GROUPS).await
        } else {
            client.album_track_pages(&id, 0).await.map(|pages| {
                pages
                    .iter()
                    .flat_map(|p| p["items"].as_array().unwrap().clone())
                    .collect()
            })
        };
        let expected: Vec<Value> = items(&v, "/items").into_iter().cloned().collect();
        assert_eq!(got.unwrap(), expected, "{file}");
    }
    for file in ["search_artists_page.json", "search_artists_small.json"] {
        let v = check(file);
        let h = with(vec![canned("/v1/search", 200, &v.to_string())]).await;
        assert_eq!(
            h.client().search_artists("Muse", 10, 0).await.unwrap(),
            v,
            "{file}"
        );
    }

    // Bodies that do not fit the request are typed errors.
    {
        let v = check("search_albums_year_precision.json");
        let h = with(vec![canned("/v1/search", 200, &v.to_string())]).await;
        let err = h.client().search_artists("Muse", 10, 0).await.unwrap_err();
        assert!(
            matches!(
                err.source_error::<ApiError>(),
                Some(ApiError::MalformedBody {
                    endpoint: Endpoint::Search,
                    ..
                })
            ),
            "{err}"
        );
    }
    {
        let v = check("albums_several_empty.json");
        let h = with(vec![canned("/v1/albums", 200, &v.to_string())]).await;
        let err = h.client().albums(&ids(1)).await.unwrap_err().to_string();
        assert!(err.contains("0 entries for 1 requested ids"), "{err}");
    }
    {
        let v = check("error_404_audio_features.json");
        let h = with(vec![canned("/v1/audio-features", 404, &v.to_string())]).await;
        let err = h.client().audio_features(&ids(1)).await.unwrap_err();
        assert!(
            matches!(err.source_error::<ApiError>(), Some(ApiError::Api { status: 404, message, .. }) if message == "analysis not found"),
            "{err}"
        );
    }
    {
        let v = check("error_429_quota_exceeded.documented.json");
        for retry_after in [Some("5400"), None] {
            let mut c = canned(&format!("/v1/artists/{id}"), 429, &v.to_string());
            c.headers
                .extend(retry_after.map(|s| ("retry-after".to_string(), s.to_string())));
            let h = with(vec![c]).await;
            let err = h.client().artist(&id).await.unwrap_err();
            assert!(
                matches!(
                    err.source_error::<ApiError>(),
                    Some(ApiError::ComeBackAt {
                        reason: WaitReason::QuotaExceeded,
                        ..
                    })
                ),
                "{err}"
            );
        }
    }
    {
        let v = check("error_token_invalid_client.json");
        let h = with(vec![canned("/api/token", 400, &v.to_string())]).await;
        let err = h.client().artist(&id).await.unwrap_err().to_string();
        assert!(err.contains("invalid_client: Invalid client"), "{err}");
    }
    {
        // A recorded token the simulator never issued: rejected with 401,
        // refreshed once, and the call succeeds.
        let v = check("token_client_credentials.json");
        let mut c = canned("/api/token", 200, &v.to_string());
        c.times = Some(1);
        let h = with(vec![c]).await;
        let client = h.client();
        assert_eq!(client.artist(&id).await.unwrap(), None);
        assert_eq!(client.stats().reauthentications, 1);
    }

    let all: BTreeSet<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    let untested: Vec<_> = all.difference(&seen).collect();
    assert!(
        untested.is_empty(),
        "recorded responses no test serves: {untested:?}"
    );
}

async fn with(canned: Vec<Canned>) -> Harness {
    Harness::start(SimOptions {
        names: names(1),
        canned,
        ..SimOptions::default()
    })
    .await
}
