//! What each task kind does: the bridge between the orchestrator, which
//! knows task ids and the shape of each kind ([`kinds`]), and the layers.
//! Every way of running a task (its own command, a pipeline run, a
//! backfill, the daemon) runs it through one [`TaskExecutor`].

use std::collections::BTreeSet;

use serde_json::Value;

use crate::bronze::{Bronze, BronzeReport, BronzeTable, Extract};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::crawl::{CrawlReport, Crawler};
use crate::definitions::TableId;
use crate::error::{Error, Result};
use crate::gold::{Gold, GoldModel};
use crate::lake::Lake;
use crate::landing::SharedStore;
use crate::notify::{Event, Notice, Notifier};
use crate::orchestrator::{Executor, Kinds, RunOptions, Task};
use crate::progress::Progress;
use crate::silver::{Scope, Silver, SilverReport, SilverTable};
use crate::spotify::RateScope;

/// The kinds of task a pipeline holds, by their name in `pipelines/*.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Fetch from the Spotify API into the landing store: one task.
    Crawl,
    /// One task per table of each layer.
    Bronze,
    Silver,
    Gold,
    /// Delete the lake files no version within the retention needs: one
    /// task over every table.
    Vacuum,
    /// Apply `[retention]` to bronze's history: one task.
    Purge,
}

impl TaskKind {
    pub const ALL: [TaskKind; 6] = [
        TaskKind::Crawl,
        TaskKind::Bronze,
        TaskKind::Silver,
        TaskKind::Gold,
        TaskKind::Vacuum,
        TaskKind::Purge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Crawl => "crawl",
            TaskKind::Bronze => crate::bronze::LAYER,
            TaskKind::Silver => crate::silver::LAYER,
            TaskKind::Gold => crate::gold::LAYER,
            TaskKind::Vacuum => "vacuum",
            TaskKind::Purge => "purge",
        }
    }

    pub fn parse(name: &str) -> Option<TaskKind> {
        TaskKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The parameters a pipeline may give tasks of this kind, with their
    /// TOML type.
    fn params(self) -> Vec<(&'static str, &'static str)> {
        match self {
            TaskKind::Crawl => vec![("names_per_run", "integer")],
            TaskKind::Silver => vec![("full_refresh", "boolean")],
            TaskKind::Vacuum => vec![("retain_hours", "integer")],
            TaskKind::Purge => vec![("history_days", "integer")],
            TaskKind::Bronze | TaskKind::Gold => Vec::new(),
        }
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Every task kind registered for the orchestrator: the crawl as one task,
/// each layer's tables with the tasks each one reads.
pub fn kinds(
    bronze: &[BronzeTable],
    silver: &[SilverTable],
    gold: &[GoldModel],
    known: &crate::gold::Known,
) -> Kinds {
    let mut kinds = Kinds::default();
    for kind in TaskKind::ALL {
        kinds.params.insert(kind.name().into(), kind.params());
        let tables = match kind {
            TaskKind::Crawl | TaskKind::Vacuum | TaskKind::Purge => {
                kinds.single.insert(kind.name().into());
                continue;
            }
            TaskKind::Bronze => bronze
                .iter()
                .map(|b| (b.name.clone(), Vec::new()))
                .collect(),
            TaskKind::Silver => silver
                .iter()
                .map(|s| {
                    let source = TableId::new(crate::bronze::LAYER, &s.source);
                    (s.name.clone(), vec![source.to_string()])
                })
                .collect(),
            TaskKind::Gold => {
                kinds.rebuilt_whole.insert(kind.name().into());
                let checked = gold
                    .iter()
                    .map(|m| (m.name.clone(), crate::gold::referenced_tasks(m, known)))
                    .collect();
                kinds.checked.insert(kind.name().into(), checked);
                gold.iter()
                    .map(|m| (m.name.clone(), crate::gold::upstream_tasks(m, known)))
                    .collect()
            }
        };
        kinds.layers.insert(kind.name().into(), tables);
    }
    kinds
}

/// Runs every task kind against one deployment.
pub struct TaskExecutor {
    pub settings: Settings,
    pub store: SharedStore,
    pub lake: Lake,
    pub clock: SharedClock,
    pub bronze: Vec<BronzeTable>,
    pub silver: Vec<SilverTable>,
    pub gold: Vec<GoldModel>,
    /// Bronze tables this process consumes continuously (the daemon's
    /// Kafka streams): their tasks report the table as the stream left it.
    pub streamed: BTreeSet<String>,
    pub notifier: Notifier,
}

/// The definition of `table`, or an error saying the definitions changed
/// under the pipeline.
fn definition<'d, T>(defs: &'d [T], name_of: fn(&T) -> &str, table: &TableId) -> Result<&'d T> {
    defs.iter()
        .find(|d| name_of(d) == table.name)
        .ok_or_else(|| {
            Error::config(
                table.to_string(),
                format!("there is no {} definition {:?}", table.layer, table.name),
                "run `soundlake validate`: the definitions changed since the pipeline was read",
            )
        })
}

impl TaskExecutor {
    /// One crawl run over the names file, shown on `progress`; a long
    /// rate-limit wait ends it with [`Outcome::Paused`] and the frontier
    /// saved.
    pub async fn crawl(
        &self,
        names_per_run: Option<u32>,
        run_id: &str,
        progress: &Progress,
    ) -> Result<CrawlReport> {
        let mut crawl = self.settings.crawl.clone();
        if let Some(n) = names_per_run {
            crawl.names_per_run = n;
        }
        let names = crate::artist_names::read(&crawl.artists_file)?;
        let client = crate::spotify::SpotifyClient::new(
            &self.settings.spotify,
            self.clock.clone(),
            RateScope::Store(self.store.clone()),
        )?;
        let crawler = Crawler::new(client, self.store.clone(), self.clock.clone(), crawl)
            .with_progress(progress.clone());
        let report = crawler.run(&names, run_id).await?;
        if let Some(paused) = report.paused() {
            self.notify(
                Event::CrawlPaused,
                format!("the crawl stopped: {paused}"),
                run_id,
                "crawl",
            );
        }
        Ok(report)
    }

    /// Send a notice about task `task` of run `run_id`.
    fn notify(&self, event: Event, text: String, run_id: &str, task: &str) {
        let notice = Notice::new(event, text, self.clock.now()).task(task);
        self.notifier.send(Notice {
            run_id: Some(run_id.into()),
            ..notice
        });
    }

    /// Vacuum every table of the lake, keeping what versions of the last
    /// `hours` need.
    pub async fn vacuum(&self, hours: u64) -> Result<Vec<crate::lake::maintenance::Vacuumed>> {
        let retention = crate::lake::maintenance::retention(hours, "retain_hours")?;
        crate::lake::maintenance::vacuum(
            &self.lake,
            &crate::sql::LAYERS,
            &[],
            retention,
            self.clock.now(),
            false,
        )
        .await
    }

    fn bronze_job(&self) -> Bronze {
        Bronze::new(self.store.clone(), self.lake.clone(), self.clock.clone())
            .with_settings(&self.settings.ingest, &self.settings.kafka)
    }

    pub async fn bronze(
        &self,
        def: &BronzeTable,
        extract: Extract,
        run_id: &str,
    ) -> Result<BronzeReport> {
        self.bronze_job().run(def, extract, run_id).await
    }

    pub async fn silver(
        &self,
        def: &SilverTable,
        scope: Scope,
        run_id: &str,
    ) -> Result<SilverReport> {
        let source = definition(
            &self.bronze,
            |d| &d.name,
            &TableId::new(crate::bronze::LAYER, &def.source),
        )?;
        let report = Silver::new(self.store.clone(), self.lake.clone(), self.clock.clone())
            .run(def, source, scope, run_id)
            .await?;
        let task = format!("{}.{}", crate::silver::LAYER, def.name);
        let drift = &report.drift;
        // A table's first version adds every column: that is no drift.
        let had_columns = report.version.is_some_and(|v| v > 0);
        if had_columns && (!drift.columns_added.is_empty() || !drift.columns_widened.is_empty()) {
            let changes: Vec<String> = drift
                .columns_added
                .iter()
                .map(|c| format!("added {c}"))
                .chain(drift.columns_widened.iter().map(|c| format!("widened {c}")))
                .collect();
            let text = format!("{task}: the schema drifted: {}", changes.join("; "));
            self.notify(Event::SchemaDrift, text, run_id, &task);
        }
        if drift.quarantined > 0 {
            let text = format!(
                "{task}: {} versions quarantined (see {task}_quarantine)",
                drift.quarantined
            );
            self.notify(Event::Quarantined, text, run_id, &task);
        }
        Ok(report)
    }

    /// A pipeline's bronze task: what is new, or its backfill interval; a
    /// streamed table as the stream left it.
    async fn bronze_task(&self, table: &TableId, task: &Task, run_id: &str) -> Result<Value> {
        let def = definition(&self.bronze, |d| &d.name, table)?;
        if self.streamed.contains(&def.name) {
            let snapshot = self.bronze_job().table(def).snapshot().await?;
            return Ok(serde_json::json!({
                "table": def.name,
                "mode": "streamed",
                "version": snapshot.version,
                "table_rows": snapshot.rows(),
            }));
        }
        let extract = match task.interval {
            Some(i) => Extract::Interval {
                from: i.start,
                to: i.end,
            },
            None => Extract::Incremental,
        };
        let report = self.bronze(def, extract, run_id).await?;
        let idle = report.rows_written == 0 && report.files_removed == 0;
        Ok(with_nothing_to_do(&report, idle))
    }

    /// A pipeline's silver task: what is new, its backfill interval's
    /// partitions, or everything on a full refresh.
    async fn silver_task(
        &self,
        table: &TableId,
        task: &Task,
        run_id: &str,
        options: &RunOptions,
    ) -> Result<Value> {
        let def = definition(&self.silver, |d| &d.name, table)?;
        let full = options.full_refresh
            || task
                .params
                .get("full_refresh")
                .and_then(toml::Value::as_bool)
                == Some(true);
        let scope = match task.interval {
            _ if full => Scope::Full,
            Some(i) => Scope::Interval {
                from: i.start,
                to: i.end,
            },
            None => Scope::New,
        };
        let report = self.silver(def, scope, run_id).await?;
        let idle = report.versions_read == 0 && report.keys_changed == 0;
        Ok(with_nothing_to_do(&report, idle))
    }
}

#[async_trait::async_trait]
impl Executor for TaskExecutor {
    async fn execute(&self, task: &Task, run_id: &str, options: &RunOptions) -> Result<Value> {
        let kind = TaskKind::parse(&task.kind).ok_or_else(|| {
            Error::config(
                task.id.clone(),
                format!("no task kind {:?}", task.kind),
                "run `soundlake validate`",
            )
        })?;
        let table = || {
            task.table.as_ref().ok_or_else(|| {
                Error::config(
                    task.id.clone(),
                    format!("a {kind} task needs a table"),
                    "run `soundlake validate`",
                )
            })
        };
        match kind {
            TaskKind::Crawl => {
                let names_per_run = task.integer_param("names_per_run");
                let report = self.crawl(names_per_run, run_id, &options.progress).await?;
                // A long rate-limit wait ends this run cleanly; the next run resumes.
                match report.paused() {
                    Some(error) => Err(error),
                    None => Ok(serde_json::to_value(&report).expect("reports serialize")),
                }
            }
            TaskKind::Bronze => self.bronze_task(table()?, task, run_id).await,
            TaskKind::Silver => self.silver_task(table()?, task, run_id, options).await,
            TaskKind::Gold => {
                let model = definition(&self.gold, |m| &m.name, table()?)?;
                let job = Gold::configured(
                    (self.store.clone(), self.lake.clone(), self.clock.clone()),
                    &self.settings.gold,
                    (&self.settings.trino, &self.settings.lake),
                    std::slice::from_ref(model),
                )?;
                let referenced = options.gate.passed();
                let report = job
                    .run(model, run_id, options.full_refresh, referenced)
                    .await;
                let report = report.inspect_err(|e| {
                    if let Error::DataTests { .. } = e {
                        let text = format!("{e}: the published version stays as it was");
                        self.notify(Event::DataTestsFailed, text, run_id, &task.id);
                    }
                })?;
                if report.quarantined > 0 {
                    let text = format!(
                        "{}: {} rows quarantined (see gold.{})",
                        task.id,
                        report.quarantined,
                        crate::gold::quarantine_table(&model.name)
                    );
                    self.notify(Event::Quarantined, text, run_id, &task.id);
                }
                let idle = report.rebuilt == Some(crate::gold::Rebuilt::Days(Default::default()));
                Ok(with_nothing_to_do(&report, idle))
            }
            TaskKind::Vacuum => {
                let hours = task
                    .integer_param("retain_hours")
                    .unwrap_or(self.settings.lake.vacuum_retention_hours);
                let vacuumed = self.vacuum(hours).await?;
                Ok(serde_json::to_value(&vacuumed).expect("reports serialize"))
            }
            TaskKind::Purge => {
                let days = task
                    .integer_param("history_days")
                    .unwrap_or(self.settings.retention.history_days);
                let purged = crate::retention::purge_history(
                    &self.lake,
                    &self.bronze,
                    days,
                    self.clock.now(),
                    run_id,
                    false,
                )
                .await?;
                Ok(serde_json::to_value(&purged).expect("reports serialize"))
            }
        }
    }

    fn notifier(&self) -> Notifier {
        self.notifier.clone()
    }
}

/// A layer task's report with `nothing_to_do`: whether the run found no
/// input at all, which the orchestrator reports (a backfill interval in
/// which nothing was landed).
fn with_nothing_to_do(report: &impl serde::Serialize, idle: bool) -> Value {
    let mut value = serde_json::to_value(report).expect("reports serialize");
    value["nothing_to_do"] = Value::Bool(idle);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_by_their_pipeline_names() {
        for kind in TaskKind::ALL {
            assert_eq!(TaskKind::parse(kind.name()), Some(kind));
            let named = serde_json::to_value(kind).unwrap();
            assert_eq!(named, kind.name(), "serde and pipelines agree");
        }
        assert_eq!(TaskKind::parse("platinum"), None);
    }

    #[test]
    fn the_registry_gives_each_kind_its_shape() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let bronze = crate::bronze::load(&dir.join("bronze")).unwrap();
        let silver = crate::silver::load(&dir.join("silver"), &bronze).unwrap();
        let known = crate::gold::known(&bronze, &silver);
        let gold = crate::gold::load(&dir.join("gold"), &known).unwrap();
        let kinds = kinds(&bronze, &silver, &gold, &known);
        assert_eq!(
            kinds.single,
            [
                "crawl".to_string(),
                "purge".to_string(),
                "vacuum".to_string()
            ]
            .into()
        );
        assert_eq!(kinds.params["vacuum"], [("retain_hours", "integer")]);
        assert_eq!(kinds.params["crawl"], [("names_per_run", "integer")]);
        assert_eq!(kinds.params["silver"], [("full_refresh", "boolean")]);
        assert_eq!(kinds.layers["bronze"].len(), bronze.len());
        assert_eq!(kinds.layers["silver"]["tracks"], ["bronze.tracks"]);
        assert!(kinds.layers["gold"]["dim_track"].contains(&"silver.tracks".to_string()));
        assert_eq!(kinds.rebuilt_whole, ["gold".to_string()].into());
    }
}
