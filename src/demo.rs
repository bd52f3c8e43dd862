//! `soundlake demo`: the whole pipeline offline. The simulator stands in
//! for Spotify, the catalog pipeline runs stage by stage, then a fortnight
//! of synthetic listening goes through the events pipeline, and a few
//! queries show what gold answers.

use std::net::{IpAddr, SocketAddr};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::orchestrator::{Pipeline, RunOptions, Runner, run_id};
use crate::project::{Deployment, Project};
use crate::sim::{SimOptions, Simulator};

/// The pipeline the demo runs, stage by stage.
const PIPELINE: &str = "spotify_catalog";
const STAGES: [(&str, &str); 4] = [
    ("crawl", "crawl"),
    ("bronze", "bronze.*"),
    ("silver", "silver.*"),
    ("gold", "gold.*"),
];
const EVENTS_PIPELINE: &str = "listening_events";
/// A fortnight of listening for the demo, ending on a fixed day so every
/// demo builds the same marts.
const EVENTS: crate::events::EventOptions = crate::events::EventOptions {
    users: 300,
    events: 30_000,
    days: 14,
    end: chrono::NaiveDate::from_ymd_opt(2026, 11, 15).expect("a date"),
    seed: 42,
    format: crate::events::Format::Ndjson,
};
const QUERIES: [(&str, &str); 2] = [
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

/// What the demo built and what its queries answered.
pub struct Built {
    pub artists: usize,
    /// `(layer.table, rows)` of every silver and gold table.
    pub tables: Vec<(String, u64)>,
    /// `(title, SQL, schema, rows)` of each demo query.
    pub answers: Vec<(&'static str, &'static str, SchemaRef, Vec<RecordBatch>)>,
    /// Where the lake is, for the next commands.
    pub lake: String,
}

/// Run the demo on `settings`' lake and landing store, saying what each
/// stage does through `progress`; `stop` ends it between tasks.
pub async fn run(
    settings: &Settings,
    stop: tokio::sync::watch::Receiver<bool>,
    progress: &dyn Fn(&str),
) -> Result<Built> {
    crate::init::check_project(settings, "demo")?;
    let names = crate::artist_names::read(&settings.crawl.artists_file)?;
    let sim = Simulator::start(
        SimOptions {
            mode: settings.spotify.mode,
            names: names.clone(),
            rate_limit: 0,
            ..SimOptions::default()
        },
        crate::clock::system(),
        SocketAddr::new(IpAddr::from([127, 0, 0, 1]), 0),
    )
    .await?;
    let mut settings = settings.clone();
    let base = sim.base_url();
    crate::sim::point_at(&mut settings.spotify, &base);
    // The simulator is local and unlimited: no budget to keep to.
    settings.spotify.requests_per_window = 100_000;
    settings.crawl.names_per_run = u32::try_from(names.len()).unwrap_or(u32::MAX);
    let project = Project::load(&settings)?;
    let deployment = Deployment::open(&settings).await?;
    let clock = deployment.clock.clone();
    let runner = Runner::new(
        deployment.store.clone(),
        clock.clone(),
        deployment.executor(&project, &Default::default()),
    );
    let options = RunOptions {
        full_refresh: false,
        stop: Some(stop),
        grace: chrono::TimeDelta::seconds(60),
        ..RunOptions::default()
    };
    progress(&format!(
        "soundlake demo: {} names of {} through the simulator at {base} ({} mode)",
        names.len(),
        settings.crawl.artists_file.display(),
        settings.spotify.mode
    ));
    let stages = STAGES.len() + 1;
    let catalog = project.pipeline(PIPELINE)?;
    for (i, (stage, select)) in STAGES.iter().enumerate() {
        let selected = catalog
            .dag
            .select(select)
            .map_err(|problem| Error::config(PIPELINE, problem, "restore pipelines/"))?;
        let label = format!("[{}/{stages}] {stage}", i + 1);
        run_stage(
            (&runner, &clock),
            catalog,
            &selected,
            &options,
            &label,
            progress,
        )
        .await?;
    }
    sim.stop().await;

    // The second pipeline on synthetic listening over the catalog just built.
    let lake = &deployment.lake;
    let events = crate::events::generate(
        lake,
        &EVENTS,
        &crate::events::Destination::Landing,
        &Default::default(),
    )
    .await?;
    let listening = project.pipeline(EVENTS_PIPELINE)?;
    let all = listening.dag.ids().map(str::to_string).collect();
    let label = format!(
        "[{stages}/{stages}] {} listening events of {} days",
        events.events, EVENTS.days
    );
    run_stage(
        (&runner, &clock),
        listening,
        &all,
        &options,
        &label,
        progress,
    )
    .await?;

    let mut tables = Vec::new();
    for layer in [crate::silver::LAYER, crate::gold::LAYER] {
        for name in lake.tables(layer).await? {
            let rows = lake.table(layer, &name).snapshot().await?.rows();
            tables.push((format!("{layer}.{name}"), rows));
        }
    }
    let engine = crate::sql::Engine::open(lake).await?;
    let mut answers = Vec::new();
    for (title, query) in QUERIES {
        let (schema, batches) = engine.collect("the demo query", query).await?;
        answers.push((title, query, schema, batches));
    }
    Ok(Built {
        artists: names.len(),
        tables,
        answers,
        lake: lake.describe().to_string(),
    })
}

/// Where the demo left its data, and the commands to try next.
pub fn next_steps(built: &Built, landing_url: &str) -> String {
    format!(
        "\nThe lake is {} (Delta tables in bronze/, silver/, gold/), the landing store {}.\n\
         Next:\n  \
         soundlake query \"DESCRIBE gold.dim_track\"\n  \
         soundlake ddl --engine duckdb      # or trino, dremio, spark\n  \
         soundlake dag spotify_catalog\n  \
         soundlake generate events --users 1000 --events 100000 --days 30 && soundlake run listening_events\n  \
         SPOTIFY_CLIENT_ID=… SPOTIFY_CLIENT_SECRET=… soundlake run spotify_catalog   # the real API\n",
        built.lake,
        crate::secret::redact_url(landing_url)
    )
}

/// Run `selected` tasks of `pipeline`, saying how long they took.
async fn run_stage(
    (runner, clock): (&Runner, &crate::clock::SharedClock),
    pipeline: &Pipeline,
    selected: &std::collections::BTreeSet<String>,
    options: &RunOptions,
    label: &str,
    progress: &dyn Fn(&str),
) -> Result<()> {
    progress(&format!("{label}: {} tasks…", selected.len()));
    let started = std::time::Instant::now();
    let id = run_id(&pipeline.name, clock.now());
    let report = runner.run(pipeline, selected, options, &id).await?;
    if !report.succeeded() {
        progress(crate::orchestrator::render(&report).trim_end());
        return Err(report.failure());
    }
    progress(&format!(
        "{label}: done in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}
