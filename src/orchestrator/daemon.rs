//! The daemon: every pipeline on its schedule. One loop sleeps on the
//! clock until the next thing to do (a fire time, a lease renewal), wakes
//! early for a finished run, a reload or a stop, and never polls.
//!
//! - Leadership: daemons sharing a state store elect one scheduler through
//!   the leased lock `daemon.leader`. The leader renews it every third of
//!   the lease; a standby tries every quarter, so it takes over at most a
//!   lease and a quarter after the leader's last renewal.
//! - Fires: the last fire handled per pipeline is kept in the state store
//!   (`schedule/<pipeline>`), written before the run starts, so a fire
//!   runs at most once whichever daemon leads; a run cut short by a crash
//!   is marked failed by the next run, whose layers pick up the work.
//! - No overlap: a pipeline with a run in flight is not started again; fires
//!   that pass meanwhile count as missed, and the catch-up policy decides
//!   when the run ends (the pipeline lock also holds off `soundlake run`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::pipeline::{CatchUp, Pipeline};
use super::runner::{Executor, RunOptions, RunReport, RunStatus, Runner};
use super::schedule::Schedule;
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::landing::{SharedStore, lease};
use crate::notify::{Event, Notice};

/// The lock the scheduling daemon holds.
pub const LEADER_LOCK: &str = "daemon.leader";

/// What the daemon schedules, and what runs it: loaded at start and again
/// on every reload.
pub struct Loaded {
    pub pipelines: Vec<Pipeline>,
    pub executor: Arc<dyn Executor>,
}

/// Loads the definitions; called at start and on SIGHUP.
pub type Loader = Box<dyn Fn() -> Result<Loaded> + Send + Sync>;

/// Per pipeline: its last scheduled run, and how many runs ended in each
/// status.
type History = BTreeMap<String, (Option<LastRun>, BTreeMap<RunStatus, u64>)>;

#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// This daemon's name in the leader lock (see [`lease::holder`]).
    pub holder: String,
    /// How long leadership lasts without renewal.
    pub lease: TimeDelta,
    /// With `catch_up = "none"`, a fire this late still runs; later, it
    /// counts as missed.
    pub misfire_grace: TimeDelta,
    /// On stop, how long running tasks get to finish.
    pub grace: TimeDelta,
}

/// The daemon as its status page and metrics show it.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub holder: String,
    pub started_at: DateTime<Utc>,
    /// The daemon's clock when it last went to sleep.
    pub now: DateTime<Utc>,
    /// Whether this daemon schedules (holds the leader lock).
    pub leader: bool,
    /// When it sleeps until, unless something wakes it first.
    pub wakes_at: Option<DateTime<Utc>>,
    pub definitions_loaded_at: DateTime<Utc>,
    pub reloads: u64,
    pub reload_errors: u64,
    /// Why the last reload was refused (the old definitions stay).
    pub reload_error: Option<String>,
    pub stopping: bool,
    pub pipelines: Vec<PipelineStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PipelineStatus {
    pub name: String,
    pub schedule: String,
    pub timezone: String,
    pub catch_up: CatchUp,
    pub tasks: usize,
    pub next_fire: Option<DateTime<Utc>>,
    /// The last fire time handled (run or skipped as missed).
    pub last_fire: Option<DateTime<Utc>>,
    /// The run in flight.
    pub running: Option<String>,
    pub last_run: Option<LastRun>,
    /// Runs finished since the daemon started, by status.
    pub runs: BTreeMap<RunStatus, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    pub run_id: String,
    pub fire: DateTime<Utc>,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// What is due for a pipeline whose last handled fire is `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Nothing,
    /// Run for this fire time.
    Run(DateTime<Utc>),
    /// Fires up to this one were missed and are skipped.
    Skip(DateTime<Utc>),
}

fn due(
    schedule: &Schedule,
    catch_up: CatchUp,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
    misfire_grace: TimeDelta,
) -> Due {
    let Some(latest) = schedule.at_or_before(now).filter(|f| *f > last) else {
        return Due::Nothing;
    };
    match catch_up {
        CatchUp::All => Due::Run(schedule.next_after(last).unwrap_or(latest)),
        CatchUp::Latest => Due::Run(latest),
        CatchUp::None if now - latest <= misfire_grace => Due::Run(latest),
        CatchUp::None => Due::Skip(latest),
    }
}

/// The state key of a pipeline's last handled fire.
fn fire_key(pipeline: &str) -> String {
    format!("schedule/{pipeline}")
}

/// A finished run, as its task hands it back.
struct Finished {
    pipeline: String,
    fire: DateTime<Utc>,
    run_id: String,
    started_at: DateTime<Utc>,
    outcome: Result<RunReport>,
}

pub struct Daemon {
    store: SharedStore,
    clock: SharedClock,
    options: DaemonOptions,
    loader: Loader,
    loaded: Loaded,
    status: watch::Sender<Status>,
}

impl Daemon {
    /// A daemon over the definitions `loader` gives now; fails when they
    /// do not load.
    pub fn new(
        store: SharedStore,
        clock: SharedClock,
        loader: Loader,
        options: DaemonOptions,
    ) -> Result<Daemon> {
        let loaded = loader()?;
        let now = clock.now();
        let status = watch::Sender::new(Status {
            holder: options.holder.clone(),
            started_at: now,
            now,
            leader: false,
            wakes_at: None,
            definitions_loaded_at: now,
            reloads: 0,
            reload_errors: 0,
            reload_error: None,
            stopping: false,
            pipelines: Vec::new(),
        });
        Ok(Daemon {
            store,
            clock,
            options,
            loader,
            loaded,
            status,
        })
    }

    /// The status, updated each time the daemon goes to sleep.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// Schedule until `stop` turns true, reloading the definitions on each
    /// message of `reload`. On stop, runs in flight get the grace period;
    /// then leadership is handed back.
    pub async fn run(
        mut self,
        mut reload: mpsc::Receiver<()>,
        stop: watch::Receiver<bool>,
    ) -> Result<()> {
        let mut leader = false;
        let mut next_lease_check = self.clock.now();
        let mut runs: JoinSet<Finished> = JoinSet::new();
        let mut running: BTreeMap<String, String> = BTreeMap::new();
        let mut history = History::new();
        let mut last_fires: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        let mut stopping = false;
        let mut stop_signal = stop.clone();
        loop {
            let now = self.clock.now();
            if now >= next_lease_check && !stopping {
                (leader, next_lease_check) = self.lead(leader, now).await;
            }
            let scheduling = leader && !stopping;
            for pipeline in &self.loaded.pipelines {
                let Some(mut last) = self.last_fire(&pipeline.name, now, scheduling).await? else {
                    continue;
                };
                if scheduling && !running.contains_key(&pipeline.name) {
                    match due(
                        &pipeline.schedule,
                        pipeline.catch_up,
                        last,
                        now,
                        self.options.misfire_grace,
                    ) {
                        Due::Nothing => {}
                        Due::Skip(fire) => {
                            tracing::warn!(pipeline = %pipeline.name, %fire, "missed fire times skipped (catch_up = none)");
                            self.record_fire(&pipeline.name, fire, None).await?;
                            last = fire;
                        }
                        Due::Run(fire) => {
                            let run_id = format!(
                                "scheduled-{}-{}",
                                pipeline.name,
                                fire.format("%Y%m%dT%H%M%SZ")
                            );
                            self.record_fire(&pipeline.name, fire, Some(&run_id))
                                .await?;
                            last = fire;
                            running.insert(pipeline.name.clone(), run_id.clone());
                            runs.spawn(self.start_run(pipeline, fire, run_id, stop.clone()));
                        }
                    }
                }
                last_fires.insert(pipeline.name.clone(), last);
            }
            if stopping && runs.is_empty() {
                break;
            }
            let next_fire = self
                .loaded
                .pipelines
                .iter()
                .filter_map(|p| p.schedule.next_after(now))
                .min();
            let wakes_at = if stopping {
                None
            } else {
                Some(next_fire.map_or(next_lease_check, |f| f.min(next_lease_check)))
            };
            self.publish(
                now,
                leader,
                wakes_at,
                stopping,
                &running,
                &history,
                &last_fires,
            );

            // Without a wake time the sleep branch is off (its future is
            // still built, so it gets an instant the clock can take).
            tokio::select! {
                () = self.clock.sleep_until(wakes_at.unwrap_or(now)), if wakes_at.is_some() => {}
                Some(joined) = runs.join_next(), if !runs.is_empty() => {
                    let finished = joined.expect("run tasks do not panic");
                    running.remove(&finished.pipeline);
                    self.count(finished, &mut history);
                }
                Some(()) = reload.recv() => self.reload(),
                _ = stop_signal.wait_for(|s| *s), if !stopping => {
                    tracing::info!(runs = running.len(), "stopping: no new runs; running ones get the grace period");
                    stopping = true;
                }
            }
        }
        if leader {
            self.store.unlock(LEADER_LOCK, &self.options.holder).await?;
            self.notify_leadership("stopped: leadership handed back", self.clock.now());
        }
        let now = self.clock.now();
        self.publish(now, false, None, true, &running, &history, &last_fires);
        Ok(())
    }

    /// Take or renew the leader lock: whether this daemon leads now, and
    /// when to check again (a leader renews at a third of the lease, a
    /// standby tries at a quarter).
    async fn lead(&self, was: bool, now: DateTime<Utc>) -> (bool, DateTime<Utc>) {
        let leader = match lease::acquire(
            &self.store,
            LEADER_LOCK,
            &self.options.holder,
            now,
            self.options.lease,
        )
        .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the state store for the leader lock; not scheduling");
                false
            }
        };
        if leader != was {
            let what = if leader {
                "leading: this daemon schedules"
            } else {
                "standing by: another daemon leads"
            };
            tracing::info!(holder = %self.options.holder, "{what}");
            self.notify_leadership(what, now);
        }
        let next_check = now
            + if leader {
                self.options.lease / 3
            } else {
                self.options.lease / 4
            };
        (leader, next_check)
    }

    fn notify_leadership(&self, what: &str, now: DateTime<Utc>) {
        self.loaded.executor.notifier().send(Notice::new(
            Event::Leadership,
            format!("daemon {}: {what}", self.options.holder),
            now,
        ));
    }

    /// Count a finished run in its pipeline's history, unless another
    /// daemon started that fire first: it is that daemon's run to count.
    fn count(&self, finished: Finished, history: &mut History) {
        let (status, finished_at) = match &finished.outcome {
            Ok(report) => (report.status, report.finished_at),
            Err(Error::RunExists { id }) => {
                tracing::warn!(pipeline = %finished.pipeline, run = %id, "fire already started elsewhere; not run again");
                return;
            }
            Err(e) => {
                tracing::error!(pipeline = %finished.pipeline, error = %e, "scheduled run did not start");
                (RunStatus::Failed, self.clock.now())
            }
        };
        let entry = history.entry(finished.pipeline.clone()).or_default();
        *entry.1.entry(status).or_default() += 1;
        entry.0 = Some(LastRun {
            run_id: finished.run_id,
            fire: finished.fire,
            status,
            started_at: finished.started_at,
            finished_at,
        });
    }

    /// The last fire handled for `pipeline`. A pipeline seen for the first
    /// time starts from now when `scheduling` (its history is not a
    /// backlog); a standby only reads.
    async fn last_fire(
        &self,
        pipeline: &str,
        now: DateTime<Utc>,
        scheduling: bool,
    ) -> Result<Option<DateTime<Utc>>> {
        let saved = self.store.get_state(&fire_key(pipeline)).await?;
        let last = saved
            .as_ref()
            .and_then(|v| v["last_fire"].as_str())
            .and_then(|t| t.parse().ok());
        if last.is_none() && scheduling {
            self.record_fire(pipeline, now, None).await?;
            return Ok(Some(now));
        }
        Ok(last)
    }

    async fn record_fire(
        &self,
        pipeline: &str,
        fire: DateTime<Utc>,
        run_id: Option<&str>,
    ) -> Result<()> {
        let value = json!({ "last_fire": fire, "run_id": run_id, "by": self.options.holder });
        self.store.put_state(&fire_key(pipeline), &value).await
    }

    fn start_run(
        &self,
        pipeline: &Pipeline,
        fire: DateTime<Utc>,
        run_id: String,
        stop: watch::Receiver<bool>,
    ) -> impl Future<Output = Finished> + Send + 'static {
        let runner = Runner::new(
            self.store.clone(),
            self.clock.clone(),
            self.loaded.executor.clone(),
        );
        let pipeline = pipeline.clone();
        let options = RunOptions {
            full_refresh: false,
            stop: Some(stop),
            grace: self.options.grace,
            ..RunOptions::default()
        };
        let started_at = self.clock.now();
        tracing::info!(pipeline = %pipeline.name, %fire, run = %run_id, "scheduled run starts");
        async move {
            let selected: BTreeSet<String> = pipeline.dag.ids().map(str::to_string).collect();
            let outcome = runner.run(&pipeline, &selected, &options, &run_id).await;
            Finished {
                pipeline: pipeline.name,
                fire,
                run_id,
                started_at,
                outcome,
            }
        }
    }

    /// Load the definitions again; on failure keep the ones in use.
    fn reload(&mut self) {
        let now = self.clock.now();
        match (self.loader)() {
            Ok(loaded) => {
                tracing::info!(pipelines = loaded.pipelines.len(), "definitions reloaded");
                self.loaded = loaded;
                self.status.send_modify(|s| {
                    s.reloads += 1;
                    s.reload_error = None;
                    s.definitions_loaded_at = now;
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "reload refused; the definitions in use stay");
                self.status.send_modify(|s| {
                    s.reload_errors += 1;
                    s.reload_error = Some(e.to_string());
                });
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn publish(
        &self,
        now: DateTime<Utc>,
        leader: bool,
        wakes_at: Option<DateTime<Utc>>,
        stopping: bool,
        running: &BTreeMap<String, String>,
        history: &History,
        last_fires: &BTreeMap<String, DateTime<Utc>>,
    ) {
        let pipelines = self
            .loaded
            .pipelines
            .iter()
            .map(|p| {
                let (last_run, runs) = history.get(&p.name).cloned().unwrap_or_default();
                PipelineStatus {
                    name: p.name.clone(),
                    schedule: p.schedule.expression().into(),
                    timezone: p.schedule.zone().name().into(),
                    catch_up: p.catch_up,
                    tasks: p.dag.len(),
                    next_fire: p.schedule.next_after(now),
                    last_fire: last_fires.get(&p.name).copied(),
                    running: running.get(&p.name).cloned(),
                    last_run,
                    runs,
                }
            })
            .collect();
        self.status.send_modify(|s| {
            s.now = now;
            s.leader = leader;
            s.wakes_at = wakes_at;
            s.stopping = stopping;
            s.pipelines = pipelines;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_catch_up_policy_picks_the_fire_to_run() {
        let hourly = Schedule::parse("0 * * * *", "UTC").unwrap();
        let last = at("2026-11-21T09:00:00Z");
        let grace = TimeDelta::seconds(60);
        let now = at("2026-11-21T12:00:30Z");
        assert_eq!(
            due(&hourly, CatchUp::All, last, now, grace),
            Due::Run(at("2026-11-21T10:00:00Z"))
        );
        assert_eq!(
            due(&hourly, CatchUp::Latest, last, now, grace),
            Due::Run(at("2026-11-21T12:00:00Z"))
        );
        assert_eq!(
            due(&hourly, CatchUp::None, last, now, grace),
            Due::Run(at("2026-11-21T12:00:00Z")),
            "on time"
        );
        let late = at("2026-11-21T12:05:00Z");
        assert_eq!(
            due(&hourly, CatchUp::None, last, late, grace),
            Due::Skip(at("2026-11-21T12:00:00Z"))
        );
        assert_eq!(
            due(
                &hourly,
                CatchUp::All,
                at("2026-11-21T12:00:00Z"),
                late,
                grace
            ),
            Due::Nothing
        );
    }

    #[test]
    fn a_fire_is_not_due_again_later_in_its_second() {
        let every_4s = Schedule::parse("*/4 * * * * *", "UTC").unwrap();
        let grace = TimeDelta::seconds(60);
        let fire = at("2026-11-21T09:47:24Z");
        let woke = at("2026-11-21T09:47:24.001Z");
        for policy in [CatchUp::All, CatchUp::Latest, CatchUp::None] {
            assert_eq!(
                due(&every_4s, policy, fire - TimeDelta::seconds(4), woke, grace),
                Due::Run(fire),
                "{policy:?}: the fire, whole, not the instant the daemon woke"
            );
            for done in ["24.474", "24.999"] {
                let now = at(&format!("2026-11-21T09:47:{done}Z"));
                assert_eq!(due(&every_4s, policy, fire, now, grace), Due::Nothing);
            }
        }
    }
}
