//! Gold models run on a Trino cluster (`engine = "trino"`). The model's
//! SQL, translated to Trino's dialect, runs as a `CREATE TABLE … AS` whose
//! Delta table Trino writes into a folder of the model's own table folder
//! (`gold/<model>/staged-<time>/`); the data tests run as Trino queries on
//! it; and soundlake publishes it as the model's next version with one
//! commit that adds those files and removes the old ones. Readers see the
//! same table in the same place, whichever engine wrote it, and a failing
//! test leaves the published version as it was.
//!
//! The tables a model reads are registered with Trino on first use: gold
//! tables in `[trino] schema`, silver and bronze ones in schemas named after
//! their layer.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::data_tests::{self, DataTest, Judge};
use super::ddl::Location;
use super::register::{register_at, schema_tables, unregister};
use super::trino_sql::{Relation, translate};
use super::{
    ColumnType, FAILED_TEST, Gold, GoldEngine, GoldModel, GoldReport, LAYER, OnFailure, Staged,
    declared_tests, quarantine_table, set_aside_sql,
};
use crate::definitions::TableId;
use crate::error::{Error, Result};
use crate::lake::{DataFile, LakeSettings, Table, Transaction};
use crate::sql::{quote_identifier, quote_literal};
use crate::trino::{Answer, Trino, TrinoSettings};

/// The Trino cluster gold models run on, and the lake as it names it.
#[derive(Clone)]
pub(super) struct Cluster {
    trino: Trino,
    settings: TrinoSettings,
    location: Location,
}

impl Cluster {
    pub(super) fn new(settings: &TrinoSettings, lake: &LakeSettings) -> Result<Cluster> {
        Ok(Cluster {
            trino: Trino::new(settings)?,
            settings: settings.clone(),
            location: Location::of(lake)?,
        })
    }

    /// The Trino schema a layer's tables are registered in.
    fn schema<'s>(&'s self, layer: &'s str) -> &'s str {
        if layer == LAYER {
            &self.settings.schema
        } else {
            layer
        }
    }

    /// A table's quoted name in Trino.
    fn name(&self, layer: &str, table: &str) -> String {
        format!(
            "{}.{}.{}",
            quote_identifier(&self.settings.catalog),
            quote_identifier(self.schema(layer)),
            quote_identifier(table)
        )
    }
}

/// A Delta table Trino wrote for this run, not yet published.
#[derive(Clone)]
struct StagedTable {
    /// Its name in Trino's gold schema.
    name: String,
    /// Its folder, inside the folder of the table it is staged for.
    folder: String,
    /// That table's name.
    target: String,
    rows: u64,
}

/// One model's run on Trino: what it reads and what it staged.
struct TrinoRun<'r> {
    cluster: &'r Cluster,
    gold: &'r Gold,
    model: &'r GoldModel,
    /// Names the staged tables and folders of this run.
    token: String,
    /// Each table the model or its tests read, and whether it has data.
    present: BTreeMap<TableId, bool>,
    /// The columns the model asks of each table, for those with no data.
    asked: BTreeMap<TableId, BTreeSet<String>>,
    /// What `gold.<model>` means to the tests: the staged version.
    staged_model: Option<String>,
    staged: Vec<StagedTable>,
}

impl Gold {
    /// Run a model on Trino, which writes its files.
    pub(super) async fn run_on_trino(
        &self,
        cluster: &Cluster,
        model: &GoldModel,
        run_id: &str,
    ) -> Result<GoldReport> {
        let now = self.clock.now();
        let mut run = TrinoRun {
            cluster,
            gold: self,
            model,
            token: now.format("%Y%m%dt%H%M%S%6f").to_string(),
            present: BTreeMap::new(),
            asked: BTreeMap::new(),
            staged_model: None,
            staged: Vec::new(),
        };
        run.sweep().await?;
        let staged = match run.build(run_id, now).await {
            Ok(staged) => staged,
            Err(e) => {
                run.discard().await;
                return Err(e);
            }
        };
        let absent = run
            .present
            .iter()
            .filter(|(t, there)| !**there && model.reads.contains(t))
            .map(|(t, _)| t.clone())
            .collect();
        match staged
            .publish(model, run_id, now, absent, GoldEngine::Trino)
            .await
        {
            Ok(report) => {
                run.tidy().await?;
                Ok(report)
            }
            Err(e @ Error::DataTests { .. }) => {
                run.discard().await;
                Err(e)
            }
            Err(e) => {
                // A commit may have landed: its files stay.
                let _ = run.tidy().await;
                Err(e)
            }
        }
    }
}

impl TrinoRun<'_> {
    fn place(&self) -> String {
        self.model.sql_file.display().to_string()
    }

    /// Forget the staged tables a run of this model left in Trino when it
    /// died; vacuum deletes their files.
    async fn sweep(&self) -> Result<()> {
        let cluster = self.cluster;
        let schema = &cluster.settings.schema;
        let ours = [
            format!("{}__staged_", self.model.name),
            format!("{}__staged_", quarantine_table(&self.model.name)),
        ];
        for table in schema_tables(&cluster.trino, &cluster.settings.catalog, schema).await? {
            if ours.iter().any(|prefix| table.starts_with(prefix)) {
                unregister(&cluster.trino, &cluster.settings.catalog, schema, &table).await?;
            }
        }
        Ok(())
    }

    /// Stage the model (and the rows its tests set aside) on Trino and
    /// judge it there.
    async fn build(&mut self, run_id: &str, now: DateTime<Utc>) -> Result<Staged> {
        let model = self.model;
        self.asked = crate::sql::references::columns_asked(&model.sql)
            .map_err(|problem| self.untranslatable(problem))?
            .columns;
        let mut inputs = model.depends_on();
        inputs.extend(model.reads.iter().cloned());
        self.find(inputs).await?;

        let select = self.translate(&model.sql, &self.place())?;
        let columns: Vec<(String, ColumnType)> = model
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.kind))
            .collect();
        let mut current = self.stage(&model.name, "", &columns, &select).await?;
        let tests = declared_tests(model, now);
        let (set_aside, judged): (Vec<&DataTest>, Vec<&DataTest>) = tests
            .iter()
            .partition(|t| t.on_failure == OnFailure::Quarantine);

        let mut quarantine = None;
        if !set_aside.is_empty() {
            let (rows_breaking, any_broken) = set_aside_sql(model, &set_aside);
            let place = data_tests::place(model);
            let mut with_test = columns.clone();
            with_test.push((FAILED_TEST.to_string(), ColumnType::String));
            let breaking = self.translate(&rows_breaking, &place)?;
            let set = self
                .stage(&quarantine_table(&model.name), "", &with_test, &breaking)
                .await?;
            let mut kept_out = 0;
            if set.rows > 0 {
                let this = format!("{LAYER}.{}", model.name);
                kept_out = self
                    .judge()
                    .count(&format!("SELECT 1 FROM {this} WHERE {any_broken}"))
                    .await?;
                let kept = self.translate(
                    &format!("SELECT * FROM {this} WHERE NOT ({any_broken})"),
                    &place,
                )?;
                let all = current;
                current = self.stage(&model.name, "-kept", &columns, &kept).await?;
                self.drop_staged(&all).await?;
            }
            let table = self.gold.lake.table(LAYER, &quarantine_table(&model.name));
            let mut qtxn = table.begin(run_id, now).await?;
            let schema = super::quarantine_schema(model);
            qtxn.declare(schema.clone(), Some(&[]));
            self.publish_into(&mut qtxn, &set, schema).await?;
            quarantine = Some((qtxn, kept_out));
        }

        let table = self.gold.lake.table(LAYER, &model.name);
        let mut txn = table.begin(run_id, now).await?;
        let schema = model.schema();
        // Unpartitioned: an incremental model is rebuilt whole on Trino.
        txn.declare(schema.clone(), Some(&[]));
        txn.describe(model.docs());
        self.publish_into(&mut txn, &current, schema).await?;
        let failures = data_tests::run(&self.judge(), &judged).await?;
        Ok(Staged {
            txn,
            quarantine,
            rows: current.rows,
            tests: judged.len(),
            failures,
            properties: serde_json::Map::new(),
        })
    }

    /// Which of `tables` have data; register those that do with Trino.
    async fn find(&mut self, tables: BTreeSet<TableId>) -> Result<()> {
        let cluster = self.cluster;
        let mut known: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for id in tables {
            let table = self.gold.lake.table(&id.layer, &id.name);
            let there = !table.snapshot().await?.files.is_empty();
            if there {
                let schema = cluster.schema(&id.layer).to_string();
                if !known.contains_key(&schema) {
                    let tables =
                        schema_tables(&cluster.trino, &cluster.settings.catalog, &schema).await?;
                    known.insert(schema.clone(), tables);
                }
                register_at(
                    &cluster.trino,
                    (&cluster.settings.catalog, &schema, &id.name),
                    &cluster.location.trino_folder(&id.layer, &id.name),
                    &known[&schema],
                )
                .await?;
                // A table deleted and rebuilt in place (the way to recover
                // a damaged one) has other files under versions Trino may
                // have cached: it reads the log afresh.
                cluster
                    .trino
                    .query(&format!(
                        "CALL {}.system.flush_metadata_cache(schema_name => {}, table_name => {})",
                        quote_identifier(&cluster.settings.catalog),
                        quote_literal(&schema),
                        quote_literal(&id.name)
                    ))
                    .await?;
            }
            self.present.insert(id, there);
        }
        Ok(())
    }

    /// `sql` in Trino's dialect over the registered tables and the staged
    /// model.
    fn translate(&self, sql: &str, place: &str) -> Result<String> {
        translate(sql, &mut |id| self.relation(id)).map_err(|problem| Error::Input {
            place: place.into(),
            problem: format!("cannot run on Trino: {problem}"),
            fix: "write the model with what both engines have, or set engine = \"datafusion\" \
                  in its .toml"
                .into(),
        })
    }

    fn relation(&self, id: &TableId) -> Relation {
        if id.layer == LAYER
            && id.name == self.model.name
            && let Some(staged) = &self.staged_model
        {
            return Relation::Table(staged.clone());
        }
        if self.present.get(id) == Some(&false) {
            Relation::Empty(self.asked.get(id).cloned().unwrap_or_default())
        } else {
            Relation::Table(self.cluster.name(&id.layer, &id.name))
        }
    }

    fn untranslatable(&self, problem: String) -> Error {
        Error::Input {
            place: self.place(),
            problem,
            fix: "write one SELECT over <layer>.<table> names".into(),
        }
    }

    /// Have Trino write `select`, cast to `columns`, as a Delta table in a
    /// folder of `target`'s.
    async fn stage(
        &mut self,
        target: &str,
        suffix: &str,
        columns: &[(String, ColumnType)],
        select: &str,
    ) -> Result<StagedTable> {
        let cluster = self.cluster;
        let folder = format!("staged-{}{suffix}", self.token);
        let name = format!(
            "{target}__staged_{}{}",
            self.token,
            suffix.replace('-', "_")
        );
        let list: Vec<String> = columns
            .iter()
            .map(|(c, kind)| {
                let c = quote_identifier(c);
                format!("CAST({c} AS {}) AS {c}", trino_type(*kind))
            })
            .collect();
        let statement = format!(
            "CREATE TABLE {} WITH (location = {}) AS SELECT {} FROM ({select}) AS \"model\"",
            cluster.name(LAYER, &name),
            quote_literal(
                &cluster
                    .location
                    .trino_folder(LAYER, &format!("{target}/{folder}"))
            ),
            list.join(", ")
        );
        let rows = first_count(&cluster.trino.query(&statement).await?);
        if target == self.model.name {
            self.staged_model = Some(cluster.name(LAYER, &name));
        }
        let staged = StagedTable {
            name,
            folder,
            target: target.into(),
            rows,
        };
        self.staged.push(staged.clone());
        Ok(staged)
    }

    /// Let `txn` replace its table's files with `staged`'s (and an empty
    /// file of `schema` when Trino wrote none, so readers see the columns).
    async fn publish_into(
        &self,
        txn: &mut Transaction,
        staged: &StagedTable,
        schema: arrow_schema::SchemaRef,
    ) -> Result<()> {
        let written = self.nested(staged).snapshot().await?;
        let base = txn.base().files.clone();
        for file in &base {
            txn.remove(file);
        }
        for file in written.files {
            txn.add(DataFile {
                path: format!("{}/{}", staged.folder, file.path),
                stats: serde_json::Map::new(),
                ..file
            });
        }
        if staged.rows == 0 {
            let writer = txn.create_file(&[], schema, &[])?;
            super::add(txn, writer).await?;
        }
        Ok(())
    }

    fn nested(&self, staged: &StagedTable) -> Table {
        self.gold
            .lake
            .table(LAYER, &staged.target)
            .nested(&staged.folder)
    }

    /// Take a staged table out of Trino's catalog, leaving its files.
    async fn forget(&self, staged: &StagedTable) -> Result<()> {
        let cluster = self.cluster;
        unregister(
            &cluster.trino,
            &cluster.settings.catalog,
            &cluster.settings.schema,
            &staged.name,
        )
        .await
    }

    /// Forget a staged table in Trino and delete its files.
    async fn drop_staged(&mut self, staged: &StagedTable) -> Result<()> {
        self.staged.retain(|s| s.name != staged.name);
        self.forget(staged).await?;
        self.nested(staged).delete_folder().await
    }

    /// After a publish: the staged tables leave Trino's catalog and their
    /// logs go; their files are the published versions'.
    async fn tidy(&self) -> Result<()> {
        for staged in &self.staged {
            self.forget(staged).await?;
            self.nested(staged).delete_log().await?;
        }
        Ok(())
    }

    /// After a failure: nothing staged stays. Best effort: what cannot go
    /// now, the next run's sweep and vacuum clear.
    async fn discard(&mut self) {
        for staged in self.staged.clone() {
            if let Err(e) = self.drop_staged(&staged).await {
                tracing::warn!(error = %e, table = %staged.name, "could not drop a table staged on Trino");
            }
        }
    }

    fn judge(&self) -> OnTrino<'_> {
        OnTrino { run: self }
    }
}

/// Data tests asked of Trino, over the staged model.
struct OnTrino<'r> {
    run: &'r TrinoRun<'r>,
}

impl OnTrino<'_> {
    /// A test's query, translated for Trino and put in `frame`, answered.
    async fn ask(&self, sql: &str, frame: impl Fn(&str) -> String) -> Result<Answer> {
        let sql = self
            .run
            .translate(sql, &data_tests::place(self.run.model))?;
        self.run.cluster.trino.query(&frame(&sql)).await
    }
}

impl Judge for OnTrino<'_> {
    async fn count(&self, sql: &str) -> Result<u64> {
        let answer = self
            .ask(sql, |sql| {
                format!("SELECT count(*) FROM ({sql}) AS \"rows\"")
            })
            .await?;
        Ok(first_count(&answer))
    }

    async fn sample(&self, sql: &str) -> Result<Vec<String>> {
        let answer = self
            .ask(sql, |sql| {
                format!("{sql} LIMIT {}", data_tests::SAMPLE_ROWS)
            })
            .await?;
        Ok(answer
            .rows
            .iter()
            .map(|row| {
                answer
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(column, value)| {
                        let value = match value {
                            Value::Null => "NULL".to_string(),
                            Value::String(text) => text.clone(),
                            other => other.to_string(),
                        };
                        format!("{}={value}", column.name)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect())
    }
}

/// The number in an answer's first row and column: a count, or the rows a
/// `CREATE TABLE … AS` wrote.
fn first_count(answer: &Answer) -> u64 {
    answer
        .rows
        .first()
        .and_then(|row| row.first()?.as_u64())
        .unwrap_or(0)
}

/// The Trino type a column is written as: Delta's `timestamp` is Trino's
/// `timestamp(3) with time zone`, the only zoned timestamp it writes.
fn trino_type(kind: ColumnType) -> String {
    match kind {
        ColumnType::Timestamp => "timestamp(3) with time zone".into(),
        other => other.sql("varchar"),
    }
}

/// Refuse, before any run, the models set to run on Trino that cannot: no
/// `[trino] url`, or SQL (the model's or its tests') with no translation
/// for Trino. Every problem at once.
pub fn check(
    models: &[GoldModel],
    settings: &super::GoldSettings,
    trino: &TrinoSettings,
) -> Result<()> {
    let mut problems = Vec::new();
    let on_trino: Vec<&GoldModel> = models
        .iter()
        .filter(|m| m.engine.unwrap_or(settings.engine) == GoldEngine::Trino)
        .collect();
    if !on_trino.is_empty() && trino.url.trim().is_empty() {
        problems.push(format!(
            "{} run on Trino ([gold] engine or their engine key), and [trino] url is empty: \
             name the coordinator, like http://trino:8080",
            on_trino
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut as_named = |id: &TableId| Relation::Table(format!("{}.{}", id.layer, id.name));
    for model in on_trino {
        if model.neighbours.is_some() {
            problems.push(format!(
                "{}: the [neighbours] step runs on soundlake's engine only: set \
                 engine = \"datafusion\" in it",
                model.sql_file.with_extension("toml").display()
            ));
        }
        if let Err(problem) = translate(&model.sql, &mut as_named) {
            problems.push(format!(
                "{}: cannot run on Trino: {problem}",
                model.sql_file.display()
            ));
        }
        let tests = declared_tests(model, Utc::now());
        let set_aside: Vec<&DataTest> = tests
            .iter()
            .filter(|t| t.on_failure == OnFailure::Quarantine)
            .collect();
        let mut sql: Vec<String> = tests.iter().map(|t| t.sql.clone()).collect();
        if !set_aside.is_empty() {
            sql.push(set_aside_sql(model, &set_aside).0);
        }
        for text in sql {
            if let Err(problem) = translate(&text, &mut as_named) {
                problems.push(format!(
                    "{}: a data test cannot run on Trino: {problem}",
                    model.sql_file.with_extension("toml").display()
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::config(
        "[gold] engine",
        problems.join("\n  "),
        "set [trino] url (or SOUNDLAKE__TRINO__URL); write each model named with what both \
         engines have, or set engine = \"datafusion\" in its .toml",
    ))
}
