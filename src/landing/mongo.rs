//! The MongoDB store (official driver). A landed document is
//! `{_id, doc: <raw API object>, content_hash, first_seen, last_fetched,
//! ingested_at, run_id, endpoint, versions}`: the raw object stays whole
//! and queryable under `doc`, and no API field can collide with ours.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Database, IndexModel};
use serde_json::Value;

use super::{
    Batch, Change, Collection, DocumentStore, RunRecord, ScanCursor, Stamp, StateStore, Stored,
    UpsertCounts, check_batch, classify, next_stamp,
};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::secret::redact_url;

const DEFAULT_DATABASE: &str = "soundlake";
const STAMP_ID: &str = "last_ingest_stamp";
/// How long a writer may hold a stamp before bronze stops waiting for its
/// batch: far longer than writing one batch takes.
const IN_FLIGHT_LEASE: chrono::TimeDelta = chrono::TimeDelta::minutes(10);
/// Statements per `update` command, well under the server's 100,000 and
/// its 48 MB message limit for typical documents.
const WRITE_CHUNK: usize = 500;
/// The server's code for a write whose `_id` is taken.
const DUPLICATE_KEY: i32 = 11000;

#[derive(Debug)]
pub struct MongoStore {
    url: String,
    db: Database,
    clock: SharedClock,
}

impl MongoStore {
    /// Connect, check the server answers, and create the indexes.
    pub async fn open(url: &str, clock: SharedClock) -> Result<MongoStore> {
        let shown = redact_url(url);
        let mut options = ClientOptions::parse(url).await.map_err(|e| Error::Store {
            store: shown.clone(),
            problem: format!("the URL is not valid: {}", scrub(&e, url)),
            fix: "use mongodb://[user:password@]host:27017/database (see [landing] url)".into(),
        })?;
        options.app_name = Some("soundlake".into());
        options
            .server_selection_timeout
            .get_or_insert(Duration::from_secs(10));
        let database = options
            .default_database
            .clone()
            .unwrap_or_else(|| DEFAULT_DATABASE.into());
        let client = Client::with_options(options).map_err(|e| failure(&shown, url, e))?;
        let store = MongoStore {
            db: client.database(&database),
            url: shown,
            clock,
        };
        store
            .db
            .run_command(doc! {"ping": 1})
            .await
            .map_err(|e| store.error(e))?;
        store.create_indexes().await?;
        Ok(store)
    }

    async fn create_indexes(&self) -> Result<()> {
        for c in Collection::ALL {
            let index = IndexModel::builder()
                .keys(doc! {"ingested_at": 1, "_id": 1})
                .options(
                    IndexOptions::builder()
                        .name("ingested_at".to_string())
                        .build(),
                )
                .build();
            self.docs(c)
                .create_index(index)
                .await
                .map_err(|e| self.error(e))?;
        }
        let runs = IndexModel::builder().keys(doc! {"started_at": -1}).build();
        self.db
            .collection::<Document>("runs")
            .create_index(runs)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    fn docs(&self, c: Collection) -> mongodb::Collection<Document> {
        self.db.collection(c.name())
    }

    fn state(&self) -> mongodb::Collection<Document> {
        self.db.collection("state")
    }

    fn versioned(&self) -> mongodb::Collection<Document> {
        self.db.collection("versioned")
    }

    fn error(&self, e: mongodb::error::Error) -> Error {
        failure(&self.url, &self.url, e)
    }

    /// The next ingest stamp, by compare-and-set on one counter document,
    /// so concurrent writers never share or reorder stamps. The stamp is
    /// also listed as in flight until [`MongoStore::release_stamp`], so
    /// [`Store::stable_stamp`] stays below it while its batch is written;
    /// returned with that in-flight entry.
    async fn allocate_stamp(&self) -> Result<(Stamp, Document)> {
        let meta = self.meta();
        loop {
            let last = meta
                .find_one(doc! {"_id": STAMP_ID})
                .await
                .map_err(|e| self.error(e))?
                .and_then(|d| d.get_i64("value").ok());
            let now = self.clock.now();
            let stamp = next_stamp(last, now);
            let in_flight = doc! {"s": stamp, "until": bson_time(now + IN_FLIGHT_LEASE)};
            let swapped = match last {
                None => match meta
                    .insert_one(
                        doc! {"_id": STAMP_ID, "value": stamp, "inflight": [in_flight.clone()]},
                    )
                    .await
                {
                    Ok(_) => true,
                    Err(e) if is_duplicate_key(&e) => false,
                    Err(e) => return Err(self.error(e)),
                },
                Some(last) => {
                    meta.update_one(
                        doc! {"_id": STAMP_ID, "value": last},
                        doc! {"$set": {"value": stamp}, "$push": {"inflight": in_flight.clone()}},
                    )
                    .await
                    .map_err(|e| self.error(e))?
                    .modified_count
                        == 1
                }
            };
            if swapped {
                return Ok((stamp, in_flight));
            }
        }
    }

    /// The batch of this in-flight entry is written (or failed): stop
    /// holding bronze back for it. The entry is removed by its whole value,
    /// which every server matches (FerretDB v1's `$pull` does not take a
    /// condition on a field of the element, as MongoDB's does).
    async fn release_stamp(&self, in_flight: Document) -> Result<()> {
        self.meta()
            .update_one(
                doc! {"_id": STAMP_ID},
                doc! {"$pull": {"inflight": in_flight}},
            )
            .await
            .map(drop)
            .map_err(|e| self.error(e))
    }

    fn meta(&self) -> mongodb::Collection<Document> {
        self.db.collection("meta")
    }

    /// The content hashes stored under `ids`.
    async fn stored_hashes(
        &self,
        collection: Collection,
        ids: &[&str],
    ) -> Result<HashMap<String, String>> {
        let mut stored = HashMap::new();
        let mut cursor = self
            .docs(collection)
            .find(doc! {"_id": {"$in": ids}})
            .projection(doc! {"content_hash": 1})
            .await
            .map_err(|e| self.error(e))?;
        while cursor.advance().await.map_err(|e| self.error(e))? {
            let d = cursor.deserialize_current().map_err(|e| self.error(e))?;
            if let (Ok(id), Ok(h)) = (d.get_str("_id"), d.get_str("content_hash")) {
                stored.insert(id.to_string(), h.to_string());
            }
        }
        Ok(stored)
    }

    /// Insert documents in bulk (one unordered `insert` command per chunk);
    /// returns the positions of those whose id is already stored (a
    /// duplicate key), any other failure is an error.
    async fn insert(&self, collection: Collection, docs: &[Document]) -> Result<Vec<usize>> {
        let mut taken = Vec::new();
        for (n, chunk) in docs.chunks(WRITE_CHUNK).enumerate() {
            let errors = self.bulk(collection, "insert", "documents", chunk).await?;
            for error in &errors {
                let at = error
                    .get_i32("index")
                    .ok()
                    .and_then(|i| usize::try_from(i).ok())
                    .filter(|&i| i < chunk.len());
                match (error.get_i32("code"), at) {
                    (Ok(DUPLICATE_KEY), Some(i)) => taken.push(n * WRITE_CHUNK + i),
                    _ => return Err(self.refused(collection, errors.len(), chunk.len(), error)),
                }
            }
        }
        Ok(taken)
    }

    /// Write `batch` under `stamp`: every document is inserted first, and
    /// only those whose id is already stored are looked up, then updated
    /// (a new content hash) or touched (the same). A first load asks no
    /// question: FerretDB v1 answers `$in` on `_id` without its index, by
    /// decoding every stored document, which made a load's second batch
    /// cost as much as its inserts and every later one more.
    async fn write_batch(
        &self,
        collection: Collection,
        batch: &Batch,
        stamp: Stamp,
        now: bson::DateTime,
    ) -> Result<UpsertCounts> {
        let mut new: Vec<Document> = batch
            .docs
            .iter()
            .map(|prepared| {
                doc! {
                    "_id": prepared.id(),
                    "doc": json_to_bson(&prepared.to_value()),
                    "content_hash": prepared.hash(),
                    "ingested_at": stamp,
                    "run_id": &batch.run_id,
                    "endpoint": &batch.endpoint,
                    "last_fetched": now,
                    "first_seen": now,
                    "versions": 1,
                }
            })
            .collect();
        let taken = self.insert(collection, &new).await?;
        let mut counts = UpsertCounts {
            new: (batch.docs.len() - taken.len()) as u64,
            ..UpsertCounts::default()
        };
        if taken.is_empty() {
            return Ok(counts);
        }
        let ids: Vec<&str> = taken.iter().map(|&i| batch.docs[i].id()).collect();
        let stored = self.stored_hashes(collection, &ids).await?;
        let (mut updates, mut unchanged) = (Vec::new(), Vec::new());
        for i in taken {
            let (id, hash) = (batch.docs[i].id(), batch.docs[i].hash());
            let mut version = std::mem::take(&mut new[i]);
            version.remove("_id");
            let update = match classify(stored.get(id), hash) {
                Change::Unchanged => {
                    counts.unchanged += 1;
                    unchanged.push(id);
                    continue;
                }
                // Taken down since the insert: its first version again.
                Change::New => {
                    counts.new += 1;
                    doc! {"$set": version}
                }
                Change::Changed => {
                    counts.changed += 1;
                    version.remove("first_seen");
                    version.remove("versions");
                    doc! {"$set": version, "$inc": {"versions": 1}}
                }
            };
            updates.push(doc! {"q": {"_id": id}, "u": update, "upsert": true});
        }
        // Unchanged documents are touched by one statement per chunk:
        // FerretDB on SQLite spends milliseconds on every update statement.
        for ids in unchanged.chunks(WRITE_CHUNK) {
            updates.push(doc! {
                "q": {"_id": {"$in": ids}},
                "u": {"$set": {"last_fetched": now}},
                "multi": true,
            });
        }
        self.write(collection, updates).await?;
        Ok(counts)
    }

    /// Send update statements in bulk (one `update` command per chunk) and
    /// fail on any per-statement error.
    async fn write(&self, collection: Collection, statements: Vec<Document>) -> Result<()> {
        for chunk in statements.chunks(WRITE_CHUNK) {
            let errors = self.bulk(collection, "update", "updates", chunk).await?;
            if let Some(first) = errors.first() {
                return Err(self.refused(collection, errors.len(), chunk.len(), first));
            }
        }
        Ok(())
    }

    /// One unordered bulk `command` of `items` (under `field`), and the
    /// errors of the items it could not write.
    async fn bulk(
        &self,
        collection: Collection,
        command: &str,
        field: &str,
        items: &[Document],
    ) -> Result<Vec<Document>> {
        let reply = self
            .db
            .run_command(doc! {
                command: collection.name(),
                field: items.to_vec(),
                "ordered": false,
            })
            .await
            .map_err(|e| self.error(e))?;
        let errors = reply.get_array("writeErrors").map(Vec::as_slice);
        Ok(errors
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e.as_document().cloned())
            .collect())
    }

    fn refused(&self, collection: Collection, failed: usize, of: usize, first: &Document) -> Error {
        Error::Store {
            store: self.url.clone(),
            problem: format!(
                "{failed} of {of} writes to {collection} failed; first: {}",
                first.get_str("errmsg").unwrap_or("no message")
            ),
            fix: "check the documents (MongoDB refuses documents over 16 MB)".into(),
        }
    }
}

#[async_trait::async_trait]
impl DocumentStore for MongoStore {
    fn describe(&self) -> String {
        self.url.clone()
    }

    async fn upsert(&self, collection: Collection, batch: Batch) -> Result<UpsertCounts> {
        check_batch(collection, &batch)?;
        if batch.docs.is_empty() {
            return Ok(UpsertCounts::default());
        }
        let now = bson_time(self.clock.now());
        let (stamp, in_flight) = self.allocate_stamp().await?;
        let written = self.write_batch(collection, &batch, stamp, now).await;
        self.release_stamp(in_flight).await?;
        written
    }

    async fn get(&self, collection: Collection, id: &str) -> Result<Option<Stored>> {
        let found = self
            .docs(collection)
            .find_one(doc! {"_id": id})
            .await
            .map_err(|e| self.error(e))?;
        found.map(|d| self.stored(d)).transpose()
    }

    async fn last_fetched(
        &self,
        collection: Collection,
        ids: &[String],
    ) -> Result<HashMap<String, DateTime<Utc>>> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(10_000) {
            let mut cursor = self
                .docs(collection)
                .find(doc! {"_id": {"$in": chunk}})
                .projection(doc! {"last_fetched": 1})
                .await
                .map_err(|e| self.error(e))?;
            while cursor.advance().await.map_err(|e| self.error(e))? {
                let d = cursor.deserialize_current().map_err(|e| self.error(e))?;
                if let (Ok(id), Ok(at)) = (d.get_str("_id"), d.get_datetime("last_fetched")) {
                    out.insert(id.to_string(), chrono_time(*at));
                }
            }
        }
        Ok(out)
    }

    async fn scan(
        &self,
        collection: Collection,
        after: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<Vec<Stored>> {
        let filter = match after {
            None => doc! {},
            Some((stamp, id)) => doc! {"$or": [
                {"ingested_at": {"$gt": stamp}},
                {"ingested_at": stamp, "_id": {"$gt": id}},
            ]},
        };
        let mut cursor = self
            .docs(collection)
            .find(filter)
            .sort(doc! {"ingested_at": 1, "_id": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(|e| self.error(e))?;
        let mut out = Vec::new();
        while cursor.advance().await.map_err(|e| self.error(e))? {
            let d = cursor.deserialize_current().map_err(|e| self.error(e))?;
            out.push(self.stored(d)?);
        }
        Ok(out)
    }

    async fn stable_stamp(&self) -> Result<Option<Stamp>> {
        let Some(counter) = self
            .meta()
            .find_one(doc! {"_id": STAMP_ID})
            .await
            .map_err(|e| self.error(e))?
        else {
            return Ok(None);
        };
        let last = counter.get_i64("value").ok();
        let now = bson_time(self.clock.now());
        // A writer that died holding a stamp stops holding bronze back when
        // its lease ends.
        let oldest_in_flight = counter
            .get_array("inflight")
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(Bson::as_document)
                    .filter(|e| e.get_datetime("until").is_ok_and(|until| *until > now))
                    .filter_map(|e| e.get_i64("s").ok())
                    .min()
            })
            .unwrap_or(None);
        Ok(match oldest_in_flight {
            Some(s) => Some(s - 1),
            None => last,
        })
    }

    async fn count(&self, collection: Collection) -> Result<u64> {
        self.docs(collection)
            .count_documents(doc! {})
            .await
            .map_err(|e| self.error(e))
    }

    async fn delete(&self, collection: Collection, ids: &[String]) -> Result<u64> {
        let mut deleted = 0;
        for chunk in ids.chunks(1000) {
            deleted += self
                .docs(collection)
                .delete_many(doc! {"_id": {"$in": chunk}})
                .await
                .map_err(|e| self.error(e))?
                .deleted_count;
        }
        Ok(deleted)
    }
}

#[async_trait::async_trait]
impl StateStore for MongoStore {
    async fn get_state(&self, key: &str) -> Result<Option<Value>> {
        let found = self
            .state()
            .find_one(doc! {"_id": key})
            .await
            .map_err(|e| self.error(e))?;
        Ok(found.and_then(|mut d| d.remove("value")).map(bson_to_json))
    }

    async fn put_state(&self, key: &str, value: &Value) -> Result<()> {
        self.state()
            .replace_one(
                doc! {"_id": key},
                doc! {"_id": key, "value": json_to_bson(value)},
            )
            .upsert(true)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn delete_state(&self, key: &str) -> Result<()> {
        self.state()
            .delete_one(doc! {"_id": key})
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn state_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Value)>> {
        let pattern = format!("^{}", regex_escape(prefix));
        let mut cursor = self
            .state()
            .find(doc! {"_id": {"$regex": pattern}})
            .sort(doc! {"_id": 1})
            .await
            .map_err(|e| self.error(e))?;
        let mut out = Vec::new();
        while cursor.advance().await.map_err(|e| self.error(e))? {
            let mut d = cursor.deserialize_current().map_err(|e| self.error(e))?;
            let key = d.get_str("_id").unwrap_or_default().to_string();
            out.push((key, d.remove("value").map(bson_to_json).unwrap_or_default()));
        }
        Ok(out)
    }

    async fn get_versioned(&self, key: &str) -> Result<Option<(u64, Value)>> {
        let latest = self
            .versioned()
            .find_one(doc! {"key": key})
            .sort(doc! {"version": -1})
            .await
            .map_err(|e| self.error(e))?;
        Ok(latest
            .map(versioned_entry)
            .map(|(_, version, value)| (version, value)))
    }

    /// Each version is a document of its own whose `_id` names the key and
    /// the version, so two writers of one version collide on the `_id`
    /// index: an insert is atomic on every MongoDB-compatible server, where
    /// a conditional update is not (FerretDB v1 loses concurrent ones).
    async fn put_versioned(&self, key: &str, version: u64, value: &Value) -> Result<bool> {
        let number = i64::try_from(version).unwrap_or(i64::MAX);
        if version > 1 {
            let previous = self
                .versioned()
                .find_one(doc! {"_id": versioned_id(key, version - 1)})
                .await
                .map_err(|e| self.error(e))?;
            if previous.is_none() {
                return Ok(false);
            }
        }
        let now = self.clock.now();
        let inserted = self
            .versioned()
            .insert_one(doc! {
                "_id": versioned_id(key, version),
                "key": key,
                "version": number,
                "value": json_to_bson(value),
                "written_at": bson_time(now),
            })
            .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_duplicate_key(&e) => return Ok(false),
            Err(e) => return Err(self.error(e)),
        }
        // Older versions are history nobody reads; a failure to drop them
        // costs space, not correctness. A version stays while a writer may
        // still be about to write it: a writer that read a version, fell
        // many versions behind, and found the one before its own still
        // there would otherwise create its own again, once dropped, and
        // take its stale write for a success.
        let dropped = doc! {
            "key": key,
            "version": {"$lt": number - KEPT_VERSIONS},
            "written_at": {"$lt": bson_time(now - KEPT_FOR)},
        };
        if let Err(e) = self.versioned().delete_many(dropped).await {
            tracing::warn!(key, error = %e, "cannot drop old versions");
        }
        Ok(true)
    }

    async fn versioned_with_prefix(&self, prefix: &str) -> Result<Vec<(String, u64, Value)>> {
        let pattern = format!("^{}", regex_escape(prefix));
        let mut cursor = self
            .versioned()
            .find(doc! {"key": {"$regex": pattern}})
            .sort(doc! {"key": 1, "version": -1})
            .await
            .map_err(|e| self.error(e))?;
        let mut out: Vec<(String, u64, Value)> = Vec::new();
        while cursor.advance().await.map_err(|e| self.error(e))? {
            let entry = versioned_entry(cursor.deserialize_current().map_err(|e| self.error(e))?);
            if out.last().is_none_or(|(key, _, _)| *key != entry.0) {
                out.push(entry);
            }
        }
        Ok(out)
    }

    async fn try_lock(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let locks = self.db.collection::<Document>("locks");
        let taken = locks
            .update_one(
                doc! {"_id": name, "$or": [
                    {"holder": holder},
                    {"until": {"$lt": bson_time(now)}},
                ]},
                doc! {"$set": {"holder": holder, "until": bson_time(until)}},
            )
            .upsert(true)
            .await;
        match taken {
            Ok(_) => Ok(true),
            // The lock exists, is someone else's and is live: the upsert's
            // insert collides with it.
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn unlock(&self, name: &str, holder: &str) -> Result<()> {
        self.db
            .collection::<Document>("locks")
            .delete_one(doc! {"_id": name, "holder": holder})
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn lock_holder(&self, name: &str) -> Result<Option<String>> {
        let found = self
            .db
            .collection::<Document>("locks")
            .find_one(doc! {"_id": name})
            .await
            .map_err(|e| self.error(e))?;
        Ok(found.and_then(|d| d.get_str("holder").ok().map(str::to_string)))
    }

    async fn create_run(&self, run: &RunRecord) -> Result<bool> {
        let inserted = self
            .db
            .collection::<Document>("runs")
            .insert_one(run_document(run))
            .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn put_run(&self, run: &RunRecord) -> Result<()> {
        self.db
            .collection::<Document>("runs")
            .replace_one(doc! {"_id": &run.id}, run_document(run))
            .upsert(true)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        let mut cursor = self
            .db
            .collection::<Document>("runs")
            .find(doc! {})
            .sort(doc! {"started_at": -1, "_id": -1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(|e| self.error(e))?;
        let mut out = Vec::new();
        while cursor.advance().await.map_err(|e| self.error(e))? {
            let mut d = cursor.deserialize_current().map_err(|e| self.error(e))?;
            let record = d.remove("record").map(bson_to_json).unwrap_or_default();
            out.push(serde_json::from_value(record).map_err(|e| Error::Store {
                store: self.url.clone(),
                problem: format!("a run record is unreadable: {e}"),
                fix: "remove the damaged document from the runs collection".into(),
            })?);
        }
        Ok(out)
    }
}

impl MongoStore {
    fn stored(&self, mut d: Document) -> Result<Stored> {
        let broken = |field: &str| Error::Store {
            store: self.url.clone(),
            problem: format!("a landed document lacks a valid `{field}`"),
            fix: "the collection holds documents soundlake did not write; move them elsewhere"
                .into(),
        };
        let time = |d: &Document, f: &str| {
            d.get_datetime(f)
                .map(|t| chrono_time(*t))
                .map_err(|_| broken(f))
        };
        Ok(Stored {
            id: d.get_str("_id").map_err(|_| broken("_id"))?.to_string(),
            first_seen: time(&d, "first_seen")?,
            last_fetched: time(&d, "last_fetched")?,
            ingested_at: d
                .get_i64("ingested_at")
                .map_err(|_| broken("ingested_at"))?,
            run_id: d
                .get_str("run_id")
                .map_err(|_| broken("run_id"))?
                .to_string(),
            endpoint: d
                .get_str("endpoint")
                .map_err(|_| broken("endpoint"))?
                .to_string(),
            content_hash: d
                .get_str("content_hash")
                .map_err(|_| broken("content_hash"))?
                .to_string(),
            versions: d
                .get_i32("versions")
                .map(|v| v as u32)
                .or_else(|_| d.get_i64("versions").map(|v| v as u32))
                .map_err(|_| broken("versions"))?,
            doc: bson_to_json(d.remove("doc").ok_or_else(|| broken("doc"))?),
        })
    }
}

/// JSON to BSON as plain data. MongoDB gives field names with a leading
/// `$`, a `.` or a NUL special meaning (or refuses them), so those
/// characters, and `%` itself, are percent-escaped in names; Spotify's own
/// names never contain them and stay as they are.
pub fn json_to_bson(v: &Value) -> Bson {
    match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Bson::Int64(i),
            None => Bson::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(items) => Bson::Array(items.iter().map(json_to_bson).collect()),
        Value::Object(map) => Bson::Document(
            map.iter()
                .map(|(k, v)| (escape_key(k), json_to_bson(v)))
                .collect(),
        ),
    }
}

/// BSON back to plain JSON.
pub fn bson_to_json(b: Bson) -> Value {
    match b {
        Bson::Null | Bson::Undefined => Value::Null,
        Bson::Boolean(b) => Value::Bool(b),
        Bson::Int32(i) => Value::from(i),
        Bson::Int64(i) => Value::from(i),
        Bson::Double(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        Bson::String(s) => Value::String(s),
        Bson::Array(items) => Value::Array(items.into_iter().map(bson_to_json).collect()),
        Bson::Document(d) => Value::Object(
            d.into_iter()
                .map(|(k, v)| (unescape_key(&k), bson_to_json(v)))
                .collect(),
        ),
        Bson::DateTime(t) => Value::String(chrono_time(t).to_rfc3339()),
        other => other.into_relaxed_extjson(),
    }
}

fn escape_key(k: &str) -> String {
    if !k.contains(['%', '.', '\0']) && !k.starts_with('$') {
        return k.to_string();
    }
    let mut out = String::with_capacity(k.len() + 4);
    for (i, c) in k.chars().enumerate() {
        match c {
            '%' => out.push_str("%25"),
            '.' => out.push_str("%2E"),
            '\0' => out.push_str("%00"),
            '$' if i == 0 => out.push_str("%24"),
            c => out.push(c),
        }
    }
    out
}

fn unescape_key(k: &str) -> String {
    if !k.contains('%') {
        return k.to_string();
    }
    let mut out = String::with_capacity(k.len());
    let mut rest = k;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3);
        let decoded = match code {
            Some("25") => Some('%'),
            Some("2E") => Some('.'),
            Some("00") => Some('\0'),
            Some("24") => Some('$'),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn bson_time(t: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(t.timestamp_millis())
}

fn chrono_time(t: bson::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or_default()
}

/// A run record as the `runs` collection holds it, keyed by the run id.
fn run_document(run: &RunRecord) -> Document {
    let record = json_to_bson(&serde_json::to_value(run).expect("run records serialize"));
    doc! {
        "_id": &run.id,
        "started_at": bson_time(run.started_at),
        "record": record,
    }
}

/// Versions of a versioned value kept below the latest, at least.
const KEPT_VERSIONS: i64 = 8;
/// How long a version is kept, at least: longer than any writer takes
/// between reading a version and writing the next.
const KEPT_FOR: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

fn versioned_id(key: &str, version: u64) -> String {
    format!("{key}@{version}")
}

/// Key, version and value of a `versioned` document.
fn versioned_entry(mut d: Document) -> (String, u64, Value) {
    let key = d.get_str("key").unwrap_or_default().to_string();
    let version = d.get_i64("version").unwrap_or_default();
    let value = d.remove("value").map(bson_to_json).unwrap_or_default();
    (key, u64::try_from(version).unwrap_or_default(), value)
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        // FerretDB v1 leaves `n` out of a reply whose write failed, which
        // the driver rejects as malformed: read the write errors it carries.
        _ => {
            e.to_string().contains("E11000")
                || e.server_response()
                    .and_then(|raw| bson::from_slice::<Document>(raw.as_bytes()).ok())
                    .and_then(|reply| reply.get_array("writeErrors").ok().cloned())
                    .is_some_and(|errors| {
                        errors.iter().any(|w| {
                            w.as_document()
                                .and_then(|w| w.get("code"))
                                .and_then(Bson::as_i32)
                                == Some(11000)
                        })
                    })
        }
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\^$.|?*+()[]{}".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

/// The driver's message with the raw URL (and so any password) taken out.
fn scrub(e: &mongodb::error::Error, url: &str) -> String {
    e.to_string().replace(url, &redact_url(url))
}

fn failure(shown: &str, url: &str, e: mongodb::error::Error) -> Error {
    use mongodb::error::ErrorKind;
    let fix = match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. } => {
            "check that MongoDB is running and reachable at that address (and that the URL's replicaSet, if any, is right)"
        }
        ErrorKind::Authentication { .. } => "check the user and password in [landing] url",
        _ => "check the server's log; rerun once it is healthy",
    };
    Error::Store {
        store: shown.to_string(),
        problem: scrub(&e, url),
        fix: fix.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn escaped_field_names_come_back(name in "[a-z%.$\\x002E45]{0,12}") {
            let escaped = escape_key(&name);
            prop_assert!(!escaped.starts_with('$') && !escaped.contains(['.', '\0']));
            prop_assert_eq!(unescape_key(&escaped), name);
        }
    }

    #[test]
    fn plain_names_are_left_alone() {
        assert_eq!(escape_key("release_date"), "release_date");
        assert_eq!(escape_key("price$"), "price$");
    }
}
