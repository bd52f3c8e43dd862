//! A task run outside a pipeline (a layer's own command), recorded in the
//! store like a pipeline's runs so `soundlake runs` shows it: `running` from
//! the start, then its outcome and report.

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
        let record = RunRecord {
            id: run_id(task, started),
            task: task.into(),
            started_at: started,
            finished_at: None,
            status: RunStatus::Running.as_str().into(),
            report: serde_json::Value::Null,
        };
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

    pub async fn finish(mut self, status: RunStatus, report: &impl serde::Serialize) -> Result<()> {
        self.record.finished_at = Some(self.clock.now());
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
