//! `soundlake generate events`: synthetic listening events over the
//! crawled catalog (`silver.tracks`), deterministic from a seed.
//!
//! The model: users live in a country (its time zone shapes their day),
//! favour one device, listen more or less, skip more or less, and keep a
//! few favourite tracks. Each day gets its share of the events (weekends
//! more), in sessions that start by a daily rhythm in local time (night
//! low, commute and evening high) and play tracks back to back: a play,
//! then a skip after seconds (likelier for unpopular tracks, and for some
//! tracks more than others) or a completion after the track's length,
//! sometimes a pause or a like in between. Tracks are drawn by popularity,
//! or from the user's favourites. As real apps do, a few events arrive a
//! day late (phones syncing after being offline: they land in the next
//! day's file) and a few are delivered twice (same `event_id`).

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use serde::Serialize;

use super::{CSV_HEADER, Event, LANDING_FOLDER};
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::progress::Bar;
use crate::rng::Rng;
use crate::sql::Engine;

/// A day's events are sorted in memory before they are written.
pub const MAX_EVENTS_PER_DAY: u64 = 5_000_000;
/// Events per file.
const FILE_EVENTS: usize = 200_000;
/// Share of mobile events that arrive in the next day's file.
const LATE_SHARE: f64 = 0.01;
/// Share of events delivered twice.
const DUPLICATE_SHARE: f64 = 0.003;
const FAVOURITES: usize = 20;
const FAVOURITE_SHARE: f64 = 0.35;

/// Relative listening by local hour.
const HOURS: [f64; 24] = [
    0.35, 0.2, 0.12, 0.08, 0.07, 0.1, 0.3, 0.8, 1.0, 0.85, 0.7, 0.7, 0.8, 0.75, 0.7, 0.75, 0.9,
    1.1, 1.3, 1.4, 1.45, 1.35, 1.0, 0.6,
];
/// Country, UTC offset in hours, cities, relative number of users.
const COUNTRIES: &[(&str, i64, &[&str], f64)] = &[
    ("US", -5, &["New York", "Chicago", "Atlanta"], 0.28),
    ("BR", -3, &["São Paulo", "Rio de Janeiro"], 0.12),
    ("MX", -6, &["Mexico City", "Guadalajara"], 0.08),
    ("GB", 0, &["London", "Manchester"], 0.1),
    ("DE", 1, &["Berlin", "Hamburg", "München"], 0.1),
    ("FR", 1, &["Paris", "Lyon"], 0.07),
    ("SE", 1, &["Stockholm", "Göteborg"], 0.05),
    ("ES", 1, &["Madrid", "Barcelona"], 0.06),
    ("NG", 1, &["Lagos", "Abuja"], 0.05),
    ("JP", 9, &["Tokyo", "Osaka"], 0.09),
];
const DEVICES: [(&str, f64); 5] = [
    ("mobile", 0.58),
    ("desktop", 0.2),
    ("web", 0.1),
    ("smart_speaker", 0.07),
    ("tv", 0.05),
];
const APP_VERSIONS: [&str; 3] = ["8.9.12", "8.9.14", "9.0.2"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Ndjson,
    Csv,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
        }
    }
}

#[derive(Debug, Clone)]
pub struct EventOptions {
    pub users: u32,
    pub events: u64,
    pub days: u32,
    /// The last day generated.
    pub end: NaiveDate,
    pub seed: u64,
    pub format: Format,
}

/// Where generated events go.
pub enum Destination {
    /// Files under the lake's `landing/events/`.
    Landing,
    /// Messages on a Kafka topic, one JSON event each, keyed by user (so
    /// a listener's events keep their order within a partition).
    Kafka {
        producer: crate::kafka::Producer,
        topic: String,
    },
}

impl Destination {
    /// The landing folder, or the topic of a `kafka://brokers/topic` URL,
    /// created with `partitions` if it is missing.
    pub async fn open(
        to: Option<&str>,
        format: Format,
        kafka: &crate::kafka::KafkaSettings,
        partitions: i32,
    ) -> crate::error::Result<Destination> {
        let Some(url) = to else {
            return Ok(Destination::Landing);
        };
        if format != Format::Ndjson {
            return Err(crate::error::Error::config(
                "--format",
                "Kafka messages are JSON",
                "leave --format out with --to",
            ));
        }
        let (brokers, topic) = crate::kafka::parse_target(url)?;
        let producer = crate::kafka::Client::new(kafka, Some(&brokers))?.producer()?;
        producer.ensure_topic(&topic, partitions).await?;
        Ok(Destination::Kafka { producer, topic })
    }
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratedEvents {
    /// Distinct events.
    pub events: u64,
    /// Extra deliveries of events already written (same `event_id`).
    pub duplicates: u64,
    /// Events written into the file of a later day than they happened.
    pub late: u64,
    pub tracks_in_catalog: usize,
    /// Files written (to the landing folder).
    pub files: Vec<String>,
    /// Messages sent (to a Kafka topic).
    pub messages: u64,
}

struct Track {
    id: String,
    weight: f64,
    duration_ms: i64,
    /// Probability a listener without a skipping habit skips it.
    skip: f64,
}

struct User {
    id: String,
    country: usize,
    city: &'static str,
    device: &'static str,
    activity: f64,
    skips: f64,
    favourites: Vec<usize>,
}

/// Generate `options.events` events over the catalog in `lake` into
/// `destination`, a day at a time.
pub async fn generate(
    lake: &Lake,
    options: &EventOptions,
    destination: &Destination,
    bar: &Bar,
) -> Result<GeneratedEvents> {
    check(options)?;
    let tracks = catalog(lake).await?;
    let mut rng = Rng::derived(options.seed, "events");
    let popularity = Weighted::new(tracks.iter().map(|t| t.weight));
    let users = users(&mut rng, options.users, &tracks, &popularity);
    let activity = Weighted::new(users.iter().map(|u| u.activity));
    let hours = Weighted::new(HOURS.iter().copied());
    let first = options.end - Duration::days(i64::from(options.days) - 1);
    let days: Vec<NaiveDate> = first.iter_days().take(options.days as usize).collect();
    let day_weight = |d: &NaiveDate| match d.weekday() {
        Weekday::Sat => 1.2,
        Weekday::Sun => 1.15,
        _ => 1.0,
    };
    let total: f64 = days.iter().map(day_weight).sum();
    let world = World {
        tracks: &tracks,
        users: &users,
        popularity: &popularity,
        hours: &hours,
    };
    let mut report = GeneratedEvents {
        events: options.events,
        duplicates: 0,
        late: 0,
        tracks_in_catalog: tracks.len(),
        files: Vec::new(),
        messages: 0,
    };
    let mut arriving_late: Vec<Event> = Vec::new();
    let (mut through, mut assigned) = (0.0, 0u64);
    for (i, day) in days.iter().enumerate() {
        // Each day's share, rounded so the days add up to exactly `events`.
        through += day_weight(day);
        let target = (options.events as f64 * through / total).round() as u64 - assigned;
        assigned += target;
        let mut day_rng = Rng::derived(options.seed, &format!("events:{day}"));
        let mut events = Vec::with_capacity(target as usize);
        while (events.len() as u64) < target {
            let user = activity.pick(&mut day_rng);
            world.session(&mut day_rng, user, *day, &mut events);
        }
        events.truncate(target as usize);
        events.sort_by_key(|e| e.1);
        let last_day = i + 1 == days.len();
        let mut yesterdays_late = std::mem::take(&mut arriving_late);
        report.late += yesterdays_late.len() as u64;
        let mut delivered = Vec::with_capacity(events.len());
        for (event, _) in events {
            if !last_day && event.device == "mobile" && day_rng.chance(LATE_SHARE) {
                arriving_late.push(event);
                continue;
            }
            if day_rng.chance(DUPLICATE_SHARE) {
                delivered.push(event.clone());
                report.duplicates += 1;
            }
            delivered.push(event);
        }
        // Late arrivals come in after the day's own events.
        delivered.append(&mut yesterdays_late);
        bar.set_message(day.to_string());
        bar.inc(target);
        match destination {
            Destination::Landing => {
                for (part, chunk) in delivered.chunks(FILE_EVENTS).enumerate() {
                    let path = format!(
                        "{LANDING_FOLDER}/events-{day}-s{}-{part:04}.{}",
                        options.seed,
                        options.format.extension()
                    );
                    lake.put_file(&path, render(chunk, options.format)).await?;
                    report.files.push(path);
                }
            }
            Destination::Kafka { producer, topic } => {
                let messages = delivered.iter().map(|e| {
                    let json = serde_json::to_string(e).expect("an event serializes");
                    (e.user_id.clone(), json)
                });
                report.messages += producer.send_all(topic, messages).await?;
            }
        }
    }
    Ok(report)
}

fn check(o: &EventOptions) -> Result<()> {
    let bad = |place: &str, problem: String, fix: &str| {
        Err(Error::Input {
            place: place.into(),
            problem,
            fix: fix.into(),
        })
    };
    if o.users == 0 || o.events == 0 || o.days == 0 {
        return bad(
            "--users, --events, --days",
            "each must be at least 1".into(),
            "for example --users 1000 --events 1000000 --days 30",
        );
    }
    if o.events / u64::from(o.days) > MAX_EVENTS_PER_DAY {
        return bad(
            "--events",
            format!(
                "{} events over {} days is more than {MAX_EVENTS_PER_DAY} a day, which are sorted in memory",
                o.events, o.days
            ),
            "spread them over more --days, or run again with another --seed",
        );
    }
    Ok(())
}

/// The catalog's tracks with their draw weight and skip tendency.
async fn catalog(lake: &Lake) -> Result<Vec<Track>> {
    let engine = Engine::open(lake).await?;
    let missing = || Error::Input {
        place: format!("{}/silver/tracks", lake.describe()),
        problem: "there is no catalog to draw tracks from".into(),
        fix: "build it first: soundlake demo, or soundlake run spotify_catalog".into(),
    };
    if !engine.has_data("silver", "tracks").await? {
        return Err(missing());
    }
    let (_, batches) = engine
        .collect(
            "the catalog",
            "SELECT id, CAST(coalesce(popularity, 30) AS BIGINT) AS popularity, \
             CAST(coalesce(duration_ms, 200000) AS BIGINT) AS duration_ms \
             FROM silver.tracks WHERE id IS NOT NULL ORDER BY id",
        )
        .await?;
    let mut tracks = Vec::new();
    for batch in &batches {
        use arrow_array::cast::AsArray;
        use arrow_array::types::Int64Type;
        let ids = batch.column(0).as_string::<i32>();
        let popularity = batch.column(1).as_primitive::<Int64Type>();
        let durations = batch.column(2).as_primitive::<Int64Type>();
        for r in 0..batch.num_rows() {
            let id = ids.value(r).to_string();
            let pop = popularity.value(r).clamp(0, 100) as f64 / 100.0;
            // Some tracks put listeners off more than their popularity says.
            let temper = Rng::derived(0, &id).unit();
            tracks.push(Track {
                weight: 0.05 + pop * pop * 4.0,
                duration_ms: durations.value(r).clamp(30_000, 1_200_000),
                skip: (0.1 + 0.35 * temper - 0.25 * pop).clamp(0.02, 0.8),
                id,
            });
        }
    }
    if tracks.is_empty() {
        return Err(missing());
    }
    Ok(tracks)
}

fn users(rng: &mut Rng, n: u32, tracks: &[Track], popularity: &Weighted) -> Vec<User> {
    let countries = Weighted::new(COUNTRIES.iter().map(|c| c.3));
    let devices = Weighted::new(DEVICES.iter().map(|d| d.1));
    (0..n)
        .map(|i| {
            let country = countries.pick(rng);
            let cities = COUNTRIES[country].2;
            User {
                id: format!("u{i:07}"),
                country,
                city: cities[rng.below(cities.len() as u64) as usize],
                device: DEVICES[devices.pick(rng)].0,
                // Heavy-tailed: a few users listen far more than most.
                activity: (-rng.unit().max(1e-9).ln()).powf(1.5),
                skips: 0.5 + rng.unit(),
                favourites: (0..FAVOURITES.min(tracks.len()))
                    .map(|_| popularity.pick(rng))
                    .collect(),
            }
        })
        .collect()
}

struct World<'a> {
    tracks: &'a [Track],
    users: &'a [User],
    popularity: &'a Weighted,
    hours: &'a Weighted,
}

impl World<'_> {
    /// One session of `user` on `day`: events with their instant.
    fn session(&self, rng: &mut Rng, user: usize, day: NaiveDate, out: &mut Vec<(Event, i64)>) {
        let u = &self.users[user];
        let (country, offset, _, _) = COUNTRIES[u.country];
        let local_hour = self.hours.pick(rng) as i64;
        let midnight = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        let mut at = midnight.timestamp_millis()
            + (local_hour - offset).rem_euclid(24) * 3_600_000
            + rng.below(3_600_000) as i64;
        let session_id = format!("{}-{:016x}", u.id, rng.next_u64());
        let device = if rng.chance(0.8) {
            u.device
        } else {
            DEVICES[rng.below(DEVICES.len() as u64) as usize].0
        };
        let app_version = *rng.pick(&APP_VERSIONS);
        let shuffle = rng.chance(0.4);
        let length = 1 + (-rng.unit().max(1e-9).ln() * 8.0) as usize;
        for _ in 0..length {
            let t = if rng.chance(FAVOURITE_SHARE) {
                *rng.pick(&u.favourites)
            } else {
                self.popularity.pick(rng)
            };
            let track = &self.tracks[t];
            let mut emit = |rng: &mut Rng, event_type: &'static str, ts: i64| {
                out.push((
                    Event {
                        event_id: format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64()),
                        user_id: u.id.clone(),
                        track_id: track.id.clone(),
                        event_type,
                        event_ts: timestamp(ts),
                        session_id: session_id.clone(),
                        device,
                        country,
                        city: u.city,
                        app_version,
                        shuffle,
                    },
                    ts,
                ))
            };
            emit(rng, "play", at);
            if rng.chance((track.skip * u.skips).min(0.95)) {
                at += 3_000 + rng.below(40_000) as i64;
                emit(rng, "skip", at);
            } else {
                let mut end = at + track.duration_ms;
                if rng.chance(0.05) {
                    let paused = at + rng.below(track.duration_ms as u64) as i64;
                    emit(rng, "pause", paused);
                    end += 10_000 + rng.below(110_000) as i64;
                }
                if rng.chance(0.04) {
                    let liked = at + rng.below(track.duration_ms as u64) as i64;
                    emit(rng, "like", liked);
                }
                at = end;
                emit(rng, "complete", at);
            }
            at += rng.below(3_000) as i64;
        }
    }
}

fn timestamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .expect("in range")
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn render(events: &[Event], format: Format) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.len() * 300);
    if format == Format::Csv {
        out.extend_from_slice(CSV_HEADER.as_bytes());
        out.push(b'\n');
    }
    for e in events {
        match format {
            Format::Ndjson => serde_json::to_writer(&mut out, e).expect("an event serializes"),
            Format::Csv => out.extend_from_slice(e.csv().as_bytes()),
        }
        out.push(b'\n');
    }
    out
}

/// Draws indices in proportion to their weights.
struct Weighted {
    cumulative: Vec<f64>,
}

impl Weighted {
    fn new(weights: impl Iterator<Item = f64>) -> Weighted {
        let mut sum = 0.0;
        Weighted {
            cumulative: weights
                .map(|w| {
                    sum += w.max(0.0);
                    sum
                })
                .collect(),
        }
    }

    fn pick(&self, rng: &mut Rng) -> usize {
        let x = rng.unit() * self.cumulative.last().copied().unwrap_or(0.0);
        self.cumulative
            .partition_point(|c| *c <= x)
            .min(self.cumulative.len() - 1)
    }
}

/// What [`generate`] wrote, as a line of text; `lake` is where the landing
/// folder is.
pub fn render_generated(report: &GeneratedEvents, destination: &Destination, lake: &str) -> String {
    let sent_to = match destination {
        Destination::Landing => format!(
            "in {} files under {lake}/{}/",
            report.files.len(),
            super::LANDING_FOLDER
        ),
        Destination::Kafka { producer, topic } => format!(
            "as {} messages to topic {topic} at {}",
            report.messages,
            producer.brokers()
        ),
    };
    format!(
        "{} events ({} delivered twice, {} a day late) over {} tracks {sent_to}\n",
        report.events, report.duplicates, report.late, report.tracks_in_catalog,
    )
}
