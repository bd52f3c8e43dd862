//! Backfills: a pipeline's layer tasks once per schedule interval of a
//! range. Bronze re-derives each interval from what was landed (the crawl
//! is not re-run); the layers after it rebuild what that touched.
//!
//! A backfill is one DAG run by the ordinary [`Runner`]: task
//! `<interval>/<task>` for every interval and layer task, with the
//! pipeline's dependencies inside an interval, and each task after the
//! same task of the interval before and the tasks that read its table
//! there, so one table is written by one interval at a time, oldest first,
//! never under a reader, while different tables and intervals overlap up
//! to `--parallel`. Each task that succeeds is marked done in the
//! state store, so a backfill stopped by a crash or Ctrl-C resumes where it
//! was: done tasks are not run again unless forced.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};

use super::dag::Dag;
use super::pipeline::{Pipeline, Task};
use super::runner::{Executor, RunOptions, RunReport, RunStatus, Runner};
use super::schedule::{Interval, bound};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::landing::SharedStore;
use crate::notify::{Event, Notice, Notifier};
use crate::progress::Note;

/// A pipeline's backfill over some intervals, as a DAG.
#[derive(Debug, Clone)]
pub struct Backfill {
    /// The pipeline the backfill runs, named as it is (so it shares that
    /// pipeline's lock), with tasks `<interval>/<task>`.
    pub plan: Pipeline,
    pub intervals: Vec<Interval>,
}

/// What a backfill did to one interval.
#[derive(Debug, Clone, Serialize)]
pub struct IntervalOutcome {
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
    /// `DoneBefore`, `Succeeded`, `NothingToDo` (nothing was landed in
    /// it), `Failed`, `Skipped` (it waits for a failed interval before it)
    /// or `Cancelled`.
    pub status: RunStatus,
}

/// A task a backfill runs once, after its intervals.
#[derive(Debug, Clone, Serialize)]
pub struct AfterRange {
    pub task: String,
    /// As a task's status, or `DoneBefore`.
    pub status: RunStatus,
}

/// What one backfill command did.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillReport {
    pub pipeline: String,
    pub run_id: String,
    /// `Succeeded` when every interval is done.
    pub status: RunStatus,
    pub intervals: Vec<IntervalOutcome>,
    /// The tasks that rebuild their table whole (gold models), run once
    /// after the last interval.
    pub after_range: Vec<AfterRange>,
    /// The run of the tasks that were not done yet; none when all were.
    pub run: Option<RunReport>,
}

impl BackfillReport {
    pub fn succeeded(&self) -> bool {
        self.status == RunStatus::Succeeded
    }

    /// One sentence: the pipeline, its status and how its intervals ended.
    pub fn summary(&self) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for interval in &self.intervals {
            *counts.entry(interval.status.as_str()).or_default() += 1;
        }
        let counts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        format!(
            "backfill of {} {}: {} intervals ({})",
            self.pipeline,
            self.status.as_str(),
            self.intervals.len(),
            counts.join(", ")
        )
    }
}

/// The name of a range of intervals in task ids and state keys: a
/// backfill over another range runs its whole-table tasks again.
fn range_key(first: &Interval, last: &Interval) -> String {
    format!("{}..{}", first.key(), last.key())
}

/// The state key marking a backfill task of `pipeline` done.
fn done_key(pipeline: &str, task: &str) -> String {
    format!("backfill/{pipeline}/{task}")
}

/// More intervals than this in one backfill is almost surely a mistake
/// (a per-minute schedule over a year); split the range instead.
const MAX_INTERVALS: usize = 10_000;

/// What a dry run of a backfill would do: per interval, how many of its
/// tasks are left; then the tasks run once over the range.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    pub pipeline: String,
    pub tasks_per_interval: usize,
    pub parallel: usize,
    /// `(interval, tasks left)`: 0 when a previous backfill finished it.
    pub intervals: Vec<(Interval, usize)>,
    pub after_range: Vec<String>,
}

impl Backfill {
    /// The plan over the range `from` .. `to` as a user gives it (dates in
    /// the pipeline's time zone, or RFC 3339 times), refused with the
    /// argument to change when it is empty, huge or has nothing to run.
    pub fn for_range(
        pipeline: &Pipeline,
        from: &str,
        to: &str,
        parallel: usize,
    ) -> Result<Backfill> {
        let zone = pipeline.schedule.zone();
        let start = bound(from, zone, false)
            .map_err(|p| Error::config("--from", p, "give a date like 2026-11-01"))?;
        let end = bound(to, zone, true)
            .map_err(|p| Error::config("--to", p, "give a date like 2026-11-07"))?;
        if start >= end {
            return Err(Error::config(
                "--from/--to",
                format!("the range {from} .. {end} is empty"),
                "give a --to later than --from",
            ));
        }
        if parallel == 0 {
            return Err(Error::config(
                "--parallel",
                "0 tasks at once would never finish",
                "give --parallel 1 or more",
            ));
        }
        let intervals = pipeline.schedule.intervals(start, end);
        if intervals.len() > MAX_INTERVALS {
            return Err(Error::config(
                "--from/--to",
                format!(
                    "the range holds {} intervals of schedule {:?}, more than {MAX_INTERVALS}",
                    intervals.len(),
                    pipeline.schedule.expression()
                ),
                "split the range into several backfills",
            ));
        }
        let plan = Backfill::plan(pipeline, intervals, parallel);
        if plan.plan.dag.is_empty() {
            return Err(Error::config(
                pipeline.file.display().to_string(),
                "the pipeline has no layer tasks to backfill",
                "add a [tasks.bronze] or [tasks.silver] group",
            ));
        }
        Ok(plan)
    }

    /// What [`Backfill::run`] would run, without running it.
    pub async fn dry_run(&self, store: &SharedStore, force: bool) -> Result<DryRun> {
        let done = if force {
            BTreeSet::new()
        } else {
            self.done(store).await?
        };
        let after_range: Vec<String> = self
            .after_range()
            .into_iter()
            .map(|(_, task)| task.to_string())
            .collect();
        let per_interval = (self.plan.dag.len() - after_range.len()) / self.intervals.len().max(1);
        let intervals = self
            .intervals
            .iter()
            .map(|interval| {
                let prefix = format!("{}/", interval.key());
                let left = self
                    .plan
                    .dag
                    .ids()
                    .filter(|id| id.starts_with(&prefix) && !done.contains(*id))
                    .count();
                (*interval, left)
            })
            .collect();
        Ok(DryRun {
            pipeline: self.plan.name.clone(),
            tasks_per_interval: per_interval,
            parallel: self.plan.max_concurrent_tasks,
            intervals,
            after_range,
        })
    }

    /// The plan for `intervals`: per interval, the pipeline's layer tasks
    /// (tasks that fetch are left out) with their dependencies; then, once,
    /// the tasks that rebuild their table whole, after the last interval,
    /// so they and their data tests see the tables as the range leaves
    /// them, not an intermediate; at most `parallel` tasks at once.
    pub fn plan(pipeline: &Pipeline, intervals: Vec<Interval>, parallel: usize) -> Backfill {
        let (whole, per_interval): (Vec<&Task>, Vec<&Task>) = pipeline
            .dag
            .ids()
            .filter_map(|id| pipeline.dag.task(id))
            .filter(|t| t.is_layer())
            .partition(|t| t.rebuilds_whole);
        let in_intervals = |id: &str| per_interval.iter().any(|t| t.id == id);
        let mut tasks = BTreeMap::new();
        // Each edge, and whether it gates only publishing: the copies of a
        // pipeline's edge do what it does.
        let mut edges = Vec::new();
        let gates = |up: &str, task: &str| pipeline.gated.contains(&(up.into(), task.into()));
        for (i, interval) in intervals.iter().enumerate() {
            let id = |task: &str| format!("{}/{task}", interval.key());
            for task in &per_interval {
                let mut copy = (*task).clone();
                copy.id = id(&task.id);
                copy.interval = Some(*interval);
                tasks.insert(copy.id.clone(), copy);
                for up in pipeline.dag.upstream(&task.id) {
                    if in_intervals(up) {
                        edges.push(((id(up), id(&task.id)), gates(up, &task.id)));
                    }
                }
                // After the same task of the interval before, and after
                // whatever read that task's table there: a table is not
                // rewritten under a reader.
                if let Some(before) = i.checked_sub(1).map(|b| intervals[b]) {
                    let readers = pipeline.dag.descendants(&task.id);
                    for prior in readers.iter().chain([&task.id]) {
                        if in_intervals(prior) {
                            edges
                                .push(((format!("{}/{prior}", before.key()), id(&task.id)), false));
                        }
                    }
                }
            }
        }
        if let (Some(first), Some(last)) = (intervals.first(), intervals.last()) {
            let range = range_key(first, last);
            for task in &whole {
                let mut copy = (*task).clone();
                copy.id = format!("{range}/{}", task.id);
                tasks.insert(copy.id.clone(), copy);
                for up in pipeline.dag.upstream(&task.id) {
                    if in_intervals(up) {
                        let edge = (
                            format!("{}/{up}", last.key()),
                            format!("{range}/{}", task.id),
                        );
                        edges.push((edge, gates(up, &task.id)));
                    } else if whole.iter().any(|t| t.id == up) {
                        let edge = (format!("{range}/{up}"), format!("{range}/{}", task.id));
                        edges.push((edge, gates(up, &task.id)));
                    }
                }
            }
        }
        let gated = edges
            .iter()
            .filter(|(_, gates)| *gates)
            .map(|(edge, _)| edge.clone())
            .collect();
        let edges = edges.into_iter().map(|(edge, _)| edge).collect();
        let dag = Dag::new(tasks, edges).expect("copies of an acyclic DAG, chained forward");
        Backfill {
            plan: Pipeline {
                dag,
                gated,
                max_concurrent_tasks: parallel.max(1),
                ..pipeline.clone()
            },
            intervals,
        }
    }

    /// The tasks the plan runs once, after its intervals: `(id, task)`,
    /// the task as the pipeline names it.
    pub fn after_range(&self) -> Vec<(&str, &str)> {
        let (Some(first), Some(last)) = (self.intervals.first(), self.intervals.last()) else {
            return Vec::new();
        };
        let prefix = range_key(first, last) + "/";
        self.plan
            .dag
            .ids()
            .filter_map(|id| Some((id, id.strip_prefix(&prefix)?)))
            .collect()
    }

    /// The plan's tasks a previous backfill finished.
    pub async fn done(&self, store: &SharedStore) -> Result<BTreeSet<String>> {
        let prefix = done_key(&self.plan.name, "");
        Ok(store
            .state_with_prefix(&prefix)
            .await?
            .into_iter()
            .filter_map(|(key, _)| key.strip_prefix(&prefix).map(str::to_string))
            .filter(|id| self.plan.dag.task(id).is_some())
            .collect())
    }

    /// Run the tasks not done yet (all of them when `force`), marking each
    /// done as it succeeds.
    pub async fn run(
        &self,
        store: &SharedStore,
        clock: &SharedClock,
        executor: Arc<dyn Executor>,
        options: &RunOptions,
        force: bool,
        run_id: &str,
    ) -> Result<BackfillReport> {
        let done = if force {
            BTreeSet::new()
        } else {
            self.done(store).await?
        };
        let selected: BTreeSet<String> = self
            .plan
            .dag
            .ids()
            .filter(|id| !done.contains(*id))
            .map(str::to_string)
            .collect();
        let run = if selected.is_empty() {
            None
        } else {
            // Each interval's tasks still to finish; the bar counts the
            // intervals with none left.
            let keys: BTreeSet<String> = self.intervals.iter().map(Interval::key).collect();
            let mut left: BTreeMap<String, usize> = BTreeMap::new();
            for id in &selected {
                if let Some((key, _)) = id.split_once('/').filter(|(key, _)| keys.contains(*key)) {
                    *left.entry(key.to_string()).or_default() += 1;
                }
            }
            let left = Arc::new(std::sync::Mutex::new(left));
            let total = self.intervals.len();
            let counted = left.clone();
            let options = RunOptions {
                note: Note::new(move || {
                    let left = counted.lock().expect("intervals lock").len();
                    Some(format!("{} of {total} intervals done", total - left))
                }),
                ..options.clone()
            };
            let marking = Arc::new(MarkDone {
                inner: executor.clone(),
                store: store.clone(),
                clock: clock.clone(),
                pipeline: self.plan.name.clone(),
                left,
            });
            let runner = Runner::new(store.clone(), clock.clone(), marking);
            Some(runner.run(&self.plan, &selected, &options, run_id).await?)
        };
        let outcome_of = |id: &str| {
            run.as_ref()
                .and_then(|r| r.tasks.iter().find(|t| t.id == id))
        };
        let status_of = |id: &str| -> RunStatus {
            if done.contains(id) {
                return RunStatus::DoneBefore;
            }
            outcome_of(id).map_or(RunStatus::Skipped, |t| t.status)
        };
        // A task that found no input says so: `"nothing_to_do": true`.
        let idle = |id: &str| outcome_of(id).is_some_and(|t| t.report["nothing_to_do"] == true);
        let intervals: Vec<IntervalOutcome> = self
            .intervals
            .iter()
            .map(|interval| {
                let prefix = format!("{}/", interval.key());
                let ids: Vec<&str> = self
                    .plan
                    .dag
                    .ids()
                    .filter(|id| id.starts_with(&prefix))
                    .collect();
                let statuses: Vec<RunStatus> = ids.iter().map(|id| status_of(id)).collect();
                let status = match interval_status(&statuses) {
                    RunStatus::Succeeded if ids.iter().all(|id| idle(id)) => RunStatus::NothingToDo,
                    status => status,
                };
                IntervalOutcome {
                    start: interval.start,
                    end: interval.end,
                    status,
                }
            })
            .collect();
        let after_range: Vec<AfterRange> = self
            .after_range()
            .into_iter()
            .map(|(id, task)| AfterRange {
                task: task.to_string(),
                status: status_of(id),
            })
            .collect();
        let status = if intervals.iter().all(|i| {
            matches!(
                i.status,
                RunStatus::Succeeded | RunStatus::NothingToDo | RunStatus::DoneBefore
            )
        }) && after_range
            .iter()
            .all(|t| matches!(t.status, RunStatus::Succeeded | RunStatus::DoneBefore))
        {
            RunStatus::Succeeded
        } else if run
            .as_ref()
            .is_some_and(|r| r.status == RunStatus::Cancelled)
        {
            RunStatus::Cancelled
        } else {
            RunStatus::Failed
        };
        let report = BackfillReport {
            pipeline: self.plan.name.clone(),
            run_id: run_id.into(),
            status,
            intervals,
            after_range,
            run,
        };
        executor.notifier().send(
            Notice::new(Event::BackfillFinished, report.summary(), clock.now())
                .run(&report.pipeline, run_id),
        );
        Ok(report)
    }
}

/// An interval's status from its tasks' statuses.
fn interval_status(tasks: &[RunStatus]) -> RunStatus {
    if tasks.iter().all(|s| *s == RunStatus::DoneBefore) {
        RunStatus::DoneBefore
    } else if tasks
        .iter()
        .all(|s| matches!(s, RunStatus::Succeeded | RunStatus::DoneBefore))
    {
        RunStatus::Succeeded
    } else if tasks.contains(&RunStatus::Cancelled) {
        RunStatus::Cancelled
    } else if tasks
        .iter()
        .any(|s| matches!(s, RunStatus::Failed | RunStatus::TimedOut))
    {
        RunStatus::Failed
    } else {
        RunStatus::Skipped
    }
}

/// Runs a task, then marks it done; a task whose mark was lost to a crash
/// runs again, which the layers make harmless (an interval's bronze is
/// replaced, not appended).
struct MarkDone {
    inner: Arc<dyn Executor>,
    store: SharedStore,
    clock: SharedClock,
    pipeline: String,
    /// Each interval's tasks still to finish, by interval key.
    left: Arc<std::sync::Mutex<BTreeMap<String, usize>>>,
}

#[async_trait::async_trait]
impl Executor for MarkDone {
    async fn execute(&self, task: &Task, run_id: &str, options: &RunOptions) -> Result<Value> {
        let report = self.inner.execute(task, run_id, options).await?;
        let mark = json!({ "attempt": run_id, "finished_at": self.clock.now() });
        self.store
            .put_state(&done_key(&self.pipeline, &task.id), &mark)
            .await?;
        if let Some((interval, _)) = task.id.split_once('/') {
            let mut left = self.left.lock().expect("intervals lock");
            if let Some(count) = left.get_mut(interval) {
                *count -= 1;
                if *count == 0 {
                    left.remove(interval);
                }
            }
        }
        Ok(report)
    }

    fn notifier(&self) -> Notifier {
        self.inner.notifier()
    }
}

/// The backfill report as text: one line per interval.
pub fn render(r: &BackfillReport) -> String {
    let mut out = format!(
        "{} backfill {}: {} ({} intervals)\n",
        r.pipeline,
        r.run_id,
        r.status,
        r.intervals.len()
    );
    for i in &r.intervals {
        out.push_str(&format!(
            "  {} .. {}  {}\n",
            i.start.format("%Y-%m-%dT%H:%M:%SZ"),
            i.end.format("%Y-%m-%dT%H:%M:%SZ"),
            i.status
        ));
    }
    for t in &r.after_range {
        out.push_str(&format!("  then {:<40} {}\n", t.task, t.status));
    }
    if let Some(run) = &r.run {
        for t in run.tasks.iter().filter(|t| t.error.is_some()) {
            out.push_str(&format!(
                "  {} {}: {}\n",
                t.id,
                t.status,
                t.error.as_deref().unwrap_or_default()
            ));
        }
    }
    out
}

/// A dry run as text: a line for the plan, then one per interval.
pub fn render_dry_run(d: &DryRun) -> String {
    let mut out = format!(
        "{}: {} intervals of {} tasks each, {} at once{}\n",
        d.pipeline,
        d.intervals.len(),
        d.tasks_per_interval,
        d.parallel,
        if d.after_range.is_empty() {
            String::new()
        } else {
            format!(
                "; then once, over the tables the range leaves: {}",
                d.after_range.join(", ")
            )
        }
    );
    for (interval, left) in &d.intervals {
        let state = match *left {
            0 => "done before".to_string(),
            n if n == d.tasks_per_interval => "would run".to_string(),
            n => format!("would run the {n} tasks left"),
        };
        out += &format!(
            "  {} .. {}  {state}\n",
            interval.start.format("%Y-%m-%dT%H:%M:%SZ"),
            interval.end.format("%Y-%m-%dT%H:%M:%SZ"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::tests::dir_with;
    use crate::orchestrator::{Kinds, load};

    #[test]
    fn the_plan_repeats_layer_tasks_per_interval_and_orders_intervals_per_table() {
        let mut tables = Kinds {
            single: ["crawl".to_string()].into(),
            ..Kinds::default()
        };
        tables.layers.insert(
            "bronze".into(),
            [("tracks".to_string(), vec![])].into_iter().collect(),
        );
        tables.layers.insert(
            "silver".into(),
            [("tracks".to_string(), vec!["bronze.tracks".to_string()])]
                .into_iter()
                .collect(),
        );
        let dir = dir_with(&[(
            "p.toml",
            "schedule = \"0 * * * *\"\n[tasks.crawl]\n[tasks.bronze]\nafter = [\"crawl\"]\n[tasks.silver]\n",
        )]);
        let pipeline = load(dir.path(), &tables).unwrap().remove(0);
        let at = |h: u32| {
            chrono::DateTime::from_timestamp(1_800_000_000 + i64::from(h) * 3600, 0).unwrap()
        };
        let intervals = pipeline.schedule.intervals(at(0), at(2));
        let plan = Backfill::plan(&pipeline, intervals.clone(), 3);
        assert_eq!(plan.plan.max_concurrent_tasks, 3);
        let (first, second) = (intervals[0].key(), intervals[1].key());
        let ids: Vec<&str> = plan.plan.dag.ids().collect();
        assert_eq!(ids.len(), 2 * intervals.len(), "no crawl: {ids:?}");
        let task = plan
            .plan
            .dag
            .task(&format!("{second}/bronze.tracks"))
            .unwrap();
        assert_eq!(task.interval, Some(intervals[1]));
        assert_eq!(
            plan.plan.dag.upstream(&format!("{second}/bronze.tracks")),
            vec![
                format!("{first}/bronze.tracks"),
                format!("{first}/silver.tracks")
            ],
            "bronze is rewritten only after the interval before has read it"
        );
        assert_eq!(
            plan.plan.dag.upstream(&format!("{second}/silver.tracks")),
            vec![
                format!("{first}/silver.tracks"),
                format!("{second}/bronze.tracks")
            ]
        );
    }

    #[test]
    fn tasks_that_rebuild_whole_run_once_after_the_last_interval() {
        let mut tables = Kinds::default();
        let layer = |name: &str, tables_of: &[(&str, &[&str])]| {
            (
                name.to_string(),
                tables_of
                    .iter()
                    .map(|(t, ups)| (t.to_string(), ups.iter().map(|u| u.to_string()).collect()))
                    .collect(),
            )
        };
        tables.layers.extend([
            layer("bronze", &[("tracks", &[])]),
            layer("silver", &[("tracks", &["bronze.tracks"])]),
            layer(
                "gold",
                &[
                    ("checked", &["silver.tracks"]),
                    ("dim_track", &["silver.tracks"]),
                    ("fact", &["gold.dim_track"]),
                ],
            ),
        ]);
        // `checked` tests its rows against dim_track's: a gated edge.
        tables
            .checked
            .extend([layer("gold", &[("checked", &["gold.dim_track"])])]);
        tables.rebuilt_whole.insert("gold".into());
        let dir = dir_with(&[(
            "p.toml",
            "schedule = \"0 * * * *\"\n[tasks.bronze]\n[tasks.silver]\n[tasks.gold]\n",
        )]);
        let pipeline = load(dir.path(), &tables).unwrap().remove(0);
        let at = |h: u32| {
            chrono::DateTime::from_timestamp(1_800_000_000 + i64::from(h) * 3600, 0).unwrap()
        };
        let intervals = pipeline.schedule.intervals(at(0), at(3));
        let plan = Backfill::plan(&pipeline, intervals.clone(), 2);
        let range = format!("{}..{}/", intervals[0].key(), intervals[2].key());
        assert_eq!(
            plan.after_range(),
            [
                (format!("{range}gold.checked").as_str(), "gold.checked"),
                (format!("{range}gold.dim_track").as_str(), "gold.dim_track"),
                (format!("{range}gold.fact").as_str(), "gold.fact")
            ]
        );
        assert_eq!(
            plan.plan.dag.len(),
            2 * 3 + 3,
            "gold is not repeated per interval"
        );
        assert_eq!(
            plan.plan.gated,
            [(
                format!("{range}gold.dim_track"),
                format!("{range}gold.checked")
            )]
            .into(),
            "the copy of a gated edge gates its copies; the copy of a read does not"
        );
        assert_eq!(
            plan.plan.dag.upstream(&format!("{range}gold.dim_track")),
            vec![format!("{}/silver.tracks", intervals[2].key())],
            "after the last interval's silver, which follows every earlier one"
        );
        assert_eq!(
            plan.plan.dag.upstream(&format!("{range}gold.fact")),
            vec![format!("{range}gold.dim_track")]
        );
        let task = plan
            .plan
            .dag
            .task(&format!("{range}gold.dim_track"))
            .unwrap();
        assert_eq!(task.interval, None, "it rebuilds the whole table");
    }

    #[test]
    fn an_interval_is_done_only_when_all_its_tasks_are() {
        use RunStatus::*;
        assert_eq!(interval_status(&[DoneBefore, DoneBefore]), DoneBefore);
        assert_eq!(interval_status(&[DoneBefore, Succeeded]), Succeeded);
        assert_eq!(interval_status(&[Succeeded, Cancelled]), Cancelled);
        assert_eq!(interval_status(&[TimedOut, Skipped]), Failed);
        assert_eq!(interval_status(&[Skipped, Skipped]), Skipped);
    }
}
