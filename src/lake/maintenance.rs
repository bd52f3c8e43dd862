//! What an operator does to tables besides writing them: list a table's
//! versions, and vacuum the files no version within the retention needs.

use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::{Commit, Lake};
use crate::error::Result;

/// What vacuum deleted (or, on a dry run, would delete) from one table.
#[derive(Debug, Clone, Serialize)]
pub struct Vacuumed {
    /// `layer.name`
    pub table: String,
    /// Relative to the lake root.
    pub files: Vec<String>,
}

/// A retention of `hours`; `place` names the setting in the message.
pub fn retention(hours: u64, place: &str) -> Result<TimeDelta> {
    i64::try_from(hours)
        .ok()
        .and_then(TimeDelta::try_hours)
        .ok_or_else(|| {
            crate::error::Error::config(
                place,
                format!("{hours} hours is too long"),
                "give a retention of at most a few years",
            )
        })
}

/// Vacuum every table of `layers` (or only `tables`, as `(layer, name)`):
/// delete the files that versions committed within `retention` before
/// `now` do not need.
pub async fn vacuum(
    lake: &Lake,
    layers: &[&str],
    tables: &[(String, String)],
    retention: TimeDelta,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<Vec<Vacuumed>> {
    let mut chosen = tables.to_vec();
    if chosen.is_empty() {
        for layer in layers {
            for name in lake.tables(layer).await? {
                chosen.push((layer.to_string(), name));
            }
        }
    }
    let mut out = Vec::new();
    for (layer, name) in chosen {
        let files = lake
            .table(&layer, &name)
            .vacuum(retention, now, dry_run)
            .await?;
        out.push(Vacuumed {
            table: format!("{layer}.{name}"),
            files,
        });
    }
    Ok(out)
}

/// The vacuum's outcome, one line per table that had files to delete.
pub fn render_vacuum(vacuumed: &[Vacuumed], dry_run: bool) -> String {
    let verb = if dry_run { "would delete" } else { "deleted" };
    let mut out = String::new();
    let mut total = 0;
    for v in vacuumed.iter().filter(|v| !v.files.is_empty()) {
        total += v.files.len();
        let _ = writeln!(out, "{:<44} {verb} {} files", v.table, v.files.len());
    }
    let _ = writeln!(
        out,
        "{} tables vacuumed: {verb} {total} files in all",
        vacuumed.len()
    );
    out
}

/// A table's versions as a table, newest first.
pub fn render_history(table: &str, commits: &[Commit]) -> String {
    let mut out = format!(
        "{table}\n{:>7}  {:<20}  {:<12}  {:>10}  {:>10}  run\n",
        "version", "committed", "operation", "rows +", "rows -"
    );
    let number = |n: Option<u64>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
    for c in commits {
        let operation = match &c.mode {
            Some(mode) => mode.clone(),
            None => c.operation.to_lowercase(),
        };
        let _ = writeln!(
            out,
            "{:>7}  {:<20}  {:<12}  {:>10}  {:>10}  {}",
            c.version,
            c.at.format("%Y-%m-%d %H:%M:%SZ"),
            operation,
            number(c.rows_added),
            number(c.rows_removed),
            c.run_id.as_deref().unwrap_or("-")
        );
    }
    if commits.is_empty() {
        out.push_str("  no versions: the table was never written\n");
    }
    out
}
