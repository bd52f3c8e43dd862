//! The orchestrator: pipelines as DAGs of tasks, their schedules and how
//! they expand. It knows tasks by id and kind, not what they do: the
//! layers tell it which tables a kind expands to and what each reads.

mod backfill;
mod daemon;
mod dag;
mod pipeline;
mod runner;
mod schedule;
mod status;

pub use backfill::{Backfill, BackfillReport, IntervalOutcome, render as render_backfill};
pub use daemon::{
    Daemon, DaemonOptions, LEADER_LOCK, LastRun, Loaded, Loader, PipelineStatus, Status,
};
pub use dag::{Dag, Format};
pub use pipeline::{CatchUp, Pipeline, Tables, Task, load};
pub use runner::{
    Executor, RunOptions, RunReport, Runner, TaskOutcome, render, run_task, warnings,
};
pub use schedule::{Interval, Schedule, bound};
pub use status::{render_metrics, render_page, serve as serve_status};

/// The folder of pipeline definitions inside the definitions folder.
pub const FOLDER: &str = "pipelines";
