//! Deleting rows from a table: each file holding a row to delete is
//! rewritten without it (or dropped when none of its rows stay), in one
//! commit, as Delta's copy-on-write `DELETE` does.

use arrow_array::{BooleanArray, RecordBatch};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use serde_json::Map;

use super::table::{DataFile, Table};
use crate::error::Result;

/// Rows read per batch while deciding what a file keeps.
const BATCH_ROWS: usize = 8192;

/// What a delete did to one table.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Deleted {
    /// `layer.name`
    pub table: String,
    pub rows: u64,
    /// Files rewritten without the deleted rows, or dropped.
    pub files: usize,
    /// The version the delete committed; none when nothing matched or on
    /// a dry run.
    pub version: Option<u64>,
}

impl Table {
    /// Delete the rows `keep` does not mark (false: delete) from the
    /// newest version, reading only the files `may_hold` picks. `payload`
    /// names the large text columns, written as the layer wrote them (no
    /// statistics, no dictionary). With `dry_run`, only count them.
    pub async fn delete_rows(
        &self,
        may_hold: impl Fn(&DataFile) -> bool,
        mut keep: impl FnMut(&RecordBatch) -> Result<BooleanArray>,
        payload: &[&str],
        run_id: &str,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<Deleted> {
        let mut txn = self.begin(run_id, now).await?;
        let mut deleted = Deleted {
            table: self.root().to_string().replace('/', "."),
            ..Deleted::default()
        };
        let files: Vec<DataFile> = txn
            .base()
            .files
            .iter()
            .filter(|f| may_hold(f))
            .cloned()
            .collect();
        for file in files {
            let parquet = txn.open(&file).await?;
            let mut kept = Vec::new();
            let mut dropped = 0;
            let mut batches = parquet.read(None, None, BATCH_ROWS)?;
            while let Some(batch) = batches.next().await {
                let batch = batch?;
                let rows = arrow_select::filter::filter_record_batch(&batch, &keep(&batch)?)
                    .map_err(|e| self.damaged(&format!("a file could not be filtered: {e}")))?;
                dropped += (batch.num_rows() - rows.num_rows()) as u64;
                if rows.num_rows() > 0 {
                    kept.push(rows);
                }
            }
            if dropped == 0 {
                continue;
            }
            deleted.rows += dropped;
            deleted.files += 1;
            if dry_run {
                continue;
            }
            txn.remove(&file);
            if kept.is_empty() {
                continue;
            }
            let partition: Vec<(&str, String)> = file
                .partition
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            let mut writer = txn.create_file(&partition, parquet.schema().clone(), payload)?;
            for batch in &kept {
                writer.write(batch).await?;
            }
            // What the layer recorded about the file (bronze's range of
            // ingest stamps) still bounds what is left of it.
            for (key, value) in &file.stats {
                writer.set_stat(key, value.clone());
            }
            txn.add(writer.finish().await?);
        }
        if deleted.rows > 0 && !dry_run {
            let properties: Map<_, _> = txn.base().properties.clone();
            deleted.version = Some(txn.commit("delete", properties, now).await?.version);
        }
        Ok(deleted)
    }
}
