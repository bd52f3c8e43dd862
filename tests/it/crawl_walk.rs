//! A walk of the catalog the way a crawl does it (names -> artists ->
//! albums -> tracks -> audio features), to check request counts against
//! the endpoint minimum and that faults change nothing but the effort.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use soundlake::sim::{Faults, SimOptions};
use soundlake::spotify::{ALL_GROUPS, AppMode, Endpoint, SpotifyClient};
use soundlake::text::match_key;

use crate::support::{Harness, names};

#[derive(Debug, Default, PartialEq)]
struct Walked {
    artists: BTreeMap<String, Value>,
    discographies: BTreeMap<String, Vec<String>>,
    albums: BTreeMap<String, Value>,
    album_tracks: BTreeMap<String, Vec<Value>>,
    tracks: BTreeMap<String, Value>,
    features: BTreeMap<String, Value>,
}

impl Walked {
    /// Everything fetched, with the simulator's own address taken out of
    /// the `href` links so walks against two simulators compare.
    fn normalized(&self, h: &Harness) -> String {
        let all = serde_json::json!([
            self.artists,
            self.discographies,
            self.albums,
            self.album_tracks,
            self.tracks,
            self.features
        ]);
        all.to_string().replace(&h.sim.base_url(), "SIM")
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("objects have ids").to_string()
}

fn unique(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    ids.into_iter()
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

async fn walk(client: &SpotifyClient, names: &[String]) -> Walked {
    let mut w = Walked::default();
    let mut artist_ids = Vec::new();
    for name in names {
        let found = client.search_artists(name, 1, 0).await.unwrap();
        let hit = &found["artists"]["items"][0];
        assert_eq!(match_key(hit["name"].as_str().unwrap()), match_key(name));
        artist_ids.push(id_of(hit));
    }
    let artist_ids = unique(artist_ids);
    for artist in client.artists(&artist_ids).await.unwrap() {
        let artist = artist.expect("searched artists exist");
        w.artists.insert(id_of(&artist), artist);
    }
    let mut album_ids = Vec::new();
    for id in &artist_ids {
        let albums = client.artist_albums(id, ALL_GROUPS).await.unwrap();
        let ids: Vec<String> = albums.iter().map(id_of).collect();
        album_ids.extend(ids.iter().cloned());
        w.discographies.insert(id.clone(), ids);
    }
    let album_ids = unique(album_ids);
    let mut track_ids = Vec::new();
    for album in client.albums(&album_ids).await.unwrap() {
        let album = album.expect("listed albums exist");
        let id = id_of(&album);
        let embedded = album["tracks"]["items"].as_array().unwrap().clone();
        let mut all = embedded;
        if album["tracks"]["total"].as_u64().unwrap() > all.len() as u64 {
            all.extend(client.album_tracks(&id, all.len() as u32).await.unwrap());
        }
        assert_eq!(all.len() as u64, album["tracks"]["total"].as_u64().unwrap());
        track_ids.extend(all.iter().map(id_of));
        w.album_tracks.insert(id.clone(), all);
        w.albums.insert(id, album);
    }
    let track_ids = unique(track_ids);
    for track in client.tracks(&track_ids).await.unwrap() {
        let track = track.expect("album tracks exist");
        w.tracks.insert(id_of(&track), track);
    }
    if client.mode() == AppMode::Extended {
        let features = client.audio_features(&track_ids).await.unwrap();
        for (id, f) in track_ids.iter().zip(features) {
            if let Some(f) = f {
                w.features.insert(id.clone(), f);
            }
        }
    }
    w
}

/// The fewest requests the endpoints allow for what `walk` fetched.
fn minimum(w: &Walked, mode: AppMode, names: usize) -> BTreeMap<Endpoint, usize> {
    let per_page = mode.page_limit() as usize;
    let pages = |n: usize, size: usize| n.div_ceil(size).max(1);
    let albums_listed: usize = w
        .discographies
        .values()
        .map(|d| pages(d.len(), per_page))
        .sum();
    let extra_track_pages: usize = w
        .album_tracks
        .values()
        .filter(|t| t.len() > 50)
        .map(|t| (t.len() - 50).div_ceil(50))
        .sum();
    let mut m = BTreeMap::from([
        (Endpoint::Token, 1),
        (Endpoint::Search, names),
        (Endpoint::ArtistAlbums, albums_listed),
    ]);
    if extra_track_pages > 0 {
        m.insert(Endpoint::AlbumTracks, extra_track_pages);
    }
    match mode {
        AppMode::Extended => {
            m.insert(Endpoint::SeveralArtists, w.artists.len().div_ceil(50));
            m.insert(Endpoint::SeveralAlbums, w.albums.len().div_ceil(20));
            m.insert(Endpoint::SeveralTracks, w.tracks.len().div_ceil(50));
            m.insert(Endpoint::SeveralAudioFeatures, w.tracks.len().div_ceil(100));
        }
        AppMode::Development => {
            m.insert(Endpoint::Artist, w.artists.len());
            m.insert(Endpoint::Album, w.albums.len());
            m.insert(Endpoint::Track, w.tracks.len());
        }
    }
    m
}

/// A budget below the simulator's 180 requests per window, as an operator
/// would configure it: the walk then meets no 429 at all.
fn under_the_limit(h: &Harness) -> soundlake::spotify::SpotifySettings {
    soundlake::spotify::SpotifySettings {
        requests_per_window: 170,
        ..h.settings()
    }
}

fn requests_by_endpoint(h: &Harness) -> BTreeMap<Endpoint, usize> {
    let mut m = BTreeMap::new();
    for r in h.sim.request_log() {
        *m.entry(r.endpoint.expect("only Spotify endpoints were called"))
            .or_default() += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_mode_uses_batches_at_their_maximum_sizes() {
    let names = names(40);
    let h = Harness::start(SimOptions {
        names: names.clone(),
        ..SimOptions::default()
    })
    .await;
    let client = h.client_with(under_the_limit(&h));
    let w = walk(&client, &names).await;

    // The walk covers the hard cases: long discographies, albums over 50
    // tracks, tracks without audio features.
    assert!(
        w.discographies.values().any(|d| d.len() > 50),
        "a discography over one page"
    );
    assert!(
        w.album_tracks.values().any(|t| t.len() > 100),
        "an album over two track pages"
    );
    assert!(
        w.features.len() < w.tracks.len(),
        "some tracks lack audio features"
    );

    let expected = minimum(&w, AppMode::Extended, names.len());
    assert_eq!(requests_by_endpoint(&h), expected);
    let stats = client.stats();
    assert_eq!((stats.retries, stats.throttled), (0, 0));
    assert_eq!(
        stats.total_requests() as usize + 1,
        expected.values().sum::<usize>(),
        "client statistics count every API request (the token call is separate)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_mode_walk_uses_the_endpoint_minimum() {
    let names = names(4);
    let h = Harness::start(SimOptions {
        names: names.clone(),
        mode: AppMode::Development,
        ..SimOptions::default()
    })
    .await;
    let client = h.client_with(soundlake::spotify::SpotifySettings {
        mode: AppMode::Development,
        ..under_the_limit(&h)
    });
    let w = walk(&client, &names).await;
    assert_eq!(
        requests_by_endpoint(&h),
        minimum(&w, AppMode::Development, names.len())
    );
    // Fields removed in February 2026 are absent everywhere.
    for artist in w.artists.values() {
        assert!(artist.get("popularity").is_none() && artist.get("followers").is_none());
    }
    for track in w.tracks.values() {
        assert!(track.get("popularity").is_none() && track.get("available_markets").is_none());
        assert!(
            track["external_ids"]["isrc"].is_string(),
            "ISRC survives (March 2026)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_a_429_storm_change_effort_not_results() {
    let names = names(10);
    let clean = {
        let h = Harness::start(SimOptions {
            names: names.clone(),
            ..SimOptions::default()
        })
        .await;
        walk(&h.client(), &names).await.normalized(&h)
    };

    let h = Harness::start(SimOptions {
        names: names.clone(),
        rate_limit: 25,
        faults: Faults {
            server_errors: 0.10,
            malformed: 0.05,
            expire_token: 0.08,
            slow: 0.02,
            slow_by: Duration::from_millis(1500),
        },
        ..SimOptions::default()
    })
    .await;
    let client = h.client_with(soundlake::spotify::SpotifySettings {
        request_timeout_ms: 400,
        max_retries: 8,
        ..h.settings()
    });
    let faulty = walk(&client, &names).await.normalized(&h);
    assert!(
        faulty == clean,
        "the faulty walk fetched different documents"
    );

    let stats = client.stats();
    let log = h.sim.request_log();
    let answered = |status: u16| log.iter().filter(|r| r.status == status).count();
    assert!(answered(429) > 0, "the storm happened");
    assert!(answered(500) + answered(502) + answered(503) > 0);
    assert!(answered(401) > 0 && stats.reauthentications > 0);
    assert!(stats.retries > 0 && stats.throttled > 0);
    // After adapting, the client settles under the server's limit.
    assert!(
        client.governor().budget() <= 25,
        "budget {}",
        client.governor().budget()
    );
}
