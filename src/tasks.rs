//! What each task kind does when a pipeline runs it: the bridge between the
//! orchestrator, which knows task ids and kinds, and the layers.

use serde_json::Value;

use crate::bronze::{Bronze, BronzeTable, Extract};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::gold::{Gold, GoldModel};
use crate::lake::Lake;
use crate::landing::SharedStore;
use crate::orchestrator::{Executor, RunOptions, Task};
use crate::silver::{Scope, Silver, SilverTable};
use crate::spotify::ApiError;

/// Runs crawl, bronze, silver and gold tasks against one deployment.
pub struct LayerTasks {
    pub settings: Settings,
    pub store: SharedStore,
    pub lake: Lake,
    pub clock: SharedClock,
    pub bronze: Vec<BronzeTable>,
    pub silver: Vec<SilverTable>,
    pub gold: Vec<GoldModel>,
    /// Bronze tables this process consumes continuously (the daemon's
    /// Kafka streams): their tasks report the table as the stream left it.
    pub streamed: std::collections::BTreeSet<String>,
}

/// The definition of `layer.table`, or an error saying the definitions
/// changed under the pipeline.
fn definition<'d, T>(
    defs: &'d [T],
    name_of: fn(&T) -> &str,
    layer: &str,
    table: &str,
) -> Result<&'d T> {
    defs.iter().find(|d| name_of(d) == table).ok_or_else(|| {
        Error::config(
            format!("{layer}.{table}"),
            format!("there is no {layer} definition {table:?}"),
            "run `soundlake validate`: the definitions changed since the pipeline was read",
        )
    })
}

impl LayerTasks {
    async fn crawl(&self, task: &Task, run_id: &str) -> Result<Value> {
        use crate::crawl::{Crawler, Outcome};

        let mut crawl = self.settings.crawl.clone();
        if let Some(n) = task
            .params
            .get("names_per_run")
            .and_then(toml::Value::as_integer)
        {
            crawl.names_per_run = u32::try_from(n).unwrap_or(0);
        }
        let names = crate::text::read_names(&crawl.artists_file)?;
        let client =
            crate::spotify::SpotifyClient::new(&self.settings.spotify, self.clock.clone())?;
        let crawler = Crawler::new(client, self.store.clone(), self.clock.clone(), crawl);
        let report = crawler.run(&names, run_id).await?;
        match report.outcome {
            // A long rate-limit wait ends this run cleanly; the next run resumes.
            Outcome::Paused { until, reason } => Err(ApiError::ComeBackAt { until, reason }.into()),
            _ => Ok(serde_json::to_value(&report).expect("reports serialize")),
        }
    }
}

#[async_trait::async_trait]
impl Executor for LayerTasks {
    async fn execute(&self, task: &Task, run_id: &str, options: &RunOptions) -> Result<Value> {
        let table = task.table.as_deref().unwrap_or_default();
        let report = match task.kind.as_str() {
            "crawl" => return self.crawl(task, run_id).await,
            crate::bronze::LAYER => {
                let def = definition(&self.bronze, |d| &d.name, &task.kind, table)?;
                let job = Bronze::new(self.store.clone(), self.lake.clone(), self.clock.clone())
                    .with_settings(&self.settings.ingest, &self.settings.kafka);
                if self.streamed.contains(table) {
                    let snapshot = job.table(def).snapshot().await?;
                    return Ok(serde_json::json!({
                        "table": def.name,
                        "mode": "streamed",
                        "version": snapshot.version,
                        "table_rows": snapshot.rows(),
                    }));
                }
                // A backfill task re-derives its interval; a run takes what is new.
                let extract = match task.interval {
                    Some(i) => Extract::Interval {
                        from: i.start,
                        to: i.end,
                    },
                    None => Extract::Incremental,
                };
                let report = job.run(def, extract, run_id).await?;
                let idle = report.rows_written == 0 && report.files_removed == 0;
                return Ok(with_nothing_to_do(&report, idle));
            }
            crate::silver::LAYER => {
                let def = definition(&self.silver, |d| &d.name, &task.kind, table)?;
                let source =
                    definition(&self.bronze, |d| &d.name, crate::bronze::LAYER, &def.source)?;
                let full = options.full_refresh
                    || task
                        .params
                        .get("full_refresh")
                        .and_then(toml::Value::as_bool)
                        == Some(true);
                // A backfill task rebuilds its interval's partitions.
                let scope = match task.interval {
                    _ if full => Scope::Full,
                    Some(i) => Scope::Interval {
                        from: i.start,
                        to: i.end,
                    },
                    None => Scope::New,
                };
                let job = Silver::new(self.store.clone(), self.lake.clone(), self.clock.clone());
                let report = job.run(def, source, scope, run_id).await?;
                let idle = report.versions_read == 0 && report.keys_changed == 0;
                return Ok(with_nothing_to_do(&report, idle));
            }
            crate::gold::LAYER => {
                let model = definition(&self.gold, |m| &m.name, &task.kind, table)?;
                let job = Gold::new(self.store.clone(), self.lake.clone(), self.clock.clone());
                serde_json::to_value(job.run(model, run_id).await?)
            }
            other => {
                return Err(Error::config(
                    task.id.clone(),
                    format!("no task kind {other:?}"),
                    "run `soundlake validate`",
                ));
            }
        };
        Ok(report.expect("reports serialize"))
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
