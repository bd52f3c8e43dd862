//! The orchestrator: pipelines as DAGs of tasks, their schedules and how
//! they expand. It knows tasks by id and kind, not what they do: whoever
//! runs the tasks registers each kind's shape ([`Kinds`]) and executes them
//! ([`Executor`]).

mod backfill;
mod daemon;
mod dag;
mod pipeline;
mod recorded;
mod runner;
mod schedule;
mod signals;
mod status;

pub use backfill::{
    Backfill, BackfillReport, DryRun, IntervalOutcome, render as render_backfill, render_dry_run,
};
pub use daemon::{
    Daemon, DaemonOptions, LEADER_LOCK, LastRun, Loaded, Loader, PipelineStatus, Status,
};
pub use dag::{Dag, Format};
pub use pipeline::{
    CatchUp, Kinds, Pipeline, Task, load, render_schedules, render_selection, schedules,
};
pub use recorded::RecordedRun;
pub use runner::{
    Executor, RunOptions, RunReport, RunStatus, Runner, TaskOutcome, render, render_runs, run_id,
    run_task, warnings,
};
pub use schedule::{Interval, Schedule, bound};
pub use signals::{reload_on_hangup, stop_on_signals};
pub use status::{
    RateSource, TIME_FORMAT, escape_html, render_metrics, render_page, serve as serve_status,
};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `[daemon]`: the scheduler daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSettings {
    /// Where the status page and `/metrics` listen: loopback by default.
    pub listen: std::net::SocketAddr,
    /// How long the leader lock lasts without renewal: a standby takes over
    /// at most this long (and a quarter) after the leader dies.
    pub leader_lease_secs: u64,
    /// With `catch_up = "none"`, a fire this late still runs.
    pub misfire_grace_secs: u64,
    /// On SIGINT or SIGTERM, how long running tasks get to finish.
    pub grace_secs: u64,
    /// The token the web UI asks for when it listens beyond loopback
    /// (`/ui/` of the daemon, or `soundlake ui --listen`).
    pub ui_token: crate::secret::Secret,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9187)),
            leader_lease_secs: 60,
            misfire_grace_secs: 60,
            grace_secs: 60,
            ui_token: crate::secret::Secret::default(),
        }
    }
}

impl DaemonSettings {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.leader_lease_secs < 4 {
            return Err(Error::config(
                "[daemon] leader_lease_secs",
                format!("{} s is too short to renew in time", self.leader_lease_secs),
                "give 4 seconds or more (default 60)",
            ));
        }
        Ok(())
    }
}

/// The folder of pipeline definitions inside the definitions folder.
pub const FOLDER: &str = "pipelines";
