//! SQL over the lake: an embedded DataFusion engine that sees the bronze,
//! silver and gold tables as schemas of those names (`silver.tracks`,
//! `gold.dim_track`), each table at its newest committed version, read
//! where the files are (local disk, S3, HDFS) without copying them. Gold
//! models run on it and `soundlake query` asks it.

pub mod functions;
pub mod output;
pub mod references;
mod snapshots;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::catalog::{SchemaProvider, TableProvider, view::ViewTable};
use datafusion::common::SchemaError;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::provider_as_source;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::prelude::{SessionConfig, SessionContext, ident};

pub use functions::surrogate_key;

use crate::error::{Error, Result};
use crate::lake::{At, Lake, Located, Table};
use snapshots::Snapshots;

/// The layers SQL sees, as schemas.
pub const LAYERS: [&str; 3] = ["bronze", "silver", "gold"];

/// Where DataFusion finds the lake: the snapshot store, under a name of
/// its own (the real URL may carry a bucket, a prefix or a NameNode).
const LAKE_URL: &str = "soundlake://lake/";

/// One SQL session over the lake. Each table is pinned to the version the
/// session first resolves, so one query (or a model and its data tests)
/// reads one consistent version of each.
pub struct Engine {
    ctx: SessionContext,
    schemas: HashMap<&'static str, Arc<LayerSchema>>,
}

impl Engine {
    /// A session over every table of the lake, each at its newest version.
    pub async fn open(lake: &Lake) -> Result<Engine> {
        Engine::open_at(lake, None).await
    }

    /// A session over every table of the lake as it was `at` (a version or
    /// a time), or at its newest version.
    pub async fn open_at(lake: &Lake, at: Option<At>) -> Result<Engine> {
        Engine::open_with(lake, at, None).await
    }

    /// A session over every table's newest version whose queries share
    /// `memory` bytes: sorts, aggregations and sort-merge joins spill to
    /// local disk beyond it, and a query that cannot spill fails naming
    /// the limit. The pool is first come, first served: DataFusion's fair
    /// pool splits the bound among the spilling operators up front and left
    /// a window's sort nothing to merge its spilled runs with (a window over
    /// 1M rows of ~100 bytes failed under it at 64 MiB).
    pub async fn open_within(lake: &Lake, memory: usize) -> Result<Engine> {
        Engine::open_with(lake, None, Some(memory)).await
    }

    async fn open_with(lake: &Lake, at: Option<At>, memory: Option<usize>) -> Result<Engine> {
        let mut config = SessionConfig::new().with_information_schema(true);
        let options = config.options_mut();
        // A version's files may sit in sub-folders (those Trino wrote for a
        // gold model); only the pinned files are ever listed.
        options.execution.listing_table_ignore_subdirectory = false;
        // Plain strings, which every consumer of the results reads.
        options.execution.parquet.schema_force_view_types = false;
        options.sql_parser.map_string_types_to_utf8view = false;
        // The snapshot store lists from memory, and a table re-pinned within
        // a session (a model's output rewritten without quarantined rows)
        // must be listed anew: no listing cache.
        let mut runtime = RuntimeEnvBuilder::new()
            .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0));
        if let Some(memory) = memory {
            runtime = runtime.with_memory_pool(Arc::new(GreedyMemoryPool::new(memory)));
        }
        let runtime = runtime
            .build_arc()
            .map_err(|e| sql_error("SQL engine", &e))?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let snapshots = Arc::new(Snapshots::new(lake.store().clone()));
        let url = url::Url::parse(LAKE_URL).expect("a valid URL");
        ctx.register_object_store(&url, snapshots.clone());
        functions::register(&ctx);
        let catalog = ctx
            .catalog("datafusion")
            .expect("the default catalog exists");
        let mut schemas = HashMap::new();
        for layer in LAYERS {
            let schema = Arc::new(LayerSchema {
                layer,
                names: lake.tables(layer).await?,
                lake: lake.clone(),
                snapshots: snapshots.clone(),
                at: at.clone(),
                resolved: Mutex::new(HashMap::new()),
            });
            catalog
                .register_schema(layer, schema.clone())
                .map_err(|e| sql_error("SQL engine", &e))?;
            schemas.insert(layer, schema);
        }
        Ok(Engine { ctx, schemas })
    }

    /// Read `layer.name` as the given files from now on (a write's staged
    /// version, while its data tests run) instead of its committed version.
    pub fn pin(
        &self,
        table: &Table,
        layer: &str,
        name: &str,
        files: Vec<Located>,
        schema: SchemaRef,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let layer = self.layer(layer)?;
        let provider = layer.provider(table, files, schema, now)?;
        layer.settle(name, Some(provider));
        Ok(())
    }

    /// Read `layer.name` as `snapshot` (a version, or some of its files)
    /// from now on; with no files, as a table with no data.
    pub async fn pin_snapshot(
        &self,
        table: &Table,
        layer: &str,
        name: &str,
        snapshot: &crate::lake::Snapshot,
    ) -> Result<()> {
        let layer = self.layer(layer)?;
        let provider = layer.snapshot_provider(name, table, snapshot).await?;
        layer.settle(name, provider);
        Ok(())
    }

    /// Whether `layer.name` has a committed version with at least one file.
    pub async fn has_data(&self, layer: &str, name: &str) -> Result<bool> {
        Ok(self.layer(layer)?.resolve(name).await?.is_some())
    }

    fn layer(&self, layer: &str) -> Result<&Arc<LayerSchema>> {
        self.schemas.get(layer).ok_or_else(|| {
            Error::config(
                format!("{layer}."),
                format!("there is no layer {layer:?}"),
                format!("SQL sees the layers {}", LAYERS.join(", ")),
            )
        })
    }

    /// Run one statement in which each table of `absent` (tables with no
    /// data yet, or never created) reads as an empty table: the columns the
    /// statement asks of it exist, typed NULL, so it plans as it will once
    /// the table has rows, and contributes none. A model joining tracks
    /// with albums thus gives the tracks' rows before any album is crawled.
    /// With `order_by`, the rows come sorted by that column.
    pub async fn stream_over_absent(
        &self,
        place: &str,
        sql: &str,
        absent: &BTreeSet<crate::definitions::TableId>,
        order_by: Option<&str>,
    ) -> Result<SendableRecordBatchStream> {
        let asked = references::columns_asked(sql).map_err(|problem| Error::Input {
            place: place.into(),
            problem,
            fix: "write one SELECT over <layer>.<table> names".into(),
        })?;
        // Every name the statement may ask of a table, so that an unqualified
        // name in a subquery over an absent table means that table's column
        // (not the outer query's, which SQL would fall back to).
        let mut columns: BTreeMap<&crate::definitions::TableId, BTreeSet<String>> = absent
            .iter()
            .map(|t| (t, asked.columns.get(t).cloned().unwrap_or_default()))
            .collect();
        // Names an absent table must not have: they made a reference
        // ambiguous, so they belong to a table that is there.
        let mut refused: BTreeSet<String> = BTreeSet::new();
        loop {
            for (table, names) in &columns {
                self.layer(&table.layer)?.stand_in(&table.name, names)?;
            }
            let planned = match self.ctx.sql(sql).await {
                Ok(frame) => frame,
                Err(e) => {
                    let changed = match schema_problem(&e) {
                        Some(SchemaProblem::Missing(qualifier, name))
                            if !refused.contains(&name) =>
                        {
                            let mut added = false;
                            for (table, names) in columns.iter_mut() {
                                let named = qualifier.as_ref().is_none_or(|q| {
                                    asked.qualifiers.get(q).is_some_and(|t| t.contains(*table))
                                });
                                if named {
                                    added |= names.insert(name.clone());
                                }
                            }
                            added
                        }
                        Some(SchemaProblem::Ambiguous(name)) => {
                            let mut removed = false;
                            for names in columns.values_mut() {
                                removed |= names.remove(&name);
                            }
                            refused.insert(name);
                            removed
                        }
                        _ => false,
                    };
                    if !changed {
                        return Err(sql_error(place, &e));
                    }
                    continue;
                }
            };
            let planned = match order_by {
                Some(column) => planned
                    .sort(vec![ident(column).sort(true, false)])
                    .map_err(|e| sql_error(place, &e))?,
                None => planned,
            };
            return planned
                .execute_stream()
                .await
                .map_err(|e| sql_error(place, &e));
        }
    }

    /// Run one statement; its results as a stream of record batches.
    /// `place` names where the SQL came from, for messages.
    pub async fn stream(&self, place: &str, sql: &str) -> Result<SendableRecordBatchStream> {
        let frame = self.ctx.sql(sql).await.map_err(|e| sql_error(place, &e))?;
        frame
            .execute_stream()
            .await
            .map_err(|e| sql_error(place, &e))
    }

    /// Run one statement and collect its results.
    pub async fn collect(
        &self,
        place: &str,
        sql: &str,
    ) -> Result<(SchemaRef, Vec<arrow_array::RecordBatch>)> {
        use futures::TryStreamExt;

        let stream = self.stream(place, sql).await?;
        let schema = stream.schema();
        let batches = stream
            .try_collect()
            .await
            .map_err(|e| sql_error(place, &e))?;
        Ok((schema, batches))
    }
}

/// What a failed plan said of a column.
enum SchemaProblem {
    /// No column of this name (with this qualifier, lowercase, if any).
    Missing(Option<String>, String),
    /// An unqualified name that more than one table has.
    Ambiguous(String),
}

/// A string literal in standard SQL (DataFusion, Trino, DuckDB, Dremio):
/// in quotes, each quote doubled.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// An identifier in standard SQL: in double quotes, each one doubled.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn schema_problem(e: &DataFusionError) -> Option<SchemaProblem> {
    let DataFusionError::SchemaError(error, _) = e.find_root() else {
        return None;
    };
    match error.as_ref() {
        SchemaError::FieldNotFound { field, .. } => Some(SchemaProblem::Missing(
            field
                .relation
                .as_ref()
                .map(|r| r.to_string().to_lowercase()),
            field.name.clone(),
        )),
        SchemaError::AmbiguousReference { field } => {
            Some(SchemaProblem::Ambiguous(field.name.clone()))
        }
        _ => None,
    }
}

/// A SQL failure as a message: where, what DataFusion said, and a fix.
pub fn sql_error(place: &str, e: &DataFusionError) -> Error {
    let problem = e.to_string();
    let fix = if matches!(e.find_root(), DataFusionError::ResourcesExhausted(_)) {
        "raise [gold] memory_mib (SOUNDLAKE__GOLD__MEMORY_MIB), or set it to 0 to let the \
         query take what it needs"
    } else if problem.contains("table") && problem.contains("not found") {
        "name tables as <layer>.<table> (bronze, silver, gold); `soundlake query \
         \"SHOW TABLES\"` lists those with data"
    } else {
        "check the SQL against the tables' columns (`soundlake query \"DESCRIBE silver.tracks\"`)"
    };
    Error::Input {
        place: place.into(),
        problem,
        fix: fix.into(),
    }
}

/// A layer as a SQL schema; tables resolve on first use.
#[derive(Debug)]
struct LayerSchema {
    layer: &'static str,
    names: Vec<String>,
    lake: Lake,
    snapshots: Arc<Snapshots>,
    /// The version or time to read each table at; the newest if none.
    at: Option<At>,
    /// `None`: the table has no committed data.
    resolved: Mutex<HashMap<String, Option<Arc<dyn TableProvider>>>>,
}

impl LayerSchema {
    /// Let `name` read as an empty table with these columns, all NULL-typed
    /// (see [`Engine::stream_over_absent`]).
    fn stand_in(&self, name: &str, columns: &BTreeSet<String>) -> Result<()> {
        let fields: Vec<Field> = columns
            .iter()
            .map(|c| Field::new(c, DataType::Null, true))
            .collect();
        let empty = MemTable::try_new(Arc::new(Schema::new(fields)), vec![vec![]])
            .map_err(|e| sql_error(&format!("{}.{name}", self.layer), &e))?;
        self.settle(name, Some(Arc::new(empty)));
        Ok(())
    }

    async fn resolve(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(known) = self
            .resolved
            .lock()
            .expect("no panics while resolving")
            .get(name)
        {
            return Ok(known.clone());
        }
        let table = self.lake.table(self.layer, name);
        let snapshot = match &self.at {
            Some(at) => table.snapshot_at(at).await?,
            None => table.snapshot().await?,
        };
        let provider = self.snapshot_provider(name, &table, &snapshot).await?;
        self.settle(name, provider.clone());
        Ok(provider)
    }

    /// Read `name` through `provider` from now on (`None`: no data).
    fn settle(&self, name: &str, provider: Option<Arc<dyn TableProvider>>) {
        self.resolved
            .lock()
            .expect("no panics while resolving")
            .insert(name.into(), provider);
    }

    /// What reads the files of `snapshot`: none if it has none.
    async fn snapshot_provider(
        &self,
        name: &str,
        table: &Table,
        snapshot: &crate::lake::Snapshot,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(if snapshot.files.is_empty() {
            None
        } else {
            let mut schemas = Vec::with_capacity(snapshot.files.len());
            for file in &snapshot.files {
                schemas.push(table.open_file(file).await?.schema().as_ref().clone());
            }
            let merged = Schema::try_merge(schemas).map_err(|e| Error::Lake {
                url: self.lake.describe().into(),
                problem: format!(
                    "the files of {}.{name} disagree on columns: {e}",
                    self.layer
                ),
                fix: "rebuild the table (run its task with --full-refresh)".into(),
            })?;
            // Trino writes Delta timestamps as zoneless milliseconds: the
            // log's type (UTC microseconds) is what the table holds, and
            // the reader casts each file's column to it.
            let fields: Vec<Field> = merged
                .fields()
                .iter()
                .map(
                    |f| match (f.data_type(), snapshot.declared_type(f.name())) {
                        (DataType::Timestamp(..), Some(declared @ DataType::Timestamp(..))) => {
                            f.as_ref().clone().with_data_type(declared)
                        }
                        _ => f.as_ref().clone(),
                    },
                )
                .collect();
            // Partition columns live in the folder names, typed as the
            // log declares them (a gold model's day is a date).
            let partitions = snapshot.files[0]
                .partition
                .keys()
                .filter(|k| fields.iter().all(|f| f.name() != *k))
                .map(|k| Field::new(k, snapshot.declared_type(k).unwrap_or(DataType::Utf8), true))
                .collect::<Vec<_>>();
            let mut fields = fields.into_iter().chain(partitions).collect::<Vec<_>>();
            let declared = snapshot.declared_columns();
            fields.sort_by_key(|f| {
                let at = declared.iter().position(|d| d == f.name());
                at.unwrap_or(usize::MAX)
            });
            let schema = Schema::new_with_metadata(fields, merged.metadata().clone());
            Some(self.provider(
                table,
                table.locate(snapshot),
                Arc::new(schema),
                snapshot.committed_at,
            )?)
        })
    }

    /// A listing table over pinned files. Partition columns (Hive folders)
    /// come from the first file's path; every file of a table has the same.
    /// A partition column `schema` has takes its type from there (text
    /// otherwise); the files hold the other columns.
    fn provider(
        &self,
        table: &Table,
        files: Vec<Located>,
        schema: SchemaRef,
        committed_at: DateTime<Utc>,
    ) -> Result<Arc<dyn TableProvider>> {
        let root = table.root().clone();
        let partition_cols: Vec<(String, DataType)> = files
            .first()
            .map(|f| {
                f.path
                    .parts()
                    .skip(root.parts().count())
                    .filter_map(|part| part.as_ref().split_once('=').map(|(k, _)| k.to_string()))
                    .map(|k| {
                        let kind = schema
                            .field_with_name(&k)
                            .map_or(DataType::Utf8, |f| f.data_type().clone());
                        (k, kind)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let declared: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let in_files: Vec<Field> = schema
            .fields()
            .iter()
            .filter(|f| partition_cols.iter().all(|(k, _)| k != f.name()))
            .map(|f| f.as_ref().clone())
            .collect();
        let schema = Arc::new(Schema::new_with_metadata(
            in_files,
            schema.metadata().clone(),
        ));
        self.snapshots.pin(root.clone(), files, committed_at);
        let failed = |e: DataFusionError| sql_error(&format!("{}.{}", self.layer, root), &e);
        let url = ListingTableUrl::parse(format!("{LAKE_URL}{root}/")).map_err(failed)?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            // The pinned files are the version's, named as their writer
            // chose: Trino's have no extension.
            .with_file_extension("")
            .with_table_partition_cols(partition_cols);
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(schema);
        let listing = Arc::new(ListingTable::try_new(config).map_err(failed)?);
        let listed: Vec<String> = listing
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        if listed == declared {
            return Ok(listing);
        }
        // A listing table puts partition columns last; a view over it shows
        // the columns in the order the table declares them.
        let plan = LogicalPlanBuilder::scan(root.to_string(), provider_as_source(listing), None)
            .and_then(|scan| scan.project(declared.iter().map(ident)))
            .and_then(LogicalPlanBuilder::build)
            .map_err(failed)?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

#[async_trait]
impl SchemaProvider for LayerSchema {
    fn table_names(&self) -> Vec<String> {
        self.names.clone()
    }

    async fn table(
        &self,
        name: &str,
    ) -> std::result::Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        self.resolve(name)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
            || self
                .resolved
                .lock()
                .expect("no panics while resolving")
                .contains_key(name)
    }
}
