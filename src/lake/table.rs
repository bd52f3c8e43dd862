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
//! The first commit of a table, version 0, creates it (protocol, schema
//! and partition columns) together with its first files. What a layer records with its data (bronze's
//! watermark and source positions, silver's schema) are table properties
//! `soundlake.<key>` in the Delta metadata, committed in the same commit
//! as the data they describe; what a layer records about one file (the
//! range of ingest stamps it holds) is a tag of its `add` action.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties, TableReference};
use deltalake_core::kernel::{Action, CommitInfo, Metadata, Transaction as AppTransaction};
use deltalake_core::logstore::{LogStoreRef, StorageConfig, default_logstore};
use deltalake_core::operations::vacuum::VacuumMode;
use deltalake_core::protocol::DeltaOperation;
use deltalake_core::table::config::TablePropertiesExt;
use deltalake_core::table::state::DeltaTableState;
use deltalake_core::{DeltaTable, DeltaTableError};
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Map, Value};

use super::Lake;
use super::ordered::Ordered;
use super::parquet_io::ParquetFile;
use super::transaction::Transaction;
use crate::error::{Error, Result};

/// Table properties soundlake owns start with this.
pub(super) const PROPERTY: &str = "soundlake.";
/// The `add` tag holding a file's layer facts, as JSON.
pub(super) const FILE_FACTS: &str = "soundlake.facts";
/// The commit-info key with soundlake's own record of a commit.
pub(super) const COMMIT_RECORD: &str = "soundlake";
/// The application id of soundlake's writers in `txn` actions. Two
/// soundlake commits racing for one table always conflict (the loser
/// fails instead of retrying), unless they claim ids of their own (see
/// [`Transaction::claim`]).
const APP_ID: &str = "soundlake";
/// The folder of a table's Delta log.
const DELTA_LOG: &str = "_delta_log";
/// How to recover a table whose log or records are damaged.
pub(super) const REBUILD: &str = "restore it, or delete the table folder and rebuild it (bronze \
     from the landing store, silver and gold with --full-refresh)";
/// Attempts at the next free version when other commits (a vacuum, an
/// engine's maintenance) that do not conflict came first.
const COMMIT_RETRIES: usize = 10;

/// Whether the commit of version `next` is one Delta checkpoints after.
fn checkpoint_due(state: Option<&DeltaTableState>, next: u64) -> bool {
    state.is_some_and(|s| (next + 1).is_multiple_of(s.table_config().checkpoint_interval().get()))
}

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
    /// The Delta version; 0 also for a table that does not exist yet
    /// ([`Snapshot::exists`] tells them apart).
    pub version: u64,
    pub committed_at: DateTime<Utc>,
    /// Every file of the table at this version, by path.
    pub files: Vec<DataFile>,
    /// The `soundlake.*` table properties, without the prefix.
    pub properties: Map<String, Value>,
    /// The Delta metadata; none before the table is created.
    pub(super) metadata: Option<Metadata>,
}

impl Snapshot {
    /// Whether the table exists: it has a Delta log.
    pub fn exists(&self) -> bool {
        self.metadata.is_some()
    }

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

    /// The columns the Delta log declares, in their order.
    pub fn declared_columns(&self) -> Vec<String> {
        let Some(schema) = self.metadata.as_ref().and_then(|m| m.parse_schema().ok()) else {
            return Vec::new();
        };
        schema.fields().map(|f| f.name().clone()).collect()
    }

    /// The Arrow type the Delta log declares for `column`, if it declares
    /// that column.
    pub fn declared_type(&self, column: &str) -> Option<arrow_schema::DataType> {
        use deltalake_core::kernel::engine::arrow_conversion::TryIntoArrow;
        let schema = self.metadata.as_ref()?.parse_schema().ok()?;
        let field = schema.field(column)?;
        field.data_type().try_into_arrow().ok()
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

    /// The table another engine wrote into a folder of this one (its
    /// staged output, published by adding its files to this table).
    pub fn nested(&self, folder: &str) -> Table {
        Table::new(self.lake.clone(), self.root.clone().join(folder))
    }

    /// Delete this table's Delta log, leaving its data files to whichever
    /// table now names them.
    pub async fn delete_log(&self) -> Result<()> {
        self.delete_under(self.root.clone().join(DELTA_LOG)).await
    }

    /// Delete everything in this table's folder.
    pub async fn delete_folder(&self) -> Result<()> {
        self.delete_under(self.root.clone()).await
    }

    async fn delete_under(&self, prefix: Path) -> Result<()> {
        use futures::TryStreamExt;
        let store = self.lake.store();
        let paths: Vec<Path> = store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| self.lake.error(&format!("list {prefix}"), e))?;
        for path in paths {
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.lake.error(&format!("delete {path}"), e)),
            }
        }
        self.lake.remove_empty_folders(&prefix);
        Ok(())
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
        if self.has_log().await? {
            let mut table = DeltaTable::new(self.log_store());
            match table.load().await {
                Ok(()) => return Ok(Some(table)),
                Err(DeltaTableError::NotATable(_)) => {}
                Err(e) => return Err(self.delta_error("read the Delta log", e)),
            }
        }
        if Box::pin(self.convert_legacy()).await? {
            Box::pin(self.load()).await
        } else {
            Ok(None)
        }
    }

    /// Whether anything is under `_delta_log/`: one listing, so that a
    /// table not written yet never reaches the Delta kernel, which logs an
    /// error for every log it finds empty (a first run would print one per
    /// table) and costs more than the listing.
    async fn has_log(&self) -> Result<bool> {
        let log = self.root.clone().join(DELTA_LOG);
        match self.lake.store().list(Some(&log)).next().await {
            None | Some(Err(object_store::Error::NotFound { .. })) => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(self.lake.error(&format!("list {log}"), e)),
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
        self.snapshot_of_loaded(self.load().await?.as_ref())
    }

    /// The snapshot of a loaded table, empty for none.
    fn snapshot_of_loaded(&self, table: Option<&DeltaTable>) -> Result<Snapshot> {
        match table {
            Some(table) => self.snapshot_of(table),
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
    pub(super) fn delta_error(&self, action: &str, e: DeltaTableError) -> Error {
        match e {
            DeltaTableError::ObjectStore { source } => self
                .lake
                .error(&format!("{action} of {}", self.root), source),
            other => Error::Lake {
                url: self.lake.describe().into(),
                problem: format!("could not {action} of {}: {other}", self.root),
                fix: format!(
                    "check that the storage server is reachable; if the log was edited or \
                     damaged, {REBUILD}"
                ),
            },
        }
    }

    pub(super) fn damaged(&self, problem: &str) -> Error {
        Error::Lake {
            url: self.lake.describe().into(),
            problem: format!("the Delta log of {} is not valid: {problem}", self.root),
            fix: format!("the log was edited or damaged; {REBUILD}"),
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
        let base = self.snapshot_of_loaded(delta.as_ref())?;
        Ok(Transaction::new(self.clone(), delta, base, run_id, now))
    }

    /// Commit `actions` on top of `base` as its next version (version 0
    /// with no base: the commit creates the table), which is `expected`
    /// unless another commit came first. The commit records `claims` as
    /// `txn` actions (none: the table-wide one), and fails with
    /// [`Error::Conflict`] if a commit since `base` recorded one of them.
    /// A commit whose answer was lost (the store client retried it and
    /// found it existing) is recognised by its transaction id.
    pub(super) async fn commit_actions(
        &self,
        base: Option<&DeltaTable>,
        actions: Vec<Action>,
        operation: DeltaOperation,
        (txn_id, claims): (&str, &[(String, i64)]),
        expected: Snapshot,
    ) -> Result<Snapshot> {
        let state = base
            .map(|table| {
                table
                    .snapshot()
                    .map_err(|e| self.delta_error("read the Delta log", e))
            })
            .transpose()?;
        let next = expected.version;
        // A creation that lost its race has nothing to retry on.
        let retries = if state.is_some() { COMMIT_RETRIES } else { 0 };
        let claims = if claims.is_empty() {
            vec![AppTransaction::new(APP_ID, next as i64)]
        } else {
            claims
                .iter()
                .map(|(id, version)| AppTransaction::new(id, *version))
                .collect()
        };
        let properties = CommitProperties::default()
            .with_application_transactions(claims)
            .with_max_retries(retries);
        let committed = async {
            let landed = CommitBuilder::from(properties)
                .with_actions(actions)
                .build(
                    state.map(|s| s as &dyn TableReference),
                    self.log_store(),
                    operation,
                )
                .into_prepared_commit_future()
                .await?
                .await?;
            // Delta's post-commit step reads the new version back and,
            // every hundredth version, writes a checkpoint and clears the
            // log past its retention. Reading back costs more than the
            // commit, and the version is known when it landed as expected.
            if landed.version == next && !checkpoint_due(state, next) {
                return Ok(None);
            }
            landed.await.map(|done| Some(done.snapshot))
        }
        .await;
        match committed {
            Ok(None) => Ok(expected),
            Ok(Some(state)) => self.snapshot_of_state(&state),
            Err(e) => {
                let newest = self.load().await?.and_then(|t| t.version());
                if let Some(newest) = newest.filter(|newest| *newest >= next) {
                    for version in next..=newest {
                        if self.commit_id(version).await?.as_deref() == Some(txn_id) {
                            return self.snapshot_of(&self.load_version(version).await?);
                        }
                    }
                    return Err(Error::Conflict {
                        url: self.lake.describe().into(),
                        table: self.root.to_string(),
                        version: newest,
                    });
                }
                Err(self.delta_error(&format!("commit version {next}"), e))
            }
        }
    }

    /// The table as it was at `at`: a version, or the newest version
    /// committed at or before a time.
    pub async fn snapshot_at(&self, at: &At) -> Result<Snapshot> {
        let version = match at {
            At::Version(version) => *version,
            At::Time(time) => {
                // Newest first, down to the first commit made by then.
                let commits = self
                    .commits_while(|read| read.last().is_none_or(|c| c.at > *time))
                    .await?;
                match commits.last() {
                    None => return Ok(Snapshot::empty()),
                    Some(commit) if commit.at <= *time => commit.version,
                    Some(_) => {
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
        self.commits_while(|read| limit.is_none_or(|l| read.len() < l))
            .await
    }

    /// The table's commits from the newest down, read one by one while
    /// `more` (given those read so far) says to go on.
    async fn commits_while(&self, mut more: impl FnMut(&[Commit]) -> bool) -> Result<Vec<Commit>> {
        let Some(newest) = self.load().await?.and_then(|t| t.version()) else {
            return Ok(Vec::new());
        };
        let mut commits = Vec::new();
        for version in (0..=newest).rev() {
            if !more(&commits) {
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
