//! The command line. Parses arguments, sets up logging, runs one command
//! and turns its outcome into an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use crate::clock;
use crate::error::{Error, Result};
use crate::orchestrator::{RecordedRun, RunStatus, run_id, stop_on_signals};
use crate::progress::Progress;
use crate::project::{Deployment, Project};
use crate::tasks::TaskKind;

mod args;
#[macro_use]
mod output;
mod data;
mod tables;

use args::*;

/// Exit codes. 0 is success; these say why a command did not succeed.
pub mod exit {
    /// The work failed.
    pub const FAILURE: u8 = 1;
    /// Bad configuration, definitions or arguments: nothing was done.
    pub const USAGE: u8 = 2;
    /// An input file was malformed: nothing of it was loaded.
    pub const DATA: u8 = 65;
    /// Stopped cleanly on a long rate-limit or quota wait; run again later.
    pub const TEMPFAIL: u8 = 75;
}

/// How long a command waits at exit for its notifications to be delivered.
const NOTIFY_FLUSH: std::time::Duration = std::time::Duration::from_secs(10);

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let progress = init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let done = runtime.block_on(async {
        let done = run(cli, progress).await;
        // The last notices (a failed run) go out before the process ends.
        crate::notify::flush(NOTIFY_FLUSH).await;
        done
    });
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The exit code for an error.
pub fn exit_code(error: &Error) -> u8 {
    match error {
        Error::Config { .. } | Error::MissingCredentials => exit::USAGE,
        Error::Input { .. } => exit::DATA,
        e if e.come_back_at().is_some() => exit::TEMPFAIL,
        _ => exit::FAILURE,
    }
}

/// soundlake's own events at info. The Delta kernel logs every log replay
/// at info, and a table with no log yet as an error; Delta's commits warn
/// of every concurrent append and log a refused one as an error. soundlake
/// reports what matters of those itself.
const DEFAULT_LOG: &str = "info,buoyant_kernel=off,buoyant_kernel_engine=off,deltalake_core=warn,\
                           deltalake_core::kernel::transaction=off";

/// Logs on standard error, and the progress display they write above.
fn init_logging(format: LogFormat) -> Progress {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SOUNDLAKE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let progress = Progress::for_terminal(json);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(progress.log_writer());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    progress
}

async fn run(cli: Cli, progress: Progress) -> Result<()> {
    let settings = crate::config::Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Sim(args) => data::sim(args, &settings).await,
        Command::Crawl(args) => crawl(args, &settings, progress).await,
        Command::Import(args) => data::import(args, &settings, &progress).await,
        Command::Bronze(args) => bronze(args, &settings).await,
        Command::Silver(args) => silver(args, &settings).await,
        Command::Validate => validate(&settings),
        Command::List(args) => list(args, &settings),
        Command::Dag(args) => dag(args, &settings),
        Command::Run(args) => run_pipeline(args, &settings, progress).await,
        Command::Runs(args) => runs(args, &settings).await,
        Command::Backfill(args) => backfill(args, &settings, progress).await,
        Command::Daemon => daemon(&settings).await,
        Command::Ui(args) => ui(args, &settings).await,
        Command::Query(args) => tables::query(args, &settings).await,
        Command::Recommend(args) => tables::recommend(args, &settings).await,
        Command::History(args) => tables::history(args, &settings).await,
        Command::Vacuum(args) => tables::vacuum(args, &settings).await,
        Command::Purge(args) => tables::purge(args, &settings).await,
        Command::Ddl(args) => tables::ddl(args, &settings),
        Command::Register(args) => tables::register(args, &settings).await,
        Command::Demo => demo(&settings).await,
        Command::Init(args) => init(args),
        Command::Generate(GenerateCommand::Catalog(args)) => {
            data::generate_catalog(args, &progress)
        }
        Command::Generate(GenerateCommand::Events(args)) => {
            data::generate_events(args, &settings, &progress).await
        }
    }
}

fn print_json(value: &impl serde::Serialize) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).expect("reports serialize")
    );
}

async fn crawl(
    args: ReportArgs,
    settings: &crate::config::Settings,
    progress: Progress,
) -> Result<()> {
    let deployment = Deployment::open_for_crawl(settings).await?;
    let executor = deployment.executor(&Project::default(), &Default::default());
    let (store, clock) = (&deployment.store, &deployment.clock);
    let run = RecordedRun::start(store, clock, TaskKind::Crawl.name()).await?;
    let report = match executor.crawl(None, run.id(), &progress).await {
        Ok(report) => report,
        Err(e) => return Err(run.fail(e).await),
    };
    let paused = report.paused();
    let status = match paused {
        Some(_) => RunStatus::Paused,
        None => RunStatus::Succeeded,
    };
    run.finish(status, &report).await?;
    if args.json {
        print_json(&report);
    } else {
        out!("{}", crate::crawl::render(&report));
    }
    paused.map_or(Ok(()), Err)
}

async fn bronze(args: BronzeArgs, settings: &crate::config::Settings) -> Result<()> {
    use crate::bronze::Extract;

    let project = Project::load_up_to(settings, TaskKind::Bronze)?;
    let chosen = crate::definitions::select("bronze", &project.bronze, |d| &d.name, &args.tables)?;
    let deployment = Deployment::open(settings).await?;
    let executor = deployment.executor(&project, &Default::default());
    let extract = match args.from {
        Some(from) => Extract::Interval {
            from,
            to: args.to.unwrap_or_else(|| deployment.clock.now()),
        },
        None => Extract::Incremental,
    };
    let run_one = async |def: &crate::bronze::BronzeTable, run_id: &str| {
        executor.bronze(def, extract, run_id).await
    };
    run_tables(
        &deployment,
        TaskKind::Bronze,
        &chosen,
        |d| &d.name,
        (args.report.json, crate::bronze::render),
        run_one,
    )
    .await
}

async fn silver(args: SilverArgs, settings: &crate::config::Settings) -> Result<()> {
    use crate::silver::Scope;

    let project = Project::load_up_to(settings, TaskKind::Silver)?;
    let chosen = crate::definitions::select("silver", &project.silver, |d| &d.name, &args.tables)?;
    let deployment = Deployment::open(settings).await?;
    let executor = deployment.executor(&project, &Default::default());
    if args.from.is_some() {
        chosen
            .iter()
            .try_for_each(|def| def.check_rebuilds_partitions())?;
    }
    let scope = match (args.full_refresh, args.from) {
        (true, _) => Scope::Full,
        (false, Some(from)) => Scope::Interval {
            from,
            to: args.to.unwrap_or_else(|| deployment.clock.now()),
        },
        (false, None) => Scope::New,
    };
    let run_one = async |def: &crate::silver::SilverTable, run_id: &str| {
        executor.silver(def, scope, run_id).await
    };
    run_tables(
        &deployment,
        TaskKind::Silver,
        &chosen,
        |d| &d.name,
        (args.report.json, crate::silver::render),
        run_one,
    )
    .await
}

async fn demo(settings: &crate::config::Settings) -> Result<()> {
    let built = crate::demo::run(settings, stop_on_signals()?, &|line| eprintln!("{line}")).await?;
    outln!("Built from {} artists:", built.artists);
    for (table, rows) in &built.tables {
        outln!("  {table:<44} {rows:>9} rows");
    }
    for (title, query, schema, batches) in &built.answers {
        outln!("\n{title}:\n  soundlake query \"{query}\"");
        crate::sql::output::write(
            &mut std::io::stdout().lock(),
            crate::sql::output::Format::Table,
            schema,
            batches,
        )?;
    }
    out!("{}", crate::demo::next_steps(&built, &settings.landing.url));
    Ok(())
}

fn init(args: InitArgs) -> Result<()> {
    let written = crate::init::init(&args.dir)?;
    out!("{}", crate::init::render(&args.dir, written.len()));
    Ok(())
}

fn validate(settings: &crate::config::Settings) -> Result<()> {
    let defs = Project::load(settings)?;
    let tasks: usize = defs.pipelines.iter().map(|p| p.dag.len()).sum();
    outln!(
        "definitions are valid: {} bronze tables, {} silver tables, {} gold models, {} pipelines ({tasks} tasks)",
        defs.bronze.len(),
        defs.silver.len(),
        defs.gold.len(),
        defs.pipelines.len()
    );
    Ok(())
}

fn list(args: ReportArgs, settings: &crate::config::Settings) -> Result<()> {
    let project = Project::load(settings)?;
    let rows = crate::orchestrator::schedules(&project.pipelines, clock::system().now());
    if args.json {
        print_json(&rows);
    } else {
        out!("{}", crate::orchestrator::render_schedules(&rows));
    }
    Ok(())
}

fn dag(args: DagArgs, settings: &crate::config::Settings) -> Result<()> {
    let defs = Project::load(settings)?;
    let pipeline = defs.pipeline(&args.pipeline)?;
    out!("{}", pipeline.dag.render(&pipeline.name, args.format));
    Ok(())
}

async fn run_pipeline(
    args: RunArgs,
    settings: &crate::config::Settings,
    progress: Progress,
) -> Result<()> {
    use crate::orchestrator::{RunOptions, Runner};

    let defs = Project::load(settings)?;
    let pipeline = defs.pipeline(&args.pipeline)?;
    let selected = pipeline.dag.select(&args.select).map_err(|problem| {
        Error::config(
            "--select",
            problem,
            format!("see the task ids with `soundlake dag {}`", pipeline.name),
        )
    })?;
    if args.dry_run {
        out!(
            "{}",
            crate::orchestrator::render_selection(pipeline, &selected)
        );
        return Ok(());
    }
    let deployment = Deployment::open(settings).await?;
    let tasks = deployment.executor(&defs, &Default::default());
    let Deployment {
        store, clock, lake, ..
    } = deployment;
    let runner = Runner::new(store, clock.clone(), tasks);
    let id = run_id(&pipeline.name, clock.now());
    let options = RunOptions {
        full_refresh: args.full_refresh,
        stop: Some(stop_on_signals()?),
        grace: chrono::TimeDelta::seconds(args.grace_secs.into()),
        progress,
        rows: lake.rows_written().clone(),
        ..RunOptions::default()
    };
    let report = runner.run(pipeline, &selected, &options, &id).await?;
    if args.report.json {
        let mut value = serde_json::to_value(&report).expect("reports serialize");
        value["stages"] = crate::stages::busy_seconds().into();
        print_json(&value);
    } else {
        out!("{}", crate::orchestrator::render(&report));
    }
    if report.succeeded() {
        return Ok(());
    }
    Err(report.failure())
}

async fn daemon(settings: &crate::config::Settings) -> Result<()> {
    use crate::orchestrator::{Daemon, DaemonOptions, Loaded};

    let defs = Project::load(settings)?;
    let deployment = Deployment::open(settings).await?;
    let stop = stop_on_signals()?;
    let (streamed, mut streams) = deployment.start_streams(&defs, &stop);
    let (store, lake, clock) = (
        deployment.store.clone(),
        deployment.lake.clone(),
        deployment.clock.clone(),
    );
    let loader = Box::new(move || {
        let defs = Project::load(&deployment.settings)?;
        Ok(Loaded {
            executor: deployment.executor(&defs, &streamed),
            pipelines: defs.pipelines,
        })
    });
    let seconds = |s: u64| chrono::TimeDelta::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000));
    let options = DaemonOptions {
        holder: crate::landing::lease::holder(&run_id("daemon", clock.now())),
        lease: seconds(settings.daemon.leader_lease_secs),
        misfire_grace: seconds(settings.daemon.misfire_grace_secs),
        grace: seconds(settings.daemon.grace_secs),
    };
    let rates = crate::orchestrator::RateSource {
        store: store.clone(),
        clock: clock.clone(),
        budget: settings.spotify.requests_per_window,
    };
    let ui = crate::ui::Ui::new(
        (store.clone(), lake, clock.clone()),
        defs,
        settings.daemon.listen,
        &settings.daemon.ui_token,
    )?;
    let daemon = Daemon::new(store, clock, loader, options)?;
    let reload = crate::orchestrator::reload_on_hangup()?;
    let (addr, server) = crate::orchestrator::serve_status(
        settings.daemon.listen,
        daemon.status(),
        rates,
        ui.router(),
        stop.clone(),
    )
    .await?;
    outln!(
        "soundlake daemon: status page http://{addr}/ (the web UI at /ui/, metrics at /metrics)"
    );
    daemon.run(reload, stop).await?;
    while streams.join_next().await.is_some() {}
    let _ = server.await;
    Ok(())
}

async fn backfill(
    args: BackfillArgs,
    settings: &crate::config::Settings,
    progress: Progress,
) -> Result<()> {
    use crate::orchestrator::{Backfill, RunOptions};

    let project = Project::load(settings)?;
    let pipeline = project.pipeline(&args.pipeline)?;
    let plan = Backfill::for_range(pipeline, &args.from, &args.to, args.parallel)?;
    let deployment = Deployment::open(settings).await?;
    let executor = deployment.executor(&project, &Default::default());
    let Deployment {
        store, clock, lake, ..
    } = deployment;
    if args.dry_run {
        let dry_run = plan.dry_run(&store, args.force).await?;
        out!("{}", crate::orchestrator::render_dry_run(&dry_run));
        return Ok(());
    }
    let options = RunOptions {
        full_refresh: false,
        stop: Some(stop_on_signals()?),
        grace: chrono::TimeDelta::seconds(args.grace_secs.into()),
        progress,
        rows: lake.rows_written().clone(),
        ..RunOptions::default()
    };
    let id = run_id(&format!("backfill-{}", pipeline.name), clock.now());
    let report = plan
        .run(&store, &clock, executor, &options, args.force, &id)
        .await?;
    if args.report.json {
        print_json(&report);
    } else {
        out!("{}", crate::orchestrator::render_backfill(&report));
    }
    match &report.run {
        Some(run) if !report.succeeded() => Err(run.failure()),
        _ => Ok(()),
    }
}

async fn ui(args: UiArgs, settings: &crate::config::Settings) -> Result<()> {
    let deployment = Deployment::open(settings).await?;
    let ui = crate::ui::Ui::new(
        (deployment.store, deployment.lake, deployment.clock),
        Project::load(settings)?,
        args.listen,
        &settings.daemon.ui_token,
    )?;
    crate::ui::serve(ui, args.listen).await
}

async fn runs(args: RunsArgs, settings: &crate::config::Settings) -> Result<()> {
    let store = crate::landing::open(&settings.landing.url, clock::system()).await?;
    let records = store.runs(args.limit).await?;
    if args.report.json {
        print_json(&records);
    } else {
        out!("{}", crate::orchestrator::render_runs(&records));
    }
    Ok(())
}

/// Run a layer's job on each chosen table as a recorded run (`<layer>.<table>`),
/// printing each report as text as it comes, or all of them as JSON at the end.
async fn run_tables<T, R: serde::Serialize>(
    deployment: &Deployment,
    kind: TaskKind,
    chosen: &[&T],
    name_of: fn(&T) -> &String,
    (json, render): (bool, fn(&R) -> String),
    job: impl AsyncFn(&T, &str) -> Result<R>,
) -> Result<()> {
    let mut reports = Vec::new();
    for def in chosen {
        let task = crate::definitions::TableId::new(kind.name(), name_of(def)).to_string();
        let work = async |run_id: &str| job(def, run_id).await;
        let report = RecordedRun::run(&deployment.store, &deployment.clock, &task, work).await?;
        if !json {
            outln!("{}", render(&report));
        }
        reports.push(report);
    }
    if json {
        print_json(&serde_json::json!({
            "tables": reports,
            "peak_rss_bytes": peak_rss_bytes(),
        }));
    }
    Ok(())
}

/// This process's peak resident memory (Linux), for reports that measure.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
