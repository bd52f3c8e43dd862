//! A write to a table: files written against a base version, then one
//! Delta commit that adds them, removes what they supersede and records the
//! table's properties and shape.

use std::collections::HashMap;

use arrow_schema::SchemaRef;
use chrono::{DateTime, Utc};
use deltalake_core::DeltaTable;
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake_core::kernel::{
    Action, Add, DataType as DeltaType, Metadata, Protocol, Remove, StructField, StructType,
};
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use serde_json::{Map, Value, json};

use super::parquet_io::{FileWriter, ParquetFile};
use super::partition_dir;
use super::table::{COMMIT_RECORD, DataFile, FILE_FACTS, Located, PROPERTY, Snapshot, Table, rel};
use crate::error::{Error, Result};

/// What a table and its columns are, for the engines that show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableDocs {
    pub description: String,
    /// Comments by column name.
    pub columns: HashMap<String, String>,
}

/// A write in progress: files written against a base version, committed
/// together or not at all.
pub struct Transaction {
    table: Table,
    /// The table at the base version; none before the table exists.
    delta: Option<DeltaTable>,
    id: String,
    run_id: String,
    base: Snapshot,
    /// The table's columns and partition columns, once a file or the
    /// writer said what they are.
    schema: Option<SchemaRef>,
    partition_by: Option<Vec<String>>,
    docs: Option<TableDocs>,
    added: Vec<DataFile>,
    removed: Vec<DataFile>,
    /// Application transactions this commit records (see [`Transaction::claim`]).
    claims: Vec<(String, i64)>,
    next_file: u32,
}

impl Transaction {
    /// A write on top of `delta` (none: the table does not exist yet).
    pub(super) fn new(
        table: Table,
        delta: Option<DeltaTable>,
        base: Snapshot,
        run_id: &str,
        now: DateTime<Utc>,
    ) -> Transaction {
        Transaction {
            table,
            delta,
            id: transaction_id(now),
            run_id: run_id.into(),
            base,
            schema: None,
            partition_by: None,
            docs: None,
            added: Vec::new(),
            removed: Vec::new(),
            claims: Vec::new(),
            next_file: 0,
        }
    }

    /// The version this write builds on.
    pub fn base(&self) -> &Snapshot {
        &self.base
    }

    /// The version the base recorded for application id `app`, if any.
    pub async fn claimed(&self, app: &str) -> Result<Option<i64>> {
        let Some(delta) = &self.delta else {
            return Ok(None);
        };
        let state = delta
            .snapshot()
            .map_err(|e| self.table.delta_error("read the Delta log", e))?;
        state
            .transaction_version(delta.log_store().as_ref(), app)
            .await
            .map_err(|e| {
                self.table
                    .delta_error("read the application transactions", e)
            })
    }

    /// Record `version` for application id `app` in the commit, Delta's
    /// way of making writes idempotent. A commit with claims takes no
    /// table-wide claim, so writers claiming different ids (consumers of
    /// different Kafka partitions) commit side by side, while a commit
    /// finds [`Error::Conflict`] if another committed one of its ids
    /// since the base.
    pub fn claim(&mut self, app: String, version: i64) {
        self.claims.push((app, version));
    }

    /// Say what the table's columns are and, if given, its partition
    /// columns (otherwise the files' partition folders say). A commit that
    /// adds no file still creates a typed table.
    pub fn declare(&mut self, schema: SchemaRef, partition_by: Option<&[&str]>) {
        self.schema = Some(schema);
        if let Some(keys) = partition_by {
            self.partition_by = Some(keys.iter().map(|k| k.to_string()).collect());
        }
    }

    /// Describe the table and its columns in its Delta metadata, where
    /// engines show them (Trino's and Spark's `DESCRIBE`, comments).
    pub fn describe(&mut self, docs: TableDocs) {
        self.docs = Some(docs);
    }

    /// A writer for a new file in the given partition (`[]` for an
    /// unpartitioned table). `payload` names large text columns that get no
    /// statistics or dictionary.
    pub fn create_file(
        &mut self,
        partition: &[(&str, String)],
        schema: SchemaRef,
        payload: &[&str],
    ) -> Result<FileWriter> {
        let mut folder = String::new();
        for (key, value) in partition {
            folder.push_str(&partition_dir(key, value));
            folder.push('/');
        }
        let path = format!("{folder}part-{}-{:05}.parquet", self.id, self.next_file);
        self.next_file += 1;
        self.schema.get_or_insert_with(|| schema.clone());
        self.partition_by
            .get_or_insert_with(|| partition.iter().map(|(k, _)| k.to_string()).collect());
        FileWriter::new(
            self.table.lake(),
            rel(self.table.root().clone(), &path),
            path,
            partition
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.clone()))
                .collect(),
            schema,
            payload,
        )
    }

    /// A file of the base version, or one this transaction wrote.
    pub async fn open(&self, file: &DataFile) -> Result<ParquetFile> {
        self.table.open_file(file).await
    }

    /// The files of the version this write would commit, located for a
    /// reader. Data tests read a table through this before it is published.
    pub fn locate(&self) -> Vec<Located> {
        self.base
            .files
            .iter()
            .filter(|f| !self.removed.iter().any(|r| r.path == f.path))
            .chain(&self.added)
            .map(|file| Located {
                path: self.table.file_path(file),
                size: file.bytes,
            })
            .collect()
    }

    pub fn add(&mut self, file: DataFile) {
        self.added.push(file);
    }

    /// Forget the files added so far, to write others instead. They may
    /// still be read (the rows replacing them are read from them), and
    /// vacuum deletes them once no version names them.
    pub fn unstage(&mut self) {
        self.added.clear();
    }

    /// Drop a file of the base version from the next one.
    pub fn remove(&mut self, file: &DataFile) {
        self.removed.push(file.clone());
    }

    /// Publish: one Delta commit adds the new files, removes the
    /// superseded ones and records `properties`. `operation` is `append`,
    /// `replace`, or `delete` (rows deleted, files rewritten without them).
    pub async fn commit(
        self,
        operation: &str,
        properties: Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Snapshot> {
        let table = &self.table;
        let metadata = self.metadata(&properties, now)?;
        let delta_operation = match operation {
            "delete" => DeltaOperation::Delete { predicate: None },
            "replace" => DeltaOperation::Write {
                mode: SaveMode::Overwrite,
                partition_by: None,
                predicate: None,
            },
            _ => DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: None,
                predicate: None,
            },
        };
        let mut info = delta_operation.get_commit_info();
        info.timestamp = Some(now.timestamp_millis());
        info.info.insert(
            "operationMetrics".into(),
            json!({
                "numAddedFiles": self.added.len().to_string(),
                "numRemovedFiles": self.removed.len().to_string(),
                "numOutputRows": self.added.iter().map(|f| f.rows).sum::<u64>().to_string(),
                "numRemovedRows": self.removed.iter().map(|f| f.rows).sum::<u64>().to_string(),
                "numOutputBytes": self.added.iter().map(|f| f.bytes).sum::<u64>().to_string(),
            }),
        );
        info.info.insert(
            COMMIT_RECORD.into(),
            json!({"txn": self.id, "runId": self.run_id, "operation": operation}),
        );
        let mut actions = vec![Action::CommitInfo(info)];
        // Delta checks the commits made since the base for conflicts, so
        // the commit builds on the base version, not on the newest. The
        // first commit creates the table with its first files.
        let metadata = match &self.delta {
            None => {
                actions.push(Action::Protocol(protocol()));
                actions.push(Action::Metadata(metadata.clone()));
                metadata
            }
            Some(delta) => {
                let current = delta
                    .snapshot()
                    .map_err(|e| table.delta_error("read the Delta log", e))?
                    .metadata();
                if same_metadata(current, &metadata) {
                    current.clone()
                } else {
                    let changed = with_id(&metadata, current.id());
                    actions.push(Action::Metadata(changed.clone()));
                    changed
                }
            }
        };
        let millis = now.timestamp_millis();
        actions.extend(
            self.added
                .iter()
                .map(|f| Action::Add(add_action(f, millis))),
        );
        actions.extend(
            self.removed
                .iter()
                .map(|f| Action::Remove(remove_action(f, millis))),
        );
        // What the version is if it lands right after the base, as it
        // does unless another writer came between.
        let mut files: Vec<DataFile> = self
            .base
            .files
            .into_iter()
            .filter(|f| !self.removed.iter().any(|r| r.path == f.path))
            .chain(self.added)
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let expected = Snapshot {
            version: self
                .delta
                .as_ref()
                .and_then(DeltaTable::version)
                .map_or(0, |v| v + 1),
            committed_at: now,
            files,
            properties,
            metadata: Some(metadata),
        };
        let landed = table.commit_actions(
            self.delta.as_ref(),
            actions,
            delta_operation,
            (&self.id, &self.claims),
            expected,
        );
        crate::stages::Stage::Commit.time_async(landed).await
    }

    /// The metadata the new version should have: the shape this write
    /// declared (or the base's), and `properties` as table properties.
    fn metadata(&self, properties: &Map<String, Value>, now: DateTime<Utc>) -> Result<Metadata> {
        let base = self.base.metadata.as_ref();
        let mut schema: StructType = match (&self.schema, base) {
            (Some(schema), _) => schema.as_ref().try_into_kernel().map_err(|e| Error::Lake {
                url: self.table.lake().describe().into(),
                problem: format!(
                    "the columns of {} have no Delta type: {e}",
                    self.table.root()
                ),
                fix: "this is a bug in soundlake; report it with the table's definition".into(),
            })?,
            (None, Some(base)) => base
                .parse_schema()
                .map_err(|e| self.table.damaged(&e.to_string()))?,
            (None, None) => {
                return Err(Error::Lake {
                    url: self.table.lake().describe().into(),
                    problem: format!(
                        "a write to {} said nothing of its columns and the table has none",
                        self.table.root()
                    ),
                    fix: "this is a bug in soundlake; report it with the table's definition".into(),
                });
            }
        };
        let partition_columns: Vec<String> = match (&self.partition_by, base) {
            (Some(keys), _) => keys.clone(),
            (None, Some(base)) => base.partition_columns().to_vec(),
            (None, None) => Vec::new(),
        };
        let missing: Vec<StructField> = partition_columns
            .iter()
            .filter(|p| schema.field(p.as_str()).is_none())
            .map(|p| StructField::nullable(p.as_str(), DeltaType::STRING))
            .collect();
        let documented: Vec<StructField> = schema
            .fields()
            .cloned()
            .map(
                |field| match self.docs.as_ref().and_then(|d| d.columns.get(field.name())) {
                    Some(comment) => field.add_metadata([("comment", comment.as_str())]),
                    None => field,
                },
            )
            .chain(missing)
            .collect();
        schema = StructType::try_new(documented).map_err(|e| self.table.damaged(&e.to_string()))?;
        let description = match (&self.docs, base) {
            (Some(docs), _) => Some(docs.description.clone()),
            (None, Some(base)) => base.description().map(str::to_string),
            (None, None) => None,
        };
        let mut configuration: HashMap<String, String> = self
            .base
            .metadata
            .as_ref()
            .map(|m| {
                m.configuration()
                    .iter()
                    .filter(|(k, _)| !k.starts_with(PROPERTY))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (key, value) in properties {
            configuration.insert(format!("{PROPERTY}{key}"), value.to_string());
        }
        let value = json!({
            "id": uuid_like(&self.id),
            "name": null,
            "description": description,
            "format": {"provider": "parquet", "options": {}},
            "schemaString": serde_json::to_string(&schema).expect("schemas serialize"),
            "partitionColumns": partition_columns,
            "configuration": configuration,
            "createdTime": now.timestamp_millis(),
        });
        Ok(serde_json::from_value(value).expect("a valid metadata action"))
    }
}

/// Whether two metadata actions describe the same table shape and
/// properties (ids and creation times aside).
fn same_metadata(a: &Metadata, b: &Metadata) -> bool {
    a.schema_string() == b.schema_string()
        && a.description() == b.description()
        && a.partition_columns() == b.partition_columns()
        && a.configuration() == b.configuration()
}

fn metadata_json(metadata: &Metadata) -> Value {
    serde_json::to_value(metadata).expect("metadata serializes")
}

/// `metadata` with the table id of the existing table.
fn with_id(metadata: &Metadata, id: &str) -> Metadata {
    let mut value = metadata_json(metadata);
    value["id"] = json!(id);
    serde_json::from_value(value).expect("a valid metadata action")
}

/// The protocol soundlake's tables ask of readers and writers: the
/// oldest, which every engine reads.
fn protocol() -> Protocol {
    serde_json::from_value(json!({"minReaderVersion": 1, "minWriterVersion": 2}))
        .expect("a valid protocol action")
}

fn add_action(file: &DataFile, millis: i64) -> Add {
    Add {
        path: file.path.clone(),
        partition_values: partition_values(file),
        size: file.bytes as i64,
        modification_time: millis,
        data_change: true,
        stats: Some(json!({"numRecords": file.rows}).to_string()),
        tags: (!file.stats.is_empty()).then(|| {
            HashMap::from([(
                FILE_FACTS.to_string(),
                Some(Value::Object(file.stats.clone()).to_string()),
            )])
        }),
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
    }
}

fn remove_action(file: &DataFile, millis: i64) -> Remove {
    Remove {
        path: file.path.clone(),
        data_change: true,
        deletion_timestamp: Some(millis),
        extended_file_metadata: Some(true),
        partition_values: Some(partition_values(file)),
        size: Some(file.bytes as i64),
        ..Default::default()
    }
}

fn partition_values(file: &DataFile) -> HashMap<String, Option<String>> {
    file.partition
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect()
}

/// A table id in UUID form, derived from the transaction that created it.
fn uuid_like(txn: &str) -> String {
    use std::hash::{BuildHasher, RandomState};
    let state = RandomState::new();
    let a = state.hash_one((txn, 1u8));
    let b = state.hash_one((txn, 2u8));
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// Time-ordered and unique: `20261121T101500Z-<8 hex>`.
fn transaction_id(now: DateTime<Utc>) -> String {
    use std::hash::{BuildHasher, RandomState};
    let random = RandomState::new().hash_one((now, std::process::id())) as u32;
    format!("{}-{random:08x}", now.format("%Y%m%dT%H%M%SZ"))
}
