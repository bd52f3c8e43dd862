//! `soundlake register`: every published gold table registered with the
//! Delta Lake catalog of a Trino cluster, over Trino's HTTP protocol. Safe
//! to run again: a table registered at its folder is left alone, one
//! registered at another folder (the lake moved) is registered anew, and a
//! model with no published version yet is skipped until it has one.

use std::fmt::Write as _;

use serde::Serialize;

use super::ddl::{Location, register_table};
use super::{GoldModel, LAYER};
use crate::error::Result;
use crate::lake::{Lake, LakeSettings};
use crate::sql::{quote_identifier, quote_literal};
use crate::trino::{Trino, TrinoSettings};

/// What `register` did for one gold table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    Registered,
    /// Already registered at its folder.
    Unchanged,
    /// Was registered at another folder; now at this one.
    Moved {
        from: String,
    },
    /// The model has not published a version yet.
    NotPublished,
}

#[derive(Debug, Clone, Serialize)]
pub struct Registration {
    pub table: String,
    pub location: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Register every model's table with Trino, creating the schema first.
pub async fn register(
    trino: &Trino,
    settings: &TrinoSettings,
    models: &[GoldModel],
    lake: &Lake,
    lake_settings: &LakeSettings,
) -> Result<Vec<Registration>> {
    let location = Location::of(lake_settings)?;
    let known = schema_tables(trino, &settings.catalog, &settings.schema).await?;
    let mut done = Vec::new();
    for table in &super::ddl::trino_tables(models) {
        let wanted = location.trino_table(table);
        let outcome = if lake.table(LAYER, table).snapshot().await?.exists() {
            register_at(
                trino,
                (&settings.catalog, &settings.schema, table),
                &wanted,
                &known,
            )
            .await?
        } else {
            Outcome::NotPublished
        };
        done.push(Registration {
            table: format!("{}.{}.{table}", settings.catalog, settings.schema),
            location: wanted,
            outcome,
        });
    }
    Ok(done)
}

/// The tables of a schema of Trino's catalog, created if missing.
pub(super) async fn schema_tables(
    trino: &Trino,
    catalog: &str,
    schema: &str,
) -> Result<Vec<String>> {
    trino
        .query(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}.{}",
            quote_identifier(catalog),
            quote_identifier(schema)
        ))
        .await?;
    let known = trino
        .query(&format!(
            "SELECT table_name FROM {}.information_schema.tables WHERE table_schema = {}",
            quote_identifier(catalog),
            quote_literal(schema)
        ))
        .await?;
    Ok(known
        .rows
        .iter()
        .filter_map(|row| Some(row.first()?.as_str()?.to_string()))
        .collect())
}

/// Register the Delta table at `wanted` as `(catalog, schema, table)`,
/// unless it is registered there already; `known` is what the schema has.
/// Safe beside other writers doing the same (two models reading one table
/// run side by side): what changed under it is looked at again.
pub(super) async fn register_at(
    trino: &Trino,
    (catalog, schema, table): (&str, &str, &str),
    wanted: &str,
    known: &[String],
) -> Result<Outcome> {
    let register = register_table(catalog, schema, table, wanted);
    let mut listed = known.iter().any(|k| k == table);
    let mut moved_from = None;
    for _ in 0..ATTEMPTS {
        if !listed {
            match trino.query(&register).await {
                Ok(_) => {
                    return Ok(match moved_from {
                        Some(from) => Outcome::Moved { from },
                        None => Outcome::Registered,
                    });
                }
                Err(e) if trino_error_name(&e) == Some("ALREADY_EXISTS") => {
                    listed = true;
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        let from = match registered_location(
            trino,
            &quote_identifier(catalog),
            &quote_identifier(schema),
            table,
        )
        .await
        {
            Ok(from) => from,
            Err(e) if is_missing(&e) => {
                listed = false;
                continue;
            }
            Err(e) => return Err(e),
        };
        if same_folder(&from, wanted) {
            return Ok(Outcome::Unchanged);
        }
        match unregister(trino, catalog, schema, table).await {
            Ok(()) => {}
            Err(e) if is_missing(&e) => {}
            Err(e) => return Err(e),
        }
        moved_from = Some(from);
        listed = false;
    }
    Err(crate::error::Error::Server {
        what: format!("Trino's catalog entry {catalog}.{schema}.{table}"),
        message: format!(
            "it kept changing while soundlake registered it at {wanted}: another program \
             registers it elsewhere"
        ),
    })
}

/// Looks at a registration that others change at the same time.
const ATTEMPTS: usize = 5;

/// Trino's answer for a table it does not have: a query says
/// `TABLE_NOT_FOUND`, the unregister procedure `NOT_FOUND`.
fn is_missing(e: &crate::error::Error) -> bool {
    matches!(trino_error_name(e), Some("TABLE_NOT_FOUND" | "NOT_FOUND"))
}

fn trino_error_name(e: &crate::error::Error) -> Option<&str> {
    e.source_error::<crate::trino::TrinoError>()?.error_name()
}

/// Forget a table in Trino's catalog, leaving its files where they are.
pub(super) async fn unregister(
    trino: &Trino,
    catalog: &str,
    schema: &str,
    table: &str,
) -> Result<()> {
    trino
        .query(&format!(
            "CALL {}.system.unregister_table(schema_name => {}, table_name => {})",
            quote_identifier(catalog),
            quote_literal(schema),
            quote_literal(table)
        ))
        .await?;
    Ok(())
}

/// The folder a registered table reads, from its `SHOW CREATE TABLE`.
async fn registered_location(
    trino: &Trino,
    catalog: &str,
    schema: &str,
    table: &str,
) -> Result<String> {
    let shown = trino
        .query(&format!(
            "SHOW CREATE TABLE {catalog}.{schema}.{}",
            quote_identifier(table)
        ))
        .await?;
    let text = shown
        .rows
        .first()
        .and_then(|row| row.first()?.as_str())
        .unwrap_or_default();
    Ok(quoted_after(text, "location = ").unwrap_or_default())
}

/// The SQL string literal that follows `key` in `text`, unquoted.
fn quoted_after(text: &str, key: &str) -> Option<String> {
    let mut chars = text
        .split_once(key)?
        .1
        .strip_prefix('\'')?
        .chars()
        .peekable();
    let mut value = String::new();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next_if_eq(&'\'').is_none() {
            return Some(value);
        }
        value.push(c);
    }
    None
}

/// Folder URLs name one folder, with or without a trailing slash.
fn same_folder(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// One line per table, then what to do next.
pub fn render(done: &[Registration], trino: &str) -> String {
    let mut out = String::new();
    for r in done {
        let what = match &r.outcome {
            Outcome::Registered => "registered".to_string(),
            Outcome::Unchanged => "already registered".to_string(),
            Outcome::Moved { from } => format!("moved from {from}"),
            Outcome::NotPublished => "skipped: no version yet (run the gold layer first)".into(),
        };
        let _ = writeln!(out, "{:<44} {what}", r.table);
    }
    let waiting = done
        .iter()
        .filter(|r| r.outcome == Outcome::NotPublished)
        .count();
    let _ = writeln!(
        out,
        "{} of {} gold tables are registered with Trino at {trino}; each new version is read \
         from the table's Delta log with no further statement.{}",
        done.len() - waiting,
        done.len(),
        if waiting > 0 {
            " Run `soundlake register` again once the skipped ones are published."
        } else {
            ""
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_location_is_read_from_show_create_table_with_quotes_undoubled() {
        let shown = "CREATE TABLE delta.gold.dim_track (\n   track_key bigint\n)\nWITH (\n   \
                     location = 'local:///lakes/o''brien/gold/dim_track'\n)";
        assert_eq!(
            quoted_after(shown, "location = ").as_deref(),
            Some("local:///lakes/o'brien/gold/dim_track")
        );
        assert_eq!(
            quoted_after("WITH (location = 'unterminated", "location = "),
            None
        );
        assert_eq!(quoted_after("no location here", "location = "), None);
    }

    #[test]
    fn a_folder_is_the_same_with_or_without_its_trailing_slash() {
        assert!(same_folder("s3://b/lake/gold/t/", "s3://b/lake/gold/t"));
        assert!(!same_folder("s3://b/lake/gold/t", "s3://b/other/gold/t"));
    }
}
