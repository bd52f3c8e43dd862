//! Every way a response can go wrong ends in a typed, readable error or a
//! recovery, never a panic.

use chrono::Duration as ChronoDuration;
use soundlake::clock::Clock;
use soundlake::sim::SimOptions;
use soundlake::spotify::ApiError;
use soundlake::spotify::WaitReason;
use soundlake::spotify::{ALL_GROUPS, AppMode, Endpoint, SpotifySettings};

use crate::support::{Harness, UNKNOWN_ID, canned, names, t0};

fn artist_path(id: &str) -> String {
    format!("/v1/artists/{id}")
}

async fn harness_with(canned_answers: Vec<soundlake::sim::Canned>) -> Harness {
    Harness::start(SimOptions {
        names: names(3),
        canned: canned_answers,
        ..SimOptions::default()
    })
    .await
}

#[tokio::test]
async fn exhausted_5xx_retries_are_a_typed_api_error() {
    let path = artist_path(UNKNOWN_ID);
    let h = harness_with(vec![canned(
        &path,
        503,
        r#"{"error":{"status":503,"message":"Service unavailable"}}"#,
    )])
    .await;
    let client = h.client_with(SpotifySettings {
        max_retries: 3,
        ..h.settings()
    });
    let err = client.artist(UNKNOWN_ID).await.unwrap_err();
    assert!(
        matches!(
            err.source_error::<ApiError>(),
            Some(ApiError::Api {
                status: 503,
                endpoint: Endpoint::Artist,
                ..
            })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("Service unavailable"), "{err}");
    assert_eq!(
        h.sim.count(Endpoint::Artist, 503),
        4,
        "one try and three retries"
    );
}

#[tokio::test]
async fn malformed_bodies_name_the_endpoint_and_quote_the_start() {
    let cases = [
        (
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
            "HTML",
            "<html>",
        ),
        (r#"{"id": "abc", "name": "Trunc"#, "truncated JSON", "Trunc"),
        ("", "empty", ""),
        (
            r#"{"error": {"status": 500, "message": "boom"}}"#,
            "error object",
            "boom",
        ),
        ("[1, 2, 3]", "expected a JSON object", "[1,2,3]"),
    ];
    for (body, problem, quoted) in cases {
        let path = artist_path(UNKNOWN_ID);
        let h = harness_with(vec![canned(&path, 200, body)]).await;
        let client = h.client_with(SpotifySettings {
            max_retries: 1,
            ..h.settings()
        });
        let err = client.artist(UNKNOWN_ID).await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err.source_error::<ApiError>(),
                Some(ApiError::MalformedBody {
                    endpoint: Endpoint::Artist,
                    ..
                })
            ),
            "{text}"
        );
        assert!(text.contains("GET /artists/{id}"), "{text}");
        assert!(text.contains(problem), "{problem}: {text}");
        assert!(text.contains(quoted), "{quoted}: {text}");
    }
}

#[tokio::test]
async fn huge_bodies_are_refused_not_buffered() {
    let path = artist_path(UNKNOWN_ID);
    let body = format!(
        "{{\"pad\": \"{}\"}}",
        "x".repeat(soundlake::spotify::MAX_BODY_BYTES + 10)
    );
    let h = harness_with(vec![canned(&path, 200, &body)]).await;
    let client = h.client_with(SpotifySettings {
        max_retries: 0,
        ..h.settings()
    });
    let err = client.artist(UNKNOWN_ID).await.unwrap_err().to_string();
    assert!(err.contains("larger than 64 MiB"), "{err}");
}

#[tokio::test]
async fn not_found_is_none_and_4xx_is_not_retried() {
    let h = harness_with(vec![canned(
        &artist_path("1111111111111111111111"),
        400,
        r#"{"error":{"status":400,"message":"invalid id"}}"#,
    )])
    .await;
    let client = h.client();
    assert_eq!(client.artist(UNKNOWN_ID).await.unwrap(), None);
    assert_eq!(h.sim.count(Endpoint::Artist, 404), 1);
    let err = client.artist("1111111111111111111111").await.unwrap_err();
    assert!(
        matches!(
            err.source_error::<ApiError>(),
            Some(ApiError::Api { status: 400, .. })
        ),
        "{err}"
    );
    assert_eq!(h.sim.count(Endpoint::Artist, 400), 1, "400 is not retried");
    assert_eq!(client.stats().retries, 0);
}

#[tokio::test]
async fn a_401_refreshes_the_token_once() {
    let path = artist_path(UNKNOWN_ID);
    let mut once = canned(
        &path,
        401,
        r#"{"error":{"status":401,"message":"The access token expired"}}"#,
    );
    once.times = Some(1);
    let h = harness_with(vec![once]).await;
    let client = h.client();
    assert_eq!(client.artist(UNKNOWN_ID).await.unwrap(), None);
    assert_eq!(
        h.sim.count(Endpoint::Token, 200),
        2,
        "one refresh after the 401"
    );
    assert_eq!(client.stats().reauthentications, 1);

    let always = canned(
        &path,
        401,
        r#"{"error":{"status":401,"message":"Invalid access token"}}"#,
    );
    let h = harness_with(vec![always]).await;
    let err = h.client().artist(UNKNOWN_ID).await.unwrap_err();
    assert!(
        matches!(
            err.source_error::<ApiError>(),
            Some(ApiError::Api { status: 401, .. })
        ),
        "{err}"
    );
    assert_eq!(
        h.sim.count(Endpoint::Artist, 401),
        2,
        "refreshed once, then gave up"
    );
}

#[tokio::test]
async fn token_is_cached_and_refreshed_before_expiry() {
    let h = Harness::start(SimOptions {
        names: names(2),
        token_ttl: std::time::Duration::from_secs(600),
        ..SimOptions::default()
    })
    .await;
    let client = h.client();
    client.artist(UNKNOWN_ID).await.unwrap();
    client.artist(UNKNOWN_ID).await.unwrap();
    assert_eq!(h.sim.count(Endpoint::Token, 200), 1, "cached");
    h.clock.advance(std::time::Duration::from_secs(545));
    client.artist(UNKNOWN_ID).await.unwrap();
    assert_eq!(
        h.sim.count(Endpoint::Token, 200),
        2,
        "refreshed ahead of expiry"
    );
    assert_eq!(
        h.sim.count(Endpoint::Artist, 401),
        0,
        "no request ran on an expired token"
    );
}

#[tokio::test]
async fn bad_and_missing_credentials_say_what_to_set_and_hide_the_secret() {
    let h = harness_with(vec![]).await;
    let secret = "WRONG-secret-value-1234";
    let settings = SpotifySettings {
        client_secret: soundlake::secret::Secret::new(secret),
        ..h.settings()
    };
    let err = h
        .client_with(settings)
        .artist(UNKNOWN_ID)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err.source_error::<ApiError>(),
            Some(ApiError::Auth { status: 400, .. })
        ),
        "{text}"
    );
    assert!(text.contains("invalid_client: Invalid client"), "{text}");
    assert!(text.contains("SPOTIFY_CLIENT_SECRET"), "{text}");
    assert!(!text.contains(secret) && !format!("{err:?}").contains(secret));

    let missing = SpotifySettings {
        client_id: String::new(),
        ..h.settings()
    };
    let err = soundlake::spotify::SpotifyClient::new(
        &missing,
        h.clock.clone(),
        soundlake::spotify::RateScope::Process,
    )
    .unwrap_err();
    assert!(err.to_string().contains("SPOTIFY_CLIENT_ID"), "{err}");
}

#[tokio::test]
async fn long_retry_after_is_come_back_at_and_stops_every_caller() {
    let path = artist_path(UNKNOWN_ID);
    let mut storm = canned(&path, 429, "Too many requests");
    storm.headers = vec![("retry-after".into(), "7200".into())];
    let h = harness_with(vec![storm]).await;
    let client = h.client();
    let err = client.artist(UNKNOWN_ID).await.unwrap_err();
    let Some(&ApiError::ComeBackAt { until, reason }) = err.source_error() else {
        panic!("expected ComeBackAt, got {err}");
    };
    assert_eq!(until, t0() + ChronoDuration::seconds(7200));
    assert_eq!(reason, WaitReason::RateLimit);
    assert_eq!(
        client.governor().pause_in_force().await.unwrap(),
        Some((until, WaitReason::RateLimit))
    );
    // Another caller of the same credential is refused without a request.
    let other = h.client();
    let before = h.sim.request_log().len();
    assert!(matches!(
        other
            .tracks(&[UNKNOWN_ID.into()])
            .await
            .map_err(|e| e.come_back_at()),
        Err(Some(_))
    ));
    assert_eq!(h.sim.request_log().len(), before);
    assert_eq!(h.clock.now(), t0(), "nothing slept through the wait");
}

#[tokio::test]
async fn quota_exceeded_is_recognised() {
    let h = Harness::start(SimOptions {
        names: names(2),
        quota: Some(3),
        ..SimOptions::default()
    })
    .await;
    let client = h.client();
    for _ in 0..3 {
        client.artist(UNKNOWN_ID).await.unwrap();
    }
    let err = client.artist(UNKNOWN_ID).await.unwrap_err();
    let Some(&ApiError::ComeBackAt { until, reason }) = err.source_error() else {
        panic!("expected ComeBackAt, got {err}");
    };
    assert_eq!(reason, WaitReason::QuotaExceeded);
    assert_eq!(until, t0() + ChronoDuration::hours(24));
}

#[tokio::test]
async fn development_mode_is_detected_from_403_and_invalid_limit() {
    let names = names(3);
    let h = Harness::start(SimOptions {
        names: names.clone(),
        mode: AppMode::Development,
        ..SimOptions::default()
    })
    .await;
    let client = h.client();
    assert_eq!(client.mode(), AppMode::Extended);
    let found = client.search_artists(&names[0], 50, 0).await.unwrap();
    assert_eq!(
        client.mode(),
        AppMode::Development,
        "400 Invalid limit switched the mode"
    );
    assert_eq!(found["artists"]["limit"], 10);
    let id = found["artists"]["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let artists = client
        .artists(&[id.clone(), UNKNOWN_ID.into()])
        .await
        .unwrap();
    assert!(artists[0].is_some() && artists[1].is_none());
    assert_eq!(
        h.sim.count(Endpoint::SeveralArtists, 403),
        0,
        "already switched: no batch tried"
    );
    let albums = client.artist_albums(&id, ALL_GROUPS).await.unwrap();
    let total = h.sim.catalog().discography[h.sim.catalog().search_artists(&names[0])[0]].len();
    assert_eq!(albums.len(), total);
    assert!(matches!(
        client
            .audio_features(&[UNKNOWN_ID.into()])
            .await
            .as_ref()
            .map_err(|e| e.source_error::<ApiError>()),
        Err(Some(ApiError::Unavailable { .. }))
    ));

    // A fresh client learns it from a 403 on a batch endpoint, once.
    let fresh = h.client();
    let got = fresh
        .tracks(&[UNKNOWN_ID.into(), UNKNOWN_ID.into()])
        .await
        .unwrap();
    assert_eq!(got, vec![None, None]);
    assert_eq!(fresh.mode(), AppMode::Development);
    assert_eq!(h.sim.count(Endpoint::SeveralTracks, 403), 1);
    assert_eq!(h.sim.count(Endpoint::Track, 404), 2);
}

#[tokio::test]
async fn audio_features_refused_in_extended_mode_is_unavailable_not_development() {
    let h = harness_with(vec![canned(
        "/v1/audio-features",
        403,
        r#"{"error":{"status":403}}"#,
    )])
    .await;
    let client = h.client();
    let err = client
        .audio_features(&[UNKNOWN_ID.into()])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.source_error::<ApiError>(),
            Some(ApiError::Unavailable { .. })
        ),
        "{err}"
    );
    assert_eq!(client.mode(), AppMode::Extended);
    // Remembered: no second request.
    assert!(client.audio_features(&[UNKNOWN_ID.into()]).await.is_err());
    assert_eq!(h.sim.count(Endpoint::SeveralAudioFeatures, 403), 1);
}

#[tokio::test]
async fn hostile_pages_and_batches_are_refused() {
    let next_elsewhere = r#"{"href":"x","items":[{"id":"a"}],"limit":1,"next":"http://169.254.169.254/v1/steal","offset":0,"previous":null,"total":2}"#;
    let wrong_length = r#"{"tracks": [null, null, null]}"#;
    let h = harness_with(vec![
        canned(
            &format!("/v1/artists/{UNKNOWN_ID}/albums"),
            200,
            next_elsewhere,
        ),
        canned("/v1/tracks", 200, wrong_length),
        canned("/v1/albums", 200, r#"{"albums": [42]}"#),
    ])
    .await;
    let client = h.client();
    let err = client
        .artist_albums(UNKNOWN_ID, ALL_GROUPS)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("outside the configured api_url"), "{err}");
    let err = client
        .tracks(&[UNKNOWN_ID.into()])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("3 entries for 1 requested ids"), "{err}");
    let err = client
        .albums(&[UNKNOWN_ID.into()])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("neither an object nor null"), "{err}");
}

#[tokio::test]
async fn connection_refused_is_a_transport_error_after_retries() {
    let h = harness_with(vec![]).await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let settings = SpotifySettings {
        api_url: format!("http://{dead}/v1"),
        max_retries: 2,
        ..h.settings()
    };
    let err = h
        .client_with(settings)
        .artist(UNKNOWN_ID)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.source_error::<ApiError>(),
            Some(ApiError::Transport { attempts: 3, .. })
        ),
        "{err}"
    );
}

/// Answers slower than `request_timeout_ms` are cut off, retried, and end
/// in a transport error that says so and how often it was tried.
#[tokio::test]
async fn answers_slower_than_the_request_timeout_are_retried_then_a_clear_error() {
    let h = Harness::start(SimOptions {
        names: names(3),
        faults: soundlake::sim::Faults {
            slow: 1.0,
            slow_by: std::time::Duration::from_millis(600),
            ..Default::default()
        },
        ..SimOptions::default()
    })
    .await;
    let client = h.client_with(SpotifySettings {
        request_timeout_ms: 150,
        max_retries: 2,
        ..h.settings()
    });
    let started = std::time::Instant::now();
    let err = client.artist(UNKNOWN_ID).await.unwrap_err();
    assert!(
        matches!(
            err.source_error::<ApiError>(),
            Some(ApiError::Transport {
                endpoint: Endpoint::Artist,
                attempts: 3,
                ..
            })
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("no answer within [spotify] request_timeout_ms"),
        "{text}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1500),
        "each attempt is cut at the timeout, not left to the slow answer"
    );
}
