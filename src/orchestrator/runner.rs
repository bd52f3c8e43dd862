//! One run of a pipeline: the selected tasks in dependency order, up to the
//! pipeline's concurrency, each with its retries and timeout, every attempt
//! recorded in the state store. What a task does is the executor's
//! business; the runner only knows ids, kinds and outcomes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument;

use super::pipeline::{Pipeline, Task};
use super::recorded::{RecordedRun, running};
use crate::clock::SharedClock;
use crate::error::Result;
use crate::landing::{SharedStore, lease};
use crate::notify::{Event, Notice, Notifier};
use crate::progress::{Extras, Note, Progress, Tally, Unit};

/// How long a run holds its pipeline's lock before it must renew it; the
/// runner renews it as tasks finish, at most every quarter of it.
const LOCK_LEASE: TimeDelta = TimeDelta::hours(1);

/// Runs tasks: the layers behind the orchestrator.
#[async_trait::async_trait]
pub trait Executor: Send + Sync {
    /// Run one attempt of `task`; the value is the task's report.
    async fn execute(&self, task: &Task, run_id: &str, options: &RunOptions) -> Result<Value>;

    /// Where the runs of these tasks send their notifications.
    fn notifier(&self) -> Notifier {
        Notifier::default()
    }
}

/// What a run passes to every task, and how it stops.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Rebuild layer tables from scratch.
    pub full_refresh: bool,
    /// Turns true when the run must stop (SIGINT, SIGTERM): no new task
    /// starts, running ones get `grace` to finish.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
    pub grace: TimeDelta,
    /// Where a run shows its tasks done (nowhere, by default).
    pub progress: Progress,
    /// What the run's bar says besides its tasks (a backfill's intervals).
    pub note: Note,
    /// A count of rows written that the run's bar shows with its rate
    /// (`run` and `backfill` pass the lake's, which every data file adds
    /// to as it is written).
    pub rows: Tally,
    /// What the task waits for before it publishes (set by the runner for
    /// each task; nothing, by default).
    pub gate: Gate,
}

/// The tasks of a run that a task started alongside and must see succeed
/// before it publishes (see [`Pipeline::gated`]), and the run's outcomes
/// so far.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    upstream: Vec<String>,
    outcomes: Option<tokio::sync::watch::Receiver<BTreeMap<String, RunStatus>>>,
}

impl Gate {
    /// Resolves once every upstream task has ended: `Ok` when all
    /// succeeded, and an error naming those that did not otherwise.
    pub async fn passed(&self) -> Result<()> {
        let Some(outcomes) = &self.outcomes else {
            return Ok(());
        };
        let mut outcomes = outcomes.clone();
        let ended =
            |done: &BTreeMap<String, RunStatus>| self.upstream.iter().all(|u| done.contains_key(u));
        // The run outlives its tasks, so it cannot drop the sender first.
        let done = outcomes
            .wait_for(ended)
            .await
            .expect("the run outlives its tasks");
        let failed: Vec<&str> = self
            .upstream
            .iter()
            .filter(|u| done[*u] != RunStatus::Succeeded)
            .map(String::as_str)
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(crate::error::Error::UpstreamFailed {
                tasks: failed.join(", "),
            })
        }
    }
}

/// How a run, a task attempt, a backfill interval or a task after a
/// backfill's range stands. Serialized (and recorded) in snake case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    /// An upstream task did not succeed, or an interval before it failed.
    Skipped,
    /// The run was stopped.
    Cancelled,
    /// A previous backfill finished it.
    DoneBefore,
    /// Succeeded with every task reporting `"nothing_to_do": true`.
    NothingToDo,
    /// A crawl that stopped on a long rate-limit or quota wait.
    Paused,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Skipped => "skipped",
            RunStatus::Cancelled => "cancelled",
            RunStatus::DoneBefore => "done_before",
            RunStatus::NothingToDo => "nothing_to_do",
            RunStatus::Paused => "paused",
        }
    }
}

/// A status read back from a run record (the store keeps its name).
impl PartialEq<&str> for RunStatus {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The outcome of one task in a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskOutcome {
    pub id: String,
    /// `Succeeded`, `Failed`, `TimedOut`, `Skipped` or `Cancelled`.
    pub status: RunStatus,
    pub attempts: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub report: Value,
}

/// What one run of a pipeline did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub pipeline: String,
    pub run_id: String,
    /// `Succeeded` only when every selected task succeeded; `Cancelled`
    /// when the run was stopped.
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub tasks: Vec<TaskOutcome>,
}

impl RunReport {
    /// The error of a run that did not succeed: the tasks that did not,
    /// and how many were skipped after them.
    pub fn failure(&self) -> crate::error::Error {
        let mut problems: Vec<String> = self
            .tasks
            .iter()
            .filter(|t| !matches!(t.status, RunStatus::Succeeded | RunStatus::Skipped))
            .map(|t| format!("{} {}", t.id, t.status))
            .collect();
        let skipped = self
            .tasks
            .iter()
            .filter(|t| t.status == RunStatus::Skipped)
            .count();
        if skipped > 0 {
            problems.push(format!("{skipped} tasks after them skipped"));
        }
        crate::error::Error::RunFailed {
            pipeline: self.pipeline.clone(),
            problems: problems.join("; "),
        }
    }

    pub fn succeeded(&self) -> bool {
        self.status == RunStatus::Succeeded
    }
}

/// Runs pipelines against one state store.
#[derive(Clone)]
pub struct Runner {
    store: SharedStore,
    clock: SharedClock,
    executor: Arc<dyn Executor>,
}

/// The task id of a pipeline run's record in the store.
pub fn run_task(pipeline: &str) -> String {
    format!("pipeline:{pipeline}")
}

impl Runner {
    pub fn new(store: SharedStore, clock: SharedClock, executor: Arc<dyn Executor>) -> Runner {
        Runner {
            store,
            clock,
            executor,
        }
    }

    /// Run the `selected` tasks of `pipeline` once. Refuses to start while
    /// another live run of the pipeline holds its lock; a run record left
    /// `running` by a run that died is marked failed first.
    pub async fn run(
        &self,
        pipeline: &Pipeline,
        selected: &BTreeSet<String>,
        options: &RunOptions,
        run_id: &str,
    ) -> Result<RunReport> {
        let lock = format!("pipeline.{}", pipeline.name);
        lease::while_held(
            &self.store,
            &lock,
            run_id,
            self.clock.now(),
            LOCK_LEASE,
            async |holder| {
                self.run_locked(pipeline, selected, options, run_id, &lock, holder)
                    .await
            },
        )
        .await
    }

    async fn run_locked(
        &self,
        pipeline: &Pipeline,
        selected: &BTreeSet<String>,
        options: &RunOptions,
        run_id: &str,
        lock: &str,
        holder: &str,
    ) -> Result<RunReport> {
        self.fail_abandoned(&pipeline.name).await?;
        let started_at = self.clock.now();
        let task = run_task(&pipeline.name);
        let record =
            RecordedRun::start_as(&self.store, &self.clock, run_id, &task, started_at).await?;

        let mut frontier = Frontier::new(pipeline, selected);
        let (outcomes, outcomes_seen) = tokio::sync::watch::channel(BTreeMap::new());
        let mut running = FuturesUnordered::new();
        let bar = options.progress.bar_with(
            &format!("run {}", pipeline.name),
            Some(selected.len() as u64),
            Unit::Items("tasks"),
            Extras {
                note: options.note.clone(),
                tally: Some(("rows", options.rows.clone())),
            },
        );
        let mut stop = options.stop.clone();
        // Once asked to stop: no new task starts, and running ones have until
        // this deadline to finish.
        let mut grace_ends: Option<DateTime<Utc>> = None;
        // The lock was taken as the run started; it is renewed as tasks
        // finish, a quarter lease apart.
        let mut renewed_at = started_at;
        loop {
            if grace_ends.is_none() && stop.as_ref().is_some_and(|s| *s.borrow()) {
                grace_ends = Some(self.clock.now() + options.grace);
                frontier.cancel_unstarted();
            }
            while running.len() < pipeline.max_concurrent_tasks {
                let Some(id) = frontier.start_next() else {
                    break;
                };
                let task = pipeline.dag.task(id).expect("selected tasks exist");
                // Every log line of the task carries its run and task ids.
                let span = tracing::info_span!(
                    "task",
                    pipeline = %pipeline.name,
                    task = %task.id,
                    run = %run_id
                );
                let options = RunOptions {
                    gate: Gate {
                        upstream: frontier.gating(id),
                        outcomes: Some(outcomes_seen.clone()),
                    },
                    ..options.clone()
                };
                running.push(
                    async move { self.attempts(pipeline, task, &options, run_id).await }
                        .instrument(span),
                );
            }
            if running.is_empty() {
                break;
            }
            let grace_left =
                grace_ends.map(|end| (end - self.clock.now()).to_std().unwrap_or_default());
            tokio::select! {
                Some(outcome) = running.next() => {
                    let now = self.clock.now();
                    if now - renewed_at >= LOCK_LEASE / 4 {
                        lease::hold(&self.store, lock, holder, now, LOCK_LEASE).await?;
                        renewed_at = now;
                    }
                    bar.inc(1);
                    bar.set_message(format!("{} {}", outcome.id, outcome.status));
                    outcomes.send_modify(|seen| {
                        seen.insert(outcome.id.clone(), outcome.status);
                    });
                    frontier.finished(outcome);
                }
                () = stop_requested(&mut stop), if grace_ends.is_none() => {}
                () = self.clock.sleep(grace_left.unwrap_or_default()), if grace_left.is_some() => {
                    frontier.cancel_running();
                    break;
                }
            }
        }
        drop(running);
        bar.finish();
        if grace_ends.is_some() {
            self.fail_running(&pipeline.name, "cancelled: the run was stopped")
                .await?;
        }

        let tasks: Vec<TaskOutcome> = frontier.outcomes.into_values().collect();
        let status = if grace_ends.is_some() {
            RunStatus::Cancelled
        } else if tasks.iter().all(|t| t.status == RunStatus::Succeeded) {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        let report = RunReport {
            pipeline: pipeline.name.clone(),
            run_id: run_id.into(),
            status,
            started_at,
            finished_at: self.clock.now(),
            tasks,
        };
        record
            .finish_at(report.finished_at, status, &report)
            .await?;
        if status == RunStatus::Failed {
            self.executor.notifier().send(
                Notice::new(
                    Event::RunFailed,
                    report.failure().to_string(),
                    report.finished_at,
                )
                .run(&pipeline.name, run_id),
            );
        }
        Ok(report)
    }

    /// Every attempt of one task: retries with exponential backoff, each
    /// attempt bounded by the task's timeout and recorded on its own.
    async fn attempts(
        &self,
        pipeline: &Pipeline,
        task: &Task,
        options: &RunOptions,
        run_id: &str,
    ) -> TaskOutcome {
        let started_at = self.clock.now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let attempt_id = format!("{run_id}/{}#{attempt}", task.id);
            let attempt_of = format!("{}/{}", pipeline.name, task.id);
            let mut record = running(&attempt_id, &attempt_of, self.clock.now());
            // A store that cannot record is a failed attempt like any other.
            let result = match self.store.put_run(&record).await {
                Ok(()) => self.attempt(task, &attempt_id, options).await,
                Err(e) => Err(Attempt::Failed(e.to_string(), true)),
            };
            let (status, report, error, retryable) = match result {
                Ok(report) => (RunStatus::Succeeded, report, None, false),
                Err(Attempt::TimedOut(after)) => (
                    RunStatus::TimedOut,
                    Value::Null,
                    Some(format!("timed out after {after} s")),
                    true,
                ),
                Err(Attempt::Failed(e, retryable)) => {
                    (RunStatus::Failed, Value::Null, Some(e), retryable)
                }
            };
            record.finished_at = Some(self.clock.now());
            record.status = status.as_str().into();
            record.report = match &error {
                Some(e) => serde_json::json!({ "error": e }),
                None => report.clone(),
            };
            let _ = self.store.put_run(&record).await;
            tracing::info!(
                attempt,
                status = status.as_str(),
                error = error.as_deref().unwrap_or(""),
                "task attempt ended"
            );
            if !retryable || attempt > task.retries {
                return TaskOutcome {
                    id: task.id.clone(),
                    status,
                    attempts: attempt,
                    started_at: Some(started_at),
                    finished_at: record.finished_at,
                    error,
                    report,
                };
            }
            tracing::warn!(task = %task.id, attempt, error = error.as_deref().unwrap_or(""), "task attempt failed; retrying");
            let backoff = task
                .retry_backoff_secs
                .saturating_mul(1 << (attempt - 1).min(16));
            self.clock.sleep(Duration::from_secs(backoff)).await;
        }
    }

    async fn attempt(
        &self,
        task: &Task,
        attempt_id: &str,
        options: &RunOptions,
    ) -> std::result::Result<Value, Attempt> {
        let failed = |e: crate::error::Error| Attempt::Failed(e.to_string(), !e.is_permanent());
        let work = self.executor.execute(task, attempt_id, options);
        let Some(limit) = task.timeout_secs else {
            return work.await.map_err(failed);
        };
        tokio::select! {
            result = work => result.map_err(failed),
            () = self.clock.sleep(Duration::from_secs(limit)) => Err(Attempt::TimedOut(limit)),
        }
    }

    /// Runs of this pipeline still marked `running` belong to a process
    /// that died (this run holds the lock now): mark them failed.
    async fn fail_abandoned(&self, pipeline: &str) -> Result<()> {
        self.fail_running(pipeline, "abandoned: the process running it died")
            .await
    }

    /// Mark this pipeline's run and attempt records still `running` failed.
    async fn fail_running(&self, pipeline: &str, why: &str) -> Result<()> {
        let task = run_task(pipeline);
        for mut run in self.store.runs(1000).await? {
            let ours = run.task == task || run.task.starts_with(&format!("{pipeline}/"));
            if ours && run.status == RunStatus::Running.as_str() {
                run.status = RunStatus::Failed.as_str().into();
                run.finished_at = Some(self.clock.now());
                run.report = serde_json::json!({ "error": why });
                self.store.put_run(&run).await?;
            }
        }
        Ok(())
    }
}

/// Where a run is in its DAG: the tasks waiting on others, ready, running
/// and done.
struct Frontier<'p> {
    pipeline: &'p Pipeline,
    /// Tasks not started yet, each with how many of its selected upstream
    /// tasks have not succeeded (or, over a gated edge, not started); at
    /// zero a task is ready. Kept up to date as tasks start and finish, so
    /// a run costs time linear in its tasks and edges.
    ///
    /// Starting a task only once every task it waits on has started keeps
    /// a full run from deadlocking: a task waits only on running tasks
    /// earlier in the DAG, so the earliest running task waits on none.
    blocked: BTreeMap<&'p str, usize>,
    ready: BTreeSet<&'p str>,
    in_flight: BTreeSet<&'p str>,
    outcomes: BTreeMap<String, TaskOutcome>,
}

impl<'p> Frontier<'p> {
    fn new(pipeline: &'p Pipeline, selected: &'p BTreeSet<String>) -> Frontier<'p> {
        let blocked: BTreeMap<&str, usize> = selected
            .iter()
            .map(|id| {
                let ups = pipeline.dag.upstream(id);
                (
                    id.as_str(),
                    ups.iter().filter(|u| selected.contains(**u)).count(),
                )
            })
            .collect();
        let ready = blocked
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(id, _)| *id)
            .collect();
        Frontier {
            pipeline,
            blocked,
            ready,
            in_flight: BTreeSet::new(),
            outcomes: BTreeMap::new(),
        }
    }

    /// A ready task, now counted as running: what it gates may start.
    fn start_next(&mut self) -> Option<&'p str> {
        let id = self.ready.pop_first()?;
        self.blocked.remove(id);
        self.in_flight.insert(id);
        let pipeline = self.pipeline;
        for down in pipeline.dag.downstream(id) {
            if self.gates(id, down) {
                self.unblock(down);
            }
        }
        Some(id)
    }

    /// The selected upstream tasks that hold back only `id`'s publishing.
    fn gating(&self, id: &str) -> Vec<String> {
        self.pipeline
            .dag
            .upstream(id)
            .into_iter()
            .filter(|up| self.outcomes.contains_key(*up) || self.in_flight.contains(up))
            .filter(|up| self.gates(up, id))
            .map(str::to_string)
            .collect()
    }

    fn gates(&self, up: &str, down: &str) -> bool {
        self.pipeline
            .gated
            .contains(&(up.to_string(), down.to_string()))
    }

    /// One more of `id`'s upstream edges is satisfied.
    fn unblock(&mut self, id: &'p str) {
        if let Some(n) = self.blocked.get_mut(id) {
            *n -= 1;
            if *n == 0 {
                self.ready.insert(id);
            }
        }
    }

    /// A task ended: what waited on it becomes ready when it succeeded,
    /// and is skipped when it did not.
    fn finished(&mut self, outcome: TaskOutcome) {
        let dag = &self.pipeline.dag;
        self.in_flight.remove(outcome.id.as_str());
        if outcome.status == RunStatus::Succeeded {
            for down in dag.downstream(&outcome.id) {
                if !self.gates(&outcome.id, down) {
                    self.unblock(down);
                }
            }
        } else {
            for down in dag.descendants(&outcome.id) {
                if let Some((id, _)) = self.blocked.remove_entry(down.as_str()) {
                    self.ready.remove(id);
                    self.outcomes.insert(down, skipped(id));
                }
            }
        }
        self.outcomes.insert(outcome.id.clone(), outcome);
    }

    /// The run was stopped: nothing else starts.
    fn cancel_unstarted(&mut self) {
        self.ready.clear();
        for id in std::mem::take(&mut self.blocked).into_keys() {
            self.outcomes.insert(
                id.to_string(),
                cancelled(id, "the run was stopped before it started"),
            );
        }
    }

    /// The grace period ended with these tasks still running.
    fn cancel_running(&mut self) {
        for id in std::mem::take(&mut self.in_flight) {
            self.outcomes.insert(
                id.to_string(),
                cancelled(
                    id,
                    "the run was stopped and the task did not finish within the grace period",
                ),
            );
        }
    }
}

enum Attempt {
    /// The error, and whether retrying could help.
    Failed(String, bool),
    TimedOut(u64),
}

/// Resolves when `stop` turns true; never when there is none.
async fn stop_requested(stop: &mut Option<tokio::sync::watch::Receiver<bool>>) {
    match stop {
        Some(stop) => {
            let _ = stop.wait_for(|s| *s).await;
        }
        None => std::future::pending().await,
    }
}

fn cancelled(id: &str, why: &str) -> TaskOutcome {
    TaskOutcome {
        id: id.into(),
        status: RunStatus::Cancelled,
        attempts: 0,
        started_at: None,
        finished_at: None,
        error: Some(why.into()),
        report: Value::Null,
    }
}

fn skipped(id: &str) -> TaskOutcome {
    TaskOutcome {
        id: id.into(),
        status: RunStatus::Skipped,
        attempts: 0,
        started_at: None,
        finished_at: None,
        error: Some("an upstream task did not succeed".into()),
        report: Value::Null,
    }
}

/// The report as a few lines of text: the run, then each task.
pub fn render(r: &RunReport) -> String {
    let seconds = |o: &TaskOutcome| match (o.started_at, o.finished_at) {
        (Some(s), Some(f)) => format!("{:.1} s", (f - s).num_milliseconds() as f64 / 1000.0),
        _ => String::new(),
    };
    let mut out = format!(
        "{} run {}: {} ({} tasks)\n",
        r.pipeline,
        r.run_id,
        r.status,
        r.tasks.len()
    );
    for t in &r.tasks {
        out.push_str(&format!(
            "  {:<28} {:<10} {} attempt{} {}\n",
            t.id,
            t.status,
            t.attempts,
            if t.attempts == 1 { "" } else { "s" },
            seconds(t)
        ));
        for line in t.error.iter().flat_map(|e| e.lines()) {
            out.push_str(&format!("      {}\n", line.trim_start()));
        }
        for warning in warnings(&t.report) {
            out.push_str(&format!("      warning: {warning}\n"));
        }
    }
    out
}

/// The warnings a task's report lists (`"warnings": ["…"]`): what did not
/// stop the task but should be seen.
pub fn warnings(report: &Value) -> impl Iterator<Item = &str> {
    report["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// A run id: the task, the start time and a random suffix, as the
/// commands and the daemon name the runs they start.
pub fn run_id(task: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let mut rng = crate::rng::Rng::seeded(
        now.timestamp_nanos_opt().unwrap_or_default() as u64 ^ u64::from(std::process::id()),
    );
    format!(
        "{task}-{}-{:04x}",
        now.format("%Y%m%dT%H%M%SZ"),
        rng.below(0x10000)
    )
}

/// Recorded runs as a table, newest first, with how many warnings each
/// one's report (and its tasks' reports) carry.
pub fn render_runs(records: &[crate::landing::RunRecord]) -> String {
    let mut out = format!(
        "{:<52} {:<32} {:<10} {:<21} {:>9}\n",
        "run", "task", "status", "started", "seconds"
    );
    for r in records {
        let seconds = r
            .finished_at
            .map(|f| {
                format!(
                    "{:.1}",
                    (f - r.started_at).num_milliseconds() as f64 / 1000.0
                )
            })
            .unwrap_or_default();
        // A pipeline run's report holds its tasks' reports.
        let tasks = r.report["tasks"].as_array().into_iter().flatten();
        let warned = warnings(&r.report).count()
            + tasks.map(|t| warnings(&t["report"]).count()).sum::<usize>();
        let note = match warned {
            0 => String::new(),
            1 => "  1 warning".into(),
            n => format!("  {n} warnings"),
        };
        out += &format!(
            "{:<52} {:<32} {:<10} {:<21} {:>9}{note}\n",
            r.id,
            r.task,
            r.status,
            r.started_at.format("%Y-%m-%dT%H:%M:%SZ"),
            seconds
        );
    }
    out
}
