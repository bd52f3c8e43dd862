//! The crawl task: names → artists → albums → tracks → audio features,
//! through the rate-governed client into the landing store.
//!
//! A run takes the next names that are due, in steps that each end with
//! their documents durable in the store, and saves progress after that:
//! per name (resolved, in progress, crawled at) and per artist (the albums
//! that were new when its discography was listed). A run killed at any
//! instant is redone by the next from that state; upserts by id make the
//! repeated writes harmless. Requests are batched across all artists of a
//! run, so a run costs the endpoint minimum for what it fetches.

mod resolve;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use resolve::{Resolution, Status, resolve};

use crate::artist_names::match_key;
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::landing::{Batch, Collection, SharedStore, UpsertCounts, album_tracks_key};
use crate::progress::{Extras, Note, Progress, Unit};
use crate::spotify::ApiError;
use crate::spotify::{ALL_GROUPS, AppMode, ClientStats, Endpoint, SpotifyClient};
use crate::spotify::{WaitCause, WaitReason};

/// `[crawl]`: what a crawl run takes on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrawlSettings {
    /// Artist names to crawl, one per line.
    pub artists_file: PathBuf,
    /// How many names one crawl run takes on.
    pub names_per_run: u32,
    /// Stop a run after this many API requests (0: no limit); the next run
    /// resumes where it stopped.
    pub request_budget: u64,
    /// Stop a run after this many seconds (0: no limit).
    pub time_budget_secs: u64,
    /// Re-crawl an artist (its profile and any new albums) after this many days.
    pub refresh_after_days: u32,
    /// In Development Mode, fetch every track on its own for the fields album
    /// track listings lack (ISRC, popularity): one request per track.
    pub development_full_tracks: bool,
}

impl Default for CrawlSettings {
    fn default() -> Self {
        CrawlSettings {
            artists_file: "artists.txt".into(),
            names_per_run: 5,
            request_budget: 0,
            time_budget_secs: 0,
            refresh_after_days: 7,
            development_full_tracks: false,
        }
    }
}

/// Search hits asked for per name: enough to see namesakes.
const SEARCH_LIMIT: u32 = 10;
/// Simplified tracks landed per write in Development Mode.
const WRITE_BATCH: usize = 500;

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct CrawlReport {
    pub run_id: String,
    pub outcome: Outcome,
    /// The app mode at the end of the run (configured, or detected).
    pub mode: AppMode,
    pub names_taken: Vec<String>,
    /// Artists whose data is complete and whose progress is saved.
    pub artists_completed: u64,
    pub names_unresolved: Vec<Unresolved>,
    pub documents: BTreeMap<Collection, UpsertCounts>,
    pub requests: BTreeMap<Endpoint, u64>,
    pub requests_total: u64,
    /// 429 answers.
    pub throttled: u64,
    /// Of those, the ones drawn by other traffic on the same quota (a
    /// process that died, another one with the credential): they paused the
    /// crawl but left its budget as it was.
    pub throttled_by_others: u64,
    pub retries: u64,
    pub reauthentications: u64,
    /// Time spent waiting for a request slot, by cause (wall time).
    pub waited_secs: BTreeMap<WaitCause, f64>,
    /// Requests sent over what the configured budget allowed in the time
    /// the run took (at least one window): 1.0 is the whole budget.
    pub rate_budget_used: f64,
    /// Steps left out, and why (audio features refused, for example).
    pub skipped: Vec<String>,
    /// Documents not landed because they name a taken-down artist.
    pub withheld: u64,
}

impl CrawlReport {
    /// When the run stopped on a long rate-limit or quota wait: the error
    /// saying until when (the frontier is saved; the next run resumes).
    pub fn paused(&self) -> Option<Error> {
        match self.outcome {
            Outcome::Paused { until, reason } => {
                Some(ApiError::ComeBackAt { until, reason }.into())
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The names taken are crawled.
    Completed,
    /// No name is due; the earliest refresh falls due at `next_due`.
    NothingDue { next_due: Option<DateTime<Utc>> },
    /// A request or time budget ran out; the next run resumes.
    BudgetReached { budget: String },
    /// Spotify asked for a long wait; nothing more until `until`.
    Paused {
        until: DateTime<Utc>,
        reason: WaitReason,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unresolved {
    pub name: String,
    pub status: Status,
    pub reason: String,
}

/// The saved state of one name, under `crawl/name/<match key>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NameState {
    name: String,
    status: Status,
    artist_id: Option<String>,
    reason: String,
    /// Set once the name's artist is taken on; cleared when its data is durable.
    in_progress: bool,
    crawled_at: Option<DateTime<Utc>>,
}

/// The saved discography step of one artist, under `crawl/artist/<id>`:
/// the albums that were not in the store when it was listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ArtistPass {
    new_albums: Vec<String>,
}

fn name_key(name: &str) -> String {
    format!("crawl/name/{}", match_key(name))
}

fn artist_key(id: &str) -> String {
    format!("crawl/artist/{id}")
}

/// Why a run stops before its batch is done.
enum Halt {
    Budget(String),
    Failed(Error),
}

impl From<Error> for Halt {
    fn from(e: Error) -> Self {
        Halt::Failed(e)
    }
}

type Step<T = ()> = std::result::Result<T, Halt>;

pub struct Crawler {
    client: SpotifyClient,
    store: SharedStore,
    clock: SharedClock,
    settings: CrawlSettings,
    progress: Progress,
}

/// One run in flight: its budget and what it has done so far.
struct Run<'a> {
    crawler: &'a Crawler,
    /// Artists taken down: no document naming one is landed.
    taken_down: std::collections::HashSet<String>,
    started: DateTime<Utc>,
    stats_before: ClientStats,
    report: CrawlReport,
}

impl Crawler {
    pub fn new(
        client: SpotifyClient,
        store: SharedStore,
        clock: SharedClock,
        settings: CrawlSettings,
    ) -> Crawler {
        Crawler {
            client,
            store,
            clock,
            settings,
            progress: Progress::default(),
        }
    }

    /// Show the names taken and each stage's requests on `progress`.
    pub fn with_progress(self, progress: Progress) -> Crawler {
        Crawler { progress, ..self }
    }

    /// Crawl the next due names of `names` (the names file, in order).
    pub async fn run(&self, names: &[String], run_id: &str) -> Result<CrawlReport> {
        let governor = self.client.governor();
        let governed_before = governor.stats();
        let mut run = Run {
            crawler: self,
            taken_down: crate::retention::taken_down(&self.store).await?,
            started: self.clock.now(),
            stats_before: self.client.stats(),
            report: CrawlReport {
                run_id: run_id.to_string(),
                outcome: Outcome::Completed,
                mode: self.client.mode(),
                names_taken: Vec::new(),
                artists_completed: 0,
                names_unresolved: Vec::new(),
                documents: BTreeMap::new(),
                requests: BTreeMap::new(),
                requests_total: 0,
                throttled: 0,
                throttled_by_others: 0,
                retries: 0,
                reauthentications: 0,
                waited_secs: BTreeMap::new(),
                rate_budget_used: 0.0,
                skipped: Vec::new(),
                withheld: 0,
            },
        };
        run.report.outcome = match run.go(names).await {
            Ok(outcome) => outcome,
            Err(Halt::Budget(budget)) => Outcome::BudgetReached { budget },
            // The pause is in the credential's rate ledger: the next run
            // finds it there.
            Err(Halt::Failed(e))
                if let Some(&ApiError::ComeBackAt { until, reason }) = e.source_error() =>
            {
                Outcome::Paused { until, reason }
            }
            Err(Halt::Failed(e)) => return Err(e),
        };
        let stats = self.client.stats().since(&run.stats_before);
        let governed = governor.stats().since(&governed_before);
        let r = &mut run.report;
        r.mode = self.client.mode();
        r.requests_total = stats.total_requests();
        r.requests = stats.requests;
        r.throttled = stats.throttled;
        r.throttled_by_others = governed.foreign_throttles;
        r.retries = stats.retries;
        r.reauthentications = stats.reauthentications;
        r.waited_secs = governed
            .waited
            .iter()
            .map(|(cause, waited)| (*cause, waited.as_secs_f64()))
            .collect();
        let settings = governor.settings();
        let windows = (self.clock.now() - run.started)
            .as_seconds_f64()
            .max(settings.window.as_secs_f64())
            / settings.window.as_secs_f64();
        r.rate_budget_used = r.requests_total as f64 / (f64::from(settings.budget) * windows);
        Ok(run.report)
    }

    /// Names to take this run, in this order: interrupted ones, never
    /// crawled ones, then those due for a refresh; or when the next is due.
    async fn select(
        &self,
        names: &[String],
    ) -> Result<std::result::Result<Vec<(String, Option<NameState>)>, Option<DateTime<Utc>>>> {
        let saved: HashMap<String, NameState> = self
            .store
            .state_with_prefix("crawl/name/")
            .await?
            .into_iter()
            .filter_map(|(k, v)| Some((k, serde_json::from_value(v).ok()?)))
            .collect();
        let refresh = chrono::Duration::days(i64::from(self.settings.refresh_after_days));
        let now = self.clock.now();
        let mut next_due: Option<DateTime<Utc>> = None;
        let mut ranked: Vec<(u8, String, Option<NameState>)> = Vec::new();
        for name in names {
            let state = saved.get(&name_key(name)).cloned();
            let rank = match &state {
                Some(s) if s.in_progress => 0,
                None => 1,
                Some(s) => {
                    let due = s.crawled_at.map_or(now, |at| at + refresh);
                    if due > now {
                        next_due = Some(next_due.map_or(due, |d| d.min(due)));
                        continue;
                    }
                    2
                }
            };
            ranked.push((rank, name.clone(), state));
        }
        ranked.sort_by_key(|(rank, _, _)| *rank);
        ranked.truncate(self.settings.names_per_run.max(1) as usize);
        if ranked.is_empty() {
            return Ok(Err(next_due));
        }
        Ok(Ok(ranked.into_iter().map(|(_, n, s)| (n, s)).collect()))
    }
}

impl Run<'_> {
    fn store(&self) -> &SharedStore {
        &self.crawler.store
    }

    fn client(&self) -> &SpotifyClient {
        &self.crawler.client
    }

    async fn go(&mut self, names: &[String]) -> Step<Outcome> {
        // A pause a 429 imposed (on an earlier run, or another process) and
        // longer than the client sleeps through: nothing to do until then.
        if let Some((until, reason)) = self.client().governor().long_pause().await? {
            return Ok(Outcome::Paused { until, reason });
        }
        let batch = match self.crawler.select(names).await? {
            Ok(batch) => batch,
            Err(next_due) => return Ok(Outcome::NothingDue { next_due }),
        };
        self.report.names_taken = batch.iter().map(|(n, _)| n.clone()).collect();
        let governor = self.crawler.client.governor().clone();
        let note = Note::new(move || {
            let until = governor.waiting_until()?;
            Some(format!(
                "waiting for the rate limit until {}",
                until.format("%H:%M:%S UTC")
            ))
        });
        let bar = self.crawler.progress.bar_with(
            "crawl",
            Some(batch.len() as u64),
            Unit::Items("names"),
            Extras { note, tally: None },
        );
        let (client, before) = (&self.crawler.client, self.stats_before.clone());
        let stage = |what: &str| {
            let requests = client.stats().since(&before).total_requests();
            bar.set_message(format!("{what} ({requests} requests)"));
        };

        let mut artists: Vec<NameState> = Vec::new();
        for (name, state) in batch {
            stage(&format!("resolving {name:?}"));
            bar.inc(1);
            let state = match state {
                Some(s) if s.status == Status::Matched && s.artist_id.is_some() => s,
                _ => {
                    self.within_budget()?;
                    self.resolve(&name).await?
                }
            };
            if state.status == Status::Matched {
                let state = NameState {
                    in_progress: true,
                    ..state
                };
                self.save_name(&state).await?;
                artists.push(state);
            } else {
                self.report.names_unresolved.push(Unresolved {
                    name: state.name.clone(),
                    status: state.status,
                    reason: state.reason.clone(),
                });
            }
        }
        let ids: Vec<String> = unique(artists.iter().filter_map(|s| s.artist_id.clone()));

        stage("artists");
        self.refresh_artists(&ids).await?;
        stage("discographies");
        let new_albums = self.discographies(&ids).await?;
        stage("albums");
        self.albums(&new_albums).await?;
        stage("tracks");
        let tracks = self.tracks(&new_albums).await?;
        stage("audio features");
        self.audio_features(&tracks).await?;
        stage("done");
        bar.finish();

        let now = self.crawler.clock.now();
        for state in artists {
            if let Some(id) = &state.artist_id {
                self.store().delete_state(&artist_key(id)).await?;
            }
            self.save_name(&NameState {
                in_progress: false,
                crawled_at: Some(now),
                ..state
            })
            .await?;
            self.report.artists_completed += 1;
        }
        Ok(Outcome::Completed)
    }

    /// Stop when the run's request or time budget is spent.
    fn within_budget(&self) -> Step {
        let s = &self.crawler.settings;
        let used = self.client().stats().total_requests() - self.stats_before.total_requests();
        if s.request_budget > 0 && used >= s.request_budget {
            return Err(Halt::Budget(format!(
                "request budget of {}",
                s.request_budget
            )));
        }
        let elapsed = (self.crawler.clock.now() - self.started)
            .to_std()
            .unwrap_or_default();
        if s.time_budget_secs > 0 && elapsed >= Duration::from_secs(s.time_budget_secs) {
            return Err(Halt::Budget(format!(
                "time budget of {} s",
                s.time_budget_secs
            )));
        }
        Ok(())
    }

    async fn land(&mut self, collection: Collection, endpoint: Endpoint, docs: Vec<Value>) -> Step {
        let docs: Vec<(String, Value)> = docs
            .into_iter()
            .filter_map(|d| Some((d["id"].as_str()?.to_string(), d)))
            .collect();
        self.land_keyed(collection, &endpoint.to_string(), docs)
            .await
    }

    async fn land_keyed(
        &mut self,
        collection: Collection,
        endpoint: &str,
        docs: Vec<(String, Value)>,
    ) -> Step {
        let mut batch = Batch::new(&self.report.run_id, endpoint, docs);
        if !self.taken_down.is_empty() {
            let before = batch.docs.len();
            batch
                .docs
                .retain(|doc| !crate::retention::names_any(doc.text(), &self.taken_down));
            self.report.withheld += (before - batch.docs.len()) as u64;
        }
        if batch.docs.is_empty() {
            return Ok(());
        }
        let counts = self.store().upsert(collection, batch).await?;
        *self.report.documents.entry(collection).or_default() += counts;
        Ok(())
    }

    async fn save_name(&self, state: &NameState) -> Step {
        let value = serde_json::to_value(state).expect("name state serializes");
        self.store()
            .put_state(&name_key(&state.name), &value)
            .await?;
        Ok(())
    }

    /// Search the name, land the response, and land the artist it resolves
    /// to (search answers with full artist objects).
    async fn resolve(&mut self, name: &str) -> Step<NameState> {
        let response = self.client().search_artists(name, SEARCH_LIMIT, 0).await?;
        let resolution = resolve(name, &response);
        self.land_keyed(
            Collection::Searches,
            &Endpoint::Search.to_string(),
            vec![(match_key(name), response)],
        )
        .await?;
        let artist_id = resolution
            .artist
            .as_ref()
            .and_then(|a| a["id"].as_str())
            .map(str::to_string);
        if let Some(artist) = resolution.artist {
            self.land(Collection::Artists, Endpoint::Search, vec![artist])
                .await?;
        }
        let state = NameState {
            name: name.to_string(),
            status: resolution.status,
            artist_id,
            reason: resolution.reason,
            in_progress: false,
            crawled_at: (resolution.status != Status::Matched).then(|| self.crawler.clock.now()),
        };
        self.save_name(&state).await?;
        Ok(state)
    }

    /// Re-fetch the profiles of artists not fetched within the refresh age.
    async fn refresh_artists(&mut self, ids: &[String]) -> Step {
        let fetched = self.store().last_fetched(Collection::Artists, ids).await?;
        let refresh = chrono::Duration::days(i64::from(self.crawler.settings.refresh_after_days));
        let now = self.crawler.clock.now();
        let stale: Vec<String> = ids
            .iter()
            .filter(|id| fetched.get(*id).is_none_or(|at| *at + refresh <= now))
            .cloned()
            .collect();
        self.read_in_batches(
            Collection::Artists,
            (Endpoint::SeveralArtists, Endpoint::Artist),
            &stale,
            async |c, ids| c.artists(ids).await,
        )
        .await
    }

    /// List each artist's albums (or reuse the listing saved by an
    /// interrupted run) and return the albums new to the store.
    async fn discographies(&mut self, ids: &[String]) -> Step<Vec<String>> {
        let mut new_albums = Vec::new();
        for id in ids {
            let key = artist_key(id);
            let saved = self.store().get_state(&key).await?;
            let pass = match saved.and_then(|v| serde_json::from_value::<ArtistPass>(v).ok()) {
                Some(pass) => pass,
                None => {
                    self.within_budget()?;
                    let listed = self.client().artist_albums(id, ALL_GROUPS).await?;
                    let album_ids = unique(
                        listed
                            .iter()
                            .filter_map(|a| a["id"].as_str().map(str::to_string)),
                    );
                    let known = self
                        .store()
                        .last_fetched(Collection::Albums, &album_ids)
                        .await?;
                    let pass = ArtistPass {
                        new_albums: album_ids
                            .into_iter()
                            .filter(|a| !known.contains_key(a))
                            .collect(),
                    };
                    let value = serde_json::to_value(&pass).expect("pass serializes");
                    self.store().put_state(&key, &value).await?;
                    pass
                }
            };
            new_albums.extend(pass.new_albums);
        }
        Ok(unique(new_albums))
    }

    /// Fetch the full albums among `ids` that the store lacks.
    async fn albums(&mut self, ids: &[String]) -> Step {
        let missing = self.missing(Collection::Albums, ids).await?;
        self.read_in_batches(
            Collection::Albums,
            (Endpoint::SeveralAlbums, Endpoint::Album),
            &missing,
            async |c, ids| c.albums(ids).await,
        )
        .await
    }

    /// The tracks of the albums `ids` (their embedded first page, then the
    /// rest), landed as full tracks where the mode allows; returns their ids.
    async fn tracks(&mut self, album_ids: &[String]) -> Step<Vec<String>> {
        let mut listed: Vec<Value> = Vec::new();
        for id in album_ids {
            let Some(album) = self.store().get(Collection::Albums, id).await? else {
                continue;
            };
            let mut items: Vec<Value> = album.doc["tracks"]["items"]
                .as_array()
                .map(|a| a.iter().filter(|t| t.is_object()).cloned().collect())
                .unwrap_or_default();
            let total = album.doc["tracks"]["total"].as_u64().unwrap_or(0);
            if total > items.len() as u64 {
                self.within_budget()?;
                let offset = u32::try_from(items.len()).unwrap_or(u32::MAX);
                let pages = self.client().album_track_pages(id, offset).await?;
                // The pages are landed as sent: the tracks they list carry
                // no album, and the page's key is what ties them to it.
                let mut keyed = Vec::with_capacity(pages.len());
                for page in pages {
                    // A page that does not say where it starts starts where
                    // the one before ended.
                    let at = page["offset"].as_u64().unwrap_or(items.len() as u64);
                    if let Some(page_items) = page["items"].as_array() {
                        items.extend(page_items.iter().filter(|t| t.is_object()).cloned());
                    }
                    keyed.push((album_tracks_key(id, at), page));
                }
                self.land_keyed(
                    Collection::AlbumTracks,
                    &Endpoint::AlbumTracks.to_string(),
                    keyed,
                )
                .await?;
            }
            listed.extend(items);
        }
        let ids = unique(
            listed
                .iter()
                .filter_map(|t| t["id"].as_str().map(str::to_string)),
        );
        let missing: HashSet<String> = self
            .missing(Collection::Tracks, &ids)
            .await?
            .into_iter()
            .collect();
        let full = self.client().mode() == AppMode::Extended
            || self.crawler.settings.development_full_tracks;
        if full {
            let wanted: Vec<String> = ids
                .iter()
                .filter(|id| missing.contains(*id))
                .cloned()
                .collect();
            self.read_in_batches(
                Collection::Tracks,
                (Endpoint::SeveralTracks, Endpoint::Track),
                &wanted,
                async |c, ids| c.tracks(ids).await,
            )
            .await?;
        } else {
            let mut seen = HashSet::new();
            let simplified: Vec<Value> = listed
                .into_iter()
                .filter(|t| {
                    t["id"]
                        .as_str()
                        .is_some_and(|id| missing.contains(id) && seen.insert(id.to_string()))
                })
                .collect();
            for chunk in simplified.chunks(WRITE_BATCH) {
                self.land(Collection::Tracks, Endpoint::AlbumTracks, chunk.to_vec())
                    .await?;
            }
            if !simplified.is_empty() {
                self.note_skip(
                    "full tracks: Development Mode reads them one request each; album track \
                     listings were landed instead (set [crawl] development_full_tracks = true for ISRC and popularity)",
                );
            }
        }
        Ok(ids)
    }

    /// Audio features of `track_ids` the store lacks, where the API gives them.
    async fn audio_features(&mut self, track_ids: &[String]) -> Step {
        if self.client().mode() == AppMode::Development {
            self.note_skip("audio features: Development Mode apps get none");
            return Ok(());
        }
        let missing = self.missing(Collection::AudioFeatures, track_ids).await?;
        for chunk in missing.chunks(batch_size(Endpoint::SeveralAudioFeatures)) {
            self.within_budget()?;
            match self.client().audio_features(chunk).await {
                Ok(found) => {
                    self.land(
                        Collection::AudioFeatures,
                        Endpoint::SeveralAudioFeatures,
                        found.into_iter().flatten().collect(),
                    )
                    .await?
                }
                Err(e) => {
                    if let Some(ApiError::Unavailable { why, .. }) = e.source_error() {
                        self.note_skip(&format!("audio features: {why}"));
                        return Ok(());
                    }
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    async fn missing(&self, collection: Collection, ids: &[String]) -> Step<Vec<String>> {
        let known = self.store().last_fetched(collection, ids).await?;
        Ok(ids
            .iter()
            .filter(|id| !known.contains_key(*id))
            .cloned()
            .collect())
    }

    /// Read `ids` a batch at a time (one id a request in Development Mode)
    /// and land each batch before the next.
    async fn read_in_batches(
        &mut self,
        collection: Collection,
        (batch, single): (Endpoint, Endpoint),
        ids: &[String],
        read: impl AsyncFn(&SpotifyClient, &[String]) -> Result<Vec<Option<Value>>>,
    ) -> Step {
        let client = self.client().clone();
        for chunk in ids.chunks(batch_size(batch)) {
            self.within_budget()?;
            let found = read(&client, chunk).await?;
            // The endpoint the read ended up using, for the metadata.
            let endpoint = match client.mode() {
                AppMode::Extended => batch,
                AppMode::Development => single,
            };
            self.land(collection, endpoint, found.into_iter().flatten().collect())
                .await?;
        }
        Ok(())
    }

    fn note_skip(&mut self, what: &str) {
        if !self.report.skipped.iter().any(|s| s == what) {
            self.report.skipped.push(what.to_string());
        }
    }
}

fn batch_size(endpoint: Endpoint) -> usize {
    endpoint.batch_size().expect("batch endpoint")
}

/// Distinct values, first occurrence kept, order preserved.
fn unique(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    values
        .into_iter()
        .filter(|v| seen.insert(v.clone()))
        .collect()
}

/// The report as text for a terminal.
pub fn render(r: &CrawlReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let outcome = match &r.outcome {
        Outcome::Completed => "completed".to_string(),
        Outcome::NothingDue { next_due: Some(at) } => format!(
            "nothing due; the next refresh is due at {}",
            at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        Outcome::NothingDue { next_due: None } => "nothing due".to_string(),
        Outcome::BudgetReached { budget } => format!("stopped at the {budget}; run again to go on"),
        Outcome::Paused { until, reason } => format!("paused until {until} ({reason})"),
    };
    let _ = writeln!(out, "crawl {}: {outcome} ({} mode)", r.run_id, r.mode);
    if !r.names_taken.is_empty() {
        let _ = writeln!(
            out,
            "  names: {} taken, {} artists completed, {} unresolved",
            r.names_taken.len(),
            r.artists_completed,
            r.names_unresolved.len()
        );
    }
    for u in &r.names_unresolved {
        let _ = writeln!(out, "    {:?} {:?}: {}", u.name, u.status, u.reason);
    }
    for (collection, c) in &r.documents {
        let _ = writeln!(
            out,
            "  {collection}: {} new, {} changed, {} unchanged",
            c.new, c.changed, c.unchanged
        );
    }
    if r.withheld > 0 {
        let _ = writeln!(
            out,
            "  withheld {} documents naming a taken-down artist",
            r.withheld
        );
    }
    let by_endpoint: Vec<String> = r.requests.iter().map(|(e, n)| format!("{e} {n}")).collect();
    if r.requests_total == 0 {
        return out;
    }
    let _ = writeln!(
        out,
        "  requests: {} ({}); 429s {} ({} from other traffic), retries {}",
        r.requests_total,
        by_endpoint.join(", "),
        r.throttled,
        r.throttled_by_others,
        r.retries,
    );
    let waits: Vec<String> = r
        .waited_secs
        .iter()
        .map(|(cause, secs)| format!("{} {secs:.1} s", cause.describe()))
        .collect();
    let _ = writeln!(
        out,
        "  rate budget: {:.0}% used; waited {}",
        r.rate_budget_used * 100.0,
        if waits.is_empty() {
            "never".to_string()
        } else {
            waits.join(", ")
        }
    );
    for s in &r.skipped {
        let _ = writeln!(out, "  skipped {s}");
    }
    out
}
