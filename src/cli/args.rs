//! The arguments of every command, as clap parses them.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::sim::{Faults, SimOptions};
use crate::spotify::AppMode;

#[derive(Debug, Parser)]
#[command(name = "soundlake", version, about = "Medallion ELT for the Spotify Web API", long_about = None)]
pub struct Cli {
    /// Configuration file (default: soundlake.toml in the working directory, if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format: human-readable on a terminal, JSON lines otherwise.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Auto,
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// Serve the web UI over the lake and the state store: runs, tables,
    /// charts over the marts and similar tracks (the daemon serves it too,
    /// on [daemon] listen).
    Ui(UiArgs),
    /// Run SQL over the committed bronze, silver and gold tables
    /// (`silver.tracks`, `gold.dim_track`) with the embedded engine.
    Query(QueryArgs),
    /// The tracks most like one: by sound (audio features) or by listening
    /// (played in the same sessions), from the similar_tracks gold tables.
    Recommend(RecommendArgs),
    /// List a table's versions, newest first: when each was committed, the
    /// operation, rows added and removed, and the run that wrote it.
    History(HistoryArgs),
    /// Delete the files no version within the retention needs: files newer
    /// versions superseded and files of writes that never committed.
    Vacuum(VacuumArgs),
    /// Apply [retention]: delete from bronze the versions of Spotify
    /// objects replaced more than history_days ago (the current version of
    /// each stays). With --artist, take an artist down instead: delete
    /// every landing document and lake row that names it, then vacuum.
    Purge(PurgeArgs),
    /// Print the statements that expose every gold table to another engine
    /// over the configured lake URL.
    Ddl(DdlArgs),
    /// Register every published gold table with the Delta Lake catalog of a
    /// Trino cluster ([trino] settings), over Trino's HTTP protocol. Safe to
    /// rerun: registered tables are left alone.
    Register(RegisterArgs),
    /// The whole catalog pipeline offline: start the simulator in-process,
    /// crawl [crawl] artists_file through it, run bronze, silver and gold
    /// with their data tests on the configured (by default embedded)
    /// store and lake, and show what was built.
    Demo,
    /// Write a ready project into DIR (default: here): soundlake.toml with
    /// every setting at its default, commented out; the shipped bronze/,
    /// silver/, gold/ and pipelines/ definitions; and artists.txt. Refuses
    /// to overwrite any file.
    Init(InitArgs),
    /// Write generated data files for benchmarks, load tests and demos.
    #[command(subcommand)]
    Generate(GenerateCommand),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The project's folder, created if missing.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// One SQL statement: SELECT, SHOW TABLES, DESCRIBE gold.dim_track, …
    pub sql: String,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = crate::sql::output::Format::Table)]
    pub format: crate::sql::output::Format,
    /// Read every table as it was at this version (a number; for a query of
    /// one table) or at this time (a date or an RFC 3339 time).
    #[arg(long, value_name = "VERSION|TIME")]
    pub as_of: Option<String>,
}

#[derive(Debug, Args)]
pub struct UiArgs {
    /// Where to listen. Beyond loopback, [daemon] ui_token must be set.
    #[arg(long, default_value = "127.0.0.1:9188")]
    pub listen: std::net::SocketAddr,
}

#[derive(Debug, Args)]
pub struct RecommendArgs {
    /// The track: its title (or a part of it), Spotify id, spotify:track:
    /// URI or open.spotify.com URL.
    pub track: String,
    /// Which similarity: audio features, or the listening events' sessions.
    #[arg(long = "by", value_enum, default_value_t)]
    pub by: crate::recommend::Method,
    /// How many tracks to show.
    #[arg(short, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub k: u16,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = crate::sql::output::Format::Table)]
    pub format: crate::sql::output::Format,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The table: `gold.dim_track`, `bronze.tracks`…
    pub table: String,
    /// Show at most this many versions.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The artist to take down: its id, URL or spotify:artist: URI.
    #[arg(long)]
    pub artist: Option<String>,
    /// Instead of [retention] history_days.
    #[arg(long)]
    pub history_days: Option<u32>,
    /// Count what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VacuumArgs {
    /// Tables to vacuum (`gold.dim_track`); every table when none is given.
    pub tables: Vec<String>,
    /// Keep files versions of the last this many hours need (default:
    /// [lake] vacuum_retention_hours).
    #[arg(long)]
    pub retain_hours: Option<u64>,
    /// Say what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DdlArgs {
    /// The engine to print statements for.
    #[arg(long, value_enum)]
    pub engine: crate::gold::ddl::Target,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RegisterEngine {
    /// Spark, DuckDB and Dremio read the statements `soundlake ddl` prints.
    Trino,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The engine to register the tables with.
    #[arg(long, value_enum, default_value_t = RegisterEngine::Trino)]
    pub engine: RegisterEngine,
    /// The coordinator, like http://trino:8080 (default: [trino] url).
    #[arg(long)]
    pub url: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// The pipeline (a pipelines/*.toml file name without .toml).
    pub pipeline: String,
    /// Start of the range: a date (the start of that day in the pipeline's
    /// time zone) or an RFC 3339 time.
    #[arg(long)]
    pub from: String,
    /// End of the range: a date (included: the end of that day) or an RFC
    /// 3339 time (excluded).
    #[arg(long)]
    pub to: String,
    /// Tasks at once, across intervals and tables.
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// Run intervals a previous backfill already finished, too.
    #[arg(long)]
    pub force: bool,
    /// List the intervals and what would run, and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// On SIGINT or SIGTERM, how long running tasks get to finish.
    #[arg(long, default_value_t = 60)]
    pub grace_secs: u32,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipeline (a pipelines/*.toml file name without .toml).
    pub pipeline: String,
    /// Task ids or globs, `+` before for everything upstream, after for
    /// everything downstream: 'bronze.*+', '+silver.tracks'.
    #[arg(long, default_value = "")]
    pub select: String,
    /// Print the plan and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Rebuild layer tables from scratch.
    #[arg(long)]
    pub full_refresh: bool,
    /// On SIGINT or SIGTERM, how long running tasks get to finish.
    #[arg(long, default_value_t = 60)]
    pub grace_secs: u32,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// How many records, newest first.
    #[arg(long, default_value_t = 30)]
    pub limit: usize,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct DagArgs {
    /// The pipeline (a pipelines/*.toml file name without .toml).
    pub pipeline: String,
    /// text (waves with dependencies), mermaid or dot (Graphviz).
    #[arg(long, value_enum, default_value_t = crate::orchestrator::Format::Text)]
    pub format: crate::orchestrator::Format,
}

#[derive(Debug, Args)]
pub struct SilverArgs {
    /// Tables to run (default: every silver/*.toml).
    pub tables: Vec<String>,
    /// Rebuild from all of bronze, inferring the schema afresh.
    #[arg(long, conflicts_with = "from")]
    pub full_refresh: bool,
    /// For a partitioned table: rebuild the date partitions from this day
    /// (2026-11-21, or an RFC 3339 time) on.
    #[arg(long, value_parser = instant)]
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// End of the interval (exclusive); default: now.
    #[arg(long, value_parser = instant, requires = "from")]
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct BronzeArgs {
    /// Tables to run (default: every bronze/*.toml).
    pub tables: Vec<String>,
    /// Start of the ingest interval to re-derive: a date (2026-11-21, UTC
    /// midnight) or an RFC 3339 time.
    #[arg(long, value_parser = instant)]
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// End of the interval (exclusive); default: now.
    #[arg(long, value_parser = instant, requires = "from")]
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    #[command(flatten)]
    pub report: ReportArgs,
}

pub fn instant(s: &str) -> std::result::Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| format!("{s:?} is neither a date (2026-11-21) nor an RFC 3339 time"))
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Print the run report as JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
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
pub struct EventArgs {
    /// Listeners.
    #[arg(long)]
    pub users: u32,
    /// Distinct events in all (a few more lines are written: late and
    /// duplicate deliveries, as apps send them).
    #[arg(long)]
    pub events: u64,
    /// Days of listening, ending with --end.
    #[arg(long)]
    pub days: u32,
    /// The last day (YYYY-MM-DD, UTC); yesterday by default.
    #[arg(long)]
    pub end: Option<chrono::NaiveDate>,
    /// Seed: the same seed, sizes and catalog give the same files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, value_enum, default_value = "ndjson")]
    pub format: crate::events::Format,
    /// Send the events to a Kafka topic instead, as JSON messages keyed by
    /// user: kafka://host:port/topic ([kafka.client] settings apply).
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
    /// Partitions of the topic, when --to creates it.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub partitions: i32,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Tracks to generate at least (the last artist's albums complete the
    /// count); the catalog is held in memory, about 1 GB per 2 million.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=20_000_000))]
    pub tracks: u64,
    /// Seed: the same seed and size give the same files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Folder to write the files into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// artists, albums, tracks or audio_features.
    pub collection: crate::landing::Collection,
    /// The file to load.
    pub file: PathBuf,
    /// Load nothing if any entry is malformed (default: load the valid ones
    /// and list the rejects).
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port; 0 picks a free one and prints it.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// App mode to behave as.
    #[arg(long, default_value = "extended")]
    pub mode: AppMode,
    /// Seed of the generated catalog.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Artist names the catalog is built around (default: [crawl] artists_file).
    #[arg(long, value_name = "FILE")]
    pub names: Option<PathBuf>,
    /// Requests accepted per rolling window before 429 + Retry-After; 0 turns the limit off.
    #[arg(long, default_value_t = 180)]
    pub rate_limit: u32,
    /// Length of the rolling rate-limit window.
    #[arg(long, default_value_t = 30)]
    pub window_secs: u64,
    /// Requests accepted per quota period before 429 QUOTA_EXCEEDED.
    #[arg(long)]
    pub quota: Option<u64>,
    /// Length of a quota period.
    #[arg(long, default_value_t = 86_400)]
    pub quota_period_secs: u64,
    /// Lifetime of issued access tokens.
    #[arg(long, default_value_t = 3600)]
    pub token_ttl_secs: u64,
    /// Share of requests answered 500/502/503.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub fault_5xx: f64,
    /// Share of requests answered late.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub fault_slow: f64,
    /// How late a slow answer is.
    #[arg(long, default_value_t = 2000)]
    pub slow_ms: u64,
    /// Share of requests answered 200 with a malformed body.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub fault_malformed: f64,
    /// Share of requests whose token is expired on the spot (401).
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub fault_expire_token: f64,
}

pub fn share(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a share between 0.0 and 1.0")),
    }
}

impl SimArgs {
    /// The simulator these flags describe, around `names`.
    pub fn options(&self, names: Vec<String>) -> SimOptions {
        SimOptions {
            mode: self.mode,
            seed: self.seed,
            names,
            rate_limit: self.rate_limit,
            window: Duration::from_secs(self.window_secs.max(1)),
            quota: self.quota,
            quota_period: Duration::from_secs(self.quota_period_secs.max(1)),
            token_ttl: Duration::from_secs(self.token_ttl_secs.max(1)),
            faults: Faults {
                server_errors: self.fault_5xx,
                slow: self.fault_slow,
                slow_by: Duration::from_millis(self.slow_ms),
                malformed: self.fault_malformed,
                expire_token: self.fault_expire_token,
            },
            canned: Vec::new(),
        }
    }
}

impl EventArgs {
    /// The events these flags describe; without `--end`, ending `yesterday`.
    pub fn options(&self, yesterday: chrono::NaiveDate) -> crate::events::EventOptions {
        crate::events::EventOptions {
            users: self.users,
            events: self.events,
            days: self.days,
            end: self.end.unwrap_or(yesterday),
            seed: self.seed,
            format: self.format,
        }
    }
}
