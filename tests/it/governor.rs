//! The governor under concurrency: the window budget holds for 8 callers,
//! and a 429 makes every caller wait, not just the one that got it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use soundlake::clock::{SharedClock, VirtualClock};
use soundlake::sim::SimOptions;
use soundlake::spotify::{Endpoint, Governor, GovernorSettings, RateScope, WaitCause};

use soundlake::sim::Simulator;
use soundlake::spotify::{SpotifyClient, SpotifySettings};

use crate::support::{UNKNOWN_ID, canned, loopback, names, t0};

const WINDOW: Duration = Duration::from_secs(30);

fn max_in_any_window(grants: &[DateTime<Utc>]) -> usize {
    let window = chrono::Duration::from_std(WINDOW).unwrap();
    grants
        .iter()
        .map(|start| {
            grants
                .iter()
                .filter(|t| **t >= *start && **t < *start + window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_callers_never_exceed_the_window_budget() {
    eight_callers(RateScope::Process).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_callers_never_exceed_the_window_budget_kept_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("embedded://{}", dir.path().join("state").display());
    let clock: SharedClock = VirtualClock::starting_at(t0());
    let store = soundlake::landing::open(&url, clock).await.unwrap();
    eight_callers(RateScope::Store(store)).await;
}

async fn eight_callers(scope: RateScope) {
    let clock = VirtualClock::starting_at(t0());
    let shared: SharedClock = clock.clone();
    let budget = 20;
    let governor = Governor::new(
        GovernorSettings {
            budget,
            window: WINDOW,
            max_wait: Duration::from_secs(900),
        },
        shared,
        scope,
    );
    let grants = Arc::new(Mutex::new(Vec::new()));
    let mut callers = Vec::new();
    for _ in 0..8 {
        let (governor, grants) = (governor.clone(), grants.clone());
        callers.push(tokio::spawn(async move {
            for _ in 0..25 {
                // The grant's own instant: reading the clock afterwards races
                // with other callers' sleeps moving virtual time on.
                let granted = governor.acquire().await.unwrap();
                grants.lock().unwrap().push(granted);
            }
        }));
    }
    for c in callers {
        c.await.unwrap();
    }
    let mut grants = grants.lock().unwrap().clone();
    grants.sort();
    assert_eq!(grants.len(), 200);
    assert_eq!(
        max_in_any_window(&grants),
        budget as usize,
        "budget used in full, never exceeded"
    );
    // 200 requests at 20 per window need at least 9 further windows.
    let span = (*grants.last().unwrap() - grants[0]).to_std().unwrap();
    assert!(span >= WINDOW * 9, "paced over {span:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_429_every_caller_waits_for_retry_after() {
    let path = format!("/v1/artists/{UNKNOWN_ID}");
    let mut once = canned(&path, 429, "Too many requests");
    once.headers = vec![("retry-after".into(), "10".into())];
    once.times = Some(1);
    let clock = VirtualClock::manual(t0());
    let shared: SharedClock = clock.clone();
    let sim = Simulator::start(
        SimOptions {
            names: names(2),
            canned: vec![once],
            ..SimOptions::default()
        },
        shared.clone(),
        loopback(),
    )
    .await
    .unwrap();
    let settings = SpotifySettings {
        requests_per_window: 10_000,
        ..soundlake::sim::client_settings(&sim.base_url())
    };
    let client = SpotifyClient::new(&settings, shared, RateScope::Process).unwrap();
    let call = |client: SpotifyClient| {
        tokio::spawn(async move {
            for _ in 0..5 {
                assert_eq!(client.artist(UNKNOWN_ID).await.unwrap(), None);
            }
        })
    };

    // The first caller meets the 429 and sleeps on it.
    let first = call(client.clone());
    while clock.sleepers() < 1 {
        tokio::task::yield_now().await;
    }
    // Seven more callers start during the pause: none may send anything.
    let others: Vec<_> = (0..7).map(|_| call(client.clone())).collect();
    while clock.sleepers() + others.iter().filter(|t| t.is_finished()).count() < 8 {
        tokio::task::yield_now().await;
    }
    let during: Vec<_> = sim
        .request_log()
        .into_iter()
        .filter(|r| r.endpoint == Some(Endpoint::Artist) && r.status != 429)
        .collect();
    assert!(
        during.is_empty(),
        "requests sent during the pause: {during:?}"
    );

    // Past Retry-After the callers go on, paced by the budget:
    // move time a window at a time whenever everyone left is waiting.
    clock.advance(Duration::from_secs(10));
    let mut callers = others;
    callers.push(first);
    loop {
        let done = callers.iter().filter(|t| t.is_finished()).count();
        if done == callers.len() {
            break;
        }
        if clock.sleepers() + done == callers.len() {
            clock.advance(WINDOW);
        }
        tokio::task::yield_now().await;
    }
    for t in callers {
        t.await.unwrap();
    }
    let resume = t0() + chrono::Duration::seconds(10);
    let log = sim.request_log();
    let served: Vec<_> = log
        .iter()
        .filter(|r| r.endpoint == Some(Endpoint::Artist))
        .collect();
    assert_eq!(
        served.iter().filter(|r| r.status == 404).count(),
        40,
        "every call completed"
    );
    assert!(
        served
            .iter()
            .filter(|r| r.status == 404)
            .all(|r| r.at >= resume)
    );
    let stats = client.governor().stats();
    assert_eq!(stats.throttles, 1);
    assert_eq!(
        stats.waited,
        BTreeMap::from([(WaitCause::OtherTraffic, Duration::from_secs(10))]),
        "8 callers waited out one 10 s pause, drawn by nothing the process sent"
    );
}
