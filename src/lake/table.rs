//! Tables and the publish protocol.
//!
//! A table is a folder `<layer>/<name>/` of Hive partition folders holding
//! Parquet files, plus `_soundlake/`, which engines skip (a leading `_`
//! hides a folder from Trino, Spark, Dremio and Hive):
//!
//! ```text
//! bronze/tracks/ingest_date=2026-11-21/part-<txn>-00000.parquet
//! bronze/tracks/_soundlake/commits/00000000000000000007.json
//! bronze/tracks/_soundlake/staging/<txn>/ingest_date=.../part-<txn>-00000.parquet.pending
//! ```
//!
//! A write runs in four steps:
//! 1. every new file is written, complete, under `staging/<txn>/` with a
//!    `.pending` suffix, where neither engines nor globs like `**/*.parquet`
//!    find it;
//! 2. the commit record `commits/<version>.json` is created with a
//!    create-if-absent put: the full file list of the new version, what it
//!    added and removed, and the table's properties (bronze's watermark).
//!    This one object is the moment the version exists; a second writer's
//!    commit of the same version fails instead of overwriting;
//! 3. the added files are moved to their partition folders;
//! 4. superseded files and the staging folder are deleted.
//!
//! soundlake's readers follow the newest commit record only, so they see a
//! table exactly at a committed version (a file still staged is read from
//! staging). A crash before step 2 leaves only staged files, which the next
//! writer deletes; a crash after it is finished by the next writer or
//! [`Table::settle`]. An engine listing the folders never sees a file that
//! is partly written or uncommitted; while steps 3 and 4 run (one rename or
//! copy per file) it can see some of the new files next to the ones they
//! replace.

use std::collections::BTreeMap;

use arrow_schema::SchemaRef;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::parquet_io::{FileWriter, ParquetFile};
use super::{Lake, partition_dir};
use crate::error::{Error, Result};

const META: &str = "_soundlake";
const COMMITS: &str = "commits";
const STAGING: &str = "staging";
const PENDING: &str = ".pending";
/// Commit records kept besides the newest, for inspection after the fact.
const KEEP_COMMITS: u64 = 10;
const FORMAT: u32 = 1;

/// A Parquet file of a committed version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFile {
    /// Relative to the table folder: `ingest_date=2026-11-21/part-….parquet`.
    pub path: String,
    pub partition: BTreeMap<String, String>,
    pub rows: u64,
    pub bytes: u64,
    /// What the layer that wrote the file records about it.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub stats: Map<String, Value>,
}

/// A committed version of a table: its commit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: u32,
    /// 0 for a table that was never committed.
    pub version: u64,
    pub committed_at: DateTime<Utc>,
    pub run_id: String,
    /// `append` or `replace`, as the writer said.
    pub operation: String,
    /// Every file of the table at this version.
    pub files: Vec<DataFile>,
    /// Files this version added (staged until moved into place) and removed.
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// The staging folder (transaction id) the added files were written to.
    pub staging: String,
    /// Table properties that move with the data, such as a watermark.
    pub properties: Map<String, Value>,
}

impl Snapshot {
    fn empty() -> Snapshot {
        Snapshot {
            format: FORMAT,
            version: 0,
            committed_at: DateTime::<Utc>::UNIX_EPOCH,
            run_id: String::new(),
            operation: String::new(),
            files: Vec::new(),
            added: Vec::new(),
            removed: Vec::new(),
            staging: String::new(),
            properties: Map::new(),
        }
    }

    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }
}

/// Where a reader finds one file of a version without settling the table:
/// the path engines see, and the objects that may hold it, to try in order
/// (a file whose publish was interrupted is still staged).
#[derive(Debug, Clone)]
pub struct Located {
    pub path: Path,
    pub sources: Vec<Path>,
    pub size: u64,
}

/// One table of the lake.
#[derive(Debug, Clone)]
pub struct Table {
    lake: Lake,
    root: Path,
}

impl Table {
    pub(super) fn new(lake: Lake, root: Path) -> Table {
        Table { lake, root }
    }

    /// `<layer>/<name>` inside the lake.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn commits(&self) -> Path {
        self.root.clone().join(META).join(COMMITS)
    }

    fn staging(&self, txn: &str) -> Path {
        self.root.clone().join(META).join(STAGING).join(txn)
    }

    fn staged_path(&self, txn: &str, path: &str) -> Path {
        rel(self.staging(txn), &format!("{path}{PENDING}"))
    }

    /// Where a committed file lives once moved into place.
    pub fn file_path(&self, file: &DataFile) -> Path {
        rel(self.root.clone(), &file.path)
    }

    /// The files of `snapshot`, located for a reader.
    pub fn locate(&self, snapshot: &Snapshot) -> Vec<Located> {
        snapshot
            .files
            .iter()
            .map(|file| {
                let path = self.file_path(file);
                let mut sources = vec![path.clone()];
                if snapshot.added.contains(&file.path) {
                    sources.push(self.staged_path(&snapshot.staging, &file.path));
                }
                Located {
                    path,
                    sources,
                    size: file.bytes,
                }
            })
            .collect()
    }

    /// The newest committed version (version 0, empty, if none).
    pub async fn snapshot(&self) -> Result<Snapshot> {
        match self.latest_version().await? {
            Some(version) => self.read_commit(version).await,
            None => Ok(Snapshot::empty()),
        }
    }

    /// The commit record of `version`.
    async fn read_commit(&self, version: u64) -> Result<Snapshot> {
        let path = self.commits().join(commit_name(version));
        let bytes = self
            .lake
            .store()
            .get(&path)
            .await
            .map_err(|e| self.lake.error(&format!("read {path}"), e))?
            .bytes()
            .await
            .map_err(|e| self.lake.error(&format!("read {path}"), e))?;
        let snapshot: Snapshot = serde_json::from_slice(&bytes).map_err(|e| Error::Lake {
            url: self.lake.describe().into(),
            problem: format!("commit record {path} is not valid: {e}"),
            fix: "the record was edited or damaged; restore it, or delete the table folder \
                  and rebuild it (bronze from the landing store, silver and gold with \
                  --full-refresh)"
                .into(),
        })?;
        if snapshot.format != FORMAT || snapshot.version != version {
            return Err(Error::Lake {
                url: self.lake.describe().into(),
                problem: format!(
                    "commit record {path} has format {} and version {}, expected {FORMAT} and {version}",
                    snapshot.format, snapshot.version
                ),
                fix: "the record was written by another soundlake version or copied from \
                      elsewhere; rebuild the table"
                    .into(),
            });
        }
        Ok(snapshot)
    }

    async fn latest_version(&self) -> Result<Option<u64>> {
        Ok(self
            .commit_records()
            .await?
            .into_iter()
            .map(|(v, _)| v)
            .max())
    }

    /// The commit records present, by version.
    async fn commit_records(&self) -> Result<Vec<(u64, Path)>> {
        Ok(self
            .list(&self.commits())
            .await?
            .into_iter()
            .filter_map(|meta| {
                let version = meta
                    .location
                    .filename()?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()?;
                Some((version, meta.location))
            })
            .collect())
    }

    async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        self.lake
            .store()
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| self.lake.error(&format!("list {prefix}"), e))
    }

    /// Delete `path`; one already gone is fine (every step is repeatable).
    async fn delete(&self, path: &Path) -> Result<()> {
        match self.lake.store().delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.lake.error(&format!("delete {path}"), e)),
        }
    }

    /// One committed file, wherever the protocol left it (in place, or
    /// still staged after an interrupted publish), its footer read.
    pub async fn open_file(&self, snapshot: &Snapshot, file: &DataFile) -> Result<ParquetFile> {
        let in_place = self.file_path(file);
        let staged = self.staged_path(&snapshot.staging, &file.path);
        let path = if snapshot.added.contains(&file.path) && self.exists(&staged).await? {
            staged
        } else {
            in_place
        };
        ParquetFile::open(&self.lake, &path, file.bytes).await
    }

    /// Every record batch of one committed file.
    pub async fn read(
        &self,
        snapshot: &Snapshot,
        file: &DataFile,
        batch_rows: usize,
    ) -> Result<BoxStream<'static, Result<arrow_array::RecordBatch>>> {
        self.open_file(snapshot, file)
            .await?
            .read(None, None, batch_rows)
    }

    async fn exists(&self, path: &Path) -> Result<bool> {
        match self.lake.store().head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.lake.error(&format!("look up {path}"), e)),
        }
    }

    /// Finish the newest version's publish if a writer stopped half-way
    /// (move staged files into place, delete what it superseded) and delete
    /// staging folders that no commit refers to. The caller must be the
    /// table's only writer: an uncommitted staging folder is another
    /// writer's work in progress otherwise.
    pub async fn settle(&self) -> Result<Snapshot> {
        let snapshot = self.snapshot().await?;
        self.publish(&snapshot).await?;
        self.delete_prefix(&self.root.clone().join(META).join(STAGING))
            .await?;
        Ok(snapshot)
    }

    /// Steps 3 and 4 of the protocol; safe to repeat.
    async fn publish(&self, snapshot: &Snapshot) -> Result<()> {
        let store = self.lake.store();
        for path in &snapshot.added {
            let from = self.staged_path(&snapshot.staging, path);
            let to = rel(self.root.clone(), path);
            // A file already in place was moved by an earlier publish of
            // this version. Stores differ in how they say the source is
            // missing (HDFS answers with a generic RPC error), so the
            // destination is what is checked.
            match store.rename(&from, &to).await {
                Ok(()) => {}
                Err(_) if self.exists(&to).await? => {}
                Err(e) => return Err(self.lake.error(&format!("move {from} to {to}"), e)),
            }
        }
        for path in &snapshot.removed {
            self.delete(&rel(self.root.clone(), path)).await?;
        }
        if !snapshot.staging.is_empty() {
            self.delete_prefix(&self.staging(&snapshot.staging)).await?;
        }
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &Path) -> Result<()> {
        for meta in self.list(prefix).await? {
            self.delete(&meta.location).await?;
        }
        Ok(())
    }

    async fn prune_commits(&self, newest: u64) -> Result<()> {
        let Some(oldest_kept) = newest.checked_sub(KEEP_COMMITS) else {
            return Ok(());
        };
        for (version, path) in self.commit_records().await? {
            if version < oldest_kept {
                self.delete(&path).await?;
            }
        }
        Ok(())
    }

    /// Start a write: settle the table, then stage files against its newest
    /// version. One writer per table at a time (the caller holds the lock).
    pub async fn begin(&self, run_id: &str, now: DateTime<Utc>) -> Result<Transaction> {
        let base = self.settle().await?;
        Ok(Transaction {
            table: self.clone(),
            id: transaction_id(now),
            run_id: run_id.into(),
            base,
            added: Vec::new(),
            removed: Vec::new(),
            next_file: 0,
        })
    }
}

/// A write in progress: files staged against a base version, committed
/// together or not at all.
pub struct Transaction {
    table: Table,
    id: String,
    run_id: String,
    base: Snapshot,
    added: Vec<DataFile>,
    removed: Vec<String>,
    next_file: u32,
}

impl Transaction {
    /// The version this write builds on.
    pub fn base(&self) -> &Snapshot {
        &self.base
    }

    /// A writer for a new file in the given partition (`[]` for an
    /// unpartitioned table). `payload` names large text columns that get no
    /// statistics or dictionary.
    pub fn create_file(
        &mut self,
        partition: &[(&str, String)],
        schema: SchemaRef,
        payload: &[&str],
    ) -> Result<FileWriter> {
        let mut folder = String::new();
        for (key, value) in partition {
            folder.push_str(&partition_dir(key, value));
            folder.push('/');
        }
        let path = format!("{folder}part-{}-{:05}.parquet", self.id, self.next_file);
        self.next_file += 1;
        FileWriter::new(
            &self.table.lake,
            self.table.staged_path(&self.id, &path),
            path,
            partition
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.clone()))
                .collect(),
            schema,
            payload,
        )
    }

    /// A file of the base version.
    pub async fn open_base(&self, file: &DataFile) -> Result<ParquetFile> {
        self.table.open_file(&self.base, file).await
    }

    /// A file this transaction staged and has not committed.
    pub async fn open_staged(&self, file: &DataFile) -> Result<ParquetFile> {
        let path = self.table.staged_path(&self.id, &file.path);
        ParquetFile::open(&self.table.lake, &path, file.bytes).await
    }

    /// The files of the version this write would commit, located for a
    /// reader: kept base files in place, added ones where they are staged.
    /// Data tests read a table through this before it is published.
    pub fn locate(&self) -> Vec<Located> {
        let kept = self
            .base
            .files
            .iter()
            .filter(|f| !self.removed.contains(&f.path))
            .map(|file| {
                let path = self.table.file_path(file);
                Located {
                    sources: vec![path.clone()],
                    path,
                    size: file.bytes,
                }
            });
        let added = self.added.iter().map(|file| Located {
            path: self.table.file_path(file),
            sources: vec![self.table.staged_path(&self.id, &file.path)],
            size: file.bytes,
        });
        kept.chain(added).collect()
    }

    pub fn add(&mut self, file: DataFile) {
        self.added.push(file);
    }

    /// Forget the files added so far, to stage others instead; they stay in
    /// the staging folder, which the commit deletes.
    pub fn unstage(&mut self) {
        self.added.clear();
    }

    /// Drop a file of the base version from the next one.
    pub fn remove(&mut self, file: &DataFile) {
        self.removed.push(file.path.clone());
    }

    /// Publish: write the commit record (the version exists from here on),
    /// then move files into place and delete the superseded ones.
    pub async fn commit(
        self,
        operation: &str,
        properties: Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Snapshot> {
        let table = &self.table;
        let mut files: Vec<DataFile> = self
            .base
            .files
            .into_iter()
            .filter(|f| !self.removed.contains(&f.path))
            .collect();
        files.extend(self.added.iter().cloned());
        let snapshot = Snapshot {
            format: FORMAT,
            version: self.base.version + 1,
            committed_at: now,
            run_id: self.run_id,
            operation: operation.into(),
            files,
            added: self.added.into_iter().map(|f| f.path).collect(),
            removed: self.removed,
            staging: self.id,
            properties,
        };
        let path = table.commits().join(commit_name(snapshot.version));
        let body = serde_json::to_vec_pretty(&snapshot).expect("snapshots serialize");
        let created = table
            .lake
            .store()
            .put_opts(
                &path,
                PutPayload::from(body),
                PutOptions {
                    mode: PutMode::Create,
                    ..Default::default()
                },
            )
            .await;
        match created {
            Ok(_) => {}
            // A put the store carried out but whose answer was lost is
            // retried by the store client and then refused as existing:
            // the record there is this transaction's own.
            Err(object_store::Error::AlreadyExists { .. })
                if table.read_commit(snapshot.version).await?.staging == snapshot.staging => {}
            Err(object_store::Error::AlreadyExists { .. }) => {
                return Err(Error::Lake {
                    url: table.lake.describe().into(),
                    problem: format!(
                        "another writer committed version {} of {} while this run was writing",
                        snapshot.version, table.root
                    ),
                    fix: "run one writer per table at a time (soundlake's scheduler locks \
                          each table); run the task again, it starts from the new version"
                        .into(),
                });
            }
            Err(e) => return Err(table.lake.error(&format!("write {path}"), e)),
        }
        table.publish(&snapshot).await?;
        table.prune_commits(snapshot.version).await?;
        Ok(snapshot)
    }
}

fn commit_name(version: u64) -> String {
    format!("{version:020}.json")
}

/// `base` joined with a relative `a/b/c` path, keeping a partition folder's
/// `%XX` escapes as written. A path that is not valid as is (say `..` in an
/// edited commit record) is joined segment by segment, which escapes it and
/// so keeps it inside the table.
fn rel(base: Path, relative: &str) -> Path {
    Path::parse(format!("{base}/{relative}")).unwrap_or_else(|_| {
        relative
            .split('/')
            .filter(|s| !s.is_empty())
            .fold(base, |path, part| path.join(part))
    })
}

/// Time-ordered and unique: `20261121T101500Z-<8 hex>`.
fn transaction_id(now: DateTime<Utc>) -> String {
    use std::hash::{BuildHasher, RandomState};
    let random = RandomState::new().hash_one((now, std::process::id())) as u32;
    format!("{}-{random:08x}", now.format("%Y%m%dT%H%M%SZ"))
}
