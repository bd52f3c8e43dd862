//! One silver run, step by step: where it starts (the family's last
//! version and bronze's files), what it reads (each key's latest version),
//! how it transforms (flatten, decide the shapes), what it writes (each
//! table's new files), and the commits that publish them, root last.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow_schema::SchemaRef;
use chrono::{DateTime, Utc};
use serde_json::{Map, json};

use super::flatten::{Plan, decide, quarantine_schema};
use super::schema::{self, Recorded, TableShape, shapes};
use super::{
    Drift, Inputs, KeySet, LAYER, Partition, Pass, Replace, Scope, Selection, Silver, SilverReport,
    SilverTable, Txns, Written, definition_hash, drift, drop_alike, keep_newer_rows, overlaps,
    partition_in_path, publish_table, select_latest, shapes_gone,
};
use crate::bronze::BronzeTable;
use crate::error::Result;
use crate::lake::{DataFile, Snapshot, Table, Transaction};
use crate::landing::Stamp;

/// Where a run starts: what the family's last version records, bronze's
/// files, and which of them the run reads.
struct Start<'d> {
    recorded: Recorded,
    /// The bronze files the last version consumed.
    consumed: BTreeSet<String>,
    /// The newest ingest stamp silver holds.
    newest_held: Option<Stamp>,
    /// The definition's hash: a changed definition rebuilds everything.
    definition: String,
    full: bool,
    /// Why everything is rebuilt when nobody asked.
    full_refresh_reason: Option<String>,
    /// For a partitioned table: its key and the partitions rebuilt.
    rebuild: Option<(&'d str, BTreeSet<String>)>,
    bronze: Table,
    bronze_snapshot: Snapshot,
    inputs: Vec<DataFile>,
}

/// What a run flattens: each key's latest version among its inputs.
struct Read {
    selection: Selection,
    inputs: Inputs,
    /// The shapes the run starts from (none on a full rebuild).
    prior: Recorded,
    /// The newest ingest stamp silver holds once this run commits.
    newest: Stamp,
}

/// The flattened rows, the shapes they were decided into, and the keys
/// whose rows leave the run's files (alike on the `unique` fields).
struct Transformed {
    pass: Pass,
    decided: Recorded,
    shapes: Vec<TableShape>,
    dropped: KeySet,
}

/// A table's transaction ready to commit, and whether the table stays in
/// the family (a table of an old shape leaves it).
struct Commit {
    table: String,
    stays: bool,
    txn: Transaction,
}

impl Silver {
    pub(super) async fn run_locked(
        &self,
        def: &SilverTable,
        bronze: &BronzeTable,
        scope: Scope,
        run_id: &str,
    ) -> Result<SilverReport> {
        let now = self.clock.now();
        let (start, root) = self.start(def, bronze, scope, run_id, now).await?;
        let mut report = start.report(def, scope, run_id);
        if start.nothing_to_do() {
            report.tables = self.row_counts(def, &start.recorded).await?;
            return Ok(report);
        }
        let mut txns = Txns::new(self.lake.clone(), run_id, now);
        txns.insert(def.name.clone(), root);
        let mut read = read(def, bronze, &start, &txns, self.workers, &mut report).await?;
        let transformed = self
            .transform(def, bronze, &start, &mut read, &txns, &mut report)
            .await?;
        let commits = write(def, &start, &read, &transformed, txns, &mut report).await?;
        self.commit(def, &start, &read, &transformed, commits, &mut report)
            .await?;
        Ok(report)
    }

    /// Begin the root table's transaction and decide from its last
    /// version and bronze's files what this run reads.
    async fn start<'d>(
        &self,
        def: &'d SilverTable,
        bronze: &BronzeTable,
        scope: Scope,
        run_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(Start<'d>, Transaction)> {
        let root = self.lake.table(LAYER, &def.name);
        let root_txn = root.begin(run_id, now).await?;
        let properties = &root_txn.base().properties;
        let recorded: Recorded = properties
            .get("schema")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let consumed: BTreeSet<String> = properties
            .get("consumed")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let newest_held = properties
            .get("newest_ingested_at")
            .and_then(|v| v.as_i64());
        let definition = definition_hash(def);
        let full_refresh_reason = if scope == Scope::Full {
            None
        } else if !root_txn.base().exists() {
            Some("first run".to_string())
        } else if properties.get("definition") != Some(&json!(definition)) {
            Some(format!("{} changed since the last run", def.file.display()))
        } else {
            None
        };
        let full = scope == Scope::Full || full_refresh_reason.is_some();

        let bronze_table = self.lake.table(crate::bronze::LAYER, &bronze.name);
        let bronze_snapshot = bronze_table.snapshot().await?;
        let rebuild = def
            .partition_by
            .as_deref()
            .map(|key| (key, touched(key, &bronze_snapshot, &consumed, scope, full)));
        let inputs: Vec<DataFile> = bronze_snapshot
            .files
            .iter()
            .filter(|f| match &rebuild {
                Some((key, touched)) => f.partition.get(*key).is_some_and(|v| touched.contains(v)),
                None => full || !consumed.contains(&f.path),
            })
            .cloned()
            .collect();
        let start = Start {
            recorded,
            consumed,
            newest_held,
            definition,
            full,
            full_refresh_reason,
            rebuild,
            bronze: bronze_table,
            bronze_snapshot,
            inputs,
        };
        Ok((start, root_txn))
    }

    /// Flatten the selected rows, twice when the first pass met values
    /// that do not fit the shapes it started from, decide the shapes, and
    /// leave out the rows alike on the `unique` fields but one.
    async fn transform(
        &self,
        def: &SilverTable,
        bronze: &BronzeTable,
        start: &Start<'_>,
        read: &mut Read,
        txns: &Txns,
        report: &mut SilverReport,
    ) -> Result<Transformed> {
        let plan = Plan::new(def.clone(), &read.prior);
        let mut pass = self
            .flatten(Arc::new(plan), &read.inputs, &bronze.key, txns)
            .await?;
        report.passes = 1;
        if pass.conflicts > 0 {
            let decided = decide(def, &read.prior, &pass.observed);
            let plan = Plan::new(def.clone(), &decided);
            pass = self
                .flatten(Arc::new(plan), &read.inputs, &bronze.key, txns)
                .await?;
            report.passes = 2;
        }
        let decided = decide(def, &read.prior, &pass.observed);
        let shapes = shapes(def, &decided)?;
        let before = if start.full {
            &start.recorded
        } else {
            &read.prior
        };
        report.drift = drift(def, before, &decided, pass.quarantined)?;
        let dropped = if def.unique.is_empty() {
            KeySet::default()
        } else {
            let files = &read.inputs.files;
            drop_alike(
                files,
                &bronze.key,
                &mut read.selection,
                &mut pass.identities,
            )
            .await?
        };
        report.duplicates_dropped = dropped.len() as u64;
        report.keys_changed = read.selection.keys.len() as u64;
        Ok(Transformed {
            pass,
            decided,
            shapes,
            dropped,
        })
    }

    /// Commit the children and the quarantine first, the root (which
    /// records what was consumed) last: a run stopped in between
    /// re-derives the same keys and writes the same rows again.
    async fn commit(
        &self,
        def: &SilverTable,
        start: &Start<'_>,
        read: &Read,
        transformed: &Transformed,
        mut commits: Vec<Commit>,
        report: &mut SilverReport,
    ) -> Result<()> {
        commits.sort_by_key(|c| c.table == def.name);
        let mut properties = Map::new();
        properties.insert("source".into(), json!(def.source));
        properties.insert("key".into(), json!(def.key));
        properties.insert("definition".into(), json!(start.definition));
        properties.insert("schema".into(), json!(transformed.decided));
        properties.insert("newest_ingested_at".into(), json!(read.newest));
        let consumed: Vec<&str> = start
            .bronze_snapshot
            .files
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        properties.insert("consumed".into(), json!(consumed));
        let operation = if start.full { "replace" } else { "merge" };
        for Commit { table, stays, txn } in commits {
            let props = if table == def.name {
                properties.clone()
            } else {
                let mut child = Map::new();
                child.insert("family".into(), json!(def.name));
                child
            };
            let snapshot = txn.commit(operation, props, self.clock.now()).await?;
            if table == def.name {
                report.version = Some(snapshot.version);
            }
            if stays {
                report.tables.insert(table, snapshot.rows());
            }
        }
        Ok(())
    }
}

impl Start<'_> {
    /// The report of a run from here, before it reads anything.
    fn report(&self, def: &SilverTable, scope: Scope, run_id: &str) -> SilverReport {
        SilverReport {
            table: def.name.clone(),
            run_id: run_id.into(),
            mode: match scope {
                _ if self.full => "full_refresh",
                Scope::Interval { .. } if self.rebuild.is_some() => "interval",
                _ => "incremental",
            },
            full_refresh_reason: self.full_refresh_reason.clone(),
            version: None,
            bronze_files_read: self.inputs.len(),
            versions_read: 0,
            keys_changed: 0,
            partitions_rebuilt: self
                .rebuild
                .as_ref()
                .map(|(_, touched)| touched.iter().cloned().collect())
                .unwrap_or_default(),
            duplicates_dropped: 0,
            passes: 0,
            tables: BTreeMap::new(),
            drift: Drift::default(),
        }
    }

    /// Nothing new in bronze, nothing to rebuild, and no consumed file
    /// gone from bronze (a bronze rewrite, which must be re-read).
    fn nothing_to_do(&self) -> bool {
        let files = &self.bronze_snapshot.files;
        let vanished = self
            .consumed
            .iter()
            .any(|p| !files.iter().any(|f| &f.path == p));
        self.inputs.is_empty() && !self.full && !vanished
    }
}

/// A partitioned table rebuilds whole partitions: every bronze file of
/// each partition that new files (or the interval) touch, and of each
/// partition a consumed file vanished from.
fn touched(
    key: &str,
    bronze: &Snapshot,
    consumed: &BTreeSet<String>,
    scope: Scope,
    full: bool,
) -> BTreeSet<String> {
    let mut touched: BTreeSet<String> = bronze
        .files
        .iter()
        .filter(|f| match scope {
            _ if full => true,
            Scope::Full => true,
            Scope::New => !consumed.contains(&f.path),
            Scope::Interval { from, to } => {
                f.partition.get(key).is_none_or(|v| overlaps(v, from, to))
            }
        })
        .filter_map(|f| f.partition.get(key).cloned())
        .collect();
    if !full && scope == Scope::New {
        let present: BTreeSet<&str> = bronze.files.iter().map(|f| f.path.as_str()).collect();
        touched.extend(
            consumed
                .iter()
                .filter(|p| !present.contains(p.as_str()))
                .filter_map(|p| partition_in_path(p, key)),
        );
    }
    touched
}

/// Open the inputs and select each key's latest version, dropping
/// duplicates and versions older than the rows silver holds.
async fn read(
    def: &SilverTable,
    bronze: &BronzeTable,
    start: &Start<'_>,
    txns: &Txns,
    workers: usize,
    report: &mut SilverReport,
) -> Result<Read> {
    let mut files = Vec::with_capacity(start.inputs.len());
    for input in &start.inputs {
        files.push(Arc::new(start.bronze.open_file(input).await?));
    }
    let mut selection = select_latest(&files, &bronze.key, workers).await?;
    report.versions_read = selection.versions;
    let prior = if start.full {
        Recorded::new()
    } else {
        start.recorded.clone()
    };
    // Inputs that all came after the newest version silver holds cannot
    // lose to it; otherwise (a bronze interval rewrite) compare.
    let newest = start
        .newest_held
        .unwrap_or(Stamp::MIN)
        .max(selection.newest);
    // A partitioned table replaces whole partitions, so it keeps no old
    // rows to compare with (and only a partitioned table has `unique`
    // fields, whose rows alike are found after flattening: every row it
    // compares is flattened).
    if !start.full
        && start.rebuild.is_none()
        && start
            .newest_held
            .is_none_or(|held| held >= selection.oldest)
    {
        let quarantine = schema::Naming::new(def).quarantine_table();
        for name in [def.name.clone(), quarantine] {
            let txn = txns.get(&name).await?;
            keep_newer_rows(&txn, &mut selection, &def.key).await?;
        }
    }
    let emit = Arc::new(std::mem::take(&mut selection.emit));
    // Each input's rows go to its partition of this table.
    let parts: Arc<Vec<Partition>> = Arc::new(
        start
            .inputs
            .iter()
            .map(|f| match &start.rebuild {
                Some((key, _)) => vec![(key.to_string(), f.partition[*key].clone())],
                None => Vec::new(),
            })
            .collect(),
    );
    let inputs = Inputs {
        files: Arc::new(files),
        parts,
        emit,
    };
    Ok(Read {
        selection,
        inputs,
        prior,
        newest,
    })
}

/// Write each table's new files into its transaction: every table of the
/// new shape (the re-derived keys' rows go from each, even where no new
/// row arrives), the quarantine, and on a rebuild the tables the old shape
/// had and the new one lacks. Returns the tables whose files changed.
async fn write(
    def: &SilverTable,
    start: &Start<'_>,
    read: &Read,
    transformed: &Transformed,
    txns: Txns,
    report: &mut SilverReport,
) -> Result<Vec<Commit>> {
    let quarantine = quarantine_schema(&def.key);
    let mut targets: Vec<(String, Option<(SchemaRef, String)>)> = transformed
        .shapes
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                Some((s.schema.clone(), s.fingerprint.clone())),
            )
        })
        .collect();
    targets.push((
        schema::Naming::new(def).quarantine_table(),
        Some((quarantine.clone(), schema::fingerprint(&quarantine))),
    ));
    if start.full {
        for old in shapes_gone(def, &start.recorded, &transformed.decided)? {
            targets.push((old, None));
        }
    }
    for (name, _) in &targets {
        drop(txns.get(name).await?);
    }
    let mut txns = txns.into_inner();
    let mut commits = Vec::new();
    for (name, shape) in &targets {
        let mut txn = txns.remove(name).expect("every target was begun");
        let written: Vec<&Written> = transformed
            .pass
            .written
            .iter()
            .filter(|w| &w.table == name)
            .collect();
        let replace = match &start.rebuild {
            _ if start.full => Replace::All,
            Some((key, touched)) => Replace::Partitions(key, touched),
            None => Replace::Keys(&read.selection.keys),
        };
        let changed_files = publish_table(
            &mut txn,
            shape.as_ref(),
            &written,
            replace,
            &transformed.dropped,
        )
        .await?;
        if changed_files || name == &def.name {
            commits.push(Commit {
                table: name.clone(),
                stays: shape.is_some(),
                txn,
            });
        } else if shape.is_some() {
            report.tables.insert(name.clone(), txn.base().rows());
        }
    }
    Ok(commits)
}
