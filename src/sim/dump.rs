//! A generated catalog written as the NDJSON files `soundlake import` loads,
//! one per landing collection, in the shapes the Extended-mode batch
//! endpoints return (what a crawl lands): the benchmarks' and load tests'
//! landing data, of any size.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::{Catalog, View};
use crate::error::{Error, Result};
use crate::landing::Collection;
use crate::progress::Bar;
use crate::spotify::AppMode;

/// The `href`s point where Spotify's would.
const API: &str = "https://api.spotify.com/v1";

/// One file written.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub collection: Collection,
    pub file: PathBuf,
    pub documents: u64,
    pub bytes: u64,
}

/// Each file [`write_ndjson`] writes, as its collection and how many of the
/// catalog's objects it covers (audio features: one per track, some
/// without).
fn jobs(catalog: &Catalog) -> [(Collection, usize); 4] {
    [
        (Collection::Artists, catalog.artists.len()),
        (Collection::Albums, catalog.albums.len()),
        (Collection::Tracks, catalog.tracks.len()),
        (Collection::AudioFeatures, catalog.tracks.len()),
    ]
}

/// How many objects [`write_ndjson`] goes through, written or not: the
/// length of the bar it advances.
pub fn objects(catalog: &Catalog) -> u64 {
    jobs(catalog).iter().map(|(_, n)| *n as u64).sum()
}

/// Write `artists`, `albums`, `tracks` and `audio_features` `.ndjson` into
/// `dir` (created if missing), one thread per file. Each file appears under
/// its name only once complete, so an interrupted run leaves no file that
/// looks whole.
pub fn write_ndjson(catalog: &Catalog, dir: &Path, bar: &Bar) -> Result<Vec<Written>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io("cannot create the output folder", dir, e))?;
    let view = View {
        mode: AppMode::Extended,
        market: None,
        api: API,
    };
    let render = |collection: Collection, i: usize| -> Option<Value> {
        match collection {
            Collection::Artists => Some(catalog.artist_full(i, view)),
            Collection::Albums => Some(catalog.album_full(i, view)),
            Collection::Tracks => Some(catalog.track_full(i, view)),
            Collection::AudioFeatures => catalog.audio_features(i, view),
            Collection::Searches | Collection::AlbumTracks | Collection::Events => None,
        }
    };
    let jobs = jobs(catalog);
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|&(collection, count)| {
                let file = dir.join(format!("{}.ndjson", collection.name()));
                scope.spawn(move || {
                    // Counted per object of the catalog, rendered or not.
                    let documents = (0..count)
                        .inspect(|_| bar.inc(1))
                        .filter_map(|i| render(collection, i));
                    write_file(&file, documents).map(|(documents, bytes)| Written {
                        collection,
                        file,
                        documents,
                        bytes,
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect()
    })
}

/// Write one document per line to `file` through a temporary name;
/// returns documents and bytes.
fn write_file(file: &Path, docs: impl Iterator<Item = Value>) -> Result<(u64, u64)> {
    let partial = file.with_extension("ndjson.partial");
    let failed = |e: std::io::Error| Error::io("cannot write the generated catalog", &partial, e);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&partial).map_err(failed)?);
    let (mut documents, mut bytes) = (0u64, 0u64);
    let mut line = Vec::with_capacity(4096);
    for doc in docs {
        line.clear();
        serde_json::to_writer(&mut line, &doc).expect("a JSON value serializes");
        line.push(b'\n');
        out.write_all(&line).map_err(failed)?;
        documents += 1;
        bytes += line.len() as u64;
    }
    out.into_inner()
        .map_err(|e| failed(e.into_error()))?
        .sync_all()
        .map_err(failed)?;
    std::fs::rename(&partial, file)
        .map_err(|e| Error::io("cannot move the generated file into place", file, e))?;
    Ok((documents, bytes))
}

/// The files written, a line each.
pub fn render(written: &[Written]) -> String {
    written
        .iter()
        .map(|w| {
            format!(
                "{:>10} {:<14} {:>8.1} MB  {}\n",
                w.documents,
                w.collection.name(),
                w.bytes as f64 / 1e6,
                w.file.display()
            )
        })
        .collect()
}
