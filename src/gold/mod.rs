//! Gold: the tables analysts query, each a SQL model over silver (or bronze
//! history, or other gold models) with a contract: declared columns and
//! types, a grain, comments, and data tests. A run computes the model into
//! staged files, tests them, and publishes only if every test passes; a
//! failing test leaves the table at its last good version and fails the
//! task, so the models after it in the pipeline do not run on bad rows.

mod data_tests;
pub mod ddl;
mod definition;
mod neighbours;
mod on_trino;
pub mod register;
mod trino_sql;

use std::collections::BTreeSet;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use chrono::TimeDelta;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::util::display::FormatOptions;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Map, Value, json};

pub use data_tests::{DataTest, Failure, declared as declared_tests};
pub use definition::{
    Column, ColumnRef, ColumnType, Freshness, GoldModel, Incremental, Known, OnFailure, known,
    load, silver_family,
};
pub use neighbours::Neighbours;
pub use on_trino::check as check_engines;

use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::lake::{FileWriter, Lake, Transaction};
use crate::landing::{SharedStore, lease};
use crate::sql::Engine;

/// The lake layer name.
pub const LAYER: &str = "gold";
const LOCK_LEASE: TimeDelta = TimeDelta::hours(1);

/// Where a model's SQL runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GoldEngine {
    /// soundlake's own engine, in the process.
    #[default]
    Datafusion,
    /// The Trino cluster of `[trino]`, which writes the table's files.
    Trino,
}

/// `[gold]`: how models run.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GoldSettings {
    /// Where models run unless their `.toml` says `engine`.
    pub engine: GoldEngine,
    /// Memory one model's query may hold on soundlake's engine, in MiB:
    /// beyond it sorts and aggregations spill to local disk. 0: a query
    /// takes what it needs.
    pub memory_mib: u64,
}

/// Bounded by default, as Spark's executors are (1 GiB): a table that
/// grows then spills instead of taking the machine. Unbounded, the unique
/// key test of `similar_tracks_by_sound` at 2M tracks (38M keys) alone
/// held 1.9 GB.
const DEFAULT_MEMORY_MIB: u64 = 1024;

impl Default for GoldSettings {
    fn default() -> GoldSettings {
        GoldSettings {
            engine: GoldEngine::default(),
            memory_mib: DEFAULT_MEMORY_MIB,
        }
    }
}

impl GoldSettings {
    pub(crate) fn validate(&self) -> Result<()> {
        let mib = self.memory_mib;
        if mib != 0 && !(64..=1 << 20).contains(&mib) {
            return Err(Error::config(
                "[gold] memory_mib",
                format!("{mib} MiB is out of range"),
                "give 64 to 1048576, or 0 to let each query take what it needs",
            ));
        }
        Ok(())
    }
}

/// What one model run did.
#[derive(Debug, Clone, Serialize)]
pub struct GoldReport {
    pub table: String,
    pub run_id: String,
    pub engine: GoldEngine,
    pub version: u64,
    pub rows: u64,
    pub files: usize,
    /// Tests that found nothing wrong (quarantining tests report through
    /// `quarantined` instead).
    pub tests_passed: usize,
    /// Tests that failed with `on_failure = "warn"`, one line each: the
    /// version was published all the same.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Rows kept out of the table by `on_failure = "quarantine"` tests, now
    /// in `gold.<model>_quarantine`.
    #[serde(skip_serializing_if = "is_zero")]
    pub quarantined: u64,
    /// Inputs with no data yet (audio features in Development mode, albums
    /// before any was crawled): the model read them as empty tables.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub empty_inputs: Vec<String>,
    /// For an incremental model: the days this run rebuilt (none when its
    /// source had no new version of any day), or why it rebuilt them all.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub rebuilt: Option<Rebuilt>,
}

/// Which days of an incremental model a run rebuilds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rebuilt {
    /// Every day, and why: the first build, a full refresh, a changed
    /// model, or a source version its log no longer holds.
    Whole(String),
    /// The days (`YYYY-MM-DD`) whose source partitions changed.
    Days(BTreeSet<String>),
}

impl std::fmt::Display for Rebuilt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rebuilt::Whole(why) => write!(f, "every day ({why})"),
            Rebuilt::Days(days) => {
                let days: Vec<&str> = days.iter().map(String::as_str).collect();
                write!(f, "the days {}", days.join(", "))
            }
        }
    }
}

impl Rebuilt {
    fn covers(&self, day: &str) -> bool {
        match self {
            Rebuilt::Whole(_) => true,
            Rebuilt::Days(days) => days.contains(day),
        }
    }
}

/// The table property where an incremental model records what it was
/// built from: its source's version and the model's definition.
const BUILT_FROM: &str = "incremental";

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Runs gold models over one lake.
#[derive(Clone)]
pub struct Gold {
    store: SharedStore,
    lake: Lake,
    clock: SharedClock,
    /// Where a model runs when its definition does not say.
    engine: GoldEngine,
    /// The cluster models run on with `engine = "trino"`, if configured.
    trino: Option<on_trino::Cluster>,
    /// `[gold] memory_mib`, in bytes.
    memory: Option<usize>,
}

impl Gold {
    /// Models run by soundlake's engine.
    pub fn new(store: SharedStore, lake: Lake, clock: SharedClock) -> Gold {
        Gold {
            store,
            lake,
            clock,
            engine: GoldEngine::Datafusion,
            trino: None,
            memory: None,
        }
    }

    /// Models run where `[gold]` and their definitions say: a Trino
    /// cluster is set up only when some model runs on it.
    pub fn configured(
        (store, lake, clock): (SharedStore, Lake, SharedClock),
        settings: &GoldSettings,
        (trino, lake_settings): (&crate::trino::TrinoSettings, &crate::lake::LakeSettings),
        models: &[GoldModel],
    ) -> Result<Gold> {
        let engine = settings.engine;
        let on_trino = models
            .iter()
            .any(|m| m.engine.unwrap_or(engine) == GoldEngine::Trino);
        let trino = if on_trino {
            Some(on_trino::Cluster::new(trino, lake_settings)?)
        } else {
            None
        };
        Ok(Gold {
            store,
            lake,
            clock,
            engine,
            trino,
            memory: (settings.memory_mib > 0)
                .then(|| usize::try_from(settings.memory_mib << 20).unwrap_or(usize::MAX)),
        })
    }

    /// Build, test and publish one model, holding its table's lock. With
    /// `full_refresh`, an incremental model rebuilds every day. The model's
    /// tests wait for `referenced` (the tables its `references` tests read,
    /// built by tasks running alongside) and nothing is published if it
    /// fails; the model's query does not wait.
    pub async fn run(
        &self,
        model: &GoldModel,
        run_id: &str,
        full_refresh: bool,
        referenced: impl Future<Output = Result<()>> + Send,
    ) -> Result<GoldReport> {
        let lock = format!("{LAYER}.{}", model.name);
        lease::while_held(
            &self.store,
            &lock,
            run_id,
            self.clock.now(),
            LOCK_LEASE,
            async |_| {
                self.run_locked(model, run_id, full_refresh, referenced)
                    .await
            },
        )
        .await
    }

    async fn run_locked(
        &self,
        model: &GoldModel,
        run_id: &str,
        full_refresh: bool,
        referenced: impl Future<Output = Result<()>> + Send,
    ) -> Result<GoldReport> {
        match (model.engine.unwrap_or(self.engine), &self.trino) {
            (GoldEngine::Datafusion, _) => {
                self.run_here(model, run_id, full_refresh, referenced).await
            }
            (GoldEngine::Trino, Some(cluster)) => {
                referenced.await?;
                self.run_on_trino(cluster, model, run_id).await
            }
            (GoldEngine::Trino, None) => Err(Error::config(
                model.sql_file.with_extension("toml").display().to_string(),
                "the model runs on Trino, and no Trino is configured for this run",
                "set [trino] url, or run the model with engine = \"datafusion\"",
            )),
        }
    }

    /// Run a model on soundlake's own engine, writing its files here.
    async fn run_here(
        &self,
        model: &GoldModel,
        run_id: &str,
        full_refresh: bool,
        referenced: impl Future<Output = Result<()>> + Send,
    ) -> Result<GoldReport> {
        let engine = match self.memory {
            Some(memory) => Engine::open_within(&self.lake, memory).await?,
            None => Engine::open(&self.lake).await?,
        };
        let table = self.lake.table(LAYER, &model.name);
        let mut txn = table.begin(run_id, self.clock.now()).await?;
        let schema = model.schema();
        let by = model.incremental.as_ref().map(|i| i.by.as_str());
        txn.declare(schema.clone(), Some(by.as_slice()));
        txn.describe(model.docs());
        let mut properties = Map::new();
        let plan = match &model.incremental {
            Some(incremental) => {
                let plan = self
                    .plan_days(model, incremental, txn.base(), full_refresh)
                    .await?;
                if plan.rebuilt == Rebuilt::Days(BTreeSet::new()) {
                    return Ok(up_to_date(model, run_id, txn.base(), plan.rebuilt));
                }
                let source = &incremental.source;
                let table = self.lake.table(&source.layer, &source.name);
                engine
                    .pin_snapshot(&table, &source.layer, &source.name, &plan.read)
                    .await?;
                properties.insert(BUILT_FROM.into(), plan.record);
                Some(plan.rebuilt)
            }
            None => None,
        };
        let mut absent = BTreeSet::new();
        for input in &model.reads {
            if !engine.has_data(&input.layer, &input.name).await? {
                absent.insert(input.clone());
            }
        }
        let place = model.sql_file.display().to_string();
        let mut stream = engine
            .stream_over_absent(&place, &model.sql, &absent, by)
            .await?;
        if let Some(step) = &model.neighbours {
            stream = step.search(stream, &place).await?;
        }
        let conform = Conform::new(model, &stream.schema())?;
        let fit = |b: &RecordBatch| conform.apply(b);
        let mut rows = match (by, &plan) {
            (Some(by), Some(rebuilt)) => {
                write_days(&mut txn, &schema, (by, rebuilt), stream, &place, fit).await?
            }
            _ => write_all(&mut txn, &schema, stream, &place, fit).await?,
        };
        let superseded: Vec<_> = txn
            .base()
            .files
            .iter()
            .filter(|f| match (by, &plan) {
                (Some(by), Some(rebuilt)) => f.partition.get(by).is_none_or(|d| rebuilt.covers(d)),
                _ => true,
            })
            .cloned()
            .collect();
        for file in &superseded {
            txn.remove(file);
        }
        // The days kept count among the version's rows.
        rows += txn.base().rows() - superseded.iter().map(|f| f.rows).sum::<u64>();
        if by.is_some() && txn.locate().is_empty() {
            // No day has rows: one empty file, in no partition, shows
            // engines reading the folder the table's columns.
            txn.declare(schema.clone(), Some(&[]));
            let empty = txn.create_file(&[], schema.clone(), &[])?;
            add(&mut txn, empty).await?;
        }
        // The tests below read what the model references as it is
        // published now; the files written so far stay staged if it fails.
        referenced.await?;
        let now = self.clock.now();
        engine.pin(
            &table,
            LAYER,
            &model.name,
            txn.locate(),
            schema.clone(),
            now,
        )?;
        let tests = declared_tests(model, now);
        let (set_aside, judged): (Vec<&DataTest>, Vec<&DataTest>) = tests
            .iter()
            .partition(|t| t.on_failure == OnFailure::Quarantine);
        let quarantine = if set_aside.is_empty() {
            None
        } else {
            let (qtxn, quarantined) = self
                .quarantine(&engine, model, &set_aside, &mut txn, run_id, now)
                .await?;
            rows -= quarantined;
            Some((qtxn, quarantined))
        };
        let judge = data_tests::OnEngine {
            engine: &engine,
            place: data_tests::place(model),
        };
        let failures = data_tests::run(&judge, &judged).await?;
        let staged = Staged {
            txn,
            quarantine,
            rows,
            tests: judged.len(),
            failures,
            properties,
        };
        let mut report = staged
            .publish(model, run_id, now, absent, GoldEngine::Datafusion)
            .await?;
        report.rebuilt = plan;
        Ok(report)
    }

    /// Which days of `model` this run rebuilds, from the versions of its
    /// source: those whose partitions gained or lost a file since the
    /// version the published table was built from.
    async fn plan_days(
        &self,
        model: &GoldModel,
        incremental: &Incremental,
        base: &crate::lake::Snapshot,
        full_refresh: bool,
    ) -> Result<DayPlan> {
        let source_id = &incremental.source;
        let source_table = self.lake.table(&source_id.layer, &source_id.name);
        let source = source_table.snapshot().await?;
        let day_of = |file: &crate::lake::DataFile| source_day(model, source_id, file);
        for file in &source.files {
            day_of(file)?;
        }
        let definition = definition_hash(model);
        let recorded = base.properties.get(BUILT_FROM);
        let whole = Rebuilt::Whole;
        let by_day = base
            .files
            .iter()
            .all(|f| f.partition.contains_key(&incremental.by));
        let rebuilt = match recorded {
            _ if full_refresh => whole("a full refresh".into()),
            None => whole("the first build".into()),
            Some(_) if !by_day => whole("the table had no day with rows".into()),
            Some(r) if r["definition"] != json!(definition) => {
                whole("the model changed since the last build".into())
            }
            Some(r) => match r["version"].as_u64() {
                None => whole(format!("{source_id} had no data at the last build")),
                Some(v) if v > source.version || !source.exists() => {
                    whole(format!("{source_id} was recreated since the last build"))
                }
                Some(v) => match source_table.snapshot_at(&crate::lake::At::Version(v)).await {
                    Err(_) => whole(format!("{source_id} version {v} is gone from its log")),
                    Ok(before) => {
                        let paths = |s: &crate::lake::Snapshot| -> BTreeSet<String> {
                            s.files.iter().map(|f| f.path.clone()).collect()
                        };
                        let (was, is) = (paths(&before), paths(&source));
                        let mut days = BTreeSet::new();
                        for file in before.files.iter().filter(|f| !is.contains(&f.path)) {
                            days.insert(day_of(file)?);
                        }
                        for file in source.files.iter().filter(|f| !was.contains(&f.path)) {
                            days.insert(day_of(file)?);
                        }
                        Rebuilt::Days(days)
                    }
                },
            },
        };
        let mut read = source.clone();
        if let Rebuilt::Days(days) = &rebuilt {
            read.files
                .retain(|f| day_of(f).is_ok_and(|d| days.contains(&d)));
        }
        let record = json!({
            "source": source_id.to_string(),
            "version": source.exists().then_some(source.version),
            "definition": definition,
        });
        Ok(DayPlan {
            rebuilt,
            read,
            record,
        })
    }

    /// Set aside the staged rows that break `tests`: they become the new
    /// version of `gold.<model>_quarantine`, each with the test it broke (in
    /// a transaction committed with the model), and the model's staged
    /// files are written again without them. The number of rows set aside.
    async fn quarantine(
        &self,
        engine: &Engine,
        model: &GoldModel,
        tests: &[&DataTest],
        txn: &mut Transaction,
        run_id: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(Transaction, u64)> {
        let place = data_tests::place(model);
        let this = format!("{LAYER}.{}", model.name);
        let (rows_breaking, any_broken) = set_aside_sql(model, tests);
        let table = self.lake.table(LAYER, &quarantine_table(&model.name));
        let mut qtxn = table.begin(run_id, now).await?;
        let schema = quarantine_schema(model);
        qtxn.declare(schema.clone(), Some(&[]));
        let stream = engine.stream(&place, &rows_breaking).await?;
        let set_aside = write_all(&mut qtxn, &schema, stream, &place, |b| {
            fit(&schema, b, &place)
        })
        .await?;
        let base_files = qtxn.base().files.clone();
        for file in &base_files {
            qtxn.remove(file);
        }
        if set_aside == 0 {
            return Ok((qtxn, 0));
        }
        let kept_out = data_tests::count(
            engine,
            &place,
            &format!("SELECT 1 FROM {this} WHERE {any_broken}"),
        )
        .await?;
        let stream = engine
            .stream(
                &place,
                &format!("SELECT * FROM {this} WHERE NOT ({any_broken})"),
            )
            .await?;
        txn.unstage();
        let schema = model.schema();
        write_all(txn, &schema, stream, &place, |b| fit(&schema, b, &place)).await?;
        let target = self.lake.table(LAYER, &model.name);
        engine.pin(&target, LAYER, &model.name, txn.locate(), schema, now)?;
        Ok((qtxn, kept_out))
    }
}

/// What an incremental model's run rebuilds, from which files of its
/// source, and what the new version records of them.
struct DayPlan {
    rebuilt: Rebuilt,
    /// The source's newest version, with only the files of the days rebuilt.
    read: crate::lake::Snapshot,
    /// [`BUILT_FROM`]'s value.
    record: Value,
}

/// The report of a run that found no day to rebuild.
fn up_to_date(
    model: &GoldModel,
    run_id: &str,
    base: &crate::lake::Snapshot,
    rebuilt: Rebuilt,
) -> GoldReport {
    GoldReport {
        table: model.name.clone(),
        run_id: run_id.into(),
        engine: GoldEngine::Datafusion,
        version: base.version,
        rows: base.rows(),
        files: base.files.len(),
        tests_passed: 0,
        warnings: Vec::new(),
        quarantined: 0,
        empty_inputs: Vec::new(),
        rebuilt: Some(rebuilt),
    }
}

/// The day a file of an incremental model's source holds: its one
/// partition value, a date.
fn source_day(
    model: &GoldModel,
    source: &crate::definitions::TableId,
    file: &crate::lake::DataFile,
) -> Result<String> {
    let mut values = file.partition.values();
    match (values.next(), values.next()) {
        (Some(day), None) if chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").is_ok() => {
            Ok(day.clone())
        }
        _ => Err(Error::config(
            model.sql_file.with_extension("toml").display().to_string(),
            format!(
                "[incremental] source {source} must be partitioned by one date (YYYY-MM-DD), \
                 and its file {} is not",
                file.path
            ),
            "name a source partitioned by day (silver.events is), or remove [incremental] \
             to rebuild the model whole",
        )),
    }
}

/// Identifies what a model computes, so a changed model rebuilds every day.
fn definition_hash(model: &GoldModel) -> String {
    let text = format!("{}|{:?}|{:?}", model.sql, model.schema(), model.incremental);
    format!("{:016x}", crate::silver::short_hash(&text))
}

/// A model's new version, written and tested but not yet published.
struct Staged {
    txn: Transaction,
    /// The rows set aside, and how many were kept out of the model.
    quarantine: Option<(Transaction, u64)>,
    rows: u64,
    /// How many tests judged the version (quarantining ones aside).
    tests: usize,
    failures: Vec<Failure>,
    /// The `soundlake.*` table properties of the new version.
    properties: Map<String, Value>,
}

impl Staged {
    /// Publish unless a test that errors failed: then the published
    /// version stays as it was and the task fails.
    async fn publish(
        self,
        model: &GoldModel,
        run_id: &str,
        now: chrono::DateTime<chrono::Utc>,
        absent: BTreeSet<crate::definitions::TableId>,
        engine: GoldEngine,
    ) -> Result<GoldReport> {
        let (errors, warnings): (Vec<Failure>, Vec<Failure>) = self
            .failures
            .into_iter()
            .partition(|f| f.on_failure == OnFailure::Error);
        if !errors.is_empty() {
            return Err(Error::DataTests {
                table: format!("{LAYER}.{}", model.name),
                failed: errors.len(),
                report: data_tests::report(&errors),
            });
        }
        let warnings: Vec<String> = warnings.iter().map(Failure::summary).collect();
        for warning in &warnings {
            tracing::warn!(table = %format!("{LAYER}.{}", model.name), %warning, "data test failed (on_failure = warn): published anyway");
        }
        let mut quarantined = 0;
        if let Some((qtxn, count)) = self.quarantine {
            qtxn.commit("replace", Map::new(), now).await?;
            quarantined = count;
        }
        let snapshot = self.txn.commit("replace", self.properties, now).await?;
        Ok(GoldReport {
            table: model.name.clone(),
            run_id: run_id.into(),
            engine,
            version: snapshot.version,
            rows: self.rows,
            files: snapshot.files.len(),
            tests_passed: self.tests - warnings.len(),
            warnings,
            quarantined,
            empty_inputs: absent.iter().map(ToString::to_string).collect(),
            rebuilt: None,
        })
    }
}

/// The SQL that sets rows of `gold.<model>` aside for `tests`: the rows
/// breaking them, each with the test it broke, and the condition on a row
/// that breaks any of them. A row breaking two tests is quarantined under
/// each; it is kept out of the model once.
fn set_aside_sql(model: &GoldModel, tests: &[&DataTest]) -> (String, String) {
    let this = format!("{LAYER}.{}", model.name);
    let broken: Vec<&str> = tests
        .iter()
        .map(|t| t.broken_row.as_deref().expect("only row tests quarantine"))
        .collect();
    let rows_breaking = tests
        .iter()
        .zip(&broken)
        .map(|(t, b)| {
            format!(
                "SELECT *, {} AS {FAILED_TEST} FROM {this} WHERE coalesce({b}, false)",
                crate::sql::quote_literal(&t.name)
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let any_broken = broken
        .iter()
        .map(|b| format!("coalesce({b}, false)"))
        .collect::<Vec<_>>()
        .join(" OR ");
    (rows_breaking, any_broken)
}

async fn add(txn: &mut Transaction, writer: FileWriter) -> Result<()> {
    let file = writer.finish().await?;
    txn.add(file);
    Ok(())
}

/// Write every batch of `stream`, made to fit `schema` by `fit`, into new
/// files of `txn`: at least one, so engines reading the folder see the
/// columns of an empty table too. The rows written.
async fn write_all(
    txn: &mut Transaction,
    schema: &SchemaRef,
    mut stream: SendableRecordBatchStream,
    place: &str,
    fit: impl Fn(&RecordBatch) -> Result<RecordBatch>,
) -> Result<u64> {
    let mut writer = txn.create_file(&[], schema.clone(), &[])?;
    let (mut rows, mut files) = (0, 0);
    while let Some(batch) = stream.next().await {
        let batch = fit(&batch.map_err(|e| crate::sql::sql_error(place, &e))?)?;
        rows += batch.num_rows() as u64;
        writer.write(&batch).await?;
        if writer.is_full() {
            let next = txn.create_file(&[], schema.clone(), &[])?;
            add(txn, std::mem::replace(&mut writer, next)).await?;
            files += 1;
        }
    }
    if writer.rows() > 0 || files == 0 {
        add(txn, writer).await?;
    }
    Ok(rows)
}

/// Write the rows of `stream`, sorted by the date column `by`, into files
/// of `txn` partitioned by it, one day after another; every day must be
/// one `rebuilt` covers. The files hold the other columns. The rows written.
async fn write_days(
    txn: &mut Transaction,
    schema: &SchemaRef,
    (by, rebuilt): (&str, &Rebuilt),
    mut stream: SendableRecordBatchStream,
    place: &str,
    fit: impl Fn(&RecordBatch) -> Result<RecordBatch>,
) -> Result<u64> {
    let day_column = schema
        .index_of(by)
        .expect("checked at load: by is a column");
    let mut in_file: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    in_file.remove(day_column);
    let file_schema = SchemaRef::new(Schema::new(in_file));
    let mut open: Option<(i32, FileWriter)> = None;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = fit(&batch.map_err(|e| crate::sql::sql_error(place, &e))?)?;
        let days = batch
            .column(day_column)
            .as_any()
            .downcast_ref::<arrow_array::Date32Array>()
            .expect("conformed: by is a date");
        let mut columns = batch.columns().to_vec();
        columns.remove(day_column);
        let rest = RecordBatch::try_new(file_schema.clone(), columns)
            .expect("the conformed columns but the day fit the file's schema");
        let mut start = 0;
        while start < batch.num_rows() {
            let day = days.value(start);
            let end = (start..batch.num_rows())
                .find(|&i| days.value(i) != day)
                .unwrap_or(batch.num_rows());
            if open.as_ref().is_none_or(|(d, w)| *d != day || w.is_full()) {
                let text = date_text(day);
                if !rebuilt.covers(&text) {
                    return Err(Error::Input {
                        place: place.into(),
                        problem: format!(
                            "rows for {by} {text} came from source rows of other days; this \
                             run rebuilt {rebuilt}"
                        ),
                        fix: "an incremental model's rows of a day must come from its source's \
                              rows of that day: group by the source's date, or remove \
                              [incremental]"
                            .into(),
                    });
                }
                let next = txn.create_file(&[(by, text)], file_schema.clone(), &[])?;
                if let Some((_, writer)) = open.replace((day, next)) {
                    add(txn, writer).await?;
                }
            }
            let (_, writer) = open.as_mut().expect("opened above");
            writer.write(&rest.slice(start, end - start)).await?;
            rows += (end - start) as u64;
            start = end;
        }
    }
    if let Some((_, writer)) = open {
        add(txn, writer).await?;
    }
    Ok(rows)
}

/// A Date32 value (days since 1970-01-01) as `YYYY-MM-DD`.
fn date_text(days: i32) -> String {
    (chrono::DateTime::UNIX_EPOCH.date_naive() + TimeDelta::days(i64::from(days)))
        .format("%Y-%m-%d")
        .to_string()
}

/// The column of a quarantine table naming the test a row broke.
const FAILED_TEST: &str = "failed_test";

/// Where a model's quarantined rows go.
pub fn quarantine_table(model: &str) -> String {
    format!("{model}_quarantine")
}

/// A quarantine table's columns: the model's, all nullable, and the test.
fn quarantine_schema(model: &GoldModel) -> SchemaRef {
    let mut fields: Vec<Field> = model
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.push(Field::new(FAILED_TEST, DataType::Utf8, false));
    SchemaRef::new(Schema::new(fields))
}

/// `batch`, whose columns are `schema`'s in order, under `schema`.
fn fit(schema: &SchemaRef, batch: &RecordBatch, place: &str) -> Result<RecordBatch> {
    RecordBatch::try_new(schema.clone(), batch.columns().to_vec()).map_err(|e| Error::Input {
        place: place.into(),
        problem: format!("rows set aside do not fit the table: {e}"),
        fix: "check the model's column types in its .toml".into(),
    })
}

/// A model's output made to fit its contract: the declared columns, in
/// their order, cast to their declared types.
struct Conform {
    schema: SchemaRef,
    /// For each declared column, its index in the query's output.
    sources: Vec<usize>,
    place: String,
}

impl Conform {
    fn new(model: &GoldModel, output: &SchemaRef) -> Result<Conform> {
        let names: Vec<&str> = output.fields().iter().map(|f| f.name().as_str()).collect();
        let missing: Vec<&str> = model
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .filter(|c| !names.contains(c))
            .collect();
        let extra: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !model.columns.iter().any(|c| c.name == *n))
            .collect();
        let place = model.sql_file.display().to_string();
        if !missing.is_empty() || !extra.is_empty() {
            return Err(Error::Input {
                place,
                problem: format!(
                    "the SELECT does not give the declared columns: missing [{}], undeclared [{}]",
                    missing.join(", "),
                    extra.join(", ")
                ),
                fix: format!(
                    "make the SELECT list match the [[columns]] of {} (name each output \
                     column with AS), or declare the new columns there",
                    model.sql_file.with_extension("toml").display()
                ),
            });
        }
        let sources = model
            .columns
            .iter()
            .map(|c| {
                names
                    .iter()
                    .position(|n| *n == c.name)
                    .expect("checked above")
            })
            .collect();
        Ok(Conform {
            schema: model.schema(),
            sources,
            place,
        })
    }

    fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let options = CastOptions {
            safe: false,
            format_options: FormatOptions::default(),
        };
        let mut columns = Vec::with_capacity(self.sources.len());
        for (field, &source) in self.schema.fields().iter().zip(&self.sources) {
            let cast = cast_with_options(batch.column(source), field.data_type(), &options)
                .map_err(|e| Error::Input {
                    place: self.place.clone(),
                    problem: format!(
                        "column {} does not fit {}: {e}",
                        field.name(),
                        field.data_type()
                    ),
                    fix: "cast it in the SELECT, or change its type in the model's .toml".into(),
                })?;
            columns.push(cast);
        }
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| Error::Input {
            place: self.place.clone(),
            problem: format!("the output does not fit the contract: {e}"),
            fix: "a column declared not null (or a key column) holds NULL: fix the SELECT or \
                  the contract"
                .into(),
        })
    }
}

/// The tasks that write a model's inputs: `silver.tracks` for
/// `silver.tracks__artists` (a silver family is one task).
pub fn upstream_tasks(model: &GoldModel, known: &Known) -> Vec<String> {
    let inputs = model
        .depends_on()
        .intersection(&model.reads)
        .cloned()
        .collect();
    tasks_writing(&inputs, known)
}

/// The tasks that write the tables a model's `references` tests read, and
/// none of its inputs: the model's query need not wait for them, only its
/// tests.
pub fn referenced_tasks(model: &GoldModel, known: &Known) -> Vec<String> {
    let reads = upstream_tasks(model, known);
    let mut tasks = tasks_writing(&model.depends_on(), known);
    tasks.retain(|t| !reads.contains(t));
    tasks
}

fn tasks_writing(tables: &BTreeSet<crate::definitions::TableId>, known: &Known) -> Vec<String> {
    let mut tasks: Vec<String> = tables
        .iter()
        .map(|t| match definition::silver_family(known, t) {
            Some(family) => format!("{}.{family}", t.layer),
            None => t.to_string(),
        })
        .collect();
    tasks.sort();
    tasks.dedup();
    tasks
}
