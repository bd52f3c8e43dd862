//! A run as the store records it for `soundlake runs`: `running` from the
//! start, then its outcome and report. A pipeline's run and a layer's own
//! command (outside any pipeline) are recorded alike.

use chrono::{DateTime, Utc};

use super::runner::{RunStatus, run_id};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::landing::{RunRecord, SharedStore};

pub struct RecordedRun {
    store: SharedStore,
    clock: SharedClock,
    record: RunRecord,
}

impl RecordedRun {
    /// Record `task` as running under a new run id; refused when the id
    /// names a run already started.
    pub async fn start(
        store: &SharedStore,
        clock: &SharedClock,
        task: &str,
    ) -> Result<RecordedRun> {
        let started = clock.now();
        RecordedRun::start_as(store, clock, &run_id(task, started), task, started).await
    }

    /// Record `task` as running under `id` since `started_at`; refused,
    /// writing nothing, when a run with that id was started before (by any
    /// process: the store creates the record in one atomic step).
    pub async fn start_as(
        store: &SharedStore,
        clock: &SharedClock,
        id: &str,
        task: &str,
        started_at: DateTime<Utc>,
    ) -> Result<RecordedRun> {
        let record = running(id, task, started_at);
        if !store.create_run(&record).await? {
            return Err(Error::RunExists { id: record.id });
        }
        Ok(RecordedRun {
            store: store.clone(),
            clock: clock.clone(),
            record,
        })
    }

    pub fn id(&self) -> &str {
        &self.record.id
    }

    pub async fn finish(self, status: RunStatus, report: &impl serde::Serialize) -> Result<()> {
        let now = self.clock.now();
        self.finish_at(now, status, report).await
    }

    /// [`RecordedRun::finish`] at a time the caller already took.
    pub async fn finish_at(
        mut self,
        finished_at: DateTime<Utc>,
        status: RunStatus,
        report: &impl serde::Serialize,
    ) -> Result<()> {
        self.record.finished_at = Some(finished_at);
        self.record.status = status.as_str().into();
        self.record.report = serde_json::to_value(report).expect("reports serialize");
        self.store.put_run(&self.record).await
    }

    /// Record a failure and hand the error back.
    pub async fn fail(self, error: Error) -> Error {
        let report = serde_json::json!({"error": error.to_string()});
        // The task's own error is the one to report; a store that also
        // failed to record it would only hide it.
        let _recorded = self.finish(RunStatus::Failed, &report).await;
        error
    }

    /// Run `work` as this recorded run: succeeded with its report, or
    /// failed with its error.
    pub async fn run<R: serde::Serialize>(
        store: &SharedStore,
        clock: &SharedClock,
        task: &str,
        work: impl AsyncFnOnce(&str) -> Result<R>,
    ) -> Result<R> {
        let run = RecordedRun::start(store, clock, task).await?;
        match work(run.id()).await {
            Ok(report) => {
                run.finish(RunStatus::Succeeded, &report).await?;
                Ok(report)
            }
            Err(e) => Err(run.fail(e).await),
        }
    }
}

/// The record of a run that has just started.
pub(super) fn running(id: &str, task: &str, started_at: DateTime<Utc>) -> RunRecord {
    RunRecord {
        id: id.into(),
        task: task.into(),
        started_at,
        finished_at: None,
        status: RunStatus::Running.as_str().into(),
        report: serde_json::Value::Null,
    }
}
