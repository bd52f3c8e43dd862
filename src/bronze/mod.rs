//! Bronze: the append-only history of every landed document version, as
//! Parquet in the lake. Each run extracts the versions ingested after the
//! table's watermark (or re-derives an interval) and publishes them with
//! the new watermark in one commit.

mod definition;
mod files;
mod kafka;
mod records;
mod rows;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::kafka::KafkaSettings;
use crate::lake::{DataFile, FileWriter, Lake, Table, Transaction};
use crate::landing::{Collection, ScanCursor, SharedStore, Stamp, cursor_before, lease};

pub use definition::{BronzeSource, BronzeTable, METADATA_COLUMNS, Partitioning, load};
pub use files::{FilesReport, Mark};
pub use kafka::KafkaReport;
pub use records::quarantine_name;
use rows::{Merge, Row, RowBatch, RowStream};

/// How bronze takes in files (event files under a lake folder).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSettings {
    /// Commit after about this much input: the most work a crash redoes.
    /// A files run holds up to twice this much (one commit encoding, the
    /// next one read).
    pub commit_mib: u64,
    /// A last line without a line break is taken once its file has not
    /// changed for this long (until then a writer may still be adding to it).
    pub settle_secs: u64,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            commit_mib: 128,
            settle_secs: 600,
        }
    }
}

impl IngestSettings {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(1..=4096).contains(&self.commit_mib) {
            return Err(Error::config(
                "[ingest] commit_mib",
                format!("{} MiB is out of range", self.commit_mib),
                "give 1 to 4096 (default 128)",
            ));
        }
        Ok(())
    }
}

/// The lake layer name.
pub const LAYER: &str = "bronze";
const PAYLOAD: [&str; 1] = ["doc"];
/// How long a bronze run holds its table's lock before it must renew it.
pub(crate) const LOCK_LEASE: TimeDelta = TimeDelta::hours(1);
/// A long run renews its lock every this many rows.
const LOCK_RENEWAL_ROWS: u64 = 100_000;
/// Rows per record batch handed to the Parquet writer.
const BATCH_ROWS: usize = 1024;
/// ...or fewer, once their documents reach this size.
const BATCH_BYTES: usize = 2 * 1024 * 1024;

/// Which versions a run extracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extract {
    /// Everything ingested after the watermark: the normal run.
    Incremental,
    /// Re-derive the versions ingested in `[from, to)`: the files holding
    /// them are rewritten from their own rows plus the landing store's, so
    /// a rerun replaces them and never duplicates or drops a version.
    Interval {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
}

/// The newest version a bronze table holds, as a resumable scan cursor.
/// Ordered as the store scans: by stamp, then id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Watermark {
    pub ingested_at: Stamp,
    pub id: String,
}

impl Watermark {
    fn cursor(&self) -> ScanCursor {
        (self.ingested_at, self.id.clone())
    }
}

/// What one bronze run did to one table.
#[derive(Debug, Clone, Serialize)]
pub struct BronzeReport {
    pub table: String,
    pub run_id: String,
    /// `incremental` or `interval`.
    pub mode: &'static str,
    /// The committed version, or `None` when there was nothing to write.
    pub version: Option<u64>,
    /// Versions written (for an interval run, including the rows kept from
    /// the rewritten files).
    pub rows_written: u64,
    pub files_added: usize,
    pub files_removed: usize,
    /// Rows written per partition folder.
    pub partitions: BTreeMap<String, u64>,
    pub watermark_before: Option<Watermark>,
    pub watermark_after: Option<Watermark>,
    /// Rows in the table at the version the run ended with.
    pub table_rows: u64,
    /// For a files source: what was read from where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<FilesReport>,
    /// For a Kafka source: what was consumed from where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaReport>,
}

/// The Arrow schema of a bronze table whose id column is `key`.
pub fn schema(key: &str) -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        text(key),
        Field::new(
            "ingested_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        text("run_id"),
        text("endpoint"),
        text("content_hash"),
        text("doc"),
    ]))
}

/// Runs bronze extractions against one landing store and lake.
#[derive(Debug, Clone)]
pub struct Bronze {
    store: SharedStore,
    lake: Lake,
    clock: SharedClock,
    ingest: IngestSettings,
    kafka: KafkaSettings,
}

impl Bronze {
    pub fn new(store: SharedStore, lake: Lake, clock: SharedClock) -> Bronze {
        Bronze {
            store,
            lake,
            clock,
            ingest: IngestSettings::default(),
            kafka: KafkaSettings::default(),
        }
    }

    /// How records sources are read: the `[ingest]` and `[kafka]` settings.
    pub fn with_settings(mut self, ingest: &IngestSettings, kafka: &KafkaSettings) -> Bronze {
        self.ingest = ingest.clone();
        self.kafka = kafka.clone();
        self
    }

    pub fn table(&self, def: &BronzeTable) -> Table {
        self.lake.table(LAYER, &def.name)
    }

    /// Extract and publish one table. Holds the table's lock for the run
    /// (a Kafka-fed table's writers fence each other per partition
    /// instead); a run killed at any point leaves the table at its last
    /// committed version, and the next run converges to the same rows.
    pub async fn run(
        &self,
        def: &BronzeTable,
        extract: Extract,
        run_id: &str,
    ) -> Result<BronzeReport> {
        match &def.source {
            BronzeSource::Collection(collection) => {
                self.locked(def, run_id, async |lock, holder| {
                    self.run_store(def, *collection, extract, run_id, (lock, holder))
                        .await
                })
                .await
            }
            // Files are the raw record: an interval has nothing to re-derive,
            // so every run takes what is new.
            BronzeSource::Files(folder) => {
                self.locked(def, run_id, async |lock, holder| {
                    self.run_files(def, folder, run_id, lock, holder).await
                })
                .await
            }
            // A run takes the messages up to the end offsets seen at its start.
            BronzeSource::Kafka(topics) => self.run_kafka(def, topics, run_id, None).await,
        }
    }

    /// `work(lock, holder)` while holding the table's lock.
    async fn locked<T>(
        &self,
        def: &BronzeTable,
        run_id: &str,
        work: impl AsyncFnOnce(&str, &str) -> Result<T>,
    ) -> Result<T> {
        let lock = format!("{LAYER}.{}", def.name);
        lease::while_held(
            &self.store,
            &lock,
            run_id,
            self.clock.now(),
            LOCK_LEASE,
            async |holder| work(&lock, holder).await,
        )
        .await
    }

    async fn renew_lock(&self, lock: &str, holder: &str) -> Result<()> {
        lease::hold(&self.store, lock, holder, self.clock.now(), LOCK_LEASE).await
    }

    /// A run over a landing-store collection: plan what to read, copy it
    /// into new files, commit them.
    async fn run_store(
        &self,
        def: &BronzeTable,
        collection: Collection,
        extract: Extract,
        run_id: &str,
        (lock, holder): (&str, &str),
    ) -> Result<BronzeReport> {
        let table = self.table(def);
        let mut txn = table.begin(run_id, self.clock.now()).await?;
        txn.declare(schema(&def.key), Some(&def.partition_by.columns()));
        let before = watermark(txn.base().properties.get("watermark"));
        let stable = self.store.stable_stamp().await?;
        let mut report = BronzeReport {
            table: def.name.clone(),
            run_id: run_id.into(),
            mode: match extract {
                Extract::Incremental => "incremental",
                Extract::Interval { .. } => "interval",
            },
            version: None,
            rows_written: 0,
            files_added: 0,
            files_removed: 0,
            partitions: BTreeMap::new(),
            watermark_before: before.clone(),
            watermark_after: before.clone(),
            table_rows: txn.base().rows(),
            files: None,
            kafka: None,
        };
        let Some(stable) = stable else {
            return Ok(report);
        };
        let plan = (collection, extract, before.as_ref(), stable);
        let Some((sources, replaced)) = self.plan(&table, &txn, plan).await? else {
            return Ok(report);
        };
        let mut sink = Sink::new(&mut txn, def);
        let last = self.copy(sources, &mut sink, (lock, holder)).await?;
        let written = sink.finish().await?;
        if written.is_empty() && replaced.is_empty() {
            return Ok(report);
        }

        let after = before.max(last);
        for file in &written {
            report.rows_written += file.rows;
            let folder = file.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            *report.partitions.entry(folder.to_string()).or_default() += file.rows;
            txn.add(file.clone());
        }
        for file in &replaced {
            txn.remove(file);
        }
        report.files_added = written.len();
        report.files_removed = replaced.len();
        let mut properties = Map::new();
        properties.insert("source".into(), json!(def.source.describe()));
        properties.insert("key".into(), json!(def.key));
        if let Some(w) = &after {
            properties.insert("watermark".into(), json!(w));
        }
        let operation = if replaced.is_empty() {
            "append"
        } else {
            "replace"
        };
        let snapshot = txn.commit(operation, properties, self.clock.now()).await?;
        report.version = Some(snapshot.version);
        report.table_rows = snapshot.rows();
        report.watermark_after = after;
        Ok(report)
    }

    /// What a store run reads: the collection after the watermark (up to
    /// `stable`), or for an interval the collection over it plus the files
    /// it replaces; `None` when the interval holds nothing yet.
    async fn plan(
        &self,
        table: &Table,
        txn: &Transaction,
        (collection, extract, before, stable): (Collection, Extract, Option<&Watermark>, Stamp),
    ) -> Result<Option<(Vec<RowStream>, Vec<DataFile>)>> {
        match extract {
            Extract::Incremental => {
                let scan = RowStream::store(
                    self.store.clone(),
                    collection,
                    before.map(Watermark::cursor),
                    stable,
                );
                Ok(Some((vec![scan], Vec::new())))
            }
            Extract::Interval { from, to } => {
                // Coverage stays contiguous: an interval that starts after
                // the watermark also takes the gap before it.
                let mut lo = from.timestamp_micros();
                lo = match before {
                    Some(w) => lo.min(w.ingested_at + 1),
                    None => Stamp::MIN + 1,
                };
                let hi = (to.timestamp_micros() - 1).min(stable);
                if lo > hi {
                    return Ok(None);
                }
                let replaced: Vec<DataFile> = txn
                    .base()
                    .files
                    .iter()
                    .filter(|f| stamp_range(f).is_none_or(|(a, b)| a <= hi && b >= lo))
                    .cloned()
                    .collect();
                let mut sources = vec![RowStream::store(
                    self.store.clone(),
                    collection,
                    Some(cursor_before(lo)),
                    hi,
                )];
                for file in &replaced {
                    let stream = table.read(file, BATCH_ROWS).await?;
                    sources.push(RowStream::file(stream, file.path.clone()));
                }
                Ok(Some((sources, replaced)))
            }
        }
    }

    /// Merge `sources` into `sink` in (stamp, id) order, renewing the lock
    /// as it goes; the watermark of the last row copied.
    async fn copy(
        &self,
        sources: Vec<RowStream>,
        sink: &mut Sink<'_>,
        (lock, holder): (&str, &str),
    ) -> Result<Option<Watermark>> {
        let mut merge = Merge::new(sources);
        // The merge emits rows in (stamp, id) order: the last one is the newest.
        let mut last: Option<Watermark> = None;
        let mut rows = 0u64;
        while let Some(row) = merge.next().await? {
            last = Some(Watermark {
                ingested_at: row.stamp,
                id: row.id.clone(),
            });
            sink.push(row).await?;
            rows += 1;
            if rows.is_multiple_of(LOCK_RENEWAL_ROWS) {
                self.renew_lock(lock, holder).await?;
            }
        }
        Ok(last)
    }
}

impl Bronze {
    async fn run_files(
        &self,
        def: &BronzeTable,
        folder: &str,
        run_id: &str,
        lock: &str,
        holder: &str,
    ) -> Result<BronzeReport> {
        let run = files::FilesRun {
            lake: &self.lake,
            store: &self.store,
            clock: &self.clock,
            lock: (lock, holder),
            def,
            folder,
            settings: &self.ingest,
            run_id,
            now: self.clock.now(),
        };
        let (files, version, table_rows) = run.run().await?;
        Ok(BronzeReport {
            table: def.name.clone(),
            run_id: run_id.into(),
            mode: "files",
            version,
            rows_written: files.files.values().sum(),
            files_added: 0,
            files_removed: 0,
            partitions: BTreeMap::new(),
            watermark_before: None,
            watermark_after: None,
            table_rows,
            files: Some(files),
            kafka: None,
        })
    }

    /// Consume a Kafka-fed table continuously, a micro-batch at a time,
    /// until `stop` turns true (then publish what is pending and return).
    /// Other processes may consume it too, in the same consumer group.
    pub async fn stream(
        &self,
        def: &BronzeTable,
        run_id: &str,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<BronzeReport> {
        let BronzeSource::Kafka(topics) = &def.source else {
            return Err(crate::error::Error::config(
                def.file.display().to_string(),
                format!(
                    "bronze.{} is fed by {}, not Kafka",
                    def.name,
                    def.source.describe()
                ),
                "only tables with source = { kafka = ... } stream",
            ));
        };
        self.run_kafka(def, topics, run_id, Some(stop)).await
    }

    async fn run_kafka(
        &self,
        def: &BronzeTable,
        topics: &[String],
        run_id: &str,
        stop: Option<tokio::sync::watch::Receiver<bool>>,
    ) -> Result<BronzeReport> {
        let run = kafka::KafkaRun {
            lake: &self.lake,
            store: &self.store,
            clock: &self.clock,
            def,
            topics,
            ingest: &self.ingest,
            kafka: &self.kafka,
            run_id,
        };
        let mode = if stop.is_some() { "stream" } else { "kafka" };
        let (report, version, table_rows) = run.run(stop).await?;
        Ok(BronzeReport {
            table: def.name.clone(),
            run_id: run_id.into(),
            mode,
            version,
            rows_written: report.rows,
            files_added: 0,
            files_removed: 0,
            partitions: BTreeMap::new(),
            watermark_before: None,
            watermark_after: None,
            table_rows,
            files: None,
            kafka: Some(report),
        })
    }
}

fn watermark(value: Option<&Value>) -> Option<Watermark> {
    value.and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// The ingest stamps a file holds, from its commit entry.
pub fn stamp_range(file: &DataFile) -> Option<(Stamp, Stamp)> {
    let get = |k: &str| file.stats.get(k).and_then(Value::as_i64);
    Some((get("min_ingested_at")?, get("max_ingested_at")?))
}

/// Rows in `(stamp, id)` order into partitioned, size-capped files. Rows
/// arrive ordered, so partitions change monotonically and one file is open
/// at a time: memory holds one record batch and one row group.
struct Sink<'t> {
    txn: &'t mut Transaction,
    schema: SchemaRef,
    partition_by: Partitioning,
    open: Option<OpenFile>,
    batch: RowBatch,
    written: Vec<DataFile>,
}

struct OpenFile {
    /// The partition's [`Partitioning::bucket`].
    bucket: i64,
    writer: FileWriter,
    min: Stamp,
    max: Stamp,
}

impl<'t> Sink<'t> {
    fn new(txn: &'t mut Transaction, def: &BronzeTable) -> Sink<'t> {
        Sink {
            txn,
            schema: schema(&def.key),
            partition_by: def.partition_by,
            open: None,
            batch: RowBatch::default(),
            written: Vec::new(),
        }
    }

    async fn push(&mut self, row: Row) -> Result<()> {
        let bucket = self.partition_by.bucket(row.ingested_at());
        if self.open.as_ref().is_some_and(|f| f.bucket != bucket) {
            self.close_file().await?;
        }
        if self.open.is_none() {
            let partition = self.partition_by.of(row.ingested_at());
            let writer = self
                .txn
                .create_file(&partition, self.schema.clone(), &PAYLOAD)?;
            self.open = Some(OpenFile {
                bucket,
                writer,
                min: row.stamp,
                max: row.stamp,
            });
        }
        let open = self.open.as_mut().expect("opened above");
        open.min = open.min.min(row.stamp);
        open.max = open.max.max(row.stamp);
        self.batch.push(row);
        if self.batch.len() >= BATCH_ROWS || self.batch.bytes() >= BATCH_BYTES {
            self.write_batch().await?;
            if self.open.as_ref().is_some_and(|f| f.writer.is_full()) {
                self.close_file().await?;
            }
        }
        Ok(())
    }

    async fn write_batch(&mut self) -> Result<()> {
        if self.batch.len() == 0 {
            return Ok(());
        }
        let batch = self.batch.take(&self.schema);
        let open = self.open.as_mut().expect("rows go to an open file");
        open.writer.write(&batch).await
    }

    async fn close_file(&mut self) -> Result<()> {
        self.write_batch().await?;
        if let Some(mut open) = self.open.take() {
            open.writer.set_stat("min_ingested_at", json!(open.min));
            open.writer.set_stat("max_ingested_at", json!(open.max));
            self.written.push(open.writer.finish().await?);
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<Vec<DataFile>> {
        self.close_file().await?;
        Ok(self.written)
    }
}

/// The report as a few lines of text.
pub fn render(r: &BronzeReport) -> String {
    if let Some(files) = &r.files {
        return files::render(&r.table, files, r.version, r.table_rows);
    }
    if let Some(kafka) = &r.kafka {
        return kafka::render(&r.table, kafka, r.version, r.table_rows);
    }
    let mut out = match r.version {
        None => format!("bronze.{}: up to date ({} rows)", r.table, r.table_rows),
        Some(v) => format!(
            "bronze.{}: {} run wrote {} rows in {} files (removed {}), version {v}, {} rows in all",
            r.table, r.mode, r.rows_written, r.files_added, r.files_removed, r.table_rows
        ),
    };
    for (partition, rows) in &r.partitions {
        out.push_str(&format!("\n  {partition}: {rows} rows"));
    }
    out
}
