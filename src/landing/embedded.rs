//! The embedded store: one SQLite file. SQLite is chosen for durability:
//! in WAL mode with `synchronous=FULL` a transaction is on disk when commit
//! returns, and a process killed at any instant leaves the file at the last
//! commit (its crash and power-loss testing is the most thorough of any
//! embedded engine). It also lets several processes share the file, so
//! `soundlake runs` can read while the daemon writes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;

use super::{
    Batch, Change, Collection, DocumentStore, RunRecord, ScanCursor, Stamp, StateStore, Stored,
    UpsertCounts, check_batch, classify, next_stamp,
};
use crate::clock::SharedClock;
use crate::error::{Error, Result};

#[derive(Debug)]
pub struct EmbeddedStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
    /// Idle connections for scans. A scan reads a snapshot in WAL mode, so
    /// scans on connections of their own run beside each other and beside
    /// the writer, instead of taking turns on `conn`: bronze's tables read
    /// at once.
    readers: Arc<Mutex<Vec<Connection>>>,
    clock: SharedClock,
}

const STAMP_KEY: &str = "last_ingest_stamp";

impl EmbeddedStore {
    /// Open (or create) the database file at `path`.
    pub async fn open(path: &str, clock: SharedClock) -> Result<EmbeddedStore> {
        if path.is_empty() {
            return Err(Error::config(
                "[landing] url",
                "embedded:// names no file",
                "use embedded://.soundlake/landing or another file path",
            ));
        }
        let path = PathBuf::from(path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io("cannot create the landing store folder", dir, e))?;
        }
        let opened = path.clone();
        let conn = tokio::task::spawn_blocking(move || connect(&opened))
            .await
            .expect("open task")
            .map_err(|e| store_error(&path, e))?;
        Ok(EmbeddedStore {
            path,
            conn: Arc::new(Mutex::new(conn)),
            readers: Arc::default(),
            clock,
        })
    }

    /// Up to `limit` rows of `collection` after `after`, in scan order.
    async fn scan_rows<T: Send + 'static>(
        &self,
        collection: Collection,
        after: Option<&ScanCursor>,
        limit: usize,
        row: fn(&rusqlite::Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM {} WHERE (ingested_at, id) > (?1, ?2)
             ORDER BY ingested_at, id LIMIT ?3",
            collection.name()
        );
        let (stamp, id) = after.cloned().unwrap_or((i64::MIN, String::new()));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            stmt.query_map(params![stamp, id, limit], row)?.collect()
        })
        .await
    }

    /// Run `f` on the writing connection off the async threads.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        self.blocking(move || f(&mut conn.lock().unwrap_or_else(|p| p.into_inner())))
            .await
    }

    /// Run `f` on an idle reader connection, opened when none is idle, off
    /// the async threads.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let (path, readers) = (self.path.clone(), self.readers.clone());
        self.blocking(move || {
            let idle = readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match idle {
                Some(conn) => conn,
                None => connect_reader(&path)?,
            };
            let out = f(&conn);
            readers.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            out
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        tokio::task::spawn_blocking(f)
            .await
            .expect("store task")
            .map_err(|e| store_error(&self.path, e))
    }
}

/// The page size of a new store, SQLite's largest. Documents are a few
/// KiB (an album with its first page of tracks, 8 KiB): in 4 KiB pages two
/// tracks filled a page with a fifth of it left empty and every album ran
/// over into pages of its own. Loading the 2M-track catalog took 108 s in
/// 4 KiB pages and 84 s in 64 KiB ones, and bronze read it back in 7.7 s
/// of thread time instead of 11.2 s.
const PAGE_BYTES: i64 = 65_536;

/// How long opening the file waits for another process that is creating
/// or opening it at the same moment.
const OPEN_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Open the file, waiting while another process holds it: switching to WAL
/// and creating the tables answer "busy" at once, without SQLite's busy
/// handler, when two processes open a new file together.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let started = std::time::Instant::now();
    loop {
        match try_connect(path) {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && started.elapsed() < OPEN_BUSY_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            opened => return opened,
        }
    }
}

fn try_connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(OPEN_BUSY_WAIT)?;
    // Before the first table: a new file takes this size, a file made
    // before keeps its own.
    conn.pragma_update(None, "page_size", PAGE_BYTES)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // SQLite's default page cache is 2 MB: past a few hundred thousand
    // documents the id index's pages no longer fit, and every insert
    // reads and writes back random pages. 64 MiB holds the index of
    // millions; it is taken only as pages are used.
    conn.pragma_update(None, "cache_size", -65_536)?;
    let mut ddl = String::from(
        "CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS versioned (key TEXT PRIMARY KEY, version INTEGER NOT NULL, value TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS locks (name TEXT PRIMARY KEY, holder TEXT NOT NULL, until INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, started_at INTEGER NOT NULL, record TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);
         CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    );
    for c in Collection::ALL {
        let t = c.name();
        ddl.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {t} (
               id TEXT PRIMARY KEY, doc TEXT NOT NULL, content_hash TEXT NOT NULL,
               first_seen INTEGER NOT NULL, last_fetched INTEGER NOT NULL,
               ingested_at INTEGER NOT NULL, run_id TEXT NOT NULL, endpoint TEXT NOT NULL,
               versions INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS {t}_ingested ON {t} (ingested_at, id);"
        ));
    }
    conn.execute_batch(&ddl)?;
    Ok(conn)
}

/// A connection for scans only: the file exists and is in WAL mode, as
/// `open` left it. It keeps SQLite's default page cache: a scan reads each
/// page once.
fn connect_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(OPEN_BUSY_WAIT)?;
    Ok(conn)
}

fn store_error(path: &Path, e: rusqlite::Error) -> Error {
    let fix = match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            "the file is not a soundlake store: point [landing] url at another path, or move the file away"
        }
        Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => {
            "another process holds the store for writing; retry when it finishes"
        }
        Some(rusqlite::ErrorCode::ReadOnly) | Some(rusqlite::ErrorCode::CannotOpen) => {
            "check that the folder exists and is writable"
        }
        Some(rusqlite::ErrorCode::DiskFull) => "free disk space and rerun",
        _ => "rerun; if it persists, check the file with `sqlite3 <file> 'PRAGMA integrity_check'`",
    };
    Error::Store {
        store: format!("embedded://{}", path.display()),
        problem: e.to_string(),
        fix: fix.into(),
    }
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn json_column(text: &str, column: usize) -> rusqlite::Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn stored_row(row: &rusqlite::Row) -> rusqlite::Result<Stored> {
    let stored = stored_text_row(row)?;
    let doc = json_column(&stored.doc, 1)?;
    Ok(stored.map_doc(|_| doc))
}

/// The document column is the compact JSON text the upsert wrote.
fn stored_text_row(row: &rusqlite::Row) -> rusqlite::Result<Stored<String>> {
    Ok(Stored {
        id: row.get(0)?,
        doc: row.get(1)?,
        content_hash: row.get(2)?,
        first_seen: time(row.get(3)?),
        last_fetched: time(row.get(4)?),
        ingested_at: row.get(5)?,
        run_id: row.get(6)?,
        endpoint: row.get(7)?,
        versions: row.get(8)?,
    })
}

const COLUMNS: &str =
    "id, doc, content_hash, first_seen, last_fetched, ingested_at, run_id, endpoint, versions";

#[async_trait::async_trait]
impl DocumentStore for EmbeddedStore {
    fn describe(&self) -> String {
        format!("embedded://{}", self.path.display())
    }

    async fn upsert(&self, collection: Collection, batch: Batch) -> Result<UpsertCounts> {
        check_batch(collection, &batch)?;
        if batch.docs.is_empty() {
            return Ok(UpsertCounts::default());
        }
        let now = self.clock.now();
        let t = collection.name();
        // In key order: a scan reads the rows of one stamp in key order, and
        // rows inserted in that order lie in that order in the file, so the
        // scan reads it front to back instead of jumping within the write.
        let Batch {
            run_id,
            endpoint,
            mut docs,
        } = batch;
        docs.sort_unstable_by(|a, b| a.id().cmp(b.id()));
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut counts = UpsertCounts::default();
            let mut stamp: Option<Stamp> = None;
            {
                let mut read = tx.prepare_cached(&format!(
                    "SELECT content_hash FROM {t} WHERE id = ?1"
                ))?;
                let mut insert = tx.prepare_cached(&format!(
                    "INSERT INTO {t} ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, 1)"
                ))?;
                let mut change = tx.prepare_cached(&format!(
                    "UPDATE {t} SET doc = ?2, content_hash = ?3, last_fetched = ?4, ingested_at = ?5,
                       run_id = ?6, endpoint = ?7, versions = versions + 1 WHERE id = ?1"
                ))?;
                let mut touch =
                    tx.prepare_cached(&format!("UPDATE {t} SET last_fetched = ?2 WHERE id = ?1"))?;
                for doc in &docs {
                    let (id, text, hash) = (doc.id(), doc.text(), doc.hash());
                    let stored: Option<String> =
                        read.query_row([id], |r| r.get(0)).optional()?;
                    let change_kind = classify(stored.as_ref(), hash);
                    if !matches!(change_kind, Change::Unchanged) && stamp.is_none() {
                        stamp = Some(allocate_stamp(&tx, now)?);
                    }
                    let write = match change_kind {
                        Change::Unchanged => {
                            touch.execute(params![id, micros(now)])?;
                            counts.unchanged += 1;
                            continue;
                        }
                        Change::New => {
                            counts.new += 1;
                            &mut insert
                        }
                        Change::Changed => {
                            counts.changed += 1;
                            &mut change
                        }
                    };
                    write.execute(params![id, text, hash, micros(now), stamp, run_id, endpoint])?;
                }
            }
            tx.commit()?;
            Ok(counts)
        })
        .await
    }

    async fn get(&self, collection: Collection, id: &str) -> Result<Option<Stored>> {
        let sql = format!("SELECT {COLUMNS} FROM {} WHERE id = ?1", collection.name());
        let id = id.to_string();
        self.with(move |conn| conn.query_row(&sql, [id], stored_row).optional())
            .await
    }

    async fn last_fetched(
        &self,
        collection: Collection,
        ids: &[String],
    ) -> Result<HashMap<String, DateTime<Utc>>> {
        let sql = format!(
            "SELECT last_fetched FROM {} WHERE id = ?1",
            collection.name()
        );
        let ids = ids.to_vec();
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut out = HashMap::new();
            for id in ids {
                if let Some(at) = stmt.query_row([&id], |r| r.get::<_, i64>(0)).optional()? {
                    out.insert(id, time(at));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn scan(
        &self,
        collection: Collection,
        after: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<Vec<Stored>> {
        self.scan_rows(collection, after, limit, stored_row).await
    }

    async fn scan_text(
        &self,
        collection: Collection,
        after: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<Vec<Stored<String>>> {
        self.scan_rows(collection, after, limit, stored_text_row)
            .await
    }

    async fn count(&self, collection: Collection) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {}", collection.name());
        let n = self
            .with(move |conn| conn.query_row(&sql, [], |r| r.get::<_, i64>(0)))
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn delete(&self, collection: Collection, ids: &[String]) -> Result<u64> {
        let sql = format!("DELETE FROM {} WHERE id = ?1", collection.name());
        let ids = ids.to_vec();
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut deleted = 0;
            {
                let mut stmt = tx.prepare_cached(&sql)?;
                for id in &ids {
                    deleted += stmt.execute([id])? as u64;
                }
            }
            tx.commit()?;
            Ok(deleted)
        })
        .await
    }

    async fn stable_stamp(&self) -> Result<Option<Stamp>> {
        // The stamp is taken inside the writing transaction, so whatever
        // a reader sees committed is complete up to it.
        self.with(|conn| {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [STAMP_KEY], |r| {
                r.get(0)
            })
            .optional()
        })
        .await
    }
}

#[async_trait::async_trait]
impl StateStore for EmbeddedStore {
    async fn get_state(&self, key: &str) -> Result<Option<Value>> {
        let key = key.to_string();
        self.with(move |conn| {
            conn.query_row("SELECT value FROM state WHERE key = ?1", [key], |r| {
                json_column(&r.get::<_, String>(0)?, 0)
            })
            .optional()
        })
        .await
    }

    async fn put_state(&self, key: &str, value: &Value) -> Result<()> {
        let (key, value) = (key.to_string(), value.to_string());
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO state (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map(drop)
        })
        .await
    }

    async fn delete_state(&self, key: &str) -> Result<()> {
        let key = key.to_string();
        self.with(move |conn| {
            conn.execute("DELETE FROM state WHERE key = ?1", [key])
                .map(drop)
        })
        .await
    }

    async fn state_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Value)>> {
        let prefix = prefix.to_string();
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT key, value FROM state WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key",
            )?;
            stmt.query_map([prefix], |r| {
                Ok((r.get(0)?, json_column(&r.get::<_, String>(1)?, 1)?))
            })?
            .collect()
        })
        .await
    }

    async fn get_versioned(&self, key: &str) -> Result<Option<(u64, Value)>> {
        let key = key.to_string();
        self.with(move |conn| {
            conn.query_row(
                "SELECT version, value FROM versioned WHERE key = ?1",
                [key],
                |r| {
                    let version: i64 = r.get(0)?;
                    Ok((version as u64, json_column(&r.get::<_, String>(1)?, 1)?))
                },
            )
            .optional()
        })
        .await
    }

    async fn put_versioned(&self, key: &str, version: u64, value: &Value) -> Result<bool> {
        let (key, value) = (key.to_string(), value.to_string());
        let version = i64::try_from(version).unwrap_or(i64::MAX);
        self.with(move |conn| {
            let changed = if version <= 1 {
                conn.execute(
                    "INSERT INTO versioned (key, version, value) VALUES (?1, 1, ?2)
                     ON CONFLICT (key) DO NOTHING",
                    params![key, value],
                )?
            } else {
                conn.execute(
                    "UPDATE versioned SET version = ?3, value = ?2 WHERE key = ?1 AND version = ?3 - 1",
                    params![key, value, version],
                )?
            };
            Ok(changed == 1)
        })
        .await
    }

    async fn versioned_with_prefix(&self, prefix: &str) -> Result<Vec<(String, u64, Value)>> {
        let prefix = prefix.to_string();
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT key, version, value FROM versioned
                 WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key",
            )?;
            stmt.query_map([prefix], |r| {
                let version: i64 = r.get(1)?;
                Ok((
                    r.get(0)?,
                    version as u64,
                    json_column(&r.get::<_, String>(2)?, 2)?,
                ))
            })?
            .collect()
        })
        .await
    }

    async fn try_lock(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.with(move |conn| {
            let changed = conn.execute(
                "INSERT INTO locks (name, holder, until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
                 WHERE locks.holder = excluded.holder OR locks.until < ?4",
                params![name, holder, micros(until), micros(now)],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn unlock(&self, name: &str, holder: &str) -> Result<()> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.with(move |conn| {
            conn.execute(
                "DELETE FROM locks WHERE name = ?1 AND holder = ?2",
                [name, holder],
            )
            .map(drop)
        })
        .await
    }

    async fn lock_holder(&self, name: &str) -> Result<Option<String>> {
        let name = name.to_string();
        self.with(move |conn| {
            conn.query_row("SELECT holder FROM locks WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
        })
        .await
    }

    async fn create_run(&self, run: &RunRecord) -> Result<bool> {
        let record = serde_json::to_string(run).expect("run records serialize");
        let (id, started) = (run.id.clone(), micros(run.started_at));
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO runs (id, started_at, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO NOTHING",
                params![id, started, record],
            )
            .map(|inserted| inserted == 1)
        })
        .await
    }

    async fn put_run(&self, run: &RunRecord) -> Result<()> {
        let record = serde_json::to_string(run).expect("run records serialize");
        let (id, started) = (run.id.clone(), micros(run.started_at));
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO runs (id, started_at, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, record = excluded.record",
                params![id, started, record],
            )
            .map(drop)
        })
        .await
    }

    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT record FROM runs ORDER BY started_at DESC, id DESC LIMIT ?1",
            )?;
            stmt.query_map([limit], |r| {
                let v = json_column(&r.get::<_, String>(0)?, 0)?;
                serde_json::from_value(v).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        0,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })
            })?
            .collect()
        })
        .await
    }
}

/// Take the next stamp inside the caller's transaction.
fn allocate_stamp(tx: &rusqlite::Transaction, now: DateTime<Utc>) -> rusqlite::Result<Stamp> {
    let last: Option<i64> = tx
        .query_row("SELECT value FROM meta WHERE key = ?1", [STAMP_KEY], |r| {
            r.get(0)
        })
        .optional()?;
    let stamp = next_stamp(last, now);
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![STAMP_KEY, stamp],
    )?;
    Ok(stamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;
    use serde_json::json;

    #[tokio::test]
    async fn a_new_store_takes_large_pages_and_an_old_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let page_size = |path: &Path| -> i64 {
            Connection::open(path)
                .unwrap()
                .pragma_query_value(None, "page_size", |r| r.get(0))
                .unwrap()
        };
        let clock = VirtualClock::manual(DateTime::from_timestamp(1_800_000_000, 0).unwrap());
        let new = dir.path().join("new");
        EmbeddedStore::open(new.to_str().unwrap(), clock.clone())
            .await
            .unwrap();
        assert_eq!(page_size(&new), PAGE_BYTES);

        // A store made before, in SQLite's default pages: opened, written
        // and read as it is.
        let old = dir.path().join("old");
        Connection::open(&old)
            .unwrap()
            .execute_batch(
                "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE t (x);",
            )
            .unwrap();
        let store = EmbeddedStore::open(old.to_str().unwrap(), clock)
            .await
            .unwrap();
        let docs = vec![("t1".to_string(), json!({"id": "t1"}))];
        store
            .upsert(Collection::Tracks, Batch::new("r", "GET /tracks", docs))
            .await
            .unwrap();
        assert_eq!(page_size(&old), 4096);
        assert!(store.get(Collection::Tracks, "t1").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_write_lies_in_the_file_in_the_order_scans_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let clock = VirtualClock::manual(DateTime::from_timestamp(1_800_000_000, 0).unwrap());
        let store = EmbeddedStore::open(path.to_str().unwrap(), clock)
            .await
            .unwrap();
        let ids = ["m", "c", "x", "a", "q", "b"];
        let docs = ids
            .iter()
            .map(|id| (id.to_string(), json!({"id": id})))
            .collect();
        store
            .upsert(Collection::Tracks, Batch::new("r", "GET /tracks", docs))
            .await
            .unwrap();
        // Rowids are the file's order; a scan reads one stamp's rows by key.
        let in_file: Vec<String> = Connection::open(&path)
            .unwrap()
            .prepare("SELECT id FROM tracks ORDER BY rowid")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let scanned: Vec<String> = store
            .scan_text(Collection::Tracks, None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(in_file, ["a", "b", "c", "m", "q", "x"]);
        assert_eq!(scanned, in_file);
    }
}
