//! The composition root: a deployment's definitions loaded and checked
//! (`Project`), and the landing store, lake and clock they run against
//! (`Deployment`), which hands every way of running a task (its own
//! command, a pipeline run, a backfill, the daemon) the one executor.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::bronze::Bronze;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::landing::SharedStore;
use crate::notify::Notifier;
use crate::orchestrator::run_id;
use crate::tasks::{TaskExecutor, TaskKind};

/// Every definition of the definitions folder, loaded and checked: the
/// layers' tables, then the pipelines expanded over them.
#[derive(Default)]
pub struct Project {
    pub bronze: Vec<crate::bronze::BronzeTable>,
    pub silver: Vec<crate::silver::SilverTable>,
    pub gold: Vec<crate::gold::GoldModel>,
    pub pipelines: Vec<crate::orchestrator::Pipeline>,
}

impl Project {
    /// Load everything; the error lists every folder's problems at once.
    pub fn load(settings: &Settings) -> Result<Project> {
        let dir = &settings.definitions.dir;
        let mut problems = Vec::new();
        let mut note = |e: Error| problems.push(e.to_string());
        let bronze = crate::bronze::load(&dir.join(crate::bronze::LAYER))
            .map_err(&mut note)
            .ok();
        let silver = bronze.as_ref().and_then(|b| {
            crate::silver::load(&dir.join(crate::silver::LAYER), b)
                .map_err(&mut note)
                .ok()
        });
        let known = crate::gold::known(
            bronze.as_deref().unwrap_or_default(),
            silver.as_deref().unwrap_or_default(),
        );
        let gold_dir = dir.join(crate::gold::LAYER);
        // No gold/ folder: a deployment that stops at silver.
        let gold = if gold_dir.exists() {
            crate::gold::load(&gold_dir, &known).map_err(&mut note).ok()
        } else {
            Some(Vec::new())
        };
        let engines_fit = gold.as_deref().is_none_or(|models| {
            crate::gold::check_engines(models, &settings.gold, &settings.trino)
                .map_err(&mut note)
                .is_ok()
        });
        let kinds = crate::tasks::kinds(
            bronze.as_deref().unwrap_or_default(),
            silver.as_deref().unwrap_or_default(),
            gold.as_deref().unwrap_or_default(),
            &known,
        );
        let pipelines = crate::orchestrator::load(&dir.join(crate::orchestrator::FOLDER), &kinds)
            .map_err(&mut note)
            .ok();
        match (bronze, silver, gold.filter(|_| engines_fit), pipelines) {
            (Some(bronze), Some(silver), Some(gold), Some(pipelines)) => Ok(Project {
                bronze,
                silver,
                gold,
                pipelines,
            }),
            _ => Err(Error::config(
                dir.display().to_string(),
                format!("the definitions have problems:\n{}", problems.join("\n")),
                "fix the files named above, then run `soundlake validate` again",
            )),
        }
    }

    /// Only the definitions up to `layer` (bronze; bronze and silver): what
    /// that layer's own command needs, so a problem in a later folder does
    /// not stop it.
    pub fn load_up_to(settings: &Settings, layer: TaskKind) -> Result<Project> {
        let dir = &settings.definitions.dir;
        let bronze = crate::bronze::load(&dir.join(crate::bronze::LAYER))?;
        let silver = match layer {
            TaskKind::Bronze => Vec::new(),
            _ => crate::silver::load(&dir.join(crate::silver::LAYER), &bronze)?,
        };
        Ok(Project {
            bronze,
            silver,
            ..Project::default()
        })
    }

    pub fn pipeline(&self, name: &str) -> Result<&crate::orchestrator::Pipeline> {
        self.pipelines
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.pipelines.iter().map(|p| p.name.as_str()).collect();
                Error::config(
                    "command line",
                    format!("there is no pipeline {name:?}"),
                    format!("use one of: {}", known.join(", ")),
                )
            })
    }
}

/// A deployment's landing store and lake, the lake checked on the way, and
/// the clock they run on: what every way of running a task runs against.
pub struct Deployment {
    pub settings: Settings,
    pub store: SharedStore,
    pub lake: Lake,
    pub clock: SharedClock,
    pub notifier: Notifier,
}

impl Deployment {
    pub async fn open(settings: &Settings) -> Result<Deployment> {
        let deployment = Deployment::open_for_crawl(settings).await?;
        deployment.lake.check().await?;
        Ok(deployment)
    }

    /// The crawl writes to the landing store alone: the lake is opened but
    /// not checked, so a lake that is down does not stop it.
    pub async fn open_for_crawl(settings: &Settings) -> Result<Deployment> {
        let clock = crate::clock::system();
        let store = crate::landing::open(&settings.landing.url, clock.clone()).await?;
        let lake = Lake::open(&settings.lake)?;
        Ok(Deployment {
            settings: settings.clone(),
            store,
            lake,
            clock,
            notifier: Notifier::new(&settings.notify)?,
        })
    }

    /// The one executor of every task kind, over `project`'s tables; bronze
    /// tables in `streamed` are consumed continuously elsewhere in this
    /// process.
    pub fn executor(&self, project: &Project, streamed: &BTreeSet<String>) -> Arc<TaskExecutor> {
        Arc::new(TaskExecutor {
            settings: self.settings.clone(),
            store: self.store.clone(),
            lake: self.lake.clone(),
            clock: self.clock.clone(),
            bronze: project.bronze.clone(),
            silver: project.silver.clone(),
            gold: project.gold.clone(),
            streamed: streamed.clone(),
            notifier: self.notifier.clone(),
        })
    }

    /// Under the daemon, every Kafka-fed bronze table a pipeline runs is
    /// consumed continuously, in micro-batches, until `stop`; a stream that
    /// fails (brokers away) starts again after a pause. Daemons on one
    /// state store and lake share each table's partitions through the
    /// consumer group. Returns the tables and the tasks streaming them.
    pub fn start_streams(
        &self,
        project: &Project,
        stop: &tokio::sync::watch::Receiver<bool>,
    ) -> (BTreeSet<String>, tokio::task::JoinSet<()>) {
        const RETRY: std::time::Duration = std::time::Duration::from_secs(30);
        let mut streamed = BTreeSet::new();
        let mut tasks = tokio::task::JoinSet::new();
        let scheduled = |name: &str| {
            let id = format!("{}.{name}", crate::bronze::LAYER);
            project.pipelines.iter().any(|p| p.dag.task(&id).is_some())
        };
        for def in &project.bronze {
            if !matches!(def.source, crate::bronze::BronzeSource::Kafka(_)) || !scheduled(&def.name)
            {
                continue;
            }
            streamed.insert(def.name.clone());
            let job = Bronze::new(self.store.clone(), self.lake.clone(), self.clock.clone())
                .with_settings(&self.settings.ingest, &self.settings.kafka);
            let (def, clock, mut stop) = (def.clone(), self.clock.clone(), stop.clone());
            tasks.spawn(async move {
                loop {
                    let id = run_id(&format!("stream-{}", def.name), clock.now());
                    match job.stream(&def, &id, stop.clone()).await {
                        Ok(report) => {
                            tracing::info!("{}", crate::bronze::render(&report));
                            break;
                        }
                        Err(e) => tracing::error!(
                            table = %def.name,
                            error = %e,
                            "the Kafka stream stopped; it starts again in {} s",
                            RETRY.as_secs()
                        ),
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY) => {}
                        _ = stop.wait_for(|stopped| *stopped) => break,
                    }
                }
            });
        }
        (streamed, tasks)
    }
}
