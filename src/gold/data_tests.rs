//! Data tests: each one a query for the rows that break it, run against a
//! model's staged output before it is published. A test passes when its
//! query finds nothing.

use std::fmt::Write as _;

use arrow_array::RecordBatch;
use chrono::{DateTime, TimeDelta, Utc};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use super::{GoldModel, LAYER, OnFailure};
use crate::error::Result;
use crate::sql::Engine;

/// Rows shown per failed test.
pub(super) const SAMPLE_ROWS: usize = 5;

/// One test of a model, as SQL.
#[derive(Debug, Clone)]
pub struct DataTest {
    /// What it checks, as a person would say it.
    pub name: String,
    /// The rows that break it.
    pub sql: String,
    pub on_failure: OnFailure,
    /// For a test of one row at a time: the condition on a row of the model
    /// that breaks it (never NULL), by which quarantine sets rows aside.
    pub broken_row: Option<String>,
}

impl DataTest {
    /// A test of the whole table.
    fn table(name: String, sql: String, on_failure: OnFailure) -> DataTest {
        DataTest {
            name,
            sql,
            on_failure,
            broken_row: None,
        }
    }

    /// A test of each row: `shown` columns of the rows where `broken` holds.
    fn rows(
        name: String,
        table: &str,
        shown: &str,
        broken: String,
        on_failure: OnFailure,
    ) -> DataTest {
        DataTest {
            name,
            sql: format!("SELECT {shown} FROM {table} WHERE {broken}"),
            on_failure,
            broken_row: Some(broken),
        }
    }
}

/// A failed test: how many rows broke it, and some of them.
#[derive(Debug, Clone)]
pub struct Failure {
    pub test: String,
    pub on_failure: OnFailure,
    pub rows: u64,
    pub sample: Vec<String>,
}

/// The tests a model declares, including its key's: never null, unique
/// together.
pub fn declared(model: &GoldModel, now: DateTime<Utc>) -> Vec<DataTest> {
    let table = format!("{LAYER}.{}", model.name);
    let key = model.key.join(", ");
    let mut tests = vec![DataTest::table(
        format!("key ({key}) is unique"),
        format!("SELECT {key}, count(*) AS copies FROM {table} GROUP BY {key} HAVING count(*) > 1"),
        model.on_failure("key"),
    )];
    for k in &model.key {
        tests.push(not_null(&table, &key, k, model.on_failure("key")));
    }
    for c in &model.columns {
        let col = &c.name;
        // The key to find the row by, and the value that broke the test.
        let shown = if model.key.contains(col) {
            key.clone()
        } else {
            format!("{key}, {col}")
        };
        if c.not_null && !model.key.contains(col) {
            tests.push(not_null(&table, &key, col, c.on_failure("not_null")));
        }
        if c.unique {
            tests.push(DataTest::table(
                format!("{col} is unique"),
                format!(
                    "SELECT {col}, count(*) AS copies FROM {table} WHERE {col} IS NOT NULL \
                     GROUP BY {col} HAVING count(*) > 1"
                ),
                c.on_failure("unique"),
            ));
        }
        if !c.accepted_values.is_empty() {
            let values: Vec<String> = c
                .accepted_values
                .iter()
                .map(|v| crate::sql::quote_literal(v))
                .collect();
            tests.push(DataTest::rows(
                format!("{col} in ({})", values.join(", ")),
                &table,
                &shown,
                format!(
                    "({col} IS NOT NULL AND CAST({col} AS VARCHAR) NOT IN ({}))",
                    values.join(", ")
                ),
                c.on_failure("accepted_values"),
            ));
        }
        if let Some(target) = &c.references {
            let (other, other_col) = (&target.table, &target.column);
            tests.push(DataTest::rows(
                format!("{col} references {target}"),
                &table,
                &shown,
                format!(
                    "({col} IS NOT NULL AND {col} NOT IN \
                     (SELECT {other_col} FROM {other} WHERE {other_col} IS NOT NULL))"
                ),
                c.on_failure("references"),
            ));
        }
    }
    if let Some(min) = model.min_rows {
        tests.push(DataTest::table(
            format!("at least {min} rows"),
            format!("SELECT count(*) AS row_count FROM {table} HAVING count(*) < {min}"),
            model.on_failure("min_rows"),
        ));
    }
    if let Some(max) = model.max_rows {
        tests.push(DataTest::table(
            format!("at most {max} rows"),
            format!("SELECT count(*) AS row_count FROM {table} HAVING count(*) > {max}"),
            model.on_failure("max_rows"),
        ));
    }
    if let Some(f) = &model.freshness {
        let age = TimeDelta::hours(i64::try_from(f.max_age_hours).unwrap_or(i64::MAX / 3_600_000));
        let oldest = (now - age).format("%Y-%m-%dT%H:%M:%S%.6fZ");
        tests.push(DataTest::table(
            format!("{} within {} hours", f.column, f.max_age_hours),
            format!(
                "SELECT max({col}) AS newest FROM {table} \
                 HAVING max({col}) IS NULL OR CAST(max({col}) AS TIMESTAMP) < TIMESTAMP '{oldest}'",
                col = f.column
            ),
            model.on_failure("freshness"),
        ));
    }
    tests
}

fn not_null(table: &str, key: &str, col: &str, on_failure: OnFailure) -> DataTest {
    DataTest::rows(
        format!("{col} is not null"),
        table,
        key,
        format!("({col} IS NULL)"),
        on_failure,
    )
}

/// Where a model's tests come from, for messages.
pub fn place(model: &GoldModel) -> String {
    format!(
        "data tests of {}",
        model.sql_file.with_extension("toml").display()
    )
}

/// Where a model's staged rows are asked about: soundlake's engine, or
/// the Trino cluster the model ran on.
pub(super) trait Judge {
    /// How many rows `sql` gives.
    async fn count(&self, sql: &str) -> Result<u64>;
    /// Some of the rows `sql` gives, each as `column=value, …`.
    async fn sample(&self, sql: &str) -> Result<Vec<String>>;
}

/// Tests asked of soundlake's engine.
pub(super) struct OnEngine<'e> {
    pub engine: &'e Engine,
    pub place: String,
}

impl Judge for OnEngine<'_> {
    async fn count(&self, sql: &str) -> Result<u64> {
        count(self.engine, &self.place, sql).await
    }

    async fn sample(&self, sql: &str) -> Result<Vec<String>> {
        let sample_sql = format!("{sql} LIMIT {SAMPLE_ROWS}");
        let (_, sample) = self.engine.collect(&self.place, &sample_sql).await?;
        Ok(render_rows(&sample))
    }
}

/// Run `tests`; the failures, each with a count and a sample of rows.
pub(super) async fn run(judge: &impl Judge, tests: &[&DataTest]) -> Result<Vec<Failure>> {
    let mut failures = Vec::new();
    for test in tests {
        let rows = judge.count(&test.sql).await?;
        if rows == 0 {
            continue;
        }
        failures.push(Failure {
            test: test.name.clone(),
            on_failure: test.on_failure,
            rows,
            sample: judge.sample(&test.sql).await?,
        });
    }
    Ok(failures)
}

impl Failure {
    /// The failure in one line: the test, how many rows, the first of them.
    pub fn summary(&self) -> String {
        let rows = format!("{} row{}", self.rows, if self.rows == 1 { "" } else { "s" });
        match self.sample.first() {
            Some(first) => format!("{}: {rows} broke it ({first})", self.test),
            None => format!("{}: {rows} broke it", self.test),
        }
    }
}

/// How many rows `sql` gives.
pub async fn count(engine: &Engine, place: &str, sql: &str) -> Result<u64> {
    let (_, counted) = engine
        .collect(place, &format!("SELECT count(*) FROM ({sql})"))
        .await?;
    let rows = counted
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0);
    Ok(u64::try_from(rows).unwrap_or_default())
}

/// `column=value, …` per row.
fn render_rows(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<_, _>>()
            .unwrap_or_default();
        for row in 0..batch.num_rows() {
            let mut line = String::new();
            for (field, formatter) in batch.schema().fields().iter().zip(&formatters) {
                if !line.is_empty() {
                    line.push_str(", ");
                }
                let _ = write!(line, "{}={}", field.name(), formatter.value(row));
            }
            rows.push(line);
        }
    }
    rows
}

/// The report of failed tests, one block per test.
pub fn report(failures: &[Failure]) -> String {
    let mut out = String::new();
    for f in failures {
        let _ = writeln!(
            out,
            "  {}: {} row{} broke it{}",
            f.test,
            f.rows,
            if f.rows == 1 { "" } else { "s" },
            if f.rows as usize > f.sample.len() {
                format!(", the first {}:", f.sample.len())
            } else {
                ":".into()
            }
        );
        for row in &f.sample {
            let _ = writeln!(out, "    {row}");
        }
    }
    out.trim_end().to_string()
}
