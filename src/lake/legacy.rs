//! Tables written by soundlake before it wrote Delta Lake: Parquet files
//! in Hive partition folders, with commit records under `_soundlake/`.
//! Such a table converts in place the first time it is opened (or with
//! `soundlake migrate`): its newest commit record becomes the table's first
//! Delta data version, with the same files, rows and properties, and
//! `_soundlake/` goes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Table;
use super::table::{DataFile, REBUILD, Snapshot, rel};
use super::transaction::Transaction;
use crate::error::{Error, Result};

const META: &str = "_soundlake";

/// A file as a commit record listed it.
#[derive(Debug, Deserialize)]
struct RecordedFile {
    path: String,
    partition: BTreeMap<String, String>,
    rows: u64,
    bytes: u64,
    #[serde(default)]
    stats: Map<String, Value>,
}

/// The fields of a commit record the conversion needs.
#[derive(Debug, Deserialize)]
struct Record {
    format: u32,
    files: Vec<RecordedFile>,
    added: Vec<String>,
    staging: String,
    properties: Map<String, Value>,
    run_id: String,
    committed_at: DateTime<Utc>,
}

impl Table {
    /// Convert the table from the pre-Delta format if it is in it; `false`
    /// if there was nothing to convert.
    pub async fn convert_legacy(&self) -> Result<bool> {
        let meta = self.root().clone().join(META);
        let commits = meta.clone().join("commits");
        let newest = self
            .objects_under(&commits)
            .await?
            .iter()
            .filter_map(|m| {
                let version: u64 = m.location.filename()?.strip_suffix(".json")?.parse().ok()?;
                Some((version, m.location.clone()))
            })
            .max_by_key(|(version, _)| *version);
        let Some((_, path)) = newest else {
            return Ok(false);
        };
        let record = self.read_record(&path).await?;
        self.finish_publish(&meta, &record).await?;
        let files: Vec<DataFile> = record
            .files
            .into_iter()
            .map(|f| DataFile {
                path: f.path,
                partition: f.partition,
                rows: f.rows,
                bytes: f.bytes,
                stats: f.stats,
            })
            .collect();
        if let Some(first) = files.first() {
            let schema = self.open_file(first).await?.schema().clone();
            let partition_by: Vec<&str> = first.partition.keys().map(String::as_str).collect();
            let mut txn = Transaction::new(
                self.clone(),
                None,
                Snapshot::empty(),
                &record.run_id,
                record.committed_at,
            );
            txn.declare(schema, Some(&partition_by));
            for file in files {
                txn.add(file);
            }
            txn.commit("convert", record.properties, record.committed_at)
                .await?;
        }
        // The old format's folder goes last. A conversion cut short before
        // its Delta commit is done again from the start; one cut short
        // after it leaves this folder, which every reader skips.
        for object in self.objects_under(&meta).await? {
            match self.lake().store().delete(&object.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    return Err(self.lake().error(&format!("delete {}", object.location), e));
                }
            }
        }
        // On disk, the old writer's emptied staging folders hold no file
        // to delete: they go too.
        self.lake().remove_empty_folders(&meta);
        Ok(true)
    }

    async fn objects_under(&self, prefix: &Path) -> Result<Vec<object_store::ObjectMeta>> {
        self.lake()
            .store()
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| self.lake().error(&format!("list {prefix}"), e))
    }

    async fn read_record(&self, path: &Path) -> Result<Record> {
        let lake = self.lake();
        let bytes = lake
            .store()
            .get(path)
            .await
            .map_err(|e| lake.error(&format!("read {path}"), e))?
            .bytes()
            .await
            .map_err(|e| lake.error(&format!("read {path}"), e))?;
        let record: Record = serde_json::from_slice(&bytes).map_err(|e| Error::Lake {
            url: lake.describe().into(),
            problem: format!("commit record {path} of the pre-Delta format is not valid: {e}"),
            fix: format!("the record was edited or damaged; {REBUILD}"),
        })?;
        if record.format != 1 {
            return Err(Error::Lake {
                url: lake.describe().into(),
                problem: format!("commit record {path} has format {}, not 1", record.format),
                fix: "the record was not written by soundlake; rebuild the table".into(),
            });
        }
        Ok(record)
    }

    /// Move into place the files an interrupted publish left staged.
    async fn finish_publish(&self, meta: &Path, record: &Record) -> Result<()> {
        let store = self.lake().store();
        for added in &record.added {
            let staged = rel(
                meta.clone().join("staging").join(record.staging.as_str()),
                &format!("{added}.pending"),
            );
            let to = rel(self.root().clone(), added);
            if store.head(&to).await.is_err() && store.head(&staged).await.is_ok() {
                store
                    .rename(&staged, &to)
                    .await
                    .map_err(|e| self.lake().error(&format!("move {staged} to {to}"), e))?;
            }
        }
        Ok(())
    }
}
