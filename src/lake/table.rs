//! Tables: each one a Delta Lake table.
//!
//! A table is a folder `<layer>/<name>/` of Hive-style partition folders
//! holding Parquet files, plus the Delta log `_delta_log/`, which Trino,
//! Spark, Dremio, DuckDB and delta-rs read:
//!
//! ```text
//! bronze/tracks/ingest_date=2026-11-21/part-<txn>-00000.parquet
//! bronze/tracks/_delta_log/00000000000000000007.json
//! bronze/tracks/_delta_log/00000000000000000100.checkpoint.parquet
//! ```
//!
//! A write runs in two steps:
//! 1. every new file is written, complete, where it will stay; no reader
//!    of the table sees it, because no commit names it yet;
//! 2. one commit, `_delta_log/<version>.json`, created if absent, adds the
//!    new files and removes the superseded ones. This one object is the
//!    moment the version exists; a second writer's commit of the same
//!    version fails instead of overwriting.
//!
//! Removed files stay on storage, so a reader of an older version keeps
//! reading it, until [`Table::vacuum`] deletes them after the retention
//! period, together with files of writes that never committed (a crash
//! before step 2 leaves nothing else behind).
//!
//! The first commit of a table, version 0, creates it (schema and
//! partition columns) with no data, as `CREATE TABLE` does in Spark; data
//! versions count from 1. What a layer records with its data (bronze's
//! watermark and source positions, silver's schema) are table properties
//! `soundlake.<key>` in the Delta metadata, committed in the same commit
//! as the data they describe; what a layer records about one file (the
//! range of ingest stamps it holds) is a tag of its `add` action.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_schema::SchemaRef;
use chrono::{DateTime, Utc};
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{
    Action, Add, CommitInfo, DataType as DeltaType, Metadata, Protocol, Remove, StructField,
    StructType, Transaction as AppTransaction,
};
use deltalake_core::logstore::{LogStoreRef, StorageConfig, default_logstore};
use deltalake_core::operations::vacuum::VacuumMode;
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::table::state::DeltaTableState;
use deltalake_core::{DeltaTable, DeltaTableError};
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Map, Value, json};

use super::ordered::Ordered;
use super::parquet_io::{FileWriter, ParquetFile};
use super::{Lake, partition_dir};
use crate::error::{Error, Result};

/// Table properties soundlake owns start with this.
const PROPERTY: &str = "soundlake.";
/// The `add` tag holding a file's layer facts, as JSON.
const FILE_FACTS: &str = "soundlake.facts";
/// The commit-info key with soundlake's own record of a commit.
const COMMIT_RECORD: &str = "soundlake";
/// The application id of soundlake's writers in `txn` actions. Two
/// soundlake commits racing for one table always conflict (the loser
/// fails instead of retrying), and a commit whose answer was lost is
/// recognised as the writer's own instead of being committed twice.
const APP_ID: &str = "soundlake";
/// Attempts at the next free version when other commits (a vacuum, an
/// engine's maintenance) that do not conflict came first.
const COMMIT_RETRIES: usize = 10;

/// A Parquet file of a committed version.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFile {
    /// Relative to the table folder: `ingest_date=2026-11-21/part-….parquet`.
    pub path: String,
    pub partition: BTreeMap<String, String>,
    pub rows: u64,
    pub bytes: u64,
    /// What the layer that wrote the file records about it.
    pub stats: Map<String, Value>,
}

/// A committed version of a table.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The Delta version; 0 for a table with no data commit yet.
    pub version: u64,
    pub committed_at: DateTime<Utc>,
    /// Every file of the table at this version, by path.
    pub files: Vec<DataFile>,
    /// The `soundlake.*` table properties, without the prefix.
    pub properties: Map<String, Value>,
    /// The Delta metadata; none before the table is created.
    metadata: Option<Metadata>,
}

impl Snapshot {
    pub(super) fn empty() -> Snapshot {
        Snapshot {
            version: 0,
            committed_at: DateTime::<Utc>::UNIX_EPOCH,
            files: Vec::new(),
            properties: Map::new(),
            metadata: None,
        }
    }

    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }
}

/// Where a reader finds one file of a version.
#[derive(Debug, Clone)]
pub struct Located {
    pub path: Path,
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

    pub(super) fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Where a committed file lives.
    pub fn file_path(&self, file: &DataFile) -> Path {
        rel(self.root.clone(), &file.path)
    }

    /// The files of `snapshot`, located for a reader.
    pub fn locate(&self, snapshot: &Snapshot) -> Vec<Located> {
        snapshot
            .files
            .iter()
            .map(|file| Located {
                path: self.file_path(file),
                size: file.bytes,
            })
            .collect()
    }

    /// The Delta log store of this table, over the lake's object store.
    fn log_store(&self) -> LogStoreRef {
        let root_store: Arc<dyn ObjectStore> = Arc::new(Ordered(Arc::clone(self.lake.store())));
        let table_store = Arc::new(PrefixStore::new(Arc::clone(&root_store), self.root.clone()));
        // The URL only locates the table inside the lake's store; its
        // scheme is never used to open a store.
        let url = url::Url::parse(&format!("soundlake:///{}/", self.root))
            .expect("a lake path makes a valid URL path");
        default_logstore(table_store, root_store, &url, &StorageConfig::default())
    }

    /// The Delta table at its newest version, or `None` if it has no log.
    /// A table of the pre-Delta format is converted first.
    async fn load(&self) -> Result<Option<DeltaTable>> {
        let mut table = DeltaTable::new(self.log_store());
        match table.load().await {
            Ok(()) => Ok(Some(table)),
            Err(DeltaTableError::NotATable(_)) => {
                if Box::pin(self.convert_legacy()).await? {
                    Box::pin(self.load()).await
                } else {
                    Ok(None)
                }
            }
            Err(e) => Err(self.delta_error("read the Delta log", e)),
        }
    }

    /// The Delta table at `version`.
    async fn load_version(&self, version: u64) -> Result<DeltaTable> {
        let mut table = DeltaTable::new(self.log_store());
        table
            .load_version(version)
            .await
            .map_err(|e| self.delta_error(&format!("read version {version}"), e))?;
        Ok(table)
    }

    /// The newest committed version (version 0, empty, if none).
    pub async fn snapshot(&self) -> Result<Snapshot> {
        match self.load().await? {
            Some(table) => self.snapshot_of(&table),
            None => Ok(Snapshot::empty()),
        }
    }

    fn snapshot_of(&self, table: &DeltaTable) -> Result<Snapshot> {
        self.snapshot_of_state(
            table
                .snapshot()
                .map_err(|e| self.delta_error("read the Delta log", e))?,
        )
    }

    fn snapshot_of_state(&self, state: &DeltaTableState) -> Result<Snapshot> {
        let version = state.version();
        let metadata = state.metadata().clone();
        let mut properties = Map::new();
        for (key, value) in metadata.configuration() {
            if let Some(name) = key.strip_prefix(PROPERTY) {
                let parsed = serde_json::from_str(value)
                    .map_err(|e| self.damaged(&format!("table property {key}: {e}")))?;
                properties.insert(name.to_string(), parsed);
            }
        }
        let mut files: Vec<DataFile> = state
            .log_data()
            .iter()
            .map(|view| {
                // Tags are reachable only through the add action; its
                // deprecation points at arrow arrays, which do not carry
                // them yet.
                #[allow(deprecated)]
                let add = view.add_action();
                let stats = add
                    .tags
                    .as_ref()
                    .and_then(|tags| tags.get(FILE_FACTS).cloned().flatten())
                    .and_then(|facts| serde_json::from_str(&facts).ok())
                    .unwrap_or_default();
                DataFile {
                    path: add.path,
                    partition: add
                        .partition_values
                        .into_iter()
                        .filter_map(|(k, v)| Some((k, v?)))
                        .collect(),
                    rows: view.num_records().unwrap_or(0) as u64,
                    bytes: u64::try_from(add.size).unwrap_or(0),
                    stats,
                }
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let committed_at = state
            .version_timestamp(version)
            .and_then(DateTime::from_timestamp_millis)
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        Ok(Snapshot {
            version,
            committed_at,
            files,
            properties,
            metadata: Some(metadata),
        })
    }

    /// A Delta failure as a lake error naming the table.
    fn delta_error(&self, action: &str, e: DeltaTableError) -> Error {
        match e {
            DeltaTableError::ObjectStore { source } => self
                .lake
                .error(&format!("{action} of {}", self.root), source),
            other => Error::Lake {
                url: self.lake.describe().into(),
                problem: format!("could not {action} of {}: {other}", self.root),
                fix: "check that the storage server is reachable; if the log was edited or \
                      damaged, restore it, or delete the table folder and rebuild it (bronze \
                      from the landing store, silver and gold with --full-refresh)"
                    .into(),
            },
        }
    }

    fn damaged(&self, problem: &str) -> Error {
        Error::Lake {
            url: self.lake.describe().into(),
            problem: format!("the Delta log of {} is not valid: {problem}", self.root),
            fix: "the log was edited or damaged; restore it, or delete the table folder \
                  and rebuild it (bronze from the landing store, silver and gold with \
                  --full-refresh)"
                .into(),
        }
    }

    /// One committed file, its footer read.
    pub async fn open_file(&self, file: &DataFile) -> Result<ParquetFile> {
        ParquetFile::open(&self.lake, &self.file_path(file), file.bytes).await
    }

    /// Every record batch of one committed file.
    pub async fn read(
        &self,
        file: &DataFile,
        batch_rows: usize,
    ) -> Result<BoxStream<'static, Result<arrow_array::RecordBatch>>> {
        self.open_file(file).await?.read(None, None, batch_rows)
    }

    /// Start a write against the newest version. Writers of one table take
    /// turns (the scheduler locks each table); a writer that raced another
    /// anyway fails at commit.
    pub async fn begin(&self, run_id: &str, now: DateTime<Utc>) -> Result<Transaction> {
        let delta = self.load().await?;
        let base = match &delta {
            Some(table) => self.snapshot_of(table)?,
            None => Snapshot::empty(),
        };
        Ok(self.transaction(delta, base, run_id, now))
    }

    /// A write on top of `delta` (none: the table does not exist yet).
    pub(super) fn transaction(
        &self,
        delta: Option<DeltaTable>,
        base: Snapshot,
        run_id: &str,
        now: DateTime<Utc>,
    ) -> Transaction {
        Transaction {
            table: self.clone(),
            delta,
            id: transaction_id(now),
            run_id: run_id.into(),
            base,
            schema: None,
            partition_by: None,
            docs: None,
            added: Vec::new(),
            removed: Vec::new(),
            next_file: 0,
        }
    }

    /// Commit `actions` on top of `base` as version `base.version + 1`.
    /// A commit whose answer was lost (the store client retried it and
    /// found it existing) is recognised by its transaction id.
    async fn commit_actions(
        &self,
        table: &DeltaTable,
        actions: Vec<Action>,
        operation: DeltaOperation,
        txn_id: &str,
    ) -> Result<Snapshot> {
        let state = table
            .snapshot()
            .map_err(|e| self.delta_error("read the Delta log", e))?;
        let base = state.version();
        let properties = CommitProperties::default()
            .with_application_transaction(AppTransaction::new(APP_ID, (base + 1) as i64))
            .with_max_retries(COMMIT_RETRIES);
        let committed = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(state), table.log_store(), operation)
            .await;
        match committed {
            Ok(done) => self.snapshot_of_state(&done.snapshot),
            Err(e) => {
                let newest = self.load().await?.and_then(|t| t.version()).unwrap_or(base);
                for version in base + 1..=newest {
                    if self.commit_id(version).await?.as_deref() == Some(txn_id) {
                        return self.snapshot_of(&self.load_version(version).await?);
                    }
                }
                if newest > base {
                    return Err(Error::Lake {
                        url: self.lake.describe().into(),
                        problem: format!(
                            "another writer committed version {newest} of {} while this run \
                             was writing",
                            self.root
                        ),
                        fix: "run one writer per table at a time (soundlake's scheduler locks \
                              each table); run the task again, it starts from the new version"
                            .into(),
                    });
                }
                Err(self.delta_error(&format!("commit version {}", base + 1), e))
            }
        }
    }

    /// The table as it was at `at`: a version, or the newest version
    /// committed at or before a time.
    pub async fn snapshot_at(&self, at: &At) -> Result<Snapshot> {
        let version = match at {
            At::Version(version) => *version,
            At::Time(time) => {
                let newest = self.load().await?.and_then(|t| t.version());
                let mut found = None;
                for commit in self.history(None).await? {
                    if commit.at <= *time {
                        found = Some(commit.version);
                        break;
                    }
                }
                match (found, newest) {
                    (Some(version), _) => version,
                    (None, None) => return Ok(Snapshot::empty()),
                    (None, Some(_)) => {
                        return Err(Error::Lake {
                            url: self.lake.describe().into(),
                            problem: format!("{} has no version committed by {time}", self.root),
                            fix: "pick a later time; `soundlake history <table>` lists the \
                                  versions with their times"
                                .into(),
                        });
                    }
                }
            }
        };
        match self.load_version(version).await {
            Ok(table) => self.snapshot_of(&table),
            Err(_) => Err(Error::Lake {
                url: self.lake.describe().into(),
                problem: format!("{} has no version {version} to read", self.root),
                fix: "pick a version `soundlake history <table>` lists; versions older than \
                      the log retention (30 days) are gone"
                    .into(),
            }),
        }
    }

    /// The table's commits, newest first (at most `limit`).
    pub async fn history(&self, limit: Option<usize>) -> Result<Vec<Commit>> {
        let Some(newest) = self.load().await?.and_then(|t| t.version()) else {
            return Ok(Vec::new());
        };
        let mut commits = Vec::new();
        for version in (0..=newest).rev() {
            if limit.is_some_and(|l| commits.len() >= l) {
                break;
            }
            // Commits older than the log retention are gone; the
            // checkpoint holds their state.
            let Some(info) = self.commit_info(version).await? else {
                break;
            };
            commits.push(Commit::from_info(version, &info));
        }
        Ok(commits)
    }

    /// Delete files no version within `retention` of `now` needs: files
    /// removed by a commit older than that, and files of writes that never
    /// committed. Returns the deleted paths, relative to the table; with
    /// `dry_run` nothing is deleted.
    pub async fn vacuum(
        &self,
        retention: chrono::TimeDelta,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<Vec<String>> {
        let Some(table) = self.load().await? else {
            return Ok(Vec::new());
        };
        let plan = |table: DeltaTable, dry_run: bool| {
            table
                .vacuum()
                .with_retention_period(retention)
                .with_enforce_retention_duration(false)
                .with_mode(VacuumMode::Full)
                .with_clock(Arc::new(FixedClock(now.timestamp_millis())))
                .with_dry_run(dry_run)
        };
        let (table, planned) = plan(table, true)
            .await
            .map_err(|e| self.delta_error("vacuum", e))?;
        // Delta plans files removed long ago again on every vacuum (their
        // tombstones outlive them), some under a path of its own making:
        // what is reported is the files that are there.
        let root = format!("{}/", self.root);
        let mut found = Vec::new();
        for path in planned.files_deleted {
            let relative = path.rsplit_once(&root).map_or(path.as_str(), |(_, r)| r);
            let full = rel(self.root.clone(), relative);
            if self.lake.store().head(&full).await.is_ok() {
                found.push(relative.to_string());
            }
        }
        found.sort();
        if !dry_run && !found.is_empty() {
            plan(table, false)
                .await
                .map_err(|e| self.delta_error("vacuum", e))?;
        }
        Ok(found)
    }

    /// The soundlake transaction id a commit records, if any.
    async fn commit_id(&self, version: u64) -> Result<Option<String>> {
        Ok(self
            .commit_info(version)
            .await?
            .and_then(|info| info.info.get(COMMIT_RECORD).cloned())
            .and_then(|record| record.get("txn")?.as_str().map(str::to_string)))
    }

    /// The commit info of `version`, if the commit exists and has one.
    async fn commit_info(&self, version: u64) -> Result<Option<CommitInfo>> {
        let bytes = self
            .log_store()
            .read_commit_entry(version)
            .await
            .map_err(|e| self.delta_error(&format!("read commit {version}"), e))?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        for line in bytes.split(|b| *b == b'\n') {
            if let Ok(Action::CommitInfo(info)) = serde_json::from_slice::<Action>(line) {
                return Ok(Some(info));
            }
        }
        Ok(None)
    }

    /// Create the table (version 0): its schema and partition columns, no
    /// data. A table another writer created meanwhile is taken as it is.
    async fn create(&self, metadata: Metadata, now: DateTime<Utc>) -> Result<DeltaTable> {
        let protocol: Protocol =
            serde_json::from_value(json!({"minReaderVersion": 1, "minWriterVersion": 2}))
                .expect("a valid protocol action");
        let operation = DeltaOperation::Create {
            mode: SaveMode::ErrorIfExists,
            location: self.log_store().root_url().clone(),
            protocol: protocol.clone(),
            metadata: metadata.clone(),
        };
        let mut info = operation.get_commit_info();
        info.timestamp = Some(now.timestamp_millis());
        let actions = vec![
            Action::CommitInfo(info),
            Action::Protocol(protocol),
            Action::Metadata(metadata),
        ];
        let created = CommitBuilder::default()
            .with_actions(actions)
            .with_max_retries(0)
            .build(None, self.log_store(), operation)
            .await;
        match created {
            Ok(_) | Err(DeltaTableError::VersionAlreadyExists(_)) => {}
            Err(DeltaTableError::Transaction { .. }) if self.load().await?.is_some() => {}
            Err(e) => return Err(self.delta_error("create the Delta table", e)),
        }
        self.load()
            .await?
            .ok_or_else(|| self.damaged("version 0 was written but the table does not load"))
    }
}

/// What a table and its columns are, for the engines that show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableDocs {
    pub description: String,
    /// Comments by column name.
    pub columns: HashMap<String, String>,
}

/// A point in a table's history.
#[derive(Debug, Clone, PartialEq)]
pub enum At {
    Version(u64),
    Time(DateTime<Utc>),
}

impl At {
    /// `--as-of`'s argument: a version number, a date (its start, UTC) or
    /// an RFC 3339 time.
    pub fn parse(text: &str) -> Result<At> {
        let text = text.trim();
        if let Ok(version) = text.parse::<u64>() {
            return Ok(At::Version(version));
        }
        if let Ok(time) = DateTime::parse_from_rfc3339(text) {
            return Ok(At::Time(time.with_timezone(&Utc)));
        }
        if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Ok(At::Time(day.and_time(chrono::NaiveTime::MIN).and_utc()));
        }
        Err(Error::config(
            "--as-of",
            format!("{text:?} is neither a version nor a time"),
            "give a version number (`soundlake history <table>` lists them), a date \
             (2026-11-21) or an RFC 3339 time (2026-11-21T10:00:00Z)",
        ))
    }
}

/// One commit of a table, as its log records it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Commit {
    pub version: u64,
    pub at: DateTime<Utc>,
    /// Delta's name: `CREATE TABLE`, `WRITE`, `VACUUM END`…
    pub operation: String,
    /// soundlake's own: `append` or `replace`.
    pub mode: Option<String>,
    pub run_id: Option<String>,
    pub rows_added: Option<u64>,
    pub rows_removed: Option<u64>,
    pub files_added: Option<u64>,
    pub files_removed: Option<u64>,
}

impl Commit {
    fn from_info(version: u64, info: &CommitInfo) -> Commit {
        let record = info.info.get(COMMIT_RECORD);
        let text = |key: &str| record.and_then(|r| r.get(key)?.as_str().map(str::to_string));
        let metric = |key: &str| {
            let value = info.info.get("operationMetrics")?.get(key)?;
            value
                .as_u64()
                .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        };
        Commit {
            version,
            at: info
                .timestamp
                .and_then(DateTime::from_timestamp_millis)
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
            operation: info.operation.clone().unwrap_or_default(),
            mode: text("operation"),
            run_id: text("runId"),
            rows_added: metric("numOutputRows"),
            rows_removed: metric("numRemovedRows"),
            files_added: metric("numAddedFiles"),
            files_removed: metric("numRemovedFiles"),
        }
    }
}

/// The vacuum's notion of now: soundlake's clock, which tests control.
#[derive(Debug)]
struct FixedClock(i64);

impl deltalake_core::operations::vacuum::Clock for FixedClock {
    fn current_timestamp_millis(&self) -> i64 {
        self.0
    }
}

/// A write in progress: files written against a base version, committed
/// together or not at all.
pub struct Transaction {
    table: Table,
    /// The table at the base version; none before the table exists.
    delta: Option<DeltaTable>,
    id: String,
    run_id: String,
    base: Snapshot,
    /// The table's columns and partition columns, once a file or the
    /// writer said what they are.
    schema: Option<SchemaRef>,
    partition_by: Option<Vec<String>>,
    docs: Option<TableDocs>,
    added: Vec<DataFile>,
    removed: Vec<DataFile>,
    next_file: u32,
}

impl Transaction {
    /// The version this write builds on.
    pub fn base(&self) -> &Snapshot {
        &self.base
    }

    /// Say what the table's columns are and, if given, its partition
    /// columns (otherwise the files' partition folders say). A commit that
    /// adds no file still creates a typed table.
    pub fn declare(&mut self, schema: SchemaRef, partition_by: Option<&[&str]>) {
        self.schema = Some(schema);
        if let Some(keys) = partition_by {
            self.partition_by = Some(keys.iter().map(|k| k.to_string()).collect());
        }
    }

    /// Describe the table and its columns in its Delta metadata, where
    /// engines show them (Trino's and Spark's `DESCRIBE`, comments).
    pub fn describe(&mut self, docs: TableDocs) {
        self.docs = Some(docs);
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
        self.schema.get_or_insert_with(|| schema.clone());
        self.partition_by
            .get_or_insert_with(|| partition.iter().map(|(k, _)| k.to_string()).collect());
        FileWriter::new(
            &self.table.lake,
            rel(self.table.root.clone(), &path),
            path,
            partition
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.clone()))
                .collect(),
            schema,
            payload,
        )
    }

    /// A file of the base version, or one this transaction wrote.
    pub async fn open(&self, file: &DataFile) -> Result<ParquetFile> {
        self.table.open_file(file).await
    }

    /// The files of the version this write would commit, located for a
    /// reader. Data tests read a table through this before it is published.
    pub fn locate(&self) -> Vec<Located> {
        self.base
            .files
            .iter()
            .filter(|f| !self.removed.iter().any(|r| r.path == f.path))
            .chain(&self.added)
            .map(|file| Located {
                path: self.table.file_path(file),
                size: file.bytes,
            })
            .collect()
    }

    pub fn add(&mut self, file: DataFile) {
        self.added.push(file);
    }

    /// Forget the files added so far, to write others instead. They may
    /// still be read (the rows replacing them are read from them), and
    /// vacuum deletes them once no version names them.
    pub fn unstage(&mut self) {
        self.added.clear();
    }

    /// Drop a file of the base version from the next one.
    pub fn remove(&mut self, file: &DataFile) {
        self.removed.push(file.clone());
    }

    /// Publish: one Delta commit adds the new files, removes the
    /// superseded ones and records `properties`. `operation` is `append`
    /// or `replace`.
    pub async fn commit(
        self,
        operation: &str,
        properties: Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Snapshot> {
        let table = &self.table;
        let metadata = self.metadata(&properties, now)?;
        // Delta checks the commits made since the base for conflicts, so
        // the commit builds on the base version, not on the newest.
        let delta = match self.delta {
            Some(delta) => delta,
            None => {
                table
                    .create(with_configuration(&metadata, HashMap::new()), now)
                    .await?
            }
        };
        let mode = if operation == "replace" {
            SaveMode::Overwrite
        } else {
            SaveMode::Append
        };
        let delta_operation = DeltaOperation::Write {
            mode,
            partition_by: None,
            predicate: None,
        };
        let mut info = delta_operation.get_commit_info();
        info.timestamp = Some(now.timestamp_millis());
        info.info.insert(
            "operationMetrics".into(),
            json!({
                "numAddedFiles": self.added.len().to_string(),
                "numRemovedFiles": self.removed.len().to_string(),
                "numOutputRows": self.added.iter().map(|f| f.rows).sum::<u64>().to_string(),
                "numRemovedRows": self.removed.iter().map(|f| f.rows).sum::<u64>().to_string(),
                "numOutputBytes": self.added.iter().map(|f| f.bytes).sum::<u64>().to_string(),
            }),
        );
        info.info.insert(
            COMMIT_RECORD.into(),
            json!({"txn": self.id, "runId": self.run_id, "operation": operation}),
        );
        let mut actions = vec![Action::CommitInfo(info)];
        let current = delta
            .snapshot()
            .map_err(|e| table.delta_error("read the Delta log", e))?
            .metadata()
            .clone();
        if !same_metadata(&current, &metadata) {
            actions.push(Action::Metadata(with_id(&metadata, current.id())));
        }
        let millis = now.timestamp_millis();
        actions.extend(
            self.added
                .iter()
                .map(|f| Action::Add(add_action(f, millis))),
        );
        actions.extend(
            self.removed
                .iter()
                .map(|f| Action::Remove(remove_action(f, millis))),
        );
        table
            .commit_actions(&delta, actions, delta_operation, &self.id)
            .await
    }

    /// The metadata the new version should have: the shape this write
    /// declared (or the base's), and `properties` as table properties.
    fn metadata(&self, properties: &Map<String, Value>, now: DateTime<Utc>) -> Result<Metadata> {
        let base = self.base.metadata.as_ref();
        let mut schema: StructType = match (&self.schema, base) {
            (Some(schema), _) => schema.as_ref().try_into_kernel().map_err(|e| Error::Lake {
                url: self.table.lake.describe().into(),
                problem: format!("the columns of {} have no Delta type: {e}", self.table.root),
                fix: "this is a bug in soundlake; report it with the table's definition".into(),
            })?,
            (None, Some(base)) => base
                .parse_schema()
                .map_err(|e| self.table.damaged(&e.to_string()))?,
            (None, None) => {
                return Err(Error::Lake {
                    url: self.table.lake.describe().into(),
                    problem: format!(
                        "a write to {} said nothing of its columns and the table has none",
                        self.table.root
                    ),
                    fix: "this is a bug in soundlake; report it with the table's definition".into(),
                });
            }
        };
        let partition_columns: Vec<String> = match (&self.partition_by, base) {
            (Some(keys), _) => keys.clone(),
            (None, Some(base)) => base.partition_columns().to_vec(),
            (None, None) => Vec::new(),
        };
        let missing: Vec<StructField> = partition_columns
            .iter()
            .filter(|p| schema.field(p.as_str()).is_none())
            .map(|p| StructField::nullable(p.as_str(), DeltaType::STRING))
            .collect();
        let documented: Vec<StructField> = schema
            .fields()
            .cloned()
            .map(
                |field| match self.docs.as_ref().and_then(|d| d.columns.get(field.name())) {
                    Some(comment) => field.add_metadata([("comment", comment.as_str())]),
                    None => field,
                },
            )
            .chain(missing)
            .collect();
        schema = StructType::try_new(documented).map_err(|e| self.table.damaged(&e.to_string()))?;
        let description = match (&self.docs, base) {
            (Some(docs), _) => Some(docs.description.clone()),
            (None, Some(base)) => base.description().map(str::to_string),
            (None, None) => None,
        };
        let mut configuration: HashMap<String, String> = self
            .base
            .metadata
            .as_ref()
            .map(|m| {
                m.configuration()
                    .iter()
                    .filter(|(k, _)| !k.starts_with(PROPERTY))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (key, value) in properties {
            configuration.insert(format!("{PROPERTY}{key}"), value.to_string());
        }
        let value = json!({
            "id": uuid_like(&self.id),
            "name": null,
            "description": description,
            "format": {"provider": "parquet", "options": {}},
            "schemaString": serde_json::to_string(&schema).expect("schemas serialize"),
            "partitionColumns": partition_columns,
            "configuration": configuration,
            "createdTime": now.timestamp_millis(),
        });
        Ok(serde_json::from_value(value).expect("a valid metadata action"))
    }
}

/// Whether two metadata actions describe the same table shape and
/// properties (ids and creation times aside).
fn same_metadata(a: &Metadata, b: &Metadata) -> bool {
    a.schema_string() == b.schema_string()
        && a.description() == b.description()
        && a.partition_columns() == b.partition_columns()
        && a.configuration() == b.configuration()
}

fn metadata_json(metadata: &Metadata) -> Value {
    serde_json::to_value(metadata).expect("metadata serializes")
}

/// `metadata` with the table id of the existing table.
fn with_id(metadata: &Metadata, id: &str) -> Metadata {
    let mut value = metadata_json(metadata);
    value["id"] = json!(id);
    serde_json::from_value(value).expect("a valid metadata action")
}

fn with_configuration(metadata: &Metadata, configuration: HashMap<String, String>) -> Metadata {
    let mut value = metadata_json(metadata);
    value["configuration"] = json!(configuration);
    serde_json::from_value(value).expect("a valid metadata action")
}

fn add_action(file: &DataFile, millis: i64) -> Add {
    Add {
        path: file.path.clone(),
        partition_values: partition_values(file),
        size: file.bytes as i64,
        modification_time: millis,
        data_change: true,
        stats: Some(json!({"numRecords": file.rows}).to_string()),
        tags: (!file.stats.is_empty()).then(|| {
            HashMap::from([(
                FILE_FACTS.to_string(),
                Some(Value::Object(file.stats.clone()).to_string()),
            )])
        }),
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
    }
}

fn remove_action(file: &DataFile, millis: i64) -> Remove {
    Remove {
        path: file.path.clone(),
        data_change: true,
        deletion_timestamp: Some(millis),
        extended_file_metadata: Some(true),
        partition_values: Some(partition_values(file)),
        size: Some(file.bytes as i64),
        ..Default::default()
    }
}

fn partition_values(file: &DataFile) -> HashMap<String, Option<String>> {
    file.partition
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect()
}

/// A table id in UUID form, derived from the transaction that created it.
fn uuid_like(txn: &str) -> String {
    use std::hash::{BuildHasher, RandomState};
    let state = RandomState::new();
    let a = state.hash_one((txn, 1u8));
    let b = state.hash_one((txn, 2u8));
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// `base` joined with a relative `a/b/c` path, keeping a partition folder's
/// `%XX` escapes as written. A path that is not valid as is (say `..` in an
/// edited log) is joined segment by segment, which escapes it and so keeps
/// it inside the table.
pub(super) fn rel(base: Path, relative: &str) -> Path {
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
