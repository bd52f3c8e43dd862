//! Gold: the tables analysts query, each a SQL model over silver (or bronze
//! history, or other gold models) with a contract: declared columns and
//! types, a grain, comments, and data tests. A run computes the model into
//! staged files, tests them, and publishes only if every test passes; a
//! failing test leaves the table at its last good version and fails the
//! task, so the models after it in the pipeline do not run on bad rows.

mod data_tests;
mod definition;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use chrono::TimeDelta;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::util::display::FormatOptions;
use futures::StreamExt;
use serde::Serialize;
use serde_json::Map;

pub use data_tests::{DataTest, declared as declared_tests};
pub use definition::{Column, ColumnRef, ColumnType, Freshness, GoldModel, Known, known, load};

use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::lake::{FileWriter, Lake, Transaction};
use crate::landing::{SharedStore, lease};
use crate::sql::Engine;

/// The lake layer name.
pub const LAYER: &str = "gold";
const LOCK_LEASE: TimeDelta = TimeDelta::hours(1);

/// What one model run did.
#[derive(Debug, Clone, Serialize)]
pub struct GoldReport {
    pub table: String,
    pub run_id: String,
    pub version: u64,
    pub rows: u64,
    pub files: usize,
    pub tests_passed: usize,
    /// Inputs with no data yet (audio features in Development mode): the
    /// model published its columns with no rows.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub empty_inputs: Vec<String>,
}

/// Runs gold models over one lake.
#[derive(Debug, Clone)]
pub struct Gold {
    store: SharedStore,
    lake: Lake,
    clock: SharedClock,
}

impl Gold {
    pub fn new(store: SharedStore, lake: Lake, clock: SharedClock) -> Gold {
        Gold { store, lake, clock }
    }

    /// Build, test and publish one model, holding its table's lock.
    pub async fn run(&self, model: &GoldModel, run_id: &str) -> Result<GoldReport> {
        let lock = format!("{LAYER}.{}", model.name);
        lease::while_held(
            &self.store,
            &lock,
            run_id,
            self.clock.now(),
            LOCK_LEASE,
            async |_| self.run_locked(model, run_id).await,
        )
        .await
    }

    async fn run_locked(&self, model: &GoldModel, run_id: &str) -> Result<GoldReport> {
        let engine = Engine::open(&self.lake).await?;
        let table = self.lake.table(LAYER, &model.name);
        let mut txn = table.begin(run_id, self.clock.now()).await?;
        let schema = model.schema();
        let mut empty_inputs = Vec::new();
        for input in &model.reads {
            if !engine.has_data(&input.layer, &input.name).await? {
                empty_inputs.push(input.to_string());
            }
        }
        let place = model.sql_file.display().to_string();
        let mut writer = txn.create_file(&[], schema.clone(), &[])?;
        let (mut rows, mut files) = (0, 0);
        if empty_inputs.is_empty() {
            let mut stream = engine.stream(&place, &model.sql).await?;
            let conform = Conform::new(model, &stream.schema())?;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| crate::sql::sql_error(&place, &e))?;
                let batch = conform.apply(&batch)?;
                rows += batch.num_rows() as u64;
                writer.write(&batch).await?;
                if writer.is_full() {
                    let next = txn.create_file(&[], schema.clone(), &[])?;
                    add(&mut txn, std::mem::replace(&mut writer, next)).await?;
                    files += 1;
                }
            }
        }
        // At least one file, so engines reading the folder see the columns
        // of an empty table too.
        if writer.rows() > 0 || files == 0 {
            add(&mut txn, writer).await?;
        }
        let base_files = txn.base().files.clone();
        for file in &base_files {
            txn.remove(file);
        }
        let now = self.clock.now();
        engine.pin(&table, LAYER, &model.name, txn.locate(), schema, now)?;
        let tests = declared_tests(model, now);
        let failures = data_tests::run(&engine, model, &tests).await?;
        if !failures.is_empty() {
            // The staged files are dropped by the next write to the table.
            return Err(Error::DataTests {
                table: format!("{LAYER}.{}", model.name),
                failed: failures.len(),
                report: data_tests::report(&failures),
            });
        }
        let snapshot = txn.commit("replace", Map::new(), now).await?;
        Ok(GoldReport {
            table: model.name.clone(),
            run_id: run_id.into(),
            version: snapshot.version,
            rows,
            files: snapshot.files.len(),
            tests_passed: tests.len(),
            empty_inputs,
        })
    }
}

async fn add(txn: &mut Transaction, writer: FileWriter) -> Result<()> {
    let file = writer.finish().await?;
    txn.add(file);
    Ok(())
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

/// The task that writes a model's input: `silver.tracks` for
/// `silver.tracks__artists` (a silver family is one task).
pub fn upstream_tasks(model: &GoldModel, known: &Known) -> Vec<String> {
    let mut tasks: Vec<String> = model
        .depends_on()
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
