//! The orchestrator's commands over definition folders: validate, list and
//! dag, as a user runs them.

use serde_json::Value;

use crate::support::{shipped, soundlake};

/// A copy of the shipped definitions to break.
fn copy_of_shipped() -> tempfile::TempDir {
    crate::support::copy_of_shipped(&["bronze", "silver", "gold", "pipelines"])
}

fn output(cmd: &mut std::process::Command) -> (Option<i32>, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn the_shipped_definitions_validate_list_and_draw() {
    let (code, out, err) = output(soundlake(shipped()).arg("validate"));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("7 bronze tables, 7 silver tables, 24 gold models, 3 pipelines (41 tasks)"),
        "{out}"
    );

    let (code, out, err) = output(soundlake(shipped()).args(["list", "--json"]));
    assert_eq!(code, Some(0), "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["pipeline"], "lake_maintenance");
    assert_eq!(rows[0]["schedule"], "30 4 * * *");
    assert_eq!(rows[1]["pipeline"], "listening_events");
    assert_eq!(rows[1]["schedule"], "15 * * * *");
    assert_eq!(rows[2]["pipeline"], "spotify_catalog");
    assert_eq!(rows[2]["schedule"], "0 3 * * *");
    let next = rows[2]["next_fire"].as_str().unwrap();
    assert!(next.ends_with("T03:00:00Z"), "{next}");

    let (code, out, _) = output(soundlake(shipped()).args(["dag", "spotify_catalog"]));
    assert_eq!(code, Some(0));
    assert!(out.contains("[1] crawl\n"), "{out}");
    assert!(out.contains("[3] silver.tracks  <- bronze.tracks"), "{out}");
    let (_, dot, _) =
        output(soundlake(shipped()).args(["dag", "spotify_catalog", "--format", "dot"]));
    assert!(
        dot.contains("\"bronze.tracks\" -> \"silver.tracks\";"),
        "{dot}"
    );
    assert_eq!(dot.matches(" -> ").count(), 46, "{dot}");
    let (_, mermaid, _) =
        output(soundlake(shipped()).args(["dag", "spotify_catalog", "--format", "mermaid"]));
    assert!(mermaid.contains("crawl --> bronze_tracks"), "{mermaid}");
}

#[test]
fn validate_reports_every_folder_s_problems_at_once() {
    let dir = copy_of_shipped();
    let root = dir.path();
    std::fs::write(root.join("silver/extra.toml"), "source = \"songs\"\n").unwrap();
    std::fs::write(
        root.join("pipelines/broken.toml"),
        "schedule = \"61 * * * *\"\n[tasks.a]\nkind = \"crawl\"\nafter = [\"b\"]\n[tasks.b]\nkind = \"crawl\"\nafter = [\"a\"]\n[tasks.platinum]\n",
    )
    .unwrap();
    let (code, _, err) = output(soundlake(root).arg("validate"));
    assert_eq!(code, Some(2), "{err}");
    for needle in [
        "extra.toml: source \"songs\" is not a bronze table",
        "broken.toml: schedule \"61 * * * *\" is not a cron expression",
        "broken.toml: [tasks.platinum]: unknown task kind \"platinum\"",
        "broken.toml: the tasks form a cycle: a -> b -> a",
        "run `soundlake validate` again",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }

    let (code, _, err) = output(soundlake(shipped()).args(["dag", "nightly"]));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("no pipeline \"nightly\"") && err.contains("spotify_catalog"),
        "{err}"
    );
}

// ---- the runner, on virtual time ---------------------------------------------

mod runner {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use serde_json::{Value, json};
    use soundlake::clock::{SharedClock, VirtualClock};
    use soundlake::landing::{self, SharedStore};
    use soundlake::orchestrator::{self, Executor, Kinds, Pipeline, RunOptions, Runner, Task};

    use crate::support::t0;

    /// A stand-in for the layers: each task takes `work` of virtual time
    /// (a second unless told), fails its first `fail_first` attempts, and
    /// notes what ran when.
    pub(super) struct Fake {
        clock: SharedClock,
        work: BTreeMap<String, Duration>,
        fail_first: BTreeMap<String, u32>,
        pub(super) log: Mutex<Vec<(String, &'static str, DateTime<Utc>)>>,
        /// Tasks running now, and the most ever at once.
        pub(super) running: Mutex<(usize, usize)>,
        /// When set, tasks also wait for it to open.
        gate: Option<tokio::sync::watch::Receiver<bool>>,
    }

    #[async_trait::async_trait]
    impl Executor for Fake {
        async fn execute(
            &self,
            task: &Task,
            _run: &str,
            options: &RunOptions,
        ) -> soundlake::Result<Value> {
            let started = self.clock.now();
            self.log
                .lock()
                .unwrap()
                .push((task.id.clone(), "start", started));
            {
                let mut r = self.running.lock().unwrap();
                r.0 += 1;
                r.1 = r.1.max(r.0);
            }
            let work = self.work.get(&task.id).copied();
            self.clock
                .sleep(work.unwrap_or(Duration::from_secs(1)))
                .await;
            if let Some(gate) = &self.gate {
                let _ = gate.clone().wait_for(|open| *open).await;
            }
            self.running.lock().unwrap().0 -= 1;
            // Publishing waits for what the task is checked against.
            options.gate.passed().await?;
            let attempts = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|(id, what, _)| id == &task.id && *what == "start")
                .count();
            self.log
                .lock()
                .unwrap()
                .push((task.id.clone(), "end", self.clock.now()));
            match self.fail_first.get(&task.id) {
                Some(n) if attempts as u32 <= *n => Err(soundlake::Error::Server {
                    what: task.id.clone(),
                    message: format!("attempt {attempts} broke"),
                }),
                _ => Ok(json!({ "task": task.id })),
            }
        }
    }

    pub(super) fn pipeline(text: &str) -> Pipeline {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.toml"), text).unwrap();
        let mut layers = BTreeMap::new();
        layers.insert(
            "bronze".to_string(),
            ["a", "b", "c"]
                .iter()
                .map(|t| (t.to_string(), vec![]))
                .collect(),
        );
        layers.insert(
            "silver".to_string(),
            ["a", "b", "c"]
                .iter()
                .map(|t| (t.to_string(), vec![format!("bronze.{t}")]))
                .collect(),
        );
        // Gold: x reads silver.a; y reads silver.b and is checked against
        // x; z reads y.
        layers.insert(
            "gold".to_string(),
            [("x", "silver.a"), ("y", "silver.b"), ("z", "gold.y")]
                .iter()
                .map(|(t, up)| (t.to_string(), vec![up.to_string()]))
                .collect(),
        );
        let checked = [("y".to_string(), vec!["gold.x".to_string()])].into();
        orchestrator::load(
            dir.path(),
            &Kinds {
                single: ["crawl".to_string()].into(),
                layers,
                checked: [("gold".to_string(), checked)].into(),
                ..Kinds::default()
            },
        )
        .unwrap()
        .remove(0)
    }

    pub(super) async fn store(clock: SharedClock) -> (tempfile::TempDir, SharedStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("embedded://{}/state.db", dir.path().display());
        let store = landing::open(&url, clock).await.unwrap();
        (dir, store)
    }

    /// A [`Fake`] whose tasks take `work` seconds each.
    pub(super) fn fake(
        clock: &SharedClock,
        work: &[(&str, u64)],
        fail_first: &[(&str, u32)],
    ) -> Arc<Fake> {
        let work: Vec<(&str, Duration)> = work
            .iter()
            .map(|(id, secs)| (*id, Duration::from_secs(*secs)))
            .collect();
        fake_timed(clock, &work, fail_first)
    }

    pub(super) fn fake_timed(
        clock: &SharedClock,
        work: &[(&str, Duration)],
        fail_first: &[(&str, u32)],
    ) -> Arc<Fake> {
        Arc::new(Fake {
            clock: clock.clone(),
            work: work.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            fail_first: fail_first
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            log: Mutex::default(),
            running: Mutex::default(),
            gate: None,
        })
    }

    const CATALOG: &str = r#"
schedule = "0 3 * * *"
max_concurrent_tasks = 2
[tasks.crawl]
retries = 2
retry_backoff_secs = 10
[tasks.bronze]
after = ["crawl"]
[tasks.silver]
"#;

    #[tokio::test]
    async fn tasks_run_in_dependency_order_within_the_limit_with_retries() {
        let clock: SharedClock = VirtualClock::starting_at(t0());
        let (_dir, store) = store(clock.clone()).await;
        let p = pipeline(CATALOG);
        let f = fake(
            &clock,
            &[("bronze.a", 30), ("bronze.b", 20), ("bronze.c", 10)],
            &[("crawl", 2)],
        );
        let runner = Runner::new(store.clone(), clock.clone(), f.clone());
        let all = p.dag.select("").unwrap();
        let report = runner
            .run(&p, &all, &RunOptions::default(), "run-1")
            .await
            .unwrap();
        assert!(report.succeeded(), "{report:?}");
        let crawl = report.tasks.iter().find(|t| t.id == "crawl").unwrap();
        assert_eq!(crawl.attempts, 3);

        let log = f.log.lock().unwrap().clone();
        let at = |id: &str, what: &str| {
            log.iter()
                .filter(|(i, w, _)| i == id && *w == what)
                .map(|e| e.2)
                .collect::<Vec<_>>()
        };
        // Attempts 1 s long, backoff 10 s then 20 s.
        let starts = at("crawl", "start");
        assert_eq!(
            starts
                .iter()
                .map(|s| (*s - starts[0]).num_seconds())
                .collect::<Vec<_>>(),
            vec![0, 11, 32]
        );
        let crawl_done = *at("crawl", "end").last().unwrap();
        for t in ["a", "b", "c"] {
            let bronze = format!("bronze.{t}");
            assert!(
                at(&bronze, "start")[0] >= crawl_done,
                "{bronze} after crawl"
            );
            assert!(
                at(&format!("silver.{t}"), "start")[0] >= at(&bronze, "end")[0],
                "silver.{t} after {bronze}"
            );
        }

        let runs = store.runs(100).await.unwrap();
        let attempts: Vec<_> = runs.iter().filter(|r| r.task == "p/crawl").collect();
        assert_eq!(attempts.len(), 3);
        assert_eq!(attempts.iter().filter(|r| r.status == "failed").count(), 2);
        let run = runs.iter().find(|r| r.task == "pipeline:p").unwrap();
        assert_eq!(run.status, "succeeded");
        assert_eq!(run.report["tasks"].as_array().unwrap().len(), 7);
    }

    #[tokio::test]
    async fn never_more_tasks_at_once_than_the_limit() {
        let clock: SharedClock = VirtualClock::starting_at(t0());
        let (_dir, store) = store(clock.clone()).await;
        let p = pipeline("schedule = \"0 3 * * *\"\nmax_concurrent_tasks = 2\n[tasks.bronze]\n");
        let (open, gate) = tokio::sync::watch::channel(false);
        let f = Arc::new(Fake {
            gate: Some(gate),
            ..Arc::into_inner(fake(&clock, &[], &[])).unwrap()
        });
        let runner = Runner::new(store, clock.clone(), f.clone());
        let all = p.dag.select("").unwrap();
        let run =
            tokio::spawn(
                async move { runner.run(&p, &all, &RunOptions::default(), "run-c").await },
            );
        while f.running.lock().unwrap().0 < 2 {
            tokio::task::yield_now().await;
        }
        // Both slots are taken and held: the third task must wait.
        for _ in 0..10_000 {
            tokio::task::yield_now().await;
        }
        assert_eq!(*f.running.lock().unwrap(), (2, 2));
        open.send(true).unwrap();
        assert!(run.await.unwrap().unwrap().succeeded());
        assert_eq!(f.running.lock().unwrap().1, 2, "two at once, never three");
        assert_eq!(f.log.lock().unwrap().len(), 6, "all three ran");
    }

    #[tokio::test]
    async fn a_stop_lets_running_tasks_finish_within_the_grace_period() {
        for finish_in_time in [true, false] {
            let manual = VirtualClock::manual(t0());
            let clock: SharedClock = manual.clone();
            let (_dir, store) = store(clock.clone()).await;
            let p = pipeline(
                "schedule = \"0 3 * * *\"\nmax_concurrent_tasks = 2\n[tasks.bronze]\n[tasks.silver]\n",
            );
            let (open, gate) = tokio::sync::watch::channel(false);
            let f = Arc::new(Fake {
                gate: Some(gate),
                work: ["bronze.a", "bronze.b", "bronze.c"]
                    .iter()
                    .map(|t| (t.to_string(), Duration::ZERO))
                    .collect(),
                ..Arc::into_inner(fake(&clock, &[], &[])).unwrap()
            });
            let runner = Runner::new(store.clone(), clock.clone(), f.clone());
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let options = RunOptions {
                stop: Some(stopped),
                grace: chrono::TimeDelta::seconds(30),
                ..RunOptions::default()
            };
            let all = p.dag.select("").unwrap();
            let run = tokio::spawn(async move { runner.run(&p, &all, &options, "run-s").await });
            while f.running.lock().unwrap().0 < 2 {
                tokio::task::yield_now().await;
            }
            stop.send(true).unwrap();
            while manual.sleepers() == 0 {
                tokio::task::yield_now().await;
            }
            if finish_in_time {
                open.send(true).unwrap();
            } else {
                manual.advance(Duration::from_secs(31));
            }
            let report = run.await.unwrap().unwrap();
            assert_eq!(report.status, "cancelled");
            let status: BTreeMap<&str, &str> = report
                .tasks
                .iter()
                .map(|t| (t.id.as_str(), t.status.as_str()))
                .collect();
            let expected_started = if finish_in_time {
                "succeeded"
            } else {
                "cancelled"
            };
            assert_eq!(status["bronze.a"], expected_started);
            assert_eq!(status["bronze.b"], expected_started);
            assert_eq!(status["bronze.c"], "cancelled", "never started");
            assert_eq!(status["silver.a"], "cancelled");
            assert_eq!(
                f.log
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|e| e.1 == "start")
                    .count(),
                2
            );
            let runs = store.runs(100).await.unwrap();
            assert!(runs.iter().all(|r| r.status != "running"), "{runs:?}");
            assert_eq!(
                runs.iter().find(|r| r.task == "pipeline:p").unwrap().status,
                "cancelled"
            );
        }
    }

    #[tokio::test]
    async fn a_failed_task_skips_what_depends_on_it_and_fails_the_run() {
        let clock: SharedClock = VirtualClock::starting_at(t0());
        let (_dir, store) = store(clock.clone()).await;
        let p = pipeline(CATALOG);
        let f = fake(&clock, &[], &[("bronze.b", 99)]);
        let runner = Runner::new(store, clock.clone(), f.clone());
        let selected = p.dag.select("bronze.*+").unwrap();
        let report = runner
            .run(&p, &selected, &RunOptions::default(), "run-2")
            .await
            .unwrap();
        assert!(!report.succeeded());
        let status: BTreeMap<&str, &str> = report
            .tasks
            .iter()
            .map(|t| (t.id.as_str(), t.status.as_str()))
            .collect();
        assert_eq!(status["bronze.b"], "failed");
        assert_eq!(status["silver.b"], "skipped");
        assert_eq!(status["silver.a"], "succeeded");
        assert!(!status.contains_key("crawl"), "not selected");
    }

    const GOLD: &str = "schedule = \"0 3 * * *\"\nmax_concurrent_tasks = 2\n[tasks.gold]\n";

    #[tokio::test]
    async fn a_task_checked_against_another_starts_alongside_it_and_publishes_after_it() {
        let manual = VirtualClock::manual(t0());
        let clock: SharedClock = manual.clone();
        let (_dir, store) = store(clock.clone()).await;
        let p = pipeline(GOLD);
        assert_eq!(
            p.dag.upstream("gold.y"),
            ["gold.x"],
            "still drawn as an edge"
        );
        assert_eq!(
            p.gated,
            [("gold.x".to_string(), "gold.y".to_string())].into()
        );
        let f = fake(&clock, &[("gold.x", 30), ("gold.y", 0), ("gold.z", 0)], &[]);
        let runner = Runner::new(store, clock.clone(), f.clone());
        let all = p.dag.select("").unwrap();
        let run =
            tokio::spawn(
                async move { runner.run(&p, &all, &RunOptions::default(), "run-g").await },
            );
        let logged = |f: &Fake| -> Vec<(String, &'static str)> {
            let log = f.log.lock().unwrap();
            log.iter()
                .map(|(id, what, _)| (id.clone(), *what))
                .collect()
        };
        // x works for 30 s of a clock that does not move: y starts beside
        // it and waits, having done its work, without publishing. Each
        // start is recorded in the store first, on a blocking thread, so
        // the starts are awaited (bounded, lest a broken runner hang the
        // test) before the yields let anything else happen.
        let both_started = async {
            while logged(&f).len() < 2 {
                tokio::task::yield_now().await;
            }
        };
        let waited = tokio::time::timeout(Duration::from_secs(60), both_started).await;
        assert!(waited.is_ok(), "y did not start beside x: {:?}", logged(&f));
        for _ in 0..10_000 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            logged(&f),
            [("gold.x".into(), "start"), ("gold.y".into(), "start")]
        );
        manual.advance(Duration::from_secs(31));
        let report = run.await.unwrap().unwrap();
        assert!(report.succeeded(), "{report:?}");
        let order = logged(&f);
        let at = |id: &str, what: &str| order.iter().position(|e| e.0 == id && e.1 == what);
        assert!(at("gold.y", "end") > at("gold.x", "end"), "{order:?}");
        assert!(at("gold.z", "start") > at("gold.y", "end"), "{order:?}");
    }

    #[tokio::test]
    async fn a_task_checked_against_a_failed_one_fails_and_skips_what_reads_it() {
        for slots in [1, 2] {
            let clock: SharedClock = VirtualClock::starting_at(t0());
            let (_dir, store) = store(clock.clone()).await;
            let p = pipeline(&GOLD.replace("= 2", &format!("= {slots}")));
            let f = fake(&clock, &[], &[("gold.x", 99)]);
            let runner = Runner::new(store, clock.clone(), f.clone());
            let all = p.dag.select("").unwrap();
            let report = runner
                .run(&p, &all, &RunOptions::default(), "run-f")
                .await
                .unwrap();
            let outcome = |id: &str| report.tasks.iter().find(|t| t.id == id).unwrap();
            assert_eq!(outcome("gold.x").status, "failed");
            let y = outcome("gold.y");
            if slots == 1 {
                // y would start only once x had ended: it never starts.
                assert_eq!(y.status, "skipped");
            } else {
                // y started beside x, and fails without publishing.
                assert_eq!(y.status, "failed");
                assert!(
                    y.error.as_deref().unwrap().starts_with(
                        "gold.x did not succeed, and this task publishes only after it"
                    ),
                    "{y:?}"
                );
                assert_eq!(y.attempts, 1, "retrying cannot help");
            }
            assert_eq!(outcome("gold.z").status, "skipped");
        }
    }

    #[tokio::test]
    async fn a_task_past_its_timeout_is_stopped() {
        let manual = VirtualClock::manual(t0());
        let clock: SharedClock = manual.clone();
        let (_dir, store) = store(clock.clone()).await;
        let p = pipeline("schedule = \"0 3 * * *\"\n[tasks.crawl]\ntimeout_secs = 60\n");
        let f = fake(&clock, &[("crawl", 3600)], &[]);
        let runner = Runner::new(store, clock.clone(), f);
        let all = p.dag.select("").unwrap();
        let run =
            tokio::spawn(
                async move { runner.run(&p, &all, &RunOptions::default(), "run-3").await },
            );
        while manual.sleepers() < 2 {
            tokio::task::yield_now().await;
        }
        manual.advance(Duration::from_secs(61));
        let report = run.await.unwrap().unwrap();
        assert_eq!(report.tasks[0].status, "timed_out");
        assert_eq!(
            report.tasks[0].error.as_deref(),
            Some("timed out after 60 s")
        );
    }

    #[tokio::test]
    async fn a_second_run_is_refused_and_a_dead_run_is_marked_failed() {
        let clock: SharedClock = VirtualClock::starting_at(t0());
        let (_dir, store) = store(clock.clone()).await;
        let p = pipeline(CATALOG);
        let runner = Runner::new(store.clone(), clock.clone(), fake(&clock, &[], &[]));
        // A live holder (this process, another run) keeps the lock.
        let holder = landing::lease::holder("other-run");
        assert!(
            store
                .try_lock(
                    "pipeline.p",
                    &holder,
                    t0(),
                    t0() + chrono::TimeDelta::hours(1)
                )
                .await
                .unwrap()
        );
        store
            .put_run(&landing::RunRecord {
                id: "ghost".into(),
                task: "pipeline:p".into(),
                started_at: t0(),
                finished_at: None,
                status: "running".into(),
                report: Value::Null,
            })
            .await
            .unwrap();
        let all = p.dag.select("").unwrap();
        let err = runner
            .run(&p, &all, &RunOptions::default(), "run-4")
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("another run is writing pipeline.p"),
            "{err}"
        );

        store.unlock("pipeline.p", &holder).await.unwrap();
        runner
            .run(&p, &all, &RunOptions::default(), "run-5")
            .await
            .unwrap();
        let ghost = store
            .runs(100)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.id == "ghost")
            .unwrap();
        assert_eq!(ghost.status, "failed");
        assert!(
            ghost.report["error"]
                .as_str()
                .unwrap()
                .contains("abandoned")
        );
    }
}

#[tokio::test]
async fn run_executes_layers_records_runs_and_fails_with_exit_1() {
    let env = crate::silver::env().await;
    env.land(
        soundlake::landing::Collection::Tracks,
        vec![(
            "t1".into(),
            serde_json::json!({"id": "t1", "name": "One", "artists": [{"id": "a", "name": "A"}]}),
        )],
    )
    .await;
    let lake = tempfile::tempdir().unwrap();
    let landing = env.store.describe();
    let cmd = |args: &[&str]| {
        let mut c = soundlake(shipped());
        c.args(args).env("SOUNDLAKE__LANDING__URL", &landing).env(
            "SOUNDLAKE__LAKE__URL",
            format!("file://{}", lake.path().display()),
        );
        c
    };

    let (code, out, err) = output(&mut cmd(&[
        "run",
        "spotify_catalog",
        "--select",
        "+silver.tracks",
        "--dry-run",
    ]));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("would run 3 of 26 tasks"), "{out}");
    assert!(
        out.contains("[1] crawl") && out.contains("[3] silver.tracks"),
        "{out}"
    );

    let (code, out, err) = output(&mut cmd(&[
        "run",
        "spotify_catalog",
        "--select",
        "bronze.*,silver.*",
        "--json",
    ]));
    assert_eq!(code, Some(0), "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["tasks"].as_array().unwrap().len(), 12);
    let silver = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "silver.tracks")
        .unwrap();
    assert_eq!(silver["report"]["tables"]["tracks"], 1);

    let (code, out, _) = output(&mut cmd(&["runs", "--json"]));
    assert_eq!(code, Some(0));
    let runs: Value = serde_json::from_str(&out).unwrap();
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .any(|r| r["task"] == "pipeline:spotify_catalog" && r["status"] == "succeeded")
    );
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .any(|r| r["task"] == "spotify_catalog/silver.tracks")
    );

    // No credentials: the crawl fails, everything after it is skipped.
    let (code, out, err) = output(&mut cmd(&["run", "spotify_catalog", "--select", "crawl+"]));
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        out.contains("crawl") && out.contains("failed") && out.contains("skipped"),
        "{out}"
    );
    assert!(
        out.contains("SPOTIFY_CLIENT_ID"),
        "the crawl's error says what to set: {out}"
    );
    assert!(
        err.contains("pipeline spotify_catalog: crawl failed"),
        "{err}"
    );
    // The JSON log line of the task's attempt carries the run and task ids.
    let ended: Vec<Value> = err
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "task attempt ended")
        .collect();
    assert_eq!(ended.len(), 1, "one attempt, the crawl's: {err}");
    assert_eq!(ended[0]["fields"]["status"], "failed", "{err}");
    assert!(
        ended[0]["fields"]["error"]
            .as_str()
            .unwrap()
            .contains("SPOTIFY_CLIENT_ID"),
        "{err}"
    );
    let span = &ended[0]["span"];
    assert_eq!(
        (&span["name"], &span["pipeline"], &span["task"]),
        (&"task".into(), &"spotify_catalog".into(), &"crawl".into()),
        "{err}"
    );
    assert!(
        span["run"]
            .as_str()
            .is_some_and(|r| r.starts_with("spotify_catalog-")),
        "{err}"
    );

    let (code, _, err) = output(&mut cmd(&[
        "run",
        "spotify_catalog",
        "--select",
        "platinum.*",
    ]));
    assert_eq!(code, Some(2));
    assert!(err.contains("\"platinum.*\" matches no task"), "{err}");
}

// ---- backfill -----------------------------------------------------------------

/// Definitions with one daily pipeline over bronze.tracks and silver.tracks.
fn tracks_pipeline() -> tempfile::TempDir {
    let dir = copy_of_shipped();
    for shipped in ["spotify_catalog", "listening_events", "lake_maintenance"] {
        std::fs::remove_file(dir.path().join(format!("pipelines/{shipped}.toml"))).unwrap();
    }
    std::fs::write(
        dir.path().join("pipelines/catalog.toml"),
        "schedule = \"0 3 * * *\"\n\
         [tasks.crawl]\n\
         [tasks.bronze]\nafter = [\"crawl\"]\ntables = [\"tracks\"]\n\
         [tasks.silver]\ntables = [\"tracks\"]\n",
    )
    .unwrap();
    dir
}

#[tokio::test]
async fn a_backfill_killed_midway_resumes_and_does_each_interval_once() {
    use soundlake::clock::VirtualClock;
    use soundlake::landing::Collection;

    // Six days of landing, 10:00 UTC each day: 30 new tracks, and a new
    // version of 5 tracks of the day before.
    let store_dir = tempfile::tempdir().unwrap();
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-01T10:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let clock = VirtualClock::manual(start);
    let url = format!("embedded://{}/landing.db", store_dir.path().display());
    let store = soundlake::landing::open(&url, clock.clone()).await.unwrap();
    let mut latest: std::collections::BTreeMap<String, String> = Default::default();
    for day in 0..6 {
        let mut docs = Vec::new();
        for i in 0..30 {
            docs.push(format!("d{day}t{i:02}"));
        }
        if day > 0 {
            docs.extend((0..5).map(|i| format!("d{}t{i:02}", day - 1)));
        }
        let batch = soundlake::landing::Batch::new(
            &format!("day{day}"),
            "GET /tracks",
            docs.iter()
                .map(|id| {
                    let name = format!("{id} as of day {day}");
                    latest.insert(id.clone(), name.clone());
                    let doc = serde_json::json!({"id": id, "name": name, "artists": [{"id": "a1", "name": "A"}]});
                    (id.clone(), doc)
                })
                .collect(),
        );
        store.upsert(Collection::Tracks, batch).await.unwrap();
        clock.advance(std::time::Duration::from_secs(86_400));
    }

    let defs = tracks_pipeline();
    let lake = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        let mut c = soundlake(defs.path());
        c.arg("backfill")
            .arg("catalog")
            .args(["--from", "2026-11-01", "--to", "2026-11-06"])
            .args(args)
            .env("SOUNDLAKE__LANDING__URL", &url)
            .env(
                "SOUNDLAKE__LAKE__URL",
                format!("file://{}", lake.path().display()),
            );
        c
    };

    let (code, out, err) = output(&mut cmd(&["--dry-run"]));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("catalog: 7 intervals of 2 tasks each, 1 at once"),
        "{out}"
    );
    assert!(
        out.contains("2026-10-31T03:00:00Z .. 2026-11-01T03:00:00Z  would run")
            && out.contains("2026-11-06T03:00:00Z .. 2026-11-07T03:00:00Z  would run"),
        "{out}"
    );

    // Killed once the third interval's bronze is committed.
    assert!(crate::support::kill_when(
        &mut cmd(&["--parallel", "2"]),
        &lake.path().join("bronze/tracks/_delta_log"),
        ".json",
        3,
    ));
    let done_at_kill: std::collections::BTreeMap<String, Value> = store
        .state_with_prefix("backfill/catalog/")
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert!(
        !done_at_kill.is_empty() && done_at_kill.len() < 14,
        "killed midway: {done_at_kill:?}"
    );

    let (code, out, err) = output(&mut cmd(&["--parallel", "2", "--json"]));
    assert_eq!(code, Some(0), "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["status"], "succeeded");
    let statuses: Vec<&str> = report["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), 7);
    assert!(
        statuses
            .iter()
            .all(|s| *s == "succeeded" || *s == "done_before"),
        "{statuses:?}"
    );
    let resumed_run = report["run_id"].as_str().unwrap().to_string();

    // Every task is marked done once; what was done before the kill kept
    // its mark and did not run again.
    let done: std::collections::BTreeMap<String, Value> = store
        .state_with_prefix("backfill/catalog/")
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(done.len(), 14, "{done:?}");
    let attempts = store.runs(10_000).await.unwrap();
    for (key, mark) in &done {
        let task = key.strip_prefix("backfill/catalog/").unwrap();
        let task_attempts: Vec<_> = attempts
            .iter()
            .filter(|r| r.task == format!("catalog/{task}"))
            .collect();
        let succeeded = task_attempts
            .iter()
            .filter(|r| r.status == "succeeded")
            .count();
        assert!(succeeded <= 1, "{task} succeeded {succeeded} times");
        if let Some(before) = done_at_kill.get(key) {
            assert_eq!(mark, before, "{task} was done before the kill");
            assert!(
                !task_attempts.iter().any(|r| r.id.starts_with(&resumed_run)),
                "{task} ran again after the kill"
            );
        }
    }

    // Bronze holds every version the landing store holds (the latest of
    // each track: nothing extracted them in between) exactly once, and
    // silver the latest version of every track.
    let written = soundlake::lake::Lake::open(&soundlake::lake::LakeSettings {
        url: format!("file://{}", lake.path().display()),
        ..Default::default()
    })
    .unwrap();
    let bronze = crate::silver::layer_rows(&written, "bronze", "tracks").await;
    let distinct: std::collections::BTreeSet<String> =
        bronze.iter().map(|r| r["id"].to_string()).collect();
    assert_eq!(
        (bronze.len(), distinct.len()),
        (latest.len(), latest.len()),
        "no version lost or twice"
    );
    let silver = crate::silver::rows(&written, "tracks").await;
    let names: std::collections::BTreeMap<String, String> = silver
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(names, latest);

    // Nothing is left to do; --force would run it all again.
    let (code, out, err) = output(&mut cmd(&["--json"]));
    assert_eq!(code, Some(0), "{err}");
    let again: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(again["run"], Value::Null);
    assert!(
        again["intervals"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["status"] == "done_before")
    );
    let (_, out, _) = output(&mut cmd(&["--dry-run", "--force"]));
    assert_eq!(out.matches("would run").count(), 7, "{out}");
}

#[test]
fn backfill_arguments_are_checked_before_anything_runs() {
    let defs = tracks_pipeline();
    for (args, needle) in [
        (
            vec!["--from", "2026-11-05", "--to", "2026-11-01"],
            "is empty",
        ),
        (vec!["--from", "Nov 1", "--to", "2026-11-01"], "--from"),
        (
            vec![
                "--from",
                "2026-11-01",
                "--to",
                "2026-11-02",
                "--parallel",
                "0",
            ],
            "--parallel",
        ),
        (
            vec!["--from", "2000-01-01", "--to", "2099-01-01"],
            "split the range",
        ),
    ] {
        let (code, _, err) = output(
            soundlake(defs.path())
                .arg("backfill")
                .arg("catalog")
                .args(&args),
        );
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

// ---- the daemon, on virtual time ---------------------------------------------

mod daemon {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use chrono::{DateTime, TimeDelta, Utc};
    use soundlake::clock::{SharedClock, VirtualClock};
    use soundlake::landing::SharedStore;
    use soundlake::orchestrator::{Daemon, DaemonOptions, Executor, Loaded, Pipeline, Status};
    use tokio::sync::{mpsc, watch};

    use super::runner::{Fake, fake, fake_timed, pipeline, store};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// One crawl task that takes `work_secs` of virtual time.
    fn single(schedule: &str, zone: &str, catch_up: &str, name: &str) -> Pipeline {
        let mut p = pipeline(&format!(
            "schedule = \"{schedule}\"\ntimezone = \"{zone}\"\ncatch_up = \"{catch_up}\"\n[tasks.crawl]\n"
        ));
        p.name = name.into();
        p
    }

    /// A daemon running in the background, and its controls.
    struct Running {
        status: watch::Receiver<Status>,
        stop: watch::Sender<bool>,
        reload: mpsc::Sender<()>,
        task: tokio::task::JoinHandle<soundlake::Result<()>>,
    }

    type Definitions = Arc<Mutex<soundlake::Result<Vec<Pipeline>>>>;

    fn start(
        store: &SharedStore,
        clock: &Arc<VirtualClock>,
        definitions: Definitions,
        executor: Arc<Fake>,
        holder: &str,
        lease_secs: i64,
    ) -> Running {
        let loader = Box::new(move || {
            let pipelines = match &*definitions.lock().unwrap() {
                Ok(p) => p.clone(),
                Err(e) => {
                    return Err(soundlake::Error::config("test", e.to_string(), "fix it"));
                }
            };
            Ok(Loaded {
                pipelines,
                executor: executor.clone() as Arc<dyn Executor>,
            })
        });
        let options = DaemonOptions {
            holder: holder.into(),
            lease: TimeDelta::seconds(lease_secs),
            misfire_grace: TimeDelta::seconds(60),
            grace: TimeDelta::seconds(30),
        };
        let shared: SharedClock = clock.clone();
        let daemon = Daemon::new(store.clone(), shared, loader, options).unwrap();
        let status = daemon.status();
        let (stop, stop_rx) = watch::channel(false);
        let (reload, reload_rx) = mpsc::channel(1);
        let task = tokio::spawn(daemon.run(reload_rx, stop_rx));
        Running {
            status,
            stop,
            reload,
            task,
        }
    }

    impl Running {
        /// Wait until the daemon has handled everything up to `t`, finished
        /// the runs it started, and sleeps past `t`. Race-free when runs
        /// take no virtual time: a daemon with something due at `t` still
        /// shows a wake time at or before it.
        async fn idle_through(&mut self, t: DateTime<Utc>) -> Status {
            self.until(|s| {
                s.wakes_at.is_some_and(|w| w > t) && s.pipelines.iter().all(|p| p.running.is_none())
            })
            .await
        }

        async fn until(&mut self, ready: impl Fn(&Status) -> bool) -> Status {
            let waited = tokio::time::timeout(Duration::from_secs(20), self.status.wait_for(ready))
                .await
                .map(|s| s.unwrap().clone());
            waited.unwrap_or_else(|_| {
                panic!("the daemon did not get there: {:#?}", *self.status.borrow())
            })
        }

        async fn stop(self) {
            self.stop.send(true).unwrap();
            self.task.await.unwrap().unwrap();
        }
    }

    /// Move the clock to `t` and let `daemons` handle it (see `idle_through`).
    async fn advance_to(clock: &VirtualClock, t: DateTime<Utc>, daemons: &mut [&mut Running]) {
        move_clock(clock, t);
        for d in daemons.iter_mut() {
            d.idle_through(t).await;
        }
    }

    fn move_clock(clock: &VirtualClock, t: DateTime<Utc>) {
        let now = soundlake::clock::Clock::now(clock);
        if t > now {
            clock.advance((t - now).to_std().unwrap());
        }
    }

    fn starts(fake: &Fake) -> Vec<DateTime<Utc>> {
        fake.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, what, _)| *what == "start")
            .map(|(_, _, t)| *t)
            .collect()
    }

    fn defs(pipelines: Vec<Pipeline>) -> Definitions {
        Arc::new(Mutex::new(Ok(pipelines)))
    }

    #[tokio::test]
    async fn fires_at_local_cron_times_across_daylight_saving() {
        let clock = VirtualClock::manual(at("2026-10-23T12:00:00Z"));
        let shared: SharedClock = clock.clone();
        let (_dir, store) = store(shared.clone()).await;
        let work = fake(&shared, &[("crawl", 0)], &[]);
        let p = single("0 3 * * *", "Europe/Berlin", "latest", "berlin");
        let mut d = start(&store, &clock, defs(vec![p]), work.clone(), "a", 6 * 3600);
        d.idle_through(at("2026-10-23T12:00:00Z")).await;
        // Step through the days wake by wake, as the daemon asks.
        let end = at("2026-10-26T12:00:00Z");
        loop {
            let s = d.status.borrow().clone();
            let next = s.wakes_at.unwrap();
            if next > end {
                break;
            }
            advance_to(&clock, next, &mut [&mut d]).await;
        }
        assert_eq!(
            starts(&work),
            [
                at("2026-10-24T01:00:00Z"),
                at("2026-10-25T02:00:00Z"),
                at("2026-10-26T02:00:00Z")
            ],
            "03:00 in Berlin, summer time then winter time"
        );
        let s = d.status.borrow().clone();
        assert_eq!(
            s.pipelines[0]
                .runs
                .get(&soundlake::orchestrator::RunStatus::Succeeded),
            Some(&3)
        );
        assert_eq!(s.pipelines[0].next_fire, Some(at("2026-10-27T02:00:00Z")));
        d.stop().await;
    }

    /// Every 4 s for 30 s with runs that end inside their fire's second:
    /// the daemon wakes `work_ms / 3` late, as a real clock's timer does, and
    /// the run ends `work_ms` after the fire. Each fire runs once, under an
    /// id of its whole second, and neither a restart nor a new leader in
    /// that same second runs it again.
    #[tokio::test]
    async fn a_fire_runs_once_however_quick_its_run() {
        for work_ms in [1, 300, 999] {
            let start_at = at("2026-11-21T09:47:22.500Z");
            let clock = VirtualClock::manual(start_at);
            let shared: SharedClock = clock.clone();
            let (_dir, store) = store(shared.clone()).await;
            let late = TimeDelta::milliseconds(work_ms / 3);
            let run = TimeDelta::milliseconds(work_ms) - late;
            let work = fake_timed(&shared, &[("crawl", run.to_std().unwrap())], &[]);
            let definitions = defs(vec![single("*/4 * * * * *", "UTC", "latest", "quick")]);
            let mut d = start(
                &store,
                &clock,
                definitions.clone(),
                work.clone(),
                "a",
                6 * 3600,
            );
            d.idle_through(start_at).await;
            let mut fires = Vec::new();
            loop {
                let fire = d.status.borrow().wakes_at.unwrap();
                if fire > at("2026-11-21T09:47:50Z") {
                    break;
                }
                fires.push(fire);
                move_clock(&clock, fire + late);
                // The run has started (so its end is fixed) before time moves on.
                while starts(&work).len() < fires.len() {
                    tokio::task::yield_now().await;
                }
                let ended = fire + late + run;
                move_clock(&clock, ended);
                let s = d.until(|s| s.now >= ended).await;
                assert_eq!(
                    s.pipelines[0].running, None,
                    "{work_ms} ms: the fire of {fire} started again at {ended}"
                );
            }
            assert_eq!(fires.len(), 7, "{work_ms} ms: 09:47:24 to 09:47:48");
            assert!(fires.iter().all(|f| f.timestamp_subsec_nanos() == 0));
            let expected: Vec<DateTime<Utc>> = fires.iter().map(|f| *f + late).collect();
            assert_eq!(starts(&work), expected, "{work_ms} ms: one start per fire");
            let s = d.status.borrow().clone();
            assert_eq!(
                s.pipelines[0]
                    .runs
                    .get(&soundlake::orchestrator::RunStatus::Succeeded),
                Some(&7),
                "{work_ms} ms: the status counts runs as they happened"
            );
            assert_eq!(s.pipelines[0].last_fire, fires.last().copied());

            // A restart, and another daemon leading, in the last fire's second.
            d.stop().await;
            let mut b = start(&store, &clock, definitions, work.clone(), "b", 6 * 3600);
            let now = soundlake::clock::Clock::now(&*clock);
            b.until(|s| s.leader).await;
            b.idle_through(now).await;
            assert_eq!(starts(&work).len(), 7, "{work_ms} ms: not run again by b");
            b.stop().await;

            let mut ids: Vec<String> = store
                .runs(100)
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.task == "pipeline:quick")
                .map(|r| r.id)
                .collect();
            ids.sort();
            let expected: Vec<String> = fires
                .iter()
                .map(|f| format!("scheduled-quick-{}", f.format("%Y%m%dT%H%M%SZ")))
                .collect();
            assert_eq!(ids, expected, "{work_ms} ms: one run record per fire");
        }
    }

    /// An hourly pipeline whose run takes 90 minutes, under `catch_up`:
    /// the starts of its runs from 09:30 to 12:00, and the most at once.
    async fn long_runs(catch_up: &str) -> (Vec<DateTime<Utc>>, usize) {
        let clock = VirtualClock::manual(at("2026-11-21T09:30:00Z"));
        let shared: SharedClock = clock.clone();
        let (_dir, store) = store(shared.clone()).await;
        let work = fake(&shared, &[("crawl", 90 * 60)], &[]);
        let p = single("0 * * * *", "UTC", catch_up, "hourly");
        let mut d = start(&store, &clock, defs(vec![p]), work.clone(), "a", 6 * 3600);
        d.idle_through(at("2026-11-21T09:30:00Z")).await;
        // Each step is a fire time or the end of a run: wait until the
        // daemon shows it handled that, and a run it started is under way,
        // before time moves on.
        let woke_at = |t: DateTime<Utc>| move |s: &Status| s.now >= t;
        let first_run_ended = |s: &Status| s.pipelines[0].last_run.is_some();
        type Handled<'a> = &'a dyn Fn(&Status) -> bool;
        let steps: [(&str, Handled); 4] = [
            ("10:00", &woke_at(at("2026-11-21T10:00:00Z"))),
            ("11:00", &woke_at(at("2026-11-21T11:00:00Z"))),
            ("11:30", &first_run_ended),
            ("12:00", &woke_at(at("2026-11-21T12:00:00Z"))),
        ];
        for (t, handled) in steps {
            move_clock(&clock, at(&format!("2026-11-21T{t}:00Z")));
            let s = d.until(handled).await;
            let runs = s.pipelines.iter().filter(|p| p.running.is_some()).count();
            while work.running.lock().unwrap().0 != runs {
                tokio::task::yield_now().await;
            }
        }
        let most_at_once = work.running.lock().unwrap().1;
        d.stop.send(true).unwrap();
        // The run in flight gets its grace period on the virtual clock.
        while !d.task.is_finished() {
            clock.advance(Duration::from_secs(60));
            tokio::task::yield_now().await;
        }
        d.task.await.unwrap().unwrap();
        (starts(&work), most_at_once)
    }

    #[tokio::test]
    async fn runs_never_overlap_and_fires_missed_meanwhile_follow_the_policy() {
        let (latest, most) = long_runs("latest").await;
        assert_eq!(most, 1, "never two runs of one pipeline");
        assert_eq!(
            latest,
            [at("2026-11-21T10:00:00Z"), at("2026-11-21T11:30:00Z")],
            "the 11:00 fire, missed while the first run went on, runs when it ends; \
             12:00 passes during that run"
        );
        let (none, most) = long_runs("none").await;
        assert_eq!(most, 1);
        assert_eq!(
            none,
            [at("2026-11-21T10:00:00Z"), at("2026-11-21T12:00:00Z")],
            "11:00 is skipped as missed; 12:00 is on time"
        );
    }

    #[tokio::test]
    async fn after_downtime_the_catch_up_policy_decides_what_runs() {
        for (policy, expected) in [
            ("none", vec![]),
            ("latest", vec!["15:00"]),
            ("all", vec!["11:00", "12:00", "13:00", "14:00", "15:00"]),
        ] {
            let clock = VirtualClock::manual(at("2026-11-21T09:30:00Z"));
            let shared: SharedClock = clock.clone();
            let (_dir, store) = store(shared.clone()).await;
            let work = fake(&shared, &[("crawl", 0)], &[]);
            let definitions = defs(vec![single("0 * * * *", "UTC", policy, "hourly")]);
            let mut first = start(
                &store,
                &clock,
                definitions.clone(),
                work.clone(),
                "a",
                6 * 3600,
            );
            first.idle_through(at("2026-11-21T09:30:00Z")).await;
            advance_to(&clock, at("2026-11-21T10:00:00Z"), &mut [&mut first]).await;
            first.stop().await;
            // Down from 10:00 to 15:30; a new daemon on the same store.
            clock.advance(Duration::from_secs(5 * 3600 + 1800));
            let mut second = start(&store, &clock, definitions, work.clone(), "b", 6 * 3600);
            second.idle_through(at("2026-11-21T15:30:00Z")).await;
            let starts = starts(&work);
            assert_eq!(starts[0], at("2026-11-21T10:00:00Z"));
            assert!(
                starts[1..].iter().all(|t| *t == at("2026-11-21T15:30:00Z")),
                "caught up at once: {starts:?}"
            );
            let s = second.status.borrow().clone();
            let fires: Vec<String> = store
                .runs(100)
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.task == "pipeline:hourly")
                .map(|r| r.id)
                .collect();
            let mut caught_up: Vec<String> = fires
                .iter()
                .filter_map(|id| id.strip_prefix("scheduled-hourly-20261121T"))
                .filter(|t| *t != "100000Z")
                .map(|t| format!("{}:{}", &t[0..2], &t[2..4]))
                .collect();
            caught_up.sort();
            assert_eq!(caught_up, expected, "{policy}");
            assert_eq!(
                s.pipelines[0].last_fire,
                Some(at("2026-11-21T15:00:00Z")),
                "{policy}: every missed fire is handled"
            );
            second.stop().await;
        }
    }

    #[tokio::test]
    async fn a_standby_takes_over_within_a_lease_when_the_leader_dies() {
        let clock = VirtualClock::manual(at("2026-11-21T09:00:30Z"));
        let shared: SharedClock = clock.clone();
        let (_dir, store) = store(shared.clone()).await;
        let definitions = defs(vec![single("* * * * *", "UTC", "latest", "minutely")]);
        let (work_a, work_b) = (
            fake(&shared, &[("crawl", 0)], &[]),
            fake(&shared, &[("crawl", 0)], &[]),
        );
        let mut a = start(&store, &clock, definitions.clone(), work_a.clone(), "a", 60);
        a.status.wait_for(|s| s.leader).await.unwrap();
        let mut b = start(&store, &clock, definitions, work_b.clone(), "b", 60);
        b.idle_through(at("2026-11-21T09:00:30Z")).await;
        assert!(!b.status.borrow().leader);

        let mut t = at("2026-11-21T09:00:30Z");
        while t < at("2026-11-21T09:03:00Z") {
            t += TimeDelta::seconds(5);
            advance_to(&clock, t, &mut [&mut a, &mut b]).await;
        }
        assert_eq!(
            starts(&work_a).len(),
            3,
            "the leader ran 09:01, 09:02, 09:03"
        );
        assert!(starts(&work_b).is_empty(), "the standby ran nothing");

        // The leader dies without a word: its lease lapses on its own.
        a.task.abort();
        let died = t;
        let mut took_over = None;
        while took_over.is_none() {
            t += TimeDelta::seconds(5);
            advance_to(&clock, t, &mut [&mut b]).await;
            if b.status.borrow().leader {
                took_over = Some(t);
            }
            assert!(t - died < TimeDelta::seconds(120), "no takeover");
        }
        let took_over = took_over.unwrap();
        assert!(
            took_over - died >= TimeDelta::seconds(40),
            "the lease (renewed at most 20 s before the death) still held: {took_over}"
        );
        assert!(
            took_over - died <= TimeDelta::seconds(75),
            "a lease and a quarter at most: {took_over}"
        );
        t += TimeDelta::seconds(60);
        advance_to(&clock, t, &mut [&mut b]).await;
        let ran_by_b = starts(&work_b);
        assert!(!ran_by_b.is_empty(), "the new leader schedules");
        let ran_by_a = starts(&work_a);
        assert!(
            ran_by_b.iter().all(|t| !ran_by_a.contains(t)),
            "no fire ran twice: {ran_by_a:?} {ran_by_b:?}"
        );
        b.stop().await;
        assert_eq!(
            store
                .lock_holder(soundlake::orchestrator::LEADER_LOCK)
                .await
                .unwrap()
                .as_deref(),
            None,
            "a stopping leader hands the lock back"
        );
    }

    #[tokio::test]
    async fn a_reload_applies_new_definitions_and_refuses_broken_ones() {
        let clock = VirtualClock::manual(at("2026-11-21T09:30:00Z"));
        let shared: SharedClock = clock.clone();
        let (_dir, store) = store(shared.clone()).await;
        let work = fake(&shared, &[("crawl", 0)], &[]);
        let definitions = defs(vec![single("0 * * * *", "UTC", "latest", "one")]);
        let mut d = start(
            &store,
            &clock,
            definitions.clone(),
            work.clone(),
            "a",
            6 * 3600,
        );
        d.idle_through(at("2026-11-21T09:30:00Z")).await;

        *definitions.lock().unwrap() = Ok(vec![
            single("0 * * * *", "UTC", "latest", "one"),
            single("30 * * * *", "UTC", "all", "two"),
        ]);
        d.reload.send(()).await.unwrap();
        let s = d
            .status
            .wait_for(|s| s.pipelines.len() == 2)
            .await
            .unwrap()
            .clone();
        assert_eq!(s.reloads, 1);

        *definitions.lock().unwrap() = Err(soundlake::Error::config(
            "pipelines/two.toml",
            "broken",
            "fix",
        ));
        d.reload.send(()).await.unwrap();
        let s = d
            .status
            .wait_for(|s| s.reload_errors == 1)
            .await
            .unwrap()
            .clone();
        assert!(s.reload_error.as_deref().unwrap().contains("broken"));
        assert_eq!(s.pipelines.len(), 2, "the definitions in use stay");

        advance_to(&clock, at("2026-11-21T10:30:00Z"), &mut [&mut d]).await;
        let runs: Vec<String> = store
            .runs(100)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.task.starts_with("pipeline:"))
            .map(|r| r.id)
            .collect();
        assert!(
            runs.contains(&"scheduled-one-20261121T100000Z".to_string()),
            "{runs:?}"
        );
        assert!(
            runs.contains(&"scheduled-two-20261121T103000Z".to_string()),
            "{runs:?}"
        );
        d.stop().await;
    }
}

/// The status page's base URL in the daemon's first line of output.
pub fn address_in(first: &str) -> String {
    first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .trim_end_matches('/')
        .to_string()
}

/// Start `soundlake daemon` from `command` on a free port, its stderr
/// dropped; returns the process (killed when dropped) and the status
/// page's base URL.
pub async fn start_daemon(command: std::process::Command) -> (tokio::process::Child, String) {
    start_daemon_logging(command, std::process::Stdio::null()).await
}

/// [`start_daemon`] with its log going to `log`.
pub async fn start_daemon_logging(
    command: std::process::Command,
    log: impl Into<std::process::Stdio>,
) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;

    let mut daemon = tokio::process::Command::from(command);
    daemon
        .env("SOUNDLAKE__DAEMON__LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .kill_on_drop(true);
    let mut child = daemon.spawn().unwrap();
    let mut first = String::new();
    tokio::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .await
        .unwrap();
    (child, address_in(&first))
}

/// GET `url` until `ready` holds for the body (the daemon is a process on
/// the real clock: this waits for it, it does not time it).
pub async fn poll(url: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(url).await {
            let body = r.text().await.unwrap();
            if ready(&body) {
                return body;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{url} never got ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_daemon_serves_its_status_reloads_on_sighup_and_stops_on_sigterm() {
    use std::io::BufRead;

    let defs = tracks_pipeline();
    let state = tempfile::tempdir().unwrap();
    let lake = tempfile::tempdir().unwrap();
    let landing = format!("embedded://{}/landing.db", state.path().display());
    // Another process used a credential before: its rate ledger is in the
    // store, and the daemon's metrics show it.
    {
        use soundlake::spotify::{Governor, GovernorSettings, RateScope, WaitReason};
        let store = soundlake::landing::open(&landing, soundlake::clock::system())
            .await
            .unwrap();
        let governor = Governor::new(
            GovernorSettings {
                budget: 90,
                window: std::time::Duration::from_secs(30),
                max_wait: std::time::Duration::from_secs(900),
            },
            soundlake::clock::system(),
            RateScope::Store(store),
        );
        for _ in 0..3 {
            governor.acquire().await.unwrap();
        }
        governor
            .throttled(
                Some(std::time::Duration::from_secs(1)),
                WaitReason::RateLimit,
            )
            .await
            .unwrap();
    }
    let mut child = soundlake(defs.path())
        .arg("daemon")
        .env("SOUNDLAKE__LANDING__URL", &landing)
        .env(
            "SOUNDLAKE__LAKE__URL",
            format!("file://{}", lake.path().display()),
        )
        .env("SOUNDLAKE__DAEMON__LISTEN", "127.0.0.1:0")
        .env("SPOTIFY_CLIENT_ID", "daemon-test-client")
        .env("SPOTIFY_CLIENT_SECRET", "never-show-this-secret")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let base = address_in(&first);
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };

    assert_eq!(poll(&format!("{base}/healthz"), |_| true).await, "ok\n");
    // The web UI is served beside the status page.
    let tables = poll(&format!("{base}/ui/tables"), |_| true).await;
    assert!(tables.contains("<h1>Tables</h1>"), "{tables}");
    let metrics = poll(&format!("{base}/metrics"), |m| {
        m.contains("soundlake_daemon_leader 1")
    })
    .await;
    for needle in [
        "# TYPE soundlake_pipeline_next_fire_timestamp_seconds gauge",
        "soundlake_pipeline_next_fire_timestamp_seconds{pipeline=\"catalog\"} ",
        "soundlake_pipeline_running{pipeline=\"catalog\"} 0",
        "soundlake_daemon_reloads_total 0",
        "# TYPE soundlake_rate_requests_total counter",
        "cause=\"other_traffic\"} 1",
    ] {
        assert!(metrics.contains(needle), "{needle:?} in {metrics}");
    }
    let page = poll(&format!("{base}/"), |p| p.contains("catalog")).await;
    assert!(page.contains("leader: schedules the pipelines"), "{page}");

    // A new pipeline, then SIGHUP: it is scheduled without a restart.
    std::fs::write(
        defs.path().join("pipelines/hourly.toml"),
        "schedule = \"0 * * * *\"\n[tasks.silver]\ntables = [\"tracks\"]\n",
    )
    .unwrap();
    signal("HUP");
    let status = poll(&format!("{base}/status.json"), |s| s.contains("\"hourly\"")).await;
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["reloads"], 1);
    assert_eq!(status["pipelines"].as_array().unwrap().len(), 2);

    // A broken one is refused and the daemon goes on with what it had.
    std::fs::write(
        defs.path().join("pipelines/broken.toml"),
        "schedule = \"every day\"\n[tasks.crawl]\n",
    )
    .unwrap();
    signal("HUP");
    let page = poll(&format!("{base}/"), |p| p.contains("last reload refused")).await;
    assert!(
        page.contains("broken.toml") && page.contains("hourly"),
        "{page}"
    );

    let json = poll(&format!("{base}/status.json"), |_| true).await;
    signal("TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for text in [&page, &metrics, &json, &stderr.to_string()] {
        assert!(!text.contains("never-show-this-secret"));
    }
    let store = soundlake::landing::open(&landing, soundlake::clock::system())
        .await
        .unwrap();
    assert_eq!(
        store
            .lock_holder(soundlake::orchestrator::LEADER_LOCK)
            .await
            .unwrap(),
        None,
        "the leader lock is handed back on a clean stop: {stderr}"
    );
}

/// The real clock, whose wake-ups land a little after each fire and whose
/// quick runs end inside their fire's second: a per-second schedule for
/// 20 s starts each fire once, as the log, `soundlake runs` and `/metrics`
/// all count it.
#[tokio::test]
async fn the_daemon_starts_each_fire_once_on_the_real_clock() {
    let defs = tracks_pipeline();
    std::fs::write(
        defs.path().join("pipelines/catalog.toml"),
        "schedule = \"* * * * * *\"\n[tasks.silver]\ntables = [\"tracks\"]\n",
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let lake = tempfile::tempdir().unwrap();
    let landing = format!("embedded://{}/landing.db", state.path().display());
    let lake_url = format!("file://{}", lake.path().display());
    let mut command = soundlake(defs.path());
    command
        .args(["--log-format", "json", "daemon"])
        .env("SOUNDLAKE__LANDING__URL", &landing)
        .env("SOUNDLAKE__LAKE__URL", &lake_url)
        .env("SOUNDLAKE__DAEMON__LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = tokio::process::Command::from(command).spawn().unwrap();
    let mut first = String::new();
    use tokio::io::AsyncBufReadExt;
    tokio::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .await
        .unwrap();
    let base = address_in(&first);
    tokio::time::sleep(std::time::Duration::from_secs(20)).await;
    let metrics = poll(&format!("{base}/metrics"), |_| true).await;
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(0));

    let stderr = String::from_utf8_lossy(&out.stderr);
    let started: Vec<String> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "scheduled run starts")
        .map(|l| l["fields"]["run"].as_str().unwrap().to_string())
        .collect();
    assert!(
        started.len() >= 10,
        "a run a second for 20 s, less the runs' own time: {stderr}"
    );
    let distinct: std::collections::BTreeSet<&String> = started.iter().collect();
    assert_eq!(
        distinct.len(),
        started.len(),
        "a fire started twice: {started:?}"
    );

    let (code, runs, err) = output(
        soundlake(defs.path())
            .args(["runs", "--json", "--limit", "1000"])
            .env("SOUNDLAKE__LANDING__URL", &landing),
    );
    assert_eq!(code, Some(0), "{err}");
    let runs: Value = serde_json::from_str(&runs).unwrap();
    let recorded: Vec<&Value> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["task"] == "pipeline:catalog")
        .collect();
    let mut ids: Vec<String> = recorded
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut logged = started.clone();
    logged.sort();
    assert_eq!(ids, logged, "one run record per start");

    // The metrics were read before the stop: they count every run that had
    // finished then, and at most the one in flight is missing.
    let counted: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("soundlake_pipeline_runs_total{pipeline=\"catalog\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    let finished = recorded.iter().filter(|r| r["status"] != "running").count() as u64;
    assert!(
        counted <= finished && finished <= counted + 1,
        "/metrics counted {counted} runs, the store has {finished} finished: {metrics}"
    );
}
