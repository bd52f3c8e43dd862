//! Data tests: each one a query for the rows that break it, run against a
//! model's staged output before it is published. A test passes when its
//! query finds nothing.

use std::fmt::Write as _;

use arrow_array::RecordBatch;
use chrono::{DateTime, TimeDelta, Utc};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use super::{GoldModel, LAYER};
use crate::error::Result;
use crate::sql::Engine;

/// Rows shown per failed test.
const SAMPLE_ROWS: usize = 5;

/// One test of a model, as SQL.
#[derive(Debug, Clone)]
pub struct DataTest {
    /// What it checks, as a person would say it.
    pub name: String,
    /// The rows that break it.
    pub sql: String,
}

/// A failed test: how many rows broke it, and some of them.
#[derive(Debug, Clone)]
pub struct Failure {
    pub test: String,
    pub rows: u64,
    pub sample: Vec<String>,
}

/// The tests a model declares, including its key's: never null, unique
/// together.
pub fn declared(model: &GoldModel, now: DateTime<Utc>) -> Vec<DataTest> {
    let table = format!("{LAYER}.{}", model.name);
    let key = model.key.join(", ");
    let mut tests = vec![DataTest {
        name: format!("key ({key}) is unique"),
        sql: format!(
            "SELECT {key}, count(*) AS copies FROM {table} GROUP BY {key} HAVING count(*) > 1"
        ),
    }];
    for k in &model.key {
        tests.push(not_null(&table, &key, k));
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
            tests.push(not_null(&table, &key, col));
        }
        if c.unique {
            tests.push(DataTest {
                name: format!("{col} is unique"),
                sql: format!(
                    "SELECT {col}, count(*) AS copies FROM {table} WHERE {col} IS NOT NULL \
                     GROUP BY {col} HAVING count(*) > 1"
                ),
            });
        }
        if !c.accepted_values.is_empty() {
            let values: Vec<String> = c
                .accepted_values
                .iter()
                .map(|v| format!("'{}'", v.replace('\'', "''")))
                .collect();
            tests.push(DataTest {
                name: format!("{col} in ({})", values.join(", ")),
                sql: format!(
                    "SELECT {shown} FROM {table} WHERE {col} IS NOT NULL \
                     AND CAST({col} AS VARCHAR) NOT IN ({})",
                    values.join(", ")
                ),
            });
        }
        if let Some(target) = &c.references {
            let (other, other_col) = (&target.table, &target.column);
            tests.push(DataTest {
                name: format!("{col} references {target}"),
                sql: format!(
                    "SELECT {shown} FROM {table} WHERE {col} IS NOT NULL AND {col} NOT IN \
                     (SELECT {other_col} FROM {other} WHERE {other_col} IS NOT NULL)"
                ),
            });
        }
    }
    if let Some(min) = model.min_rows {
        tests.push(DataTest {
            name: format!("at least {min} rows"),
            sql: format!("SELECT count(*) AS row_count FROM {table} HAVING count(*) < {min}"),
        });
    }
    if let Some(max) = model.max_rows {
        tests.push(DataTest {
            name: format!("at most {max} rows"),
            sql: format!("SELECT count(*) AS row_count FROM {table} HAVING count(*) > {max}"),
        });
    }
    if let Some(f) = &model.freshness {
        let age = TimeDelta::hours(i64::try_from(f.max_age_hours).unwrap_or(i64::MAX / 3_600_000));
        let oldest = (now - age).format("%Y-%m-%dT%H:%M:%S%.6fZ");
        tests.push(DataTest {
            name: format!("{} within {} hours", f.column, f.max_age_hours),
            sql: format!(
                "SELECT max({col}) AS newest FROM {table} \
                 HAVING max({col}) IS NULL OR CAST(max({col}) AS TIMESTAMP) < TIMESTAMP '{oldest}'",
                col = f.column
            ),
        });
    }
    tests
}

fn not_null(table: &str, key: &str, col: &str) -> DataTest {
    DataTest {
        name: format!("{col} is not null"),
        sql: format!("SELECT {key} FROM {table} WHERE {col} IS NULL"),
    }
}

/// Run `tests`; the failures, each with a count and a sample of rows.
pub async fn run(engine: &Engine, model: &GoldModel, tests: &[DataTest]) -> Result<Vec<Failure>> {
    let place = format!(
        "data tests of {}",
        model.sql_file.with_extension("toml").display()
    );
    let mut failures = Vec::new();
    for test in tests {
        let count_sql = format!("SELECT count(*) FROM ({})", test.sql);
        let (_, counted) = engine.collect(&place, &count_sql).await?;
        let rows = counted
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow_array::Int64Array>()
                    .map(|a| a.value(0))
            })
            .unwrap_or(0);
        if rows == 0 {
            continue;
        }
        let sample_sql = format!("{} LIMIT {SAMPLE_ROWS}", test.sql);
        let (_, sample) = engine.collect(&place, &sample_sql).await?;
        failures.push(Failure {
            test: test.name.clone(),
            rows: u64::try_from(rows).unwrap_or_default(),
            sample: render_rows(&sample),
        });
    }
    Ok(failures)
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
