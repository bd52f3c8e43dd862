//! The command line. Parses arguments, sets up logging, runs one command
//! and turns its outcome into an exit code.

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::clock;
use crate::error::{Error, Result};
use crate::orchestrator::{RunStatus, run_id};
use crate::project::{Deployment, Project};
use crate::sim::{Faults, SimOptions, Simulator};
use crate::spotify::ApiError;
use crate::spotify::AppMode;

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

#[derive(Debug, Parser)]
#[command(name = "soundlake", version, about = "Medallion ELT for the Spotify Web API", long_about = None)]
pub struct Cli {
    /// Configuration file (default: soundlake.toml in the working directory, if present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format: human-readable on a terminal, JSON lines otherwise.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Auto,
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the Spotify Web API simulator: token endpoint and catalog
    /// endpoints over a deterministic catalog, both app modes, rate limits
    /// and injectable faults.
    Sim(SimArgs),
    /// Crawl the next due names of [crawl] artists_file through the Spotify
    /// API into the landing store; rerun to go on (it resumes after a crash,
    /// a budget or a long rate-limit wait).
    Crawl(ReportArgs),
    /// Load raw Spotify objects from NDJSON, a JSON array or a saved API
    /// response into a landing collection, as the crawl would.
    Import(ImportArgs),
    /// Extract the document versions landed since the last run into the
    /// bronze tables of the lake (all of bronze/*.toml, or the ones named);
    /// with --from/--to, re-derive that ingest interval instead.
    Bronze(BronzeArgs),
    /// Flatten bronze into the typed silver tables (all of silver/*.toml,
    /// or the ones named): only keys with new versions are re-derived.
    Silver(SilverArgs),
    /// Check every table and pipeline definition before anything runs, and
    /// report all problems at once.
    Validate,
    /// List the pipelines with their schedules and next fire times.
    List(ReportArgs),
    /// Print a pipeline's tasks and dependencies.
    Dag(DagArgs),
    /// Run a pipeline's DAG once (or the selected tasks), tasks in parallel
    /// up to its limit; exit 0 only when every task succeeded.
    Run(RunArgs),
    /// List recent runs and task attempts from the state store.
    Runs(RunsArgs),
    /// Re-derive a range of schedule intervals: the pipeline's layer tasks
    /// once per interval (bronze extracts what was landed in it), skipping
    /// intervals a previous backfill finished; rerun to resume.
    Backfill(BackfillArgs),
    /// Run every pipeline on its schedule until SIGINT/SIGTERM (SIGHUP
    /// reloads the definitions), serving a status page and Prometheus
    /// /metrics on [daemon] listen. Daemons sharing a state store elect one
    /// leader; the others stand by.
    Daemon,
    /// Run SQL over the committed bronze, silver and gold tables
    /// (`silver.tracks`, `gold.dim_track`) with the embedded engine.
    Query(QueryArgs),
    /// Print the statements that expose every gold table to another engine
    /// over the configured lake URL.
    Ddl(DdlArgs),
    /// The whole catalog pipeline offline: start the simulator in-process,
    /// crawl [crawl] artists_file through it, run bronze, silver and gold
    /// with their data tests on the configured (by default embedded)
    /// store and lake, and show what was built.
    Demo,
    /// Write generated data files for benchmarks, load tests and demos.
    #[command(subcommand)]
    Generate(GenerateCommand),
}

#[derive(Debug, Args)]
struct QueryArgs {
    /// One SQL statement: SELECT, SHOW TABLES, DESCRIBE gold.dim_track, …
    sql: String,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = crate::sql::output::Format::Table)]
    format: crate::sql::output::Format,
}

#[derive(Debug, Args)]
struct DdlArgs {
    /// The engine to print statements for.
    #[arg(long, value_enum)]
    engine: crate::gold::ddl::Target,
}

#[derive(Debug, Args)]
struct BackfillArgs {
    /// The pipeline (a pipelines/*.toml file name without .toml).
    pipeline: String,
    /// Start of the range: a date (the start of that day in the pipeline's
    /// time zone) or an RFC 3339 time.
    #[arg(long)]
    from: String,
    /// End of the range: a date (included: the end of that day) or an RFC
    /// 3339 time (excluded).
    #[arg(long)]
    to: String,
    /// Tasks at once, across intervals and tables.
    #[arg(long, default_value_t = 1)]
    parallel: usize,
    /// Run intervals a previous backfill already finished, too.
    #[arg(long)]
    force: bool,
    /// List the intervals and what would run, and run nothing.
    #[arg(long)]
    dry_run: bool,
    /// On SIGINT or SIGTERM, how long running tasks get to finish.
    #[arg(long, default_value_t = 60)]
    grace_secs: u32,
    #[command(flatten)]
    report: ReportArgs,
}

/// More intervals than this in one backfill is almost surely a mistake
/// (a per-minute schedule over a year); split the range instead.
const MAX_BACKFILL_INTERVALS: usize = 10_000;

#[derive(Debug, Args)]
struct RunArgs {
    /// The pipeline (a pipelines/*.toml file name without .toml).
    pipeline: String,
    /// Task ids or globs, `+` before for everything upstream, after for
    /// everything downstream: 'bronze.*+', '+silver.tracks'.
    #[arg(long, default_value = "")]
    select: String,
    /// Print the plan and run nothing.
    #[arg(long)]
    dry_run: bool,
    /// Rebuild layer tables from scratch.
    #[arg(long)]
    full_refresh: bool,
    /// On SIGINT or SIGTERM, how long running tasks get to finish.
    #[arg(long, default_value_t = 60)]
    grace_secs: u32,
    #[command(flatten)]
    report: ReportArgs,
}

#[derive(Debug, Args)]
struct RunsArgs {
    /// How many records, newest first.
    #[arg(long, default_value_t = 30)]
    limit: usize,
    #[command(flatten)]
    report: ReportArgs,
}

#[derive(Debug, Args)]
struct DagArgs {
    /// The pipeline (a pipelines/*.toml file name without .toml).
    pipeline: String,
    /// text (waves with dependencies), mermaid or dot (Graphviz).
    #[arg(long, value_enum, default_value_t = crate::orchestrator::Format::Text)]
    format: crate::orchestrator::Format,
}

#[derive(Debug, Args)]
struct SilverArgs {
    /// Tables to run (default: every silver/*.toml).
    tables: Vec<String>,
    /// Rebuild from all of bronze, inferring the schema afresh.
    #[arg(long, conflicts_with = "from")]
    full_refresh: bool,
    /// For a partitioned table: rebuild the date partitions from this day
    /// (2026-11-21, or an RFC 3339 time) on.
    #[arg(long, value_parser = instant)]
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// End of the interval (exclusive); default: now.
    #[arg(long, value_parser = instant, requires = "from")]
    to: Option<chrono::DateTime<chrono::Utc>>,
    #[command(flatten)]
    report: ReportArgs,
}

#[derive(Debug, Args)]
struct BronzeArgs {
    /// Tables to run (default: every bronze/*.toml).
    tables: Vec<String>,
    /// Start of the ingest interval to re-derive: a date (2026-11-21, UTC
    /// midnight) or an RFC 3339 time.
    #[arg(long, value_parser = instant)]
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// End of the interval (exclusive); default: now.
    #[arg(long, value_parser = instant, requires = "from")]
    to: Option<chrono::DateTime<chrono::Utc>>,
    #[command(flatten)]
    report: ReportArgs,
}

fn instant(s: &str) -> std::result::Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| format!("{s:?} is neither a date (2026-11-21) nor an RFC 3339 time"))
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// Print the run report as JSON on stdout instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum GenerateCommand {
    /// A deterministic Spotify catalog of at least --tracks tracks, as
    /// artists, albums, tracks and audio_features .ndjson files shaped as
    /// the Extended-mode batch endpoints return them (load them with
    /// `soundlake import`).
    Catalog(CatalogArgs),
    /// Listening events (play, pause, skip, like, complete) over the
    /// catalog in the lake's silver.tracks, as NDJSON or CSV files in the
    /// lake's landing/events/ folder (or JSON messages on a Kafka topic
    /// with --to), deterministic from --seed.
    Events(EventArgs),
}

#[derive(Debug, Args)]
struct EventArgs {
    /// Listeners.
    #[arg(long)]
    users: u32,
    /// Distinct events in all (a few more lines are written: late and
    /// duplicate deliveries, as apps send them).
    #[arg(long)]
    events: u64,
    /// Days of listening, ending with --end.
    #[arg(long)]
    days: u32,
    /// The last day (YYYY-MM-DD, UTC); yesterday by default.
    #[arg(long)]
    end: Option<chrono::NaiveDate>,
    /// Seed: the same seed, sizes and catalog give the same files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, value_enum, default_value = "ndjson")]
    format: crate::events::Format,
    /// Send the events to a Kafka topic instead, as JSON messages keyed by
    /// user: kafka://host:port/topic ([kafka.client] settings apply).
    #[arg(long, value_name = "URL")]
    to: Option<String>,
    /// Partitions of the topic, when --to creates it.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=1000))]
    partitions: i32,
    #[command(flatten)]
    report: ReportArgs,
}

#[derive(Debug, Args)]
struct CatalogArgs {
    /// Tracks to generate at least (the last artist's albums complete the
    /// count); the catalog is held in memory, about 1 GB per 2 million.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=20_000_000))]
    tracks: u64,
    /// Seed: the same seed and size give the same files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Folder to write the files into (created if missing).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    report: ReportArgs,
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// artists, albums, tracks or audio_features.
    collection: crate::landing::Collection,
    /// The file to load.
    file: PathBuf,
    /// Load nothing if any entry is malformed (default: load the valid ones
    /// and list the rejects).
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    report: ReportArgs,
}

#[derive(Debug, Args)]
struct SimArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port; 0 picks a free one and prints it.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// App mode to behave as.
    #[arg(long, default_value = "extended")]
    mode: AppMode,
    /// Seed of the generated catalog.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Artist names the catalog is built around (default: [crawl] artists_file).
    #[arg(long, value_name = "FILE")]
    names: Option<PathBuf>,
    /// Requests accepted per rolling window before 429 + Retry-After; 0 turns the limit off.
    #[arg(long, default_value_t = 180)]
    rate_limit: u32,
    /// Length of the rolling rate-limit window.
    #[arg(long, default_value_t = 30)]
    window_secs: u64,
    /// Requests accepted per quota period before 429 QUOTA_EXCEEDED.
    #[arg(long)]
    quota: Option<u64>,
    /// Length of a quota period.
    #[arg(long, default_value_t = 86_400)]
    quota_period_secs: u64,
    /// Lifetime of issued access tokens.
    #[arg(long, default_value_t = 3600)]
    token_ttl_secs: u64,
    /// Share of requests answered 500/502/503.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    fault_5xx: f64,
    /// Share of requests answered late.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    fault_slow: f64,
    /// How late a slow answer is.
    #[arg(long, default_value_t = 2000)]
    slow_ms: u64,
    /// Share of requests answered 200 with a malformed body.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    fault_malformed: f64,
    /// Share of requests whose token is expired on the spot (401).
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    fault_expire_token: f64,
}

fn share(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a share between 0.0 and 1.0")),
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
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

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SOUNDLAKE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(cli: Cli) -> Result<()> {
    let settings = crate::config::Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Sim(args) => sim(args, &settings).await,
        Command::Crawl(args) => crawl(args, &settings).await,
        Command::Import(args) => import(args, &settings).await,
        Command::Bronze(args) => bronze(args, &settings).await,
        Command::Silver(args) => silver(args, &settings).await,
        Command::Validate => validate(&settings),
        Command::List(args) => list(args, &settings),
        Command::Dag(args) => dag(args, &settings),
        Command::Run(args) => run_pipeline(args, &settings).await,
        Command::Runs(args) => runs(args, &settings).await,
        Command::Backfill(args) => backfill(args, &settings).await,
        Command::Daemon => daemon(&settings).await,
        Command::Query(args) => query(args, &settings).await,
        Command::Ddl(args) => ddl(args, &settings),
        Command::Demo => demo(&settings).await,
        Command::Generate(GenerateCommand::Catalog(args)) => generate_catalog(args),
        Command::Generate(GenerateCommand::Events(args)) => generate_events(args, &settings).await,
    }
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("reports serialize")
    );
}

/// A task run as recorded in the store for `soundlake runs`: `running`
/// from the start, then its outcome and report.
struct RecordedRun {
    store: crate::landing::SharedStore,
    clock: clock::SharedClock,
    record: crate::landing::RunRecord,
}

impl RecordedRun {
    async fn start(
        store: &crate::landing::SharedStore,
        clock: &clock::SharedClock,
        task: &str,
    ) -> Result<RecordedRun> {
        let started = clock.now();
        let record = crate::landing::RunRecord {
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

    fn id(&self) -> &str {
        &self.record.id
    }

    async fn finish(mut self, status: RunStatus, report: serde_json::Value) -> Result<()> {
        self.record.finished_at = Some(self.clock.now());
        self.record.status = status.as_str().into();
        self.record.report = report;
        self.store.put_run(&self.record).await
    }

    /// Record a failure and hand the error back.
    async fn fail(self, error: Error) -> Error {
        let report = serde_json::json!({"error": error.to_string()});
        // The task's own error is the one to report; a store that also
        // failed to record it would only hide it.
        let _recorded = self.finish(RunStatus::Failed, report).await;
        error
    }
}

async fn crawl(args: ReportArgs, settings: &crate::config::Settings) -> Result<()> {
    use crate::crawl::{Crawler, Outcome};

    let clock = clock::system();
    let names = crate::text::read_names(&settings.crawl.artists_file)?;
    let client = crate::spotify::SpotifyClient::new(&settings.spotify, clock.clone())?;
    let store = crate::landing::open(&settings.landing.url, clock.clone()).await?;
    let run = RecordedRun::start(&store, &clock, "crawl").await?;
    let crawler = Crawler::new(client, store.clone(), clock.clone(), settings.crawl.clone());
    let report = match crawler.run(&names, run.id()).await {
        Ok(report) => report,
        Err(e) => return Err(run.fail(e).await),
    };
    let status = match report.outcome {
        Outcome::Paused { .. } => RunStatus::Paused,
        _ => RunStatus::Succeeded,
    };
    run.finish(
        status,
        serde_json::to_value(&report).expect("reports serialize"),
    )
    .await?;
    if args.json {
        print_json(&report);
    } else {
        print!("{}", crate::crawl::render(&report));
    }
    match report.outcome {
        Outcome::Paused { until, reason } => Err(ApiError::ComeBackAt { until, reason }.into()),
        _ => Ok(()),
    }
}

async fn bronze(args: BronzeArgs, settings: &crate::config::Settings) -> Result<()> {
    use crate::bronze::{Bronze, Extract};

    let defs = crate::bronze::load(&settings.definitions.dir.join(crate::bronze::LAYER))?;
    let chosen = select_tables("bronze", &defs, |d| &d.name, &args.tables)?;
    let Deployment {
        store, clock, lake, ..
    } = Deployment::open(settings).await?;
    let extract = match args.from {
        Some(from) => Extract::Interval {
            from,
            to: args.to.unwrap_or_else(|| clock.now()),
        },
        None => Extract::Incremental,
    };
    let job = Bronze::new(store.clone(), lake, clock.clone())
        .with_settings(&settings.ingest, &settings.kafka);
    let run_one =
        async |def: &crate::bronze::BronzeTable, run_id: &str| job.run(def, extract, run_id).await;
    run_tables(
        &store,
        &clock,
        "bronze",
        &chosen,
        |d| &d.name,
        args.report.json,
        crate::bronze::render,
        run_one,
    )
    .await
}

async fn silver(args: SilverArgs, settings: &crate::config::Settings) -> Result<()> {
    use crate::silver::{Scope, Silver};

    let dir = &settings.definitions.dir;
    let bronze = crate::bronze::load(&dir.join(crate::bronze::LAYER))?;
    let defs = crate::silver::load(&dir.join(crate::silver::LAYER), &bronze)?;
    let chosen = select_tables("silver", &defs, |d| &d.name, &args.tables)?;
    let Deployment {
        store, clock, lake, ..
    } = Deployment::open(settings).await?;
    if args.from.is_some()
        && let Some(def) = chosen.iter().find(|d| d.partition_by.is_none())
    {
        return Err(Error::config(
            def.file.display().to_string(),
            format!(
                "silver.{} is not partitioned, and --from/--to rebuild partitions",
                def.name
            ),
            "give --from/--to only for tables with partition_by (like silver.events); \
             rebuild the others with --full-refresh",
        ));
    }
    let scope = match (args.full_refresh, args.from) {
        (true, _) => Scope::Full,
        (false, Some(from)) => Scope::Interval {
            from,
            to: args.to.unwrap_or_else(|| clock.now()),
        },
        (false, None) => Scope::New,
    };
    let job = Silver::new(store.clone(), lake, clock.clone());
    let run_one = async |def: &crate::silver::SilverTable, run_id: &str| {
        let source = bronze
            .iter()
            .find(|b| b.name == def.source)
            .expect("silver::load checked the source");
        job.run(def, source, scope, run_id).await
    };
    run_tables(
        &store,
        &clock,
        "silver",
        &chosen,
        |d| &d.name,
        args.report.json,
        crate::silver::render,
        run_one,
    )
    .await
}

async fn query(args: QueryArgs, settings: &crate::config::Settings) -> Result<()> {
    let lake = crate::lake::Lake::open(&settings.lake)?;
    lake.check().await?;
    let engine = crate::sql::Engine::open(&lake).await?;
    let (schema, batches) = engine.collect("the query", &args.sql).await?;
    let mut out = std::io::stdout().lock();
    crate::sql::output::write(&mut out, args.format, &schema, &batches)
}

fn ddl(args: DdlArgs, settings: &crate::config::Settings) -> Result<()> {
    let defs = Project::load(settings)?;
    print!(
        "{}",
        crate::gold::ddl::render(args.engine, &defs.gold, &settings.lake)?
    );
    Ok(())
}

/// The pipeline the demo runs, stage by stage.
const DEMO_PIPELINE: &str = "spotify_catalog";
const DEMO_STAGES: [(&str, &str); 4] = [
    ("crawl", "crawl"),
    ("bronze", "bronze.*"),
    ("silver", "silver.*"),
    ("gold", "gold.*"),
];
const DEMO_EVENTS_PIPELINE: &str = "listening_events";
/// A fortnight of listening for the demo, ending on a fixed day so every
/// demo builds the same marts.
const DEMO_EVENTS: crate::events::EventOptions = crate::events::EventOptions {
    users: 300,
    events: 30_000,
    days: 14,
    end: chrono::NaiveDate::from_ymd_opt(2026, 11, 15).expect("a date"),
    seed: 42,
    format: crate::events::Format::Ndjson,
};
const DEMO_QUERIES: [(&str, &str); 2] = [
    (
        "The artists with the most tracks",
        "SELECT a.name, count(*) AS tracks \
         FROM gold.bridge_track_artist b JOIN gold.dim_artist a ON a.artist_key = b.artist_key \
         GROUP BY a.name ORDER BY tracks DESC, a.name LIMIT 5",
    ),
    (
        "The most played tracks of the fortnight",
        "SELECT t.name, e.plays, e.listeners, round(e.skip_rate, 2) AS skip_rate \
         FROM gold.mart_track_engagement e JOIN gold.dim_track t ON t.track_key = e.track_key \
         ORDER BY e.plays DESC, t.name LIMIT 5",
    ),
];

async fn demo(settings: &crate::config::Settings) -> Result<()> {
    use crate::orchestrator::{RunOptions, Runner};

    let names = crate::text::read_names(&settings.crawl.artists_file)?;
    let sim = Simulator::start(
        SimOptions {
            mode: settings.spotify.mode,
            names: names.clone(),
            rate_limit: 0,
            ..SimOptions::default()
        },
        clock::system(),
        SocketAddr::new(IpAddr::from([127, 0, 0, 1]), 0),
    )
    .await?;
    let mut settings = settings.clone();
    let base = sim.base_url();
    settings.spotify.api_url = format!("{base}/v1");
    settings.spotify.token_url = format!("{base}/api/token");
    settings.spotify.client_id = crate::sim::CLIENT_ID.into();
    settings.spotify.client_secret = crate::secret::Secret::new(crate::sim::CLIENT_SECRET);
    // The simulator is local and unlimited: no budget to keep to.
    settings.spotify.requests_per_window = 100_000;
    settings.crawl.names_per_run = u32::try_from(names.len()).unwrap_or(u32::MAX);
    let defs = Project::load(&settings)?;
    let pipeline = defs.pipeline(DEMO_PIPELINE)?;
    let deployment = Deployment::open(&settings).await?;
    let tasks = deployment.executor(&defs, &Default::default());
    let Deployment {
        store, clock, lake, ..
    } = deployment;
    let runner = Runner::new(store, clock.clone(), tasks);
    let options = RunOptions {
        full_refresh: false,
        stop: Some(stop_on_signals()?),
        grace: chrono::TimeDelta::seconds(60),
    };
    eprintln!(
        "soundlake demo: {} names of {} through the simulator at {base} ({} mode)",
        names.len(),
        settings.crawl.artists_file.display(),
        settings.spotify.mode
    );
    let stages = DEMO_STAGES.len() + 1;
    for (i, (stage, select)) in DEMO_STAGES.iter().enumerate() {
        let selected = pipeline
            .dag
            .select(select)
            .map_err(|problem| Error::config(DEMO_PIPELINE, problem, "restore pipelines/"))?;
        let label = format!("[{}/{stages}] {stage}", i + 1);
        demo_stage((&runner, &clock), pipeline, &selected, &options, &label).await?;
    }
    sim.stop().await;

    // The second pipeline on synthetic listening over the catalog just built.
    let events =
        crate::events::generate(&lake, &DEMO_EVENTS, &crate::events::Destination::Landing).await?;
    let listening = defs.pipeline(DEMO_EVENTS_PIPELINE)?;
    let all = listening.dag.ids().map(str::to_string).collect();
    let label = format!(
        "[{stages}/{stages}] {} listening events of {} days",
        events.events, DEMO_EVENTS.days
    );
    demo_stage((&runner, &clock), listening, &all, &options, &label).await?;

    println!("Built from {} artists:", names.len());
    for layer in [crate::silver::LAYER, crate::gold::LAYER] {
        for name in lake.tables(layer).await? {
            let rows = lake.table(layer, &name).snapshot().await?.rows();
            println!("  {:<44} {rows:>9} rows", format!("{layer}.{name}"));
        }
    }
    let engine = crate::sql::Engine::open(&lake).await?;
    for (title, query) in DEMO_QUERIES {
        let (schema, batches) = engine.collect("the demo query", query).await?;
        println!("\n{title}:\n  soundlake query \"{query}\"");
        crate::sql::output::write(
            &mut std::io::stdout().lock(),
            crate::sql::output::Format::Table,
            &schema,
            &batches,
        )?;
    }
    println!(
        "\nThe lake is {} (Parquet; bronze/, silver/, gold/), the landing store {}.\n\
         Next:\n  \
         soundlake query \"DESCRIBE gold.dim_track\"\n  \
         soundlake ddl --engine duckdb      # or trino, dremio, spark\n  \
         soundlake dag spotify_catalog\n  \
         soundlake generate events --users 1000 --events 100000 --days 30 && soundlake run listening_events\n  \
         SPOTIFY_CLIENT_ID=… SPOTIFY_CLIENT_SECRET=… soundlake run spotify_catalog   # the real API",
        lake.describe(),
        crate::secret::redact_url(&settings.landing.url)
    );
    Ok(())
}

/// Run `selected` tasks of `pipeline` for the demo, saying how long they took.
async fn demo_stage(
    (runner, clock): (&crate::orchestrator::Runner, &clock::SharedClock),
    pipeline: &crate::orchestrator::Pipeline,
    selected: &std::collections::BTreeSet<String>,
    options: &crate::orchestrator::RunOptions,
    label: &str,
) -> Result<()> {
    eprintln!("{label}: {} tasks…", selected.len());
    let started = std::time::Instant::now();
    let report = runner
        .run(
            pipeline,
            selected,
            options,
            &run_id(&pipeline.name, clock.now()),
        )
        .await?;
    if !report.succeeded() {
        eprint!("{}", crate::orchestrator::render(&report));
        return Err(run_failed(&report));
    }
    eprintln!("{label}: done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn validate(settings: &crate::config::Settings) -> Result<()> {
    let defs = Project::load(settings)?;
    let tasks: usize = defs.pipelines.iter().map(|p| p.dag.len()).sum();
    println!(
        "definitions are valid: {} bronze tables, {} silver tables, {} gold models, {} pipelines ({tasks} tasks)",
        defs.bronze.len(),
        defs.silver.len(),
        defs.gold.len(),
        defs.pipelines.len()
    );
    Ok(())
}

fn list(args: ReportArgs, settings: &crate::config::Settings) -> Result<()> {
    let defs = Project::load(settings)?;
    let now = clock::system().now();
    let rows: Vec<serde_json::Value> = defs
        .pipelines
        .iter()
        .map(|p| {
            let next = p.schedule.next_after(now);
            serde_json::json!({
                "pipeline": p.name,
                "schedule": p.schedule.expression(),
                "timezone": p.schedule.zone().name(),
                "catch_up": format!("{:?}", p.catch_up).to_lowercase(),
                "tasks": p.dag.len(),
                "next_fire": next,
                "next_fire_local": next.map(|t| t.with_timezone(&p.schedule.zone()).to_rfc3339()),
            })
        })
        .collect();
    if args.json {
        print_json(&rows);
        return Ok(());
    }
    println!(
        "{:<24} {:<20} {:<16} {:>5}  next fire",
        "pipeline", "schedule", "timezone", "tasks"
    );
    for r in &rows {
        println!(
            "{:<24} {:<20} {:<16} {:>5}  {}",
            r["pipeline"].as_str().unwrap_or_default(),
            r["schedule"].as_str().unwrap_or_default(),
            r["timezone"].as_str().unwrap_or_default(),
            r["tasks"],
            r["next_fire_local"].as_str().unwrap_or("never"),
        );
    }
    Ok(())
}

fn dag(args: DagArgs, settings: &crate::config::Settings) -> Result<()> {
    let defs = Project::load(settings)?;
    let pipeline = defs.pipeline(&args.pipeline)?;
    print!("{}", pipeline.dag.render(&pipeline.name, args.format));
    Ok(())
}

async fn run_pipeline(args: RunArgs, settings: &crate::config::Settings) -> Result<()> {
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
        println!(
            "{}: would run {} of {} tasks",
            pipeline.name,
            selected.len(),
            pipeline.dag.len()
        );
        for (i, wave) in pipeline.dag.waves().iter().enumerate() {
            for id in wave.iter().filter(|id| selected.contains(**id)) {
                println!("  [{}] {id}", i + 1);
            }
        }
        return Ok(());
    }
    let deployment = Deployment::open(settings).await?;
    let tasks = deployment.executor(&defs, &Default::default());
    let Deployment { store, clock, .. } = deployment;
    let runner = Runner::new(store, clock.clone(), tasks);
    let id = run_id(&pipeline.name, clock.now());
    let options = RunOptions {
        full_refresh: args.full_refresh,
        stop: Some(stop_on_signals()?),
        grace: chrono::TimeDelta::seconds(args.grace_secs.into()),
    };
    let report = runner.run(pipeline, &selected, &options, &id).await?;
    if args.report.json {
        print_json(&report);
    } else {
        print!("{}", crate::orchestrator::render(&report));
    }
    if report.succeeded() {
        return Ok(());
    }
    Err(run_failed(&report))
}

/// The error of a run that did not succeed: the tasks that did not, and
/// how many were skipped after them.
fn run_failed(report: &crate::orchestrator::RunReport) -> Error {
    let mut problems: Vec<String> = report
        .tasks
        .iter()
        .filter(|t| !matches!(t.status, RunStatus::Succeeded | RunStatus::Skipped))
        .map(|t| format!("{} {}", t.id, t.status))
        .collect();
    let skipped = report
        .tasks
        .iter()
        .filter(|t| t.status == RunStatus::Skipped)
        .count();
    if skipped > 0 {
        problems.push(format!("{skipped} tasks after them skipped"));
    }
    Error::RunFailed {
        pipeline: report.pipeline.clone(),
        problems: problems.join("; "),
    }
}

async fn daemon(settings: &crate::config::Settings) -> Result<()> {
    use crate::orchestrator::{Daemon, DaemonOptions, Loaded};

    let defs = Project::load(settings)?;
    let deployment = Deployment::open(settings).await?;
    let stop = stop_on_signals()?;
    let (streamed, mut streams) = deployment.start_streams(&defs, &stop);
    let (store, clock) = (deployment.store.clone(), deployment.clock.clone());
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
    let daemon = Daemon::new(store, clock, loader, options)?;
    let reload = reload_on_hangup()?;
    let (addr, server) =
        crate::orchestrator::serve_status(settings.daemon.listen, daemon.status(), stop.clone())
            .await?;
    println!("soundlake daemon: status page http://{addr}/ and metrics http://{addr}/metrics");
    daemon.run(reload, stop).await?;
    while streams.join_next().await.is_some() {}
    let _ = server.await;
    Ok(())
}

/// A message on every SIGHUP (several before one is handled count once).
fn reload_on_hangup() -> Result<tokio::sync::mpsc::Receiver<()>> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut hangup = signal(SignalKind::hangup()).map_err(|e| Error::Server {
        what: "signal handling".into(),
        message: e.to_string(),
    })?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the definitions");
            let _ = tx.try_send(());
        }
    });
    Ok(rx)
}

async fn backfill(args: BackfillArgs, settings: &crate::config::Settings) -> Result<()> {
    use crate::orchestrator::{Backfill, RunOptions, bound};

    let defs = Project::load(settings)?;
    let pipeline = defs.pipeline(&args.pipeline)?;
    let zone = pipeline.schedule.zone();
    let from = bound(&args.from, zone, false)
        .map_err(|p| Error::config("--from", p, "give a date like 2026-11-01"))?;
    let to = bound(&args.to, zone, true)
        .map_err(|p| Error::config("--to", p, "give a date like 2026-11-07"))?;
    if from >= to {
        return Err(Error::config(
            "--from/--to",
            format!("the range {} .. {to} is empty", args.from),
            "give a --to later than --from",
        ));
    }
    if args.parallel == 0 {
        return Err(Error::config(
            "--parallel",
            "0 tasks at once would never finish",
            "give --parallel 1 or more",
        ));
    }
    let intervals = pipeline.schedule.intervals(from, to);
    if intervals.len() > MAX_BACKFILL_INTERVALS {
        return Err(Error::config(
            "--from/--to",
            format!(
                "the range holds {} intervals of schedule {:?}, more than {MAX_BACKFILL_INTERVALS}",
                intervals.len(),
                pipeline.schedule.expression()
            ),
            "split the range into several backfills",
        ));
    }
    let plan = Backfill::plan(pipeline, intervals, args.parallel);
    if plan.plan.dag.is_empty() {
        return Err(Error::config(
            pipeline.file.display().to_string(),
            "the pipeline has no layer tasks to backfill",
            "add a [tasks.bronze] or [tasks.silver] group",
        ));
    }
    let deployment = Deployment::open(settings).await?;
    let tasks = deployment.executor(&defs, &Default::default());
    let Deployment { store, clock, .. } = deployment;
    if args.dry_run {
        let done = if args.force {
            Default::default()
        } else {
            plan.done(&store).await?
        };
        let once: Vec<&str> = plan
            .after_range()
            .into_iter()
            .map(|(_, task)| task)
            .collect();
        let per_interval = (plan.plan.dag.len() - once.len()) / plan.intervals.len().max(1);
        println!(
            "{}: {} intervals of {} tasks each, {} at once{}",
            pipeline.name,
            plan.intervals.len(),
            per_interval,
            args.parallel,
            if once.is_empty() {
                String::new()
            } else {
                format!(
                    "; then once, over the tables the range leaves: {}",
                    once.join(", ")
                )
            }
        );
        for interval in &plan.intervals {
            let prefix = format!("{}/", interval.key());
            let left = plan
                .plan
                .dag
                .ids()
                .filter(|id| id.starts_with(&prefix) && !done.contains(*id))
                .count();
            let state = match left {
                0 => "done before".to_string(),
                n if n == per_interval => "would run".to_string(),
                n => format!("would run the {n} tasks left"),
            };
            println!(
                "  {} .. {}  {state}",
                interval.start.format("%Y-%m-%dT%H:%M:%SZ"),
                interval.end.format("%Y-%m-%dT%H:%M:%SZ"),
            );
        }
        return Ok(());
    }
    let options = RunOptions {
        full_refresh: false,
        stop: Some(stop_on_signals()?),
        grace: chrono::TimeDelta::seconds(args.grace_secs.into()),
    };
    let id = run_id(&format!("backfill-{}", pipeline.name), clock.now());
    let report = plan
        .run(&store, &clock, tasks, &options, args.force, &id)
        .await?;
    if args.report.json {
        print_json(&report);
    } else {
        print!("{}", crate::orchestrator::render_backfill(&report));
    }
    match &report.run {
        Some(run) if !report.succeeded() => Err(run_failed(run)),
        _ => Ok(()),
    }
}

/// A flag that turns true on the first SIGINT or SIGTERM.
fn stop_on_signals() -> Result<tokio::sync::watch::Receiver<bool>> {
    use tokio::signal::unix::{SignalKind, signal};

    let installed = |kind| {
        signal(kind).map_err(|e| Error::Server {
            what: "signal handling".into(),
            message: e.to_string(),
        })
    };
    let mut interrupt = installed(SignalKind::interrupt())?;
    let mut terminate = installed(SignalKind::terminate())?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::warn!(
            "stopping: no new tasks start; running tasks get the grace period to finish"
        );
        let _ = tx.send(true);
    });
    Ok(rx)
}

async fn runs(args: RunsArgs, settings: &crate::config::Settings) -> Result<()> {
    let store = crate::landing::open(&settings.landing.url, clock::system()).await?;
    let records = store.runs(args.limit).await?;
    if args.report.json {
        print_json(&records);
        return Ok(());
    }
    println!(
        "{:<52} {:<32} {:<10} {:<21} {:>9}",
        "run", "task", "status", "started", "seconds"
    );
    for r in &records {
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
        let warned = crate::orchestrator::warnings(&r.report).count()
            + tasks
                .map(|t| crate::orchestrator::warnings(&t["report"]).count())
                .sum::<usize>();
        let note = match warned {
            0 => String::new(),
            1 => "  1 warning".into(),
            n => format!("  {n} warnings"),
        };
        println!(
            "{:<52} {:<32} {:<10} {:<21} {:>9}{note}",
            r.id,
            r.task,
            r.status,
            r.started_at.format("%Y-%m-%dT%H:%M:%SZ"),
            seconds
        );
    }
    Ok(())
}

/// Run a layer's job on each chosen table as a recorded run (`<layer>.<table>`),
/// printing each report as text as it comes, or all of them as JSON at the end.
#[allow(clippy::too_many_arguments)]
async fn run_tables<T, R: serde::Serialize>(
    store: &crate::landing::SharedStore,
    clock: &clock::SharedClock,
    layer: &str,
    chosen: &[&T],
    name_of: fn(&T) -> &String,
    json: bool,
    render: fn(&R) -> String,
    job: impl AsyncFn(&T, &str) -> Result<R>,
) -> Result<()> {
    let mut reports = Vec::new();
    for def in chosen {
        let task = format!("{layer}.{}", name_of(def));
        let run = RecordedRun::start(store, clock, &task).await?;
        let report = match job(def, run.id()).await {
            Ok(report) => report,
            Err(e) => return Err(run.fail(e).await),
        };
        run.finish(
            RunStatus::Succeeded,
            serde_json::to_value(&report).expect("reports serialize"),
        )
        .await?;
        if !json {
            println!("{}", render(&report));
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

/// The definitions named on the command line (all when none are; with or
/// without the `<layer>.` prefix), or a usage error listing the known ones.
fn select_tables<'d, T>(
    layer: &str,
    defs: &'d [T],
    name_of: fn(&T) -> &String,
    names: &[String],
) -> Result<Vec<&'d T>> {
    if names.is_empty() {
        return Ok(defs.iter().collect());
    }
    let prefix = format!("{layer}.");
    names
        .iter()
        .map(|name| {
            let bare = name.strip_prefix(&prefix).unwrap_or(name);
            defs.iter().find(|d| name_of(d) == bare).ok_or_else(|| {
                let known: Vec<&str> = defs.iter().map(|d| name_of(d).as_str()).collect();
                Error::config(
                    "command line",
                    format!("there is no {layer} table {name:?}"),
                    format!("use one of: {}", known.join(", ")),
                )
            })
        })
        .collect()
}

/// This process's peak resident memory (Linux), for reports that measure.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

async fn import(args: ImportArgs, settings: &crate::config::Settings) -> Result<()> {
    let clock = clock::system();
    let store = crate::landing::open(&settings.landing.url, clock.clone()).await?;
    let id = run_id("import", clock.now());
    let report =
        crate::import::import(&store, args.collection, &args.file, args.strict, &id).await?;
    if args.report.json {
        print_json(&report);
    } else {
        let l = report.loaded;
        println!(
            "imported {} into {} ({}): {} new, {} changed, {} unchanged; {} rejected",
            report.file,
            report.collection,
            report.format,
            l.new,
            l.changed,
            l.unchanged,
            report.rejects.len()
        );
        for r in &report.rejects {
            println!("  rejected {}: {}", r.place, r.reason);
        }
    }
    Ok(())
}

async fn generate_events(args: EventArgs, settings: &crate::config::Settings) -> Result<()> {
    use crate::events::{Destination, Format};

    let lake = crate::lake::Lake::open(&settings.lake)?;
    let yesterday = clock::system().now().date_naive() - chrono::Duration::days(1);
    let options = crate::events::EventOptions {
        users: args.users,
        events: args.events,
        days: args.days,
        end: args.end.unwrap_or(yesterday),
        seed: args.seed,
        format: args.format,
    };
    let destination = match &args.to {
        None => Destination::Landing,
        Some(url) => {
            if args.format != Format::Ndjson {
                return Err(Error::config(
                    "--format",
                    "Kafka messages are JSON",
                    "leave --format out with --to",
                ));
            }
            let (brokers, topic) = crate::kafka::parse_target(url)?;
            let producer =
                crate::kafka::Client::new(&settings.kafka, Some(&brokers))?.producer()?;
            producer.ensure_topic(&topic, args.partitions).await?;
            Destination::Kafka { producer, topic }
        }
    };
    let report = crate::events::generate(&lake, &options, &destination).await?;
    if args.report.json {
        print_json(&report);
        return Ok(());
    }
    let sent_to = match &destination {
        Destination::Landing => format!(
            "in {} files under {}/{}/",
            report.files.len(),
            lake.describe(),
            crate::events::LANDING_FOLDER
        ),
        Destination::Kafka { producer, topic } => format!(
            "as {} messages to topic {topic} at {}",
            report.messages,
            producer.brokers()
        ),
    };
    println!(
        "{} events ({} delivered twice, {} a day late) over {} tracks {sent_to}",
        report.events, report.duplicates, report.late, report.tracks_in_catalog,
    );
    Ok(())
}

fn generate_catalog(args: CatalogArgs) -> Result<()> {
    let tracks = usize::try_from(args.tracks).expect("bounded by the parser");
    let catalog = crate::sim::Catalog::of_size(args.seed, tracks);
    let written = crate::sim::write_ndjson(&catalog, &args.out)?;
    if args.report.json {
        print_json(&written);
    } else {
        for w in &written {
            println!(
                "{:>10} {:<14} {:>8.1} MB  {}",
                w.documents,
                w.collection.name(),
                w.bytes as f64 / 1e6,
                w.file.display()
            );
        }
    }
    Ok(())
}

async fn sim(args: SimArgs, settings: &crate::config::Settings) -> Result<()> {
    let names_file = args
        .names
        .unwrap_or_else(|| settings.crawl.artists_file.clone());
    let options = SimOptions {
        mode: args.mode,
        seed: args.seed,
        names: crate::text::read_names(&names_file)?,
        rate_limit: args.rate_limit,
        window: Duration::from_secs(args.window_secs.max(1)),
        quota: args.quota,
        quota_period: Duration::from_secs(args.quota_period_secs.max(1)),
        token_ttl: Duration::from_secs(args.token_ttl_secs.max(1)),
        faults: Faults {
            server_errors: args.fault_5xx,
            slow: args.fault_slow,
            slow_by: Duration::from_millis(args.slow_ms),
            malformed: args.fault_malformed,
            expire_token: args.fault_expire_token,
        },
        canned: Vec::new(),
    };
    // Handlers first: once the address is printed, a supervisor may signal us.
    let shutdown = Shutdown::install()?;
    let sim = Simulator::start(
        options,
        clock::system(),
        SocketAddr::new(args.host, args.port),
    )
    .await?;
    let c = sim.catalog();
    let base = sim.base_url();
    println!(
        "soundlake sim listening on {base} ({} mode; {} artists, {} albums, {} tracks)",
        args.mode,
        c.artists.len(),
        c.albums.len(),
        c.tracks.len()
    );
    println!("  SOUNDLAKE__SPOTIFY__API_URL={base}/v1");
    println!("  SOUNDLAKE__SPOTIFY__TOKEN_URL={base}/api/token");
    println!("  SPOTIFY_CLIENT_ID={}", crate::sim::CLIENT_ID);
    println!(
        "  SPOTIFY_CLIENT_SECRET={} (the simulator's public test secret)",
        crate::sim::CLIENT_SECRET
    );
    println!("  request log: {base}/sim/log");
    shutdown.wait().await;
    sim.stop().await;
    Ok(())
}

/// SIGINT and SIGTERM, listened for from the moment of installation.
struct Shutdown {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Shutdown {
    fn install() -> Result<Shutdown> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let failed = |e: std::io::Error| Error::Server {
                what: "signal handlers".into(),
                message: e.to_string(),
            };
            Ok(Shutdown {
                term: signal(SignalKind::terminate()).map_err(failed)?,
                int: signal(SignalKind::interrupt()).map_err(failed)?,
            })
        }
        #[cfg(not(unix))]
        Ok(Shutdown {})
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
