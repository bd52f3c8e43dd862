//! The crawl task against the simulator, on virtual time, into the
//! embedded store: request counts at the endpoint minimum, the same
//! documents through faults and a 429 storm, both app modes, incremental
//! refreshes, budgets, long waits and unresolvable names.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use soundlake::clock::{Clock, SharedClock};
use soundlake::crawl::CrawlSettings;
use soundlake::crawl::{CrawlReport, Crawler, Outcome, Status};
use soundlake::landing::{self, Collection, SharedStore};
use soundlake::sim::{Entity, Faults, SimOptions};
use soundlake::spotify::{
    AppMode, Endpoint, RateScope, SpotifyClient, SpotifySettings, WaitCause, credential_rates,
};

use crate::support::{Harness, canned, names};

pub struct Setup {
    pub h: Harness,
    pub store: SharedStore,
    pub landing_url: String,
    _dir: tempfile::TempDir,
}

impl Setup {
    pub async fn start(options: SimOptions) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("embedded://{}/landing.db", dir.path().display());
        Setup::start_on(options, url, dir).await
    }

    /// With the landing and state store at `url`.
    pub async fn start_on(options: SimOptions, url: String, dir: tempfile::TempDir) -> Setup {
        let h = Harness::start(options).await;
        let clock: SharedClock = h.clock.clone();
        let store = landing::open(&url, clock).await.unwrap();
        Setup {
            h,
            store,
            landing_url: url,
            _dir: dir,
        }
    }

    pub fn crawler(&self, spotify: SpotifySettings, crawl: CrawlSettings) -> Crawler {
        let clock: SharedClock = self.h.clock.clone();
        let client = SpotifyClient::new(
            &spotify,
            clock.clone(),
            RateScope::Store(self.store.clone()),
        )
        .unwrap();
        Crawler::new(client, self.store.clone(), clock, crawl)
    }

    /// Crawl with fresh clients until a run completes; the reports of all runs.
    pub async fn crawl_to_the_end(
        &self,
        names: &[String],
        spotify: SpotifySettings,
        crawl: CrawlSettings,
    ) -> Vec<CrawlReport> {
        let mut reports = Vec::new();
        for i in 0..1000 {
            let report = self
                .crawler(spotify.clone(), crawl.clone())
                .run(names, &format!("run-{i}"))
                .await
                .unwrap();
            let done = matches!(report.outcome, Outcome::NothingDue { .. });
            reports.push(report);
            if done {
                return reports;
            }
        }
        panic!("the crawl never finished");
    }
}

pub fn all_at_once(n: usize) -> CrawlSettings {
    CrawlSettings {
        names_per_run: n as u32,
        ..CrawlSettings::default()
    }
}

/// Every landed document by collection and id, with the simulator's
/// address taken out so crawls of two simulators compare.
pub async fn snapshot(
    store: &SharedStore,
    base_url: &str,
) -> BTreeMap<(Collection, String), String> {
    let mut out = BTreeMap::new();
    for c in Collection::ALL {
        let mut cursor = None;
        loop {
            let page = store.scan(c, cursor.as_ref(), 5000).await.unwrap();
            let Some(last) = page.last() else { break };
            cursor = Some((last.ingested_at, last.id.clone()));
            for d in page {
                assert_eq!(d.versions, 1, "{c}/{} was landed as a second version", d.id);
                let previous = out.insert((c, d.id), d.doc.to_string().replace(base_url, "SIM"));
                assert!(previous.is_none(), "a document listed twice");
            }
        }
    }
    out
}

/// What the catalog says a crawl of the artists in `store` must hold, and
/// the fewest requests the endpoints allow for it in the simulator's mode.
struct Expected {
    albums: BTreeSet<String>,
    tracks: BTreeSet<String>,
    features: usize,
    minimum: BTreeMap<Endpoint, usize>,
}

async fn expected(s: &Setup, searched: usize) -> Expected {
    let c = s.h.sim.catalog();
    let artists: Vec<usize> = s
        .store
        .scan(Collection::Artists, None, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|d| match c.lookup(&d.id) {
            Some(Entity::Artist(i)) => i,
            _ => panic!("{} is not an artist of the catalog", d.id),
        })
        .collect();
    let albums: BTreeSet<usize> = artists
        .iter()
        .flat_map(|&i| c.discography[i].iter().map(|(a, _)| *a))
        .collect();
    let tracks = albums.iter().flat_map(|&a| c.albums[a].tracks.clone());
    Expected {
        albums: albums.iter().map(|&a| c.albums[a].id.clone()).collect(),
        tracks: tracks.clone().map(|t| c.tracks[t].id.clone()).collect(),
        features: tracks.filter(|&t| c.tracks[t].features.is_some()).count(),
        minimum: c.minimum_requests(&artists, s.h.sim_mode(), searched),
    }
}

fn answered_by_endpoint(s: &Setup) -> BTreeMap<Endpoint, usize> {
    let mut m = BTreeMap::new();
    for r in s.h.sim.request_log() {
        *m.entry(r.endpoint.expect("only Spotify endpoints"))
            .or_default() += 1;
    }
    m
}

async fn ids(store: &SharedStore, c: Collection) -> BTreeSet<String> {
    store
        .scan(c, None, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect()
}

/// A budget under the simulator's 180 per window, as an operator sets it.
fn polite(s: &Setup) -> SpotifySettings {
    SpotifySettings {
        requests_per_window: 170,
        ..s.h.settings()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_names_at_the_endpoint_minimum_and_unchanged_by_faults() {
    let names = names(300);
    let clean = Setup::start(SimOptions {
        names: names.clone(),
        ..SimOptions::default()
    })
    .await;
    let report = clean
        .crawler(polite(&clean), all_at_once(300))
        .run(&names, "clean")
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(report.artists_completed, 300);
    assert!(
        report.names_unresolved.is_empty(),
        "{:?}",
        report.names_unresolved
    );
    assert_eq!((report.throttled, report.retries), (0, 0));

    let want = expected(&clean, names.len()).await;
    assert_eq!(
        answered_by_endpoint(&clean),
        want.minimum,
        "requests per endpoint"
    );
    assert_eq!(ids(&clean.store, Collection::Albums).await, want.albums);
    assert_eq!(ids(&clean.store, Collection::Tracks).await, want.tracks);
    assert_eq!(
        clean.store.count(Collection::AudioFeatures).await.unwrap() as usize,
        want.features
    );
    assert_eq!(clean.store.count(Collection::Searches).await.unwrap(), 300);
    let landed = report.documents[&Collection::Tracks];
    assert_eq!(landed.new as usize, want.tracks.len());

    // A storm: every album batch answered 429 fifteen times running, on
    // top of a rolling limit far below the client's configured budget.
    let mut storm = canned("/v1/albums", 429, "Too many requests");
    storm.headers.push(("retry-after".into(), "5".into()));
    storm.times = Some(15);
    let faulty = Setup::start(SimOptions {
        names: names.clone(),
        rate_limit: 40,
        faults: Faults {
            server_errors: 0.10,
            ..Faults::default()
        },
        canned: vec![storm],
        ..SimOptions::default()
    })
    .await;
    let spotify = SpotifySettings {
        max_retries: 10,
        ..faulty.h.settings()
    };
    let report = faulty
        .crawler(spotify, all_at_once(300))
        .run(&names, "faulty")
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    assert!(report.throttled >= 16, "a 429 storm: {}", report.throttled);
    assert!(report.retries > 100, "10% 5xx: {} retries", report.retries);
    assert!(
        report.waited_secs[&WaitCause::RateLimit] > 0.0,
        "{report:?}"
    );
    let same = snapshot(&faulty.store, &faulty.h.sim.base_url()).await
        == snapshot(&clean.store, &clean.h.sim.base_url()).await;
    assert!(same, "faults changed what was landed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_mode_crawls_without_batches_or_audio_features() {
    let names = names(300);
    let s = Setup::start(SimOptions {
        names: names.clone(),
        mode: AppMode::Development,
        rate_limit: 0,
        ..SimOptions::default()
    })
    .await;
    let spotify = SpotifySettings {
        mode: AppMode::Development,
        ..s.h.settings()
    };
    let report = s
        .crawler(spotify, all_at_once(300))
        .run(&names, "dev")
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(report.artists_completed, 300);
    let want = expected(&s, names.len()).await;
    assert_eq!(ids(&s.store, Collection::Albums).await, want.albums);
    assert_eq!(ids(&s.store, Collection::Tracks).await, want.tracks);
    assert_eq!(s.store.count(Collection::AudioFeatures).await.unwrap(), 0);
    let requests = answered_by_endpoint(&s);
    for batch in [
        Endpoint::SeveralAlbums,
        Endpoint::SeveralTracks,
        Endpoint::SeveralAudioFeatures,
    ] {
        assert!(
            !requests.contains_key(&batch),
            "{batch} in Development Mode"
        );
    }
    assert_eq!(
        requests[&Endpoint::Album],
        want.albums.len(),
        "one request per album"
    );
    assert!(
        !requests.contains_key(&Endpoint::Track),
        "full tracks are opt-in"
    );
    assert_eq!(requests, want.minimum, "requests per endpoint");
    let track = s
        .store
        .scan(Collection::Tracks, None, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(track.endpoint, Endpoint::AlbumTracks.to_string());
    assert!(report.skipped.iter().any(|r| r.contains("audio features")));
    assert!(
        report
            .skipped
            .iter()
            .any(|r| r.contains("development_full_tracks"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reruns_refresh_artists_only_when_due_and_fetch_only_new_albums() {
    let names = names(12);
    let s = Setup::start(SimOptions {
        names: names.clone(),
        ..SimOptions::default()
    })
    .await;
    let crawl = CrawlSettings {
        names_per_run: 5,
        refresh_after_days: 7,
        ..CrawlSettings::default()
    };
    let runs = s
        .crawl_to_the_end(&names, s.h.settings(), crawl.clone())
        .await;
    let taken: Vec<usize> = runs.iter().map(|r| r.names_taken.len()).collect();
    assert_eq!(
        taken,
        vec![5, 5, 2, 0],
        "names_per_run at a time, then nothing due"
    );
    let Outcome::NothingDue {
        next_due: Some(due),
    } = runs.last().unwrap().outcome
    else {
        panic!("{:?}", runs.last().unwrap().outcome)
    };
    assert_eq!(runs.last().unwrap().requests_total, 0);
    let before = snapshot(&s.store, &s.h.sim.base_url()).await;
    let requests_before = s.h.sim.request_log().len();

    s.h.clock
        .sleep((due - s.h.clock.now()).to_std().unwrap() + Duration::from_secs(1))
        .await;
    let refresh = s
        .crawler(s.h.settings(), crawl.clone())
        .run(&names, "refresh")
        .await
        .unwrap();
    assert_eq!(refresh.outcome, Outcome::Completed);
    assert_eq!(
        refresh.names_taken.len(),
        5,
        "the oldest five are due first"
    );
    let r = &refresh.requests;
    assert_eq!(
        r.get(&Endpoint::Search),
        None,
        "resolved names are not searched again"
    );
    assert_eq!(
        r[&Endpoint::SeveralArtists],
        1,
        "profiles refreshed in one batch"
    );
    assert!(
        r[&Endpoint::ArtistAlbums] >= 5,
        "discographies listed again"
    );
    for step in [
        Endpoint::SeveralAlbums,
        Endpoint::SeveralTracks,
        Endpoint::SeveralAudioFeatures,
    ] {
        assert_eq!(r.get(&step), None, "no new albums, so no {step}");
    }
    assert_eq!(refresh.documents[&Collection::Artists].unchanged, 5);
    assert!(s.h.sim.request_log().len() > requests_before);
    assert_eq!(
        snapshot(&s.store, &s.h.sim.base_url()).await,
        before,
        "nothing new in an unchanged catalog"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_budgets_stop_runs_that_the_next_run_resumes() {
    let names = names(8);
    let whole = Setup::start(SimOptions {
        names: names.clone(),
        ..SimOptions::default()
    })
    .await;
    whole
        .crawl_to_the_end(&names, whole.h.settings(), all_at_once(8))
        .await;

    let s = Setup::start(SimOptions {
        names: names.clone(),
        ..SimOptions::default()
    })
    .await;
    let crawl = CrawlSettings {
        request_budget: 15,
        ..all_at_once(8)
    };
    let runs = s.crawl_to_the_end(&names, s.h.settings(), crawl).await;
    assert!(runs.len() > 4, "{} runs", runs.len());
    for r in &runs[..runs.len() - 2] {
        assert!(
            matches!(r.outcome, Outcome::BudgetReached { .. }),
            "{:?}",
            r.outcome
        );
    }
    let same = snapshot(&s.store, &s.h.sim.base_url()).await
        == snapshot(&whole.store, &whole.h.sim.base_url()).await;
    assert!(same, "budgeted runs landed other documents");
    let budgeted: u64 = runs.iter().map(|r| r.requests_total).sum();
    let single = whole.h.sim.request_log().len() as u64 - 1;
    assert!(
        budgeted <= single + runs.len() as u64 * 2,
        "resuming repeats little: {budgeted} requests in budgeted runs, {single} in one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_retry_after_pauses_until_the_deadline() {
    let names = names(3);
    let mut options = SimOptions {
        names: names.clone(),
        ..SimOptions::default()
    };
    let mut storm = canned("/v1/search", 429, "");
    storm.headers.push(("retry-after".into(), "7200".into()));
    storm.times = Some(1);
    options.canned.push(storm);
    let s = Setup::start(options).await;
    let start = s.h.clock.now();

    let first = s
        .crawler(s.h.settings(), all_at_once(3))
        .run(&names, "r1")
        .await
        .unwrap();
    let Outcome::Paused { until, .. } = first.outcome else {
        panic!("{:?}", first.outcome)
    };
    assert!(until >= start + chrono::Duration::seconds(7200));
    let answered = s.h.sim.request_log().len();

    // A new process (a new client) before the deadline: no request at all.
    let second = s
        .crawler(s.h.settings(), all_at_once(3))
        .run(&names, "r2")
        .await
        .unwrap();
    assert_eq!(second.outcome, first.outcome);
    assert_eq!(s.h.sim.request_log().len(), answered);

    s.h.clock.sleep(Duration::from_secs(7201)).await;
    let third = s
        .crawler(s.h.settings(), all_at_once(3))
        .run(&names, "r3")
        .await
        .unwrap();
    assert_eq!(third.outcome, Outcome::Completed);
    assert_eq!(third.artists_completed, 3);
}

/// A restarted crawl whose first request meets a 429 its dead predecessor
/// drew: it waits out `Retry-After`, then goes on at its whole budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_drawn_by_other_traffic_pauses_the_crawl_but_keeps_its_pace() {
    let names = names(3);
    let mut options = SimOptions {
        names: names.clone(),
        rate_limit: 0,
        ..SimOptions::default()
    };
    let mut predecessors = canned("/v1/search", 429, "");
    predecessors
        .headers
        .push(("retry-after".into(), "5".into()));
    predecessors.times = Some(1);
    options.canned.push(predecessors);
    let s = Setup::start(options).await;
    let settings = s.h.settings();
    let crawler = s.crawler(settings.clone(), all_at_once(3));
    let report = crawler.run(&names, "restarted").await.unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!((report.throttled, report.throttled_by_others), (1, 1));
    assert!(
        report.waited_secs[&WaitCause::OtherTraffic] >= 5.0,
        "{report:?}"
    );
    let rates = credential_rates(&s.store, s.h.clock.now()).await.unwrap();
    assert_eq!(rates.len(), 1);
    assert_eq!(
        rates[0].learned_budget, None,
        "the credential's budget stays"
    );
    assert!(soundlake::crawl::render(&report).contains("429s 1 (1 from other traffic)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_exceeded_pauses_with_its_reason() {
    let names = names(3);
    let s = Setup::start(SimOptions {
        names: names.clone(),
        quota: Some(6),
        ..SimOptions::default()
    })
    .await;
    let report = s
        .crawler(s.h.settings(), all_at_once(3))
        .run(&names, "q")
        .await
        .unwrap();
    let Outcome::Paused { reason, .. } = report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(reason, soundlake::spotify::WaitReason::QuotaExceeded);
    assert!(
        report.documents[&Collection::Searches].new >= 3,
        "work before the quota is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_and_ambiguous_names_are_recorded_not_guessed() {
    let mut names = names(2);
    names.push("Zzyzx Qwerty Nobody".into());
    names.push("The Twins".into());
    let mut options = SimOptions {
        names: names[..2].to_vec(),
        ..SimOptions::default()
    };
    options.canned.push(canned(
        "/v1/search",
        200,
        r#"{"artists": {"href": "x", "limit": 10, "next": null, "offset": 0, "previous": null, "total": 2,
            "items": [{"id": "1111111111111111111111", "name": "The Twins", "type": "artist", "popularity": 30},
                      {"id": "2222222222222222222222", "name": "THE TWINS", "type": "artist", "popularity": 25}]}}"#,
    ));
    options.canned[0].times = Some(1);
    let s = Setup::start(options).await;
    // The canned answer goes to the first search: put the twins first.
    let order = vec![
        names[3].clone(),
        names[0].clone(),
        names[1].clone(),
        names[2].clone(),
    ];
    let report = s
        .crawler(s.h.settings(), all_at_once(4))
        .run(&order, "r")
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(report.artists_completed, 2);
    let unresolved: BTreeMap<&str, Status> = report
        .names_unresolved
        .iter()
        .map(|u| (u.name.as_str(), u.status))
        .collect();
    assert_eq!(
        unresolved,
        BTreeMap::from([
            ("The Twins", Status::Ambiguous),
            ("Zzyzx Qwerty Nobody", Status::Unmatched)
        ])
    );
    assert!(report.names_unresolved.iter().all(|u| !u.reason.is_empty()));
    assert_eq!(
        s.store.count(Collection::Artists).await.unwrap(),
        2,
        "no guessed artist landed"
    );
    assert_eq!(
        s.store.count(Collection::Searches).await.unwrap(),
        4,
        "every search is kept"
    );
    let again = s
        .crawler(s.h.settings(), all_at_once(4))
        .run(&order, "r2")
        .await
        .unwrap();
    assert!(
        matches!(again.outcome, Outcome::NothingDue { .. }),
        "recorded, not retried at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_mode_full_tracks_cost_one_request_each_when_asked_for() {
    let names = names(4);
    let s = Setup::start(SimOptions {
        names: names.clone(),
        mode: AppMode::Development,
        ..SimOptions::default()
    })
    .await;
    let spotify = SpotifySettings {
        mode: AppMode::Development,
        ..polite(&s)
    };
    let crawl = CrawlSettings {
        development_full_tracks: true,
        ..all_at_once(4)
    };
    let report = s.crawler(spotify, crawl).run(&names, "dev").await.unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    let want = expected(&s, names.len()).await;
    let requests = answered_by_endpoint(&s);
    assert_eq!(requests[&Endpoint::Album], want.albums.len());
    assert_eq!(requests[&Endpoint::Track], want.tracks.len());
    assert_eq!(
        requests.get(&Endpoint::Artist),
        None,
        "search gave the artists"
    );
    assert_eq!(
        requests[&Endpoint::ArtistAlbums],
        want.minimum[&Endpoint::ArtistAlbums],
        "discographies 10 albums a page"
    );
    // Fields removed in February 2026 are absent; ISRC survives (March 2026).
    for artist in s.store.scan(Collection::Artists, None, 100).await.unwrap() {
        assert!(artist.doc.get("popularity").is_none() && artist.doc.get("followers").is_none());
    }
    for track in s
        .store
        .scan(Collection::Tracks, None, 100_000)
        .await
        .unwrap()
    {
        assert!(track.doc.get("popularity").is_none());
        assert!(
            track.doc["external_ids"]["isrc"].is_string(),
            "{}",
            track.id
        );
    }
}
