//! Crawl efficiency against the simulator, on the shipped artists.txt:
//!
//! 1. requests per artist, album and track against the fewest the
//!    endpoints allow, in Extended and in Development Mode (no rate limit,
//!    so only the request count is measured);
//! 2. the share of the server's rate limit a long crawl uses, in real time:
//!    the simulator allows `LIMIT` requests per rolling `WINDOW`, the client
//!    is configured a third above it (the limit is unpublished, so operators
//!    guess), and the governor has to find the limit from 429s and then
//!    keep the pipe full without more of them.
//!
//! `cargo bench --bench crawl`; see benches/README.md.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use soundlake::clock::{self, SharedClock};
use soundlake::crawl::CrawlSettings;
use soundlake::crawl::{CrawlReport, Crawler, Outcome};
use soundlake::landing::{self, Collection};
use soundlake::sim::{Entity, LoggedRequest, SimOptions, Simulator};
use soundlake::spotify::{AppMode, Endpoint, RateScope, SpotifyClient, SpotifySettings};

/// The rate-limited crawl's window and the simulator's limit in it: the
/// shape of Spotify's rolling 30 s window, scaled down so a crawl of a few
/// thousand requests spans dozens of windows in a couple of minutes.
const WINDOW: Duration = Duration::from_secs(2);
const LIMIT: u32 = 60;
/// What the client is told the budget is: a third too high.
const CONFIGURED: u32 = 80;

struct Crawled {
    report: CrawlReport,
    log: Vec<LoggedRequest>,
    minimum: BTreeMap<Endpoint, usize>,
    artists: usize,
    albums: usize,
    tracks: usize,
    elapsed: Duration,
}

async fn crawl(names: &[String], mode: AppMode, rate_limit: u32, budget: u32) -> Crawled {
    let clock: SharedClock = clock::system();
    let sim = Simulator::start(
        SimOptions {
            mode,
            names: names.to_vec(),
            rate_limit,
            window: WINDOW,
            ..SimOptions::default()
        },
        clock.clone(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("simulator starts");
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("embedded://{}/landing", dir.path().display());
    let store = landing::open(&url, clock.clone())
        .await
        .expect("store opens");
    let spotify = SpotifySettings {
        mode,
        requests_per_window: budget,
        window_secs: WINDOW.as_secs(),
        ..soundlake::sim::client_settings(&sim.base_url())
    };
    let client = SpotifyClient::new(&spotify, clock.clone(), RateScope::Store(store.clone()))
        .expect("client");
    let settings = CrawlSettings {
        names_per_run: names.len() as u32,
        ..CrawlSettings::default()
    };
    let started = Instant::now();
    let report = Crawler::new(client, store.clone(), clock, settings)
        .run(names, "bench")
        .await
        .expect("the crawl runs");
    let elapsed = started.elapsed();
    assert_eq!(report.outcome, Outcome::Completed, "{report:?}");
    let catalog = sim.catalog();
    let artists: Vec<usize> = store
        .scan(Collection::Artists, None, usize::MAX)
        .await
        .expect("scan")
        .iter()
        .map(|d| match catalog.lookup(&d.id) {
            Some(Entity::Artist(i)) => i,
            _ => panic!("{} is not in the catalog", d.id),
        })
        .collect();
    let store = &store;
    let count = |c| async move { store.count(c).await.expect("count") as usize };
    Crawled {
        minimum: catalog.minimum_requests(&artists, mode, report.names_taken.len()),
        artists: artists.len(),
        albums: count(Collection::Albums).await,
        tracks: count(Collection::Tracks).await,
        log: sim.request_log(),
        report,
        elapsed,
    }
}

fn efficiency(names: &[String], runtime: &tokio::runtime::Runtime) {
    println!(
        "## Requests against the endpoint minimum ({} names)\n",
        names.len()
    );
    println!(
        "| mode | artists | albums | tracks | requests | minimum | over minimum | per artist | per album | per track |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for mode in [AppMode::Extended, AppMode::Development] {
        let c = runtime.block_on(crawl(names, mode, 0, 1_000_000));
        let made = c.log.len();
        let minimum: usize = c.minimum.values().sum();
        println!(
            "| {mode} | {} | {} | {} | {made} | {minimum} | {:+.1}% | {:.2} | {:.3} | {:.4} |",
            c.artists,
            c.albums,
            c.tracks,
            (made as f64 / minimum as f64 - 1.0) * 100.0,
            made as f64 / c.artists as f64,
            made as f64 / c.albums as f64,
            made as f64 / c.tracks as f64,
        );
        let mut by_endpoint: BTreeMap<Endpoint, usize> = BTreeMap::new();
        for r in &c.log {
            *by_endpoint
                .entry(r.endpoint.expect("a Spotify endpoint"))
                .or_default() += 1;
        }
        for (endpoint, n) in &by_endpoint {
            let floor = c.minimum.get(endpoint).copied().unwrap_or(0);
            if *n != floor {
                println!("|   {endpoint}: {n} made, {floor} minimum | | | | | | | | | |");
            }
        }
    }
    println!();
}

/// Two `soundlake crawl` processes with one credential and one state
/// store, each taking half the names, against one simulator; the log, the
/// time until both finished and the requests each one reported.
async fn two_processes(names: &[String]) -> (Vec<LoggedRequest>, Duration, [u64; 2]) {
    let sim = Simulator::start(
        SimOptions {
            names: names.to_vec(),
            rate_limit: LIMIT,
            window: WINDOW,
            ..SimOptions::default()
        },
        clock::system(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .expect("simulator starts");
    let dir = tempfile::tempdir().expect("temporary folder");
    let base = sim.base_url();
    let spawn = |half: &[String], label: &str| {
        let file = dir.path().join(format!("{label}.txt"));
        std::fs::write(&file, half.join("\n")).expect("names file");
        tokio::process::Command::new(env!("CARGO_BIN_EXE_soundlake"))
            .arg("crawl")
            .env_clear()
            .env(
                "SOUNDLAKE__LANDING__URL",
                format!("embedded://{}/landing", dir.path().display()),
            )
            .env("SOUNDLAKE__SPOTIFY__API_URL", format!("{base}/v1"))
            .env("SOUNDLAKE__SPOTIFY__TOKEN_URL", format!("{base}/api/token"))
            .env("SPOTIFY_CLIENT_ID", soundlake::sim::CLIENT_ID)
            .env("SPOTIFY_CLIENT_SECRET", soundlake::sim::CLIENT_SECRET)
            .env(
                "SOUNDLAKE__SPOTIFY__REQUESTS_PER_WINDOW",
                CONFIGURED.to_string(),
            )
            .env(
                "SOUNDLAKE__SPOTIFY__WINDOW_SECS",
                WINDOW.as_secs().to_string(),
            )
            .env("SOUNDLAKE__CRAWL__ARTISTS_FILE", &file)
            .env("SOUNDLAKE__CRAWL__NAMES_PER_RUN", half.len().to_string())
            .stdin(std::process::Stdio::null())
            .output()
    };
    let started = Instant::now();
    let (a, b) = names.split_at(names.len() / 2);
    let (a, b) = tokio::join!(spawn(a, "a"), spawn(b, "b"));
    let elapsed = started.elapsed();
    let requests = [a, b].map(|out| {
        let out = out.expect("soundlake crawl runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success() && text.contains("completed"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (_, rest) = text.split_once("requests: ").expect("a requests line");
        rest.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a request count")
    });
    (sim.request_log(), elapsed, requests)
}

/// One row of the budget table: the share of the limit used over the whole
/// crawl and in its steady state.
fn budget_row(processes: &str, log: &[LoggedRequest], elapsed: Duration, split: &str) {
    let at = |r: &LoggedRequest| r.at;
    let api = log.iter().filter(|r| r.endpoint.is_some());
    let accepted: Vec<DateTime<Utc>> = api.clone().filter(|r| r.status == 200).map(at).collect();
    let throttled: Vec<DateTime<Utc>> = api.filter(|r| r.status == 429).map(at).collect();
    let (first, last) = (accepted[0], *accepted.last().expect("requests"));
    let window = chrono::Duration::from_std(WINDOW).expect("window");
    // Steady state: from one window after the last 429 (or the start) to
    // one window before the end, where the crawl's demand runs out.
    let from = throttled.last().map_or(first, |t| *t + window);
    let to = last - window;
    let share = |from: DateTime<Utc>, to: DateTime<Utc>| {
        let n = accepted.iter().filter(|t| **t >= from && **t < to).count() as f64;
        let allowed = (to - from).as_seconds_f64() / WINDOW.as_secs_f64() * f64::from(LIMIT);
        (n / allowed * 100.0, (to - from).as_seconds_f64())
    };
    let (whole, whole_secs) = share(first, last);
    let steady = if to > from {
        let (pct, secs) = share(from, to);
        format!("{pct:.1}% over {secs:.0} s")
    } else {
        "— (429s until the end)".to_string()
    };
    let seconds: Vec<String> = throttled
        .iter()
        .map(|t| format!("{:.0}", (*t - first).as_seconds_f64()))
        .collect();
    println!(
        "| {processes} | {} | {} ({} s) | {:.0} | {whole:.1}% over {whole_secs:.0} s | {steady} | {split} |",
        accepted.len() + throttled.len(),
        throttled.len(),
        seconds.join(", "),
        elapsed.as_secs_f64(),
    );
}

fn budget_use(names: &[String], runtime: &tokio::runtime::Runtime) {
    println!(
        "## Rate budget used: {} requests/{} s allowed, client configured {}\n",
        LIMIT,
        WINDOW.as_secs(),
        CONFIGURED
    );
    println!(
        "| processes | requests | 429s (at s) | crawl s | used, whole crawl | used, after the last 429 | requests per process |"
    );
    println!("|---|---:|---|---:|---:|---:|---|");
    let one = runtime.block_on(crawl(names, AppMode::Extended, LIMIT, CONFIGURED));
    budget_row(
        "1",
        &one.log,
        one.elapsed,
        &one.report.requests_total.to_string(),
    );
    let (log, elapsed, [a, b]) = runtime.block_on(two_processes(names));
    let split = format!(
        "{a} + {b} ({:.0}% + {:.0}%)",
        a as f64 * 100.0 / (a + b) as f64,
        b as f64 * 100.0 / (a + b) as f64
    );
    budget_row("2", &log, elapsed, &split);
    println!();
}

fn main() {
    let names = soundlake::artist_names::read(std::path::Path::new("artists.txt"))
        .expect("run from the repository root: artists.txt");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    efficiency(&names, &runtime);
    budget_use(&names, &runtime);
}
