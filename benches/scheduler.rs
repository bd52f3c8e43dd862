//! Scheduler overhead: a DAG of 1,000 no-op tasks run by the orchestrator's
//! runner against the embedded state store, which records every run and
//! attempt as it would in production. What is left once the tasks do
//! nothing is the scheduler's own cost: dependency bookkeeping, the
//! concurrency gate, the pipeline lock and the records.
//!
//! `cargo bench --bench scheduler` prints the median of 5 runs per
//! concurrency limit; see bench/README.md.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use soundlake::clock::SharedClock;
use soundlake::orchestrator::{Executor, Kinds, Pipeline, RunOptions, Runner, Task};

const TABLES: usize = 500;
const RUNS: usize = 5;

struct NoOp;

#[async_trait::async_trait]
impl Executor for NoOp {
    async fn execute(&self, _: &Task, _: &str, _: &RunOptions) -> soundlake::Result<Value> {
        Ok(json!({}))
    }
}

/// 500 bronze tables and 500 silver tables, each silver table reading three
/// bronze ones: 1,000 tasks, 1,500 edges.
fn pipeline(dir: &std::path::Path, limit: usize) -> Pipeline {
    let name = |i: usize| format!("t{:03}", i % TABLES);
    let mut layers = BTreeMap::new();
    layers.insert(
        "bronze".to_string(),
        (0..TABLES).map(|i| (name(i), vec![])).collect(),
    );
    layers.insert(
        "silver".to_string(),
        (0..TABLES)
            .map(|i| {
                let reads = [i, i + 1, i * 7]
                    .iter()
                    .map(|j| format!("bronze.{}", name(*j)))
                    .collect::<BTreeSet<_>>();
                (name(i), reads.into_iter().collect())
            })
            .collect(),
    );
    let folder = dir.join(format!("pipelines-{limit}"));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("wide.toml"),
        format!(
            "schedule = \"0 3 * * *\"\nmax_concurrent_tasks = {limit}\n[tasks.bronze]\n[tasks.silver]\n"
        ),
    )
    .unwrap();
    soundlake::orchestrator::load(
        &folder,
        &Kinds {
            layers,
            ..Kinds::default()
        },
    )
    .unwrap()
    .remove(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let dir =
        std::env::temp_dir().join(format!("soundlake-bench-scheduler-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clock: SharedClock = soundlake::clock::system();
    let url = format!("embedded://{}/state.db", dir.display());
    let store = soundlake::landing::open(&url, clock.clone()).await.unwrap();
    let runner = Runner::new(store, clock, Arc::new(NoOp));

    println!(
        "scheduler overhead: 1,000 no-op tasks (1,500 edges), embedded state store, median of {RUNS}"
    );
    println!(
        "{:>22} {:>12} {:>16} {:>14}",
        "max_concurrent_tasks", "run (s)", "per task (ms)", "tasks/s"
    );
    for limit in [1, 4, 16] {
        let p = pipeline(&dir, limit);
        assert_eq!(p.dag.len(), 2 * TABLES);
        let all: BTreeSet<String> = p.dag.ids().map(str::to_string).collect();
        let mut times = Vec::new();
        for run in 0..RUNS {
            let started = Instant::now();
            let report = runner
                .run(
                    &p,
                    &all,
                    &RunOptions::default(),
                    &format!("bench-{limit}-{run}"),
                )
                .await
                .unwrap();
            times.push(started.elapsed().as_secs_f64());
            assert!(report.succeeded());
        }
        let wall = median(times);
        println!(
            "{limit:>22} {wall:>12.3} {:>16.3} {:>14.0}",
            wall * 1000.0 / p.dag.len() as f64,
            p.dag.len() as f64 / wall
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
