//! The simulator on its own: a realistic, deterministic catalog, and the
//! API's refusals answered the way Spotify answers them.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;
use soundlake::sim::{AlbumType, Catalog, Group, SimOptions};
use soundlake::spotify::AppMode;

use crate::support::{Harness, names, raw_api};

#[test]
fn catalog_of_the_shipped_names_has_a_realistic_spread() {
    let names = names(usize::MAX);
    assert!(
        names.len() >= 300,
        "artists.txt lists {} names",
        names.len()
    );
    let c = Catalog::generate(42, &names);
    let listed: Vec<usize> = (0..c.artists.len())
        .filter(|&i| c.artists[i].listed)
        .collect();
    assert_eq!(listed.len(), names.len());
    assert!(c.artists.len() > listed.len(), "collaborators are added");

    let own = |i: usize| {
        c.discography[i]
            .iter()
            .filter(|(_, g)| *g != Group::AppearsOn)
            .count()
    };
    let counts: Vec<usize> = listed.iter().map(|&i| own(i)).collect();
    assert_eq!(
        counts.iter().min(),
        Some(&1),
        "some artists have a single release"
    );
    assert!(*counts.iter().max().unwrap() >= 100, "some have hundreds");

    let groups: BTreeSet<&str> = c
        .discography
        .iter()
        .flatten()
        .map(|(_, g)| g.as_str())
        .collect();
    assert_eq!(
        groups,
        BTreeSet::from(["album", "appears_on", "compilation", "single"])
    );
    assert!(c.albums.iter().any(|a| a.tracks.len() > 50));
    assert!(
        c.albums
            .iter()
            .any(|a| a.album_type == AlbumType::Single && a.tracks.len() == 1)
    );
    assert!(
        c.tracks.iter().any(|t| t.artists.len() > 1),
        "multi-artist tracks"
    );
    assert!(
        c.tracks.iter().any(|t| t.disc_number == 2),
        "multi-disc albums"
    );
    let images: BTreeSet<usize> = c
        .albums
        .iter()
        .map(|a| a.images)
        .chain(c.artists.iter().map(|a| a.images))
        .collect();
    assert_eq!(images, BTreeSet::from([0, 1, 2, 3]));
    assert!(c.artists.iter().any(|a| a.genres.is_empty()));
    let precisions: BTreeSet<&str> = c.albums.iter().map(|a| a.precision).collect();
    assert_eq!(precisions, BTreeSet::from(["day", "month", "year"]));
    for a in &c.albums {
        let expected_len = match a.precision {
            "year" => 4,
            "month" => 7,
            _ => 10,
        };
        assert_eq!(
            a.release_date.len(),
            expected_len,
            "{} {}",
            a.release_date,
            a.precision
        );
        assert!(a.upc.len() == 12 && a.upc.bytes().all(|b| b.is_ascii_digit()));
    }
    assert!(c.tracks.iter().any(|t| t.explicit) && c.tracks.iter().any(|t| !t.explicit));
    assert!(c.tracks.iter().all(|t| t.isrc.len() == 12));
    assert!(
        c.tracks.iter().any(|t| t.features.is_none())
            && c.tracks.iter().any(|t| t.features.is_some())
    );
    assert!(
        c.tracks.iter().any(|t| t.name.chars().count() > 200),
        "very long titles"
    );
    assert!(
        c.albums.iter().any(|a| !a.name.is_ascii()),
        "unicode titles"
    );
    assert!(
        c.artists.iter().any(|a| !a.name.is_ascii()),
        "unicode names"
    );
    let ids: BTreeSet<&str> = c
        .artists
        .iter()
        .map(|a| a.id.as_str())
        .chain(c.albums.iter().map(|a| a.id.as_str()))
        .chain(c.tracks.iter().map(|t| t.id.as_str()))
        .collect();
    assert_eq!(
        ids.len(),
        c.artists.len() + c.albums.len() + c.tracks.len(),
        "ids are unique"
    );

    // Deterministic, and one name's share does not depend on the others.
    let again = Catalog::generate(42, &names);
    assert_eq!(again.tracks.len(), c.tracks.len());
    assert_eq!(again.tracks.last().unwrap().id, c.tracks.last().unwrap().id);
    let alone = Catalog::generate(42, &names[..1]);
    assert_eq!(alone.artists[0].id, c.artists[0].id);
    assert_ne!(
        Catalog::generate(7, &names[..1]).artists[0].id,
        c.artists[0].id
    );
}

async fn status_and_body(http: &reqwest::Client, token: &str, url: String) -> (StatusCode, String) {
    let r = http.get(url).bearer_auth(token).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn development_mode_refuses_batches_big_limits_and_audio_features() {
    let h = Harness::start(SimOptions {
        names: names(3),
        mode: AppMode::Development,
        ..SimOptions::default()
    })
    .await;
    let (http, token) = raw_api(&h).await;
    let api = format!("{}/v1", h.sim.base_url());
    let c = h.sim.catalog();
    let artist = &c.artists[0].id;
    for path in [
        format!("/artists?ids={artist}"),
        format!("/albums?ids={}", c.albums[0].id),
        format!("/tracks?ids={}", c.tracks[0].id),
        format!("/audio-features?ids={}", c.tracks[0].id),
        format!("/audio-features/{}", c.tracks[0].id),
    ] {
        let (status, body) = status_and_body(&http, &token, format!("{api}{path}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(body.contains("\"status\":403"), "{body}");
    }
    for path in [
        "/search?q=x&type=artist&limit=11".to_string(),
        format!("/artists/{artist}/albums?limit=11"),
    ] {
        let (status, body) = status_and_body(&http, &token, format!("{api}{path}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(body.contains("Invalid limit"), "{body}");
    }
    let (status, body) = status_and_body(
        &http,
        &token,
        format!("{api}/artists/{artist}/albums?limit=10"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let page: Value = serde_json::from_str(&body).unwrap();
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a.get("album_group").is_none())
    );
}

#[tokio::test]
async fn extended_mode_limits_and_bad_requests() {
    let h = Harness::start(SimOptions {
        names: names(3),
        ..SimOptions::default()
    })
    .await;
    let (http, token) = raw_api(&h).await;
    let api = format!("{}/v1", h.sim.base_url());
    let c = h.sim.catalog();
    let many: Vec<&str> = c.tracks.iter().take(51).map(|t| t.id.as_str()).collect();
    let cases = [
        (
            format!("/tracks?ids={}", many.join(",")),
            StatusCode::BAD_REQUEST,
            "Too many ids",
        ),
        (
            format!("/tracks?ids={}", &many[..50].join(",")),
            StatusCode::OK,
            "\"tracks\"",
        ),
        (
            format!(
                "/albums?ids={}",
                c.albums
                    .iter()
                    .take(21)
                    .map(|a| a.id.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            StatusCode::BAD_REQUEST,
            "Too many ids",
        ),
        (
            "/tracks?ids=".to_string(),
            StatusCode::BAD_REQUEST,
            "missing ids",
        ),
        (
            "/tracks/not-an-id".to_string(),
            StatusCode::BAD_REQUEST,
            "Invalid base62 id",
        ),
        (
            "/tracks/0000000000000000000000".to_string(),
            StatusCode::NOT_FOUND,
            "Resource not found",
        ),
        (
            format!("/albums/{}", c.artists[0].id),
            StatusCode::NOT_FOUND,
            "Resource not found",
        ),
        (
            "/search?q=&type=artist".to_string(),
            StatusCode::BAD_REQUEST,
            "No search query",
        ),
        (
            "/search?q=x&type=artist&limit=51".to_string(),
            StatusCode::BAD_REQUEST,
            "Invalid limit",
        ),
        (
            "/search?q=x&type=artist&offset=1001".to_string(),
            StatusCode::BAD_REQUEST,
            "Invalid offset",
        ),
        (
            format!("/albums/{}/tracks?limit=0", c.albums[0].id),
            StatusCode::BAD_REQUEST,
            "Invalid limit",
        ),
    ];
    for (path, status, text) in cases {
        let (got, body) = status_and_body(&http, &token, format!("{api}{path}")).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body.contains(text), "{path}: {body}");
    }
    let (status, _) = status_and_body(
        &http,
        "not-a-token",
        format!("{api}/tracks/{}", c.tracks[0].id),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rolling_window_answers_429_with_retry_after_and_a_plain_body() {
    let h = Harness::start(SimOptions {
        names: names(2),
        rate_limit: 5,
        ..SimOptions::default()
    })
    .await;
    let (http, token) = raw_api(&h).await;
    let url = format!(
        "{}/v1/artists/{}",
        h.sim.base_url(),
        h.sim.catalog().artists[0].id
    );
    for _ in 0..5 {
        assert_eq!(status_and_body(&http, &token, url.clone()).await.0, 200);
    }
    let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "30");
    assert_eq!(r.text().await.unwrap(), "Too many requests");
    h.clock.advance(std::time::Duration::from_secs(30));
    assert_eq!(status_and_body(&http, &token, url.clone()).await.0, 200);
    let log: Vec<soundlake::sim::LoggedRequest> = http
        .get(format!("{}/sim/log", h.sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        log.iter().filter(|r| r.status == 429).count(),
        1,
        "the log is readable over HTTP"
    );
}

#[tokio::test]
async fn search_matches_ignoring_case_and_accents_exact_first() {
    let h = Harness::start(SimOptions {
        names: vec![
            "Björk".into(),
            "Björk Guðmundsdóttir Tribute".into(),
            "Muse".into(),
        ],
        ..SimOptions::default()
    })
    .await;
    let client = h.client();
    let found = client.search_artists("BJORK", 10, 0).await.unwrap();
    let names: Vec<&str> = found["artists"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Björk", "Björk Guðmundsdóttir Tribute"]);
    assert_eq!(found["artists"]["total"], 2);
}
