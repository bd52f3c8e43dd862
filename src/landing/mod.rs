//! The landing and state store: raw API documents by collection, with the
//! metadata bronze needs, plus the crawl's state, run records and leased
//! locks. One trait, two implementations chosen by URL: MongoDB
//! (`mongodb://`, `mongodb+srv://`) and the embedded SQLite file
//! (`embedded://<path>`). The store knows nothing of Spotify beyond the
//! collection names.

mod document;
mod embedded;
pub mod lease;
mod mongo;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::SharedClock;
use crate::error::{Error, Result};

pub use document::{Prepared, content_hash, peek};
pub use embedded::EmbeddedStore;
pub use mongo::MongoStore;

/// `[landing]`: the landing store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LandingSettings {
    /// `embedded://<dir>` for the built-in file store, or `mongodb://host:27017/db`.
    pub url: String,
}

impl Default for LandingSettings {
    fn default() -> Self {
        LandingSettings {
            url: "embedded://.soundlake/landing".into(),
        }
    }
}

/// The document collections of the landing store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collection {
    /// Raw search responses, keyed by the searched name's match key: how a
    /// name became an artist id.
    Searches,
    Artists,
    Albums,
    /// The pages of an album's track listing after the part the album
    /// embeds, as sent, keyed `<album id>:<offset>`: what ties a track
    /// listed there to its album.
    AlbumTracks,
    Tracks,
    AudioFeatures,
    /// Listening events, for deployments that collect them in the store
    /// too (bronze's `copy_to_landing`), keyed by event id.
    Events,
}

impl Collection {
    pub const ALL: [Collection; 7] = [
        Collection::Searches,
        Collection::Artists,
        Collection::Albums,
        Collection::AlbumTracks,
        Collection::Tracks,
        Collection::AudioFeatures,
        Collection::Events,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Collection::Searches => "searches",
            Collection::Artists => "artists",
            Collection::Albums => "albums",
            Collection::AlbumTracks => "album_tracks",
            Collection::Tracks => "tracks",
            Collection::AudioFeatures => "audio_features",
            Collection::Events => "events",
        }
    }

    /// The `type` field Spotify puts on the objects of this collection.
    pub fn object_type(self) -> Option<&'static str> {
        match self {
            Collection::Searches | Collection::AlbumTracks => None,
            Collection::Artists => Some("artist"),
            Collection::Albums => Some("album"),
            Collection::Tracks => Some("track"),
            Collection::AudioFeatures => Some("audio_features"),
            Collection::Events => None,
        }
    }
}

/// The key of a page of an album's track listing in
/// [`Collection::AlbumTracks`].
pub fn album_tracks_key(album_id: &str, offset: u64) -> String {
    format!("{album_id}:{offset}")
}

impl fmt::Display for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Collection {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Collection::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Collection::ALL.iter().map(|c| c.name()).collect();
                format!(
                    "unknown collection {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Documents fetched together: one run, one endpoint.
#[derive(Debug, Clone)]
pub struct Batch {
    pub run_id: String,
    pub endpoint: String,
    pub docs: Vec<Prepared>,
}

impl Batch {
    /// `docs` as `(key, raw document)`, the key the Spotify id (or the
    /// search key), prepared on every core: writing and hashing the text is
    /// most of an upsert's CPU, and a store writes on one.
    pub fn new(run_id: &str, endpoint: &str, docs: Vec<(String, Value)>) -> Batch {
        Batch {
            run_id: run_id.to_string(),
            endpoint: endpoint.to_string(),
            docs: docs
                .into_par_iter()
                .map(|(id, doc)| Prepared::new(id, &doc))
                .collect(),
        }
    }
}

/// A stored document and its metadata; the document parsed, or as its
/// JSON text ([`Store::scan_text`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stored<D = Value> {
    pub id: String,
    pub doc: D,
    pub first_seen: DateTime<Utc>,
    /// When the document was last fetched, changed or not.
    pub last_fetched: DateTime<Utc>,
    /// The ingest stamp of the current version (see [`Stamp`]).
    pub ingested_at: Stamp,
    /// The run that fetched the current version, and through which endpoint.
    pub run_id: String,
    pub endpoint: String,
    pub content_hash: String,
    /// How many distinct versions were landed.
    pub versions: u32,
}

impl<D> Stored<D> {
    pub fn map_doc<E>(self, f: impl FnOnce(D) -> E) -> Stored<E> {
        Stored {
            id: self.id,
            doc: f(self.doc),
            first_seen: self.first_seen,
            last_fetched: self.last_fetched,
            ingested_at: self.ingested_at,
            run_id: self.run_id,
            endpoint: self.endpoint,
            content_hash: self.content_hash,
            versions: self.versions,
        }
    }
}

/// The bronze watermark: microseconds since the epoch, strictly increasing
/// across the store's batches even when the wall clock steps back, so
/// "every version after stamp S" is a complete, repeatable question.
pub type Stamp = i64;

/// What an upsert did to each document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpsertCounts {
    pub new: u64,
    pub changed: u64,
    pub unchanged: u64,
}

impl std::ops::AddAssign for UpsertCounts {
    fn add_assign(&mut self, o: Self) {
        self.new += o.new;
        self.changed += o.changed;
        self.unchanged += o.unchanged;
    }
}

/// A run of a task, as recorded for `soundlake runs` and the scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub task: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, `succeeded`, `failed` or `paused`.
    pub status: String,
    pub report: Value,
}

/// Where [`DocumentStore::scan`] resumes: after this `(stamp, id)`.
pub type ScanCursor = (Stamp, String);

/// The cursor from which a scan returns every version stamped `stamp` or
/// later: ids are UTF-8, and none sorts after U+10FFFF.
pub fn cursor_before(stamp: Stamp) -> ScanCursor {
    (stamp - 1, char::MAX.to_string())
}

/// The landing documents: every fetched version of every document, by
/// collection and key, stamped as it lands and scanned in stamp order.
#[async_trait::async_trait]
pub trait DocumentStore: Send + Sync + fmt::Debug {
    /// The store's URL with any password redacted, for messages.
    fn describe(&self) -> String;

    /// Insert or update the batch's documents by key, in bulk. A document
    /// whose content hash equals the stored one is unchanged: only its
    /// `last_fetched` moves. New and changed documents get one fresh stamp.
    async fn upsert(&self, collection: Collection, batch: Batch) -> Result<UpsertCounts>;

    async fn get(&self, collection: Collection, id: &str) -> Result<Option<Stored>>;

    /// When each of `ids` that is present was last fetched.
    async fn last_fetched(
        &self,
        collection: Collection,
        ids: &[String],
    ) -> Result<HashMap<String, DateTime<Utc>>>;

    /// Up to `limit` documents in `(ingested_at, id)` order, after `cursor`.
    async fn scan(
        &self,
        collection: Collection,
        after: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<Vec<Stored>>;

    /// [`DocumentStore::scan`] with each document as compact JSON text, which is
    /// what bronze keeps: a store holding the text hands it over without
    /// parsing and printing it again.
    async fn scan_text(
        &self,
        collection: Collection,
        after: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<Vec<Stored<String>>> {
        let docs = self.scan(collection, after, limit).await?;
        Ok(docs
            .into_iter()
            .map(|d| d.map_doc(|doc| doc.to_string()))
            .collect())
    }

    async fn count(&self, collection: Collection) -> Result<u64>;

    /// Delete the documents of `ids` (a takedown); returns how many were
    /// there.
    async fn delete(&self, collection: Collection, ids: &[String]) -> Result<u64>;

    /// A stamp at or below which every version is already visible to
    /// [`DocumentStore::scan`]: no writer still holds a smaller stamp. Bronze reads
    /// up to it, so a batch being written is never half-extracted. `None`
    /// before the first write.
    async fn stable_stamp(&self) -> Result<Option<Stamp>>;
}

/// What runs keep between them: small state values, leased locks and run
/// records.
#[async_trait::async_trait]
pub trait StateStore: Send + Sync {
    /// Crawl cursors, frontiers, saved deadlines: small JSON values by key.
    async fn get_state(&self, key: &str) -> Result<Option<Value>>;
    async fn put_state(&self, key: &str, value: &Value) -> Result<()>;
    async fn delete_state(&self, key: &str) -> Result<()>;
    /// State entries whose key starts with `prefix`, by key.
    async fn state_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Value)>>;

    /// The latest version of a value several processes change at once, with
    /// its number (versions count from 1).
    async fn get_versioned(&self, key: &str) -> Result<Option<(u64, Value)>>;
    /// Store `value` as version `version` of `key` if the latest is
    /// `version - 1` (or there is none, for version 1); `false`, writing
    /// nothing, when another writer got there first. One atomic step.
    async fn put_versioned(&self, key: &str, version: u64, value: &Value) -> Result<bool>;
    /// The latest version of every versioned value whose key starts with
    /// `prefix`, by key.
    async fn versioned_with_prefix(&self, prefix: &str) -> Result<Vec<(String, u64, Value)>>;

    /// Take or renew the lock `name` for `holder` until `until`. Succeeds
    /// when the lock is free, already `holder`'s, or its lease ended before `now`.
    async fn try_lock(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool>;
    /// Release `name` if `holder` holds it.
    async fn unlock(&self, name: &str, holder: &str) -> Result<()>;
    /// Who holds (or last held) the lock `name`, whatever its lease.
    async fn lock_holder(&self, name: &str) -> Result<Option<String>>;

    /// Record a run that starts now; `false`, writing nothing, when a run
    /// with its id exists already. One atomic step in the store, so two
    /// processes can never both start the run an id names.
    async fn create_run(&self, run: &RunRecord) -> Result<bool>;
    /// Write a run's record over the one its id has (its progress, its end).
    async fn put_run(&self, run: &RunRecord) -> Result<()>;
    /// The most recent runs first.
    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>>;
}

/// The landing and state store: one backend serves both roles, so one
/// URL and one connection serve a deployment.
pub trait Store: DocumentStore + StateStore {}

impl<T: DocumentStore + StateStore> Store for T {}

pub type SharedStore = Arc<dyn Store>;

/// Open the store a landing URL names; collections, tables and indexes are
/// created on the way.
pub async fn open(url: &str, clock: SharedClock) -> Result<SharedStore> {
    if let Some(path) = url.strip_prefix("embedded://") {
        Ok(Arc::new(EmbeddedStore::open(path, clock).await?))
    } else if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") {
        Ok(Arc::new(MongoStore::open(url, clock).await?))
    } else {
        Err(Error::config(
            "[landing] url",
            format!(
                "{:?} is not a landing store URL",
                crate::secret::redact_url(url)
            ),
            "use embedded://.soundlake/landing (the default) or mongodb://host:27017/soundlake",
        ))
    }
}

/// The next stamp after `last`: the clock's microseconds, or `last + 1`
/// when the clock has not moved past it.
fn next_stamp(last: Option<Stamp>, now: DateTime<Utc>) -> Stamp {
    let now = now.timestamp_micros();
    match last {
        Some(last) if last >= now => last + 1,
        _ => now,
    }
}

/// How each incoming document compares with the stored hash.
enum Change {
    New,
    Changed,
    Unchanged,
}

fn classify(stored_hash: Option<&String>, hash: &str) -> Change {
    match stored_hash {
        None => Change::New,
        Some(h) if h == hash => Change::Unchanged,
        Some(_) => Change::Changed,
    }
}

/// Refuse a batch that names one key twice: which version wins would be
/// an accident of order.
fn check_batch(collection: Collection, batch: &Batch) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for id in batch.docs.iter().map(Prepared::id) {
        if id.is_empty() {
            return Err(Error::Store {
                store: collection.name().into(),
                problem: "a document has an empty id".into(),
                fix: "give every document a non-empty `id`".into(),
            });
        }
        if !seen.insert(id) {
            return Err(Error::Store {
                store: collection.name().into(),
                problem: format!("the id {id:?} appears twice in one batch"),
                fix: "de-duplicate the batch before landing it".into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_never_go_back() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(next_stamp(None, t), t.timestamp_micros());
        let later = t.timestamp_micros() + 5_000_000;
        assert_eq!(next_stamp(Some(later), t), later + 1, "clock stepped back");
        assert_eq!(
            next_stamp(Some(later - 10), t + chrono::Duration::seconds(5)),
            later
        );
    }
}
