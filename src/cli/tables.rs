//! The commands that read lake tables: query (at a version or time),
//! history and vacuum; and those that show gold tables to other engines:
//! ddl and register.

use super::args::{
    DdlArgs, HistoryArgs, PurgeArgs, QueryArgs, RecommendArgs, RegisterArgs, VacuumArgs,
};
use super::print_json;
use crate::config::Settings;
use crate::definitions::TableId;
use crate::error::{Error, Result};
use crate::lake::maintenance::{render_history, render_vacuum, retention, vacuum as vacuum_tables};
use crate::lake::{At, Lake};
use crate::project::Project;
use crate::retention;
use crate::sql::LAYERS;

async fn open_lake(settings: &Settings) -> Result<Lake> {
    let lake = Lake::open(&settings.lake)?;
    lake.check().await?;
    Ok(lake)
}

/// `layer.name` of a table the lake may hold.
fn table_id(text: &str, what: &str) -> Result<TableId> {
    TableId::parse(text)
        .filter(|id| LAYERS.contains(&id.layer.as_str()))
        .ok_or_else(|| {
            Error::config(
                what,
                format!("{text:?} is not a table"),
                format!(
                    "name a table as layer.table, the layer one of {} (gold.dim_track)",
                    LAYERS.join(", ")
                ),
            )
        })
}

pub(super) async fn query(args: QueryArgs, settings: &Settings) -> Result<()> {
    let at = args.as_of.as_deref().map(At::parse).transpose()?;
    let lake = open_lake(settings).await?;
    let engine = crate::sql::Engine::open_at(&lake, at).await?;
    let (schema, batches) = engine.collect("the query", &args.sql).await?;
    print_rows(args.format, &schema, &batches)
}

fn print_rows(
    format: crate::sql::output::Format,
    schema: &arrow_schema::SchemaRef,
    batches: &[arrow_array::RecordBatch],
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match crate::sql::output::write(&mut out, format, schema, batches) {
        // As for every command: a reader that stopped early ends the output.
        Err(e) if crate::sql::output::reader_gone(&e) => Ok(()),
        written => written,
    }
}

pub(super) async fn recommend(args: RecommendArgs, settings: &Settings) -> Result<()> {
    use crate::recommend::{Method, find, none_found, similar};

    let lake = open_lake(settings).await?;
    let engine = crate::sql::Engine::open(&lake).await?;
    let track = find(&engine, &args.track).await?;
    let (schema, batches) = similar(&engine, &track, args.by, usize::from(args.k)).await?;
    let table = args.format == crate::sql::output::Format::Table;
    if batches.iter().all(|b| b.num_rows() == 0) {
        if table {
            outln!("{}", none_found(&track, args.by));
            return Ok(());
        }
        eprintln!("{}", none_found(&track, args.by));
    } else if table {
        let how = match args.by {
            Method::Sound => "that sound like",
            Method::Listening => "played with",
        };
        outln!("Tracks {how} {track}:");
    }
    print_rows(args.format, &schema, &batches)
}

pub(super) async fn history(args: HistoryArgs, settings: &Settings) -> Result<()> {
    let id = table_id(&args.table, "history <table>")?;
    let lake = open_lake(settings).await?;
    let commits = lake
        .table(&id.layer, &id.name)
        .history(Some(args.limit))
        .await?;
    if args.json {
        print_json(&commits);
    } else {
        out!("{}", render_history(&args.table, &commits));
    }
    Ok(())
}

pub(super) async fn vacuum(args: VacuumArgs, settings: &Settings) -> Result<()> {
    let tables = args
        .tables
        .iter()
        .map(|t| table_id(t, "vacuum <tables>").map(|id| (id.layer, id.name)))
        .collect::<Result<Vec<_>>>()?;
    let hours = args
        .retain_hours
        .unwrap_or(settings.lake.vacuum_retention_hours);
    let retention = retention(hours, "--retain-hours")?;
    let lake = open_lake(settings).await?;
    let now = crate::clock::system().now();
    let vacuumed = vacuum_tables(&lake, &LAYERS, &tables, retention, now, args.dry_run).await?;
    if args.json {
        print_json(&vacuumed);
    } else {
        out!("{}", render_vacuum(&vacuumed, args.dry_run));
    }
    Ok(())
}

pub(super) async fn purge(args: PurgeArgs, settings: &Settings) -> Result<()> {
    let lake = open_lake(settings).await?;
    let now = crate::clock::system().now();
    let run_id = format!("purge-{}", now.format("%Y%m%dT%H%M%SZ"));
    let Some(artist) = args.artist else {
        let days = args.history_days.unwrap_or(settings.retention.history_days);
        let bronze = Project::load(settings)?.bronze;
        let purged =
            retention::purge_history(&lake, &bronze, days, now, &run_id, args.dry_run).await?;
        if args.json {
            print_json(&purged);
        } else {
            out!("{}", retention::render_history(&purged, args.dry_run));
        }
        return Ok(());
    };
    let artist = retention::artist_id(&artist)?;
    let store = crate::landing::open(&settings.landing.url, crate::clock::system()).await?;
    let taken = retention::take_down(&store, &lake, &artist, now, &run_id, args.dry_run).await?;
    // A takedown leaves nothing to read back: the rewritten files' old
    // versions go now, not after the vacuum retention.
    let vacuumed = if args.dry_run {
        Vec::new()
    } else {
        let tables: Vec<(String, String)> = taken
            .tables
            .iter()
            .filter_map(|t| t.table.split_once('.'))
            .map(|(layer, name)| (layer.to_string(), name.to_string()))
            .collect();
        // The files were removed at `now`; a vacuum deletes what was
        // removed before its cutoff.
        let after = now + chrono::TimeDelta::seconds(1);
        vacuum_tables(
            &lake,
            &LAYERS,
            &tables,
            chrono::TimeDelta::zero(),
            after,
            false,
        )
        .await?
    };
    if args.json {
        print_json(&serde_json::json!({"takedown": taken, "vacuumed": vacuumed}));
    } else {
        out!("{}", retention::render_takedown(&taken, args.dry_run));
    }
    Ok(())
}

pub(super) fn ddl(args: DdlArgs, settings: &Settings) -> Result<()> {
    let defs = Project::load(settings)?;
    out!(
        "{}",
        crate::gold::ddl::render(args.engine, &defs.gold, &settings.lake, &settings.trino)?
    );
    Ok(())
}

pub(super) async fn register(args: RegisterArgs, settings: &Settings) -> Result<()> {
    let super::args::RegisterEngine::Trino = args.engine;
    let defs = Project::load(settings)?;
    let mut trino_settings = settings.trino.clone();
    if let Some(url) = args.url {
        trino_settings.url = url;
    }
    if trino_settings.url.trim().is_empty() {
        return Err(Error::config(
            "[trino] url",
            "no Trino coordinator is configured",
            "give --url http://host:port, or set [trino] url",
        ));
    }
    let trino = crate::trino::Trino::new(&trino_settings)?;
    let lake = open_lake(settings).await?;
    let done =
        crate::gold::register::register(&trino, &trino_settings, &defs.gold, &lake, &settings.lake)
            .await?;
    if args.json {
        print_json(&done);
    } else {
        out!(
            "{}",
            crate::gold::register::render(&done, &trino.describe())
        );
    }
    Ok(())
}
