//! Similar tracks, asked of the gold tables: a track named the way a person
//! names it (its title, Spotify id, URI or URL) and its neighbours from
//! `gold.similar_tracks_by_sound` or `gold.similar_tracks_by_listening`,
//! with artists and album.

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, SchemaRef};
use datafusion::arrow::compute::cast;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::sql::{Engine, quote_literal};

/// Candidates listed when a name matches more than one track.
pub const CANDIDATES: usize = 10;
/// The most characters of a track's name quoted back in a message.
const QUOTED: usize = 80;

/// Which similarity to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Audio features (Extended mode catalogs only).
    #[default]
    Sound,
    /// Tracks played in the same sessions, from the listening events.
    Listening,
}

impl Method {
    /// The gold table holding this similarity.
    pub fn table(self) -> &'static str {
        match self {
            Method::Sound => "similar_tracks_by_sound",
            Method::Listening => "similar_tracks_by_listening",
        }
    }

    fn missing(self) -> &'static str {
        match self {
            Method::Sound => {
                "run the spotify_catalog pipeline; by sound needs audio features, which \
                 Development Mode apps are refused: try --by listening"
            }
            Method::Listening => {
                "run the listening_events pipeline over your listening events \
                 (`soundlake run listening_events`)"
            }
        }
    }
}

/// A track of the catalog, as a person recognizes it.
#[derive(Debug, Clone, Serialize)]
pub struct Track {
    pub key: i64,
    pub id: String,
    pub name: String,
    pub artists: String,
    pub album: String,
}

impl std::fmt::Display for Track {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} by {} ({}, {})",
            self.name, self.artists, self.album, self.id
        )
    }
}

/// The columns that tell a person which track `t` is, and the joins they
/// need: its artists in credit order and its album. Grouped by `t`'s
/// columns, they describe only the tracks `t` holds.
const ARTISTS_AND_ALBUM: &str = "\
    coalesce(string_agg(ar.name, ', ' ORDER BY b.position), '') AS artists, \
    coalesce(min(al.name), '') AS album";
const ARTISTS_AND_ALBUM_JOINS: &str = "\
    LEFT JOIN gold.bridge_track_artist b ON b.track_key = t.track_key \
    LEFT JOIN gold.dim_artist ar ON ar.artist_key = b.artist_key \
    LEFT JOIN gold.dim_album al ON al.album_key = t.album_key";

/// The one track `given` names: its Spotify id, URI or URL, or its title
/// (any case; a part of it if no title is equal). A title that names
/// several tracks is refused with the candidates.
pub async fn find(engine: &Engine, given: &str) -> Result<Track> {
    the_one(given, candidates(engine, given).await?)
}

/// The tracks `given` may name, most popular first: the one its id names,
/// those whose title it is, or else those whose title holds it; at most
/// one more than the candidates a refusal lists.
pub async fn candidates(engine: &Engine, given: &str) -> Result<Vec<Track>> {
    for table in [
        "dim_track",
        "bridge_track_artist",
        "dim_artist",
        "dim_album",
    ] {
        if !engine.has_data("gold", table).await? {
            return Err(refused(
                format!("the lake has no gold.{table} yet"),
                "build the catalog first: `soundlake run spotify_catalog` (or `soundlake demo`)",
            ));
        }
    }
    let conditions = match crate::spotify::id_in("track", given) {
        Some(id) => vec![format!("track_id = {}", quote_literal(&id))],
        None => {
            let name = quote_literal(&given.trim().to_lowercase());
            vec![
                format!("lower(name) = {name}"),
                format!("strpos(lower(name), {name}) > 0"),
            ]
        }
    };
    for condition in conditions {
        let sql = format!(
            "WITH t AS ( \
                 SELECT track_key, track_id, name, album_key, popularity FROM gold.dim_track \
                 WHERE {condition} ORDER BY popularity DESC NULLS LAST, track_id LIMIT {} \
             ) \
             SELECT t.track_key, t.track_id, t.name, {ARTISTS_AND_ALBUM} \
             FROM t {ARTISTS_AND_ALBUM_JOINS} \
             GROUP BY t.track_key, t.track_id, t.name, t.popularity \
             ORDER BY t.popularity DESC NULLS LAST, t.track_id",
            CANDIDATES + 1
        );
        let found = tracks(&engine.collect("recommend", &sql).await?.1);
        if !found.is_empty() {
            return Ok(found);
        }
    }
    Ok(Vec::new())
}

/// The track of `found` that `given` names, or why there is none: no
/// candidate, or several (the first ten listed with their ids).
pub fn the_one(given: &str, mut found: Vec<Track>) -> Result<Track> {
    // Messages quote what was asked, not all of a pasted page.
    let quoted: String = if given.chars().count() > QUOTED {
        format!("{:?}…", given.chars().take(QUOTED).collect::<String>())
    } else {
        format!("{given:?}")
    };
    match found.len() {
        0 => Err(refused(
            format!("no track of the catalog is named {quoted}"),
            "give a title as gold.dim_track spells it (or a part of it), or the track's \
             Spotify id or URL",
        )),
        1 => Ok(found.remove(0)),
        _ => {
            let more = if found.len() > CANDIDATES {
                "\n  …"
            } else {
                ""
            };
            let list: Vec<String> = found
                .iter()
                .take(CANDIDATES)
                .map(|t| format!("\n  {t}"))
                .collect();
            Err(refused(
                format!("{quoted} names more than one track:{}{more}", list.concat()),
                "give the track's Spotify id or URL (the last part of each line above)",
            ))
        }
    }
}

/// What `recommend` answers a question it cannot: the problem and the fix.
fn refused(problem: String, fix: &str) -> Error {
    Error::Input {
        place: "recommend".into(),
        problem,
        fix: fix.into(),
    }
}

fn tracks(batches: &[RecordBatch]) -> Vec<Track> {
    let mut out = Vec::new();
    for batch in batches {
        // Text comes back as Arrow's string views; cast to plain strings.
        let text = |i: usize| {
            let column = cast(batch.column(i), &DataType::Utf8).expect("text casts to text");
            column
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("cast")
                .clone()
        };
        let key = cast(batch.column(0), &DataType::Int64).expect("a bigint key");
        let key = key.as_any().downcast_ref::<Int64Array>().expect("cast");
        let (id, name, artists, album) = (text(1), text(2), text(3), text(4));
        for row in 0..batch.num_rows() {
            out.push(Track {
                key: key.value(row),
                id: id.value(row).into(),
                name: name.value(row).into(),
                artists: artists.value(row).into(),
                album: album.value(row).into(),
            });
        }
    }
    out
}

/// The `k` tracks most like `track` by `method`, most similar first:
/// `rank, score, name, artists, album, track_id` (the last three empty for
/// a track the listening names and the catalog lacks).
pub async fn similar(
    engine: &Engine,
    track: &Track,
    method: Method,
    k: usize,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    if !engine.has_data("gold", method.table()).await? {
        return Err(refused(
            format!("the lake has no gold.{} yet", method.table()),
            method.missing(),
        ));
    }
    let sql = format!(
        "WITH s AS ( \
             SELECT rank, score, neighbour_track_key FROM gold.{table} \
             WHERE track_key = {key} AND rank <= {k} \
         ) \
         SELECT s.rank, round(s.score, 4) AS score, coalesce(t.name, '') AS name, \
                {ARTISTS_AND_ALBUM}, coalesce(t.track_id, '') AS track_id \
         FROM s LEFT JOIN gold.dim_track t ON t.track_key = s.neighbour_track_key \
         {ARTISTS_AND_ALBUM_JOINS} \
         GROUP BY s.rank, s.score, t.name, t.track_id \
         ORDER BY s.rank",
        table = method.table(),
        key = track.key,
    );
    engine.collect("recommend", &sql).await
}

/// What to say when a track has no neighbours by `method`.
pub fn none_found(track: &Track, method: Method) -> String {
    match method {
        Method::Sound => format!(
            "{track} has no neighbours by sound: it has no audio features (Development Mode \
             apps are refused them). Try --by listening."
        ),
        Method::Listening => format!(
            "{track} has no neighbours by listening: no other track was played with it in \
             two sessions or more."
        ),
    }
}
