//! The commands that make and load data: the simulator, generated
//! catalogs and events, and imports into the landing store.

use std::net::SocketAddr;

use super::args::{CatalogArgs, EventArgs, ImportArgs, SimArgs};
use super::print_json;
use crate::clock;
use crate::error::Result;
use crate::orchestrator::{run_id, stop_on_signals};
use crate::progress::{Extras, Progress, Tally, Unit};
use crate::sim::Simulator;

pub(super) async fn import(
    args: ImportArgs,
    settings: &crate::config::Settings,
    progress: &Progress,
) -> Result<()> {
    let clock = clock::system();
    let store = crate::landing::open(&settings.landing.url, clock.clone()).await?;
    let id = run_id("import", clock.now());
    let size = std::fs::metadata(&args.file).ok().map(|m| m.len());
    let bar = progress.bar_with(
        &format!("import {}", args.file.display()),
        size,
        Unit::Bytes,
        Extras {
            tally: Some(("documents", Tally::default())),
            ..Extras::default()
        },
    );
    let report =
        crate::import::import(&store, args.collection, &args.file, args.strict, &id, &bar).await?;
    if args.report.json {
        print_json(&report);
    } else {
        out!("{}", crate::import::render(&report));
    }
    Ok(())
}

pub(super) async fn generate_events(
    args: EventArgs,
    settings: &crate::config::Settings,
    progress: &Progress,
) -> Result<()> {
    use crate::events::Destination;

    let lake = crate::lake::Lake::open(&settings.lake)?;
    let yesterday = clock::system().now().date_naive() - chrono::Duration::days(1);
    let options = args.options(yesterday);
    let destination = Destination::open(
        args.to.as_deref(),
        args.format,
        &settings.kafka,
        args.partitions,
    )
    .await?;
    let bar = progress.bar(
        "generate events",
        Some(options.events),
        Unit::Items("events"),
    );
    let report = crate::events::generate(&lake, &options, &destination, &bar).await?;
    bar.finish();
    if args.report.json {
        print_json(&report);
    } else {
        out!(
            "{}",
            crate::events::render_generated(&report, &destination, lake.describe())
        );
    }
    Ok(())
}

pub(super) fn generate_catalog(args: CatalogArgs, progress: &Progress) -> Result<()> {
    let tracks = usize::try_from(args.tracks).expect("bounded by the parser");
    let catalog = crate::sim::Catalog::of_size(args.seed, tracks);
    let bar = progress.bar(
        "generate catalog",
        Some(crate::sim::objects(&catalog)),
        Unit::Items("objects"),
    );
    let written = crate::sim::write_ndjson(&catalog, &args.out, &bar)?;
    bar.finish();
    if args.report.json {
        print_json(&written);
    } else {
        out!("{}", crate::sim::render_written(&written));
    }
    Ok(())
}

pub(super) async fn sim(args: SimArgs, settings: &crate::config::Settings) -> Result<()> {
    let names_file = args
        .names
        .clone()
        .unwrap_or_else(|| settings.crawl.artists_file.clone());
    let options = args.options(crate::artist_names::read(&names_file)?);
    // Handlers first: once the address is printed, a supervisor may signal us.
    let mut stop = stop_on_signals()?;
    let address = SocketAddr::new(args.host, args.port);
    let sim = Simulator::start(options, clock::system(), address).await?;
    out!("{}", sim.banner());
    let _ = stop.wait_for(|stopped| *stopped).await;
    sim.stop().await;
    Ok(())
}
