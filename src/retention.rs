//! Retention within Spotify's terms. Bronze keeps a version of a Spotify
//! object that a newer one replaced for `[retention] history_days`, and
//! the current version of every object always; a takedown removes every
//! document naming an artist from the landing store and every row naming
//! it (or its albums and tracks) from every lake table, and keeps the
//! crawl from landing it again.

use std::collections::{BTreeMap, HashMap, HashSet};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, BooleanArray, RecordBatch};
use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::bronze::{BronzeSource, BronzeTable};
use crate::error::{Error, Result};
use crate::lake::{Deleted, Lake};
use crate::landing::{Collection, ScanCursor, SharedStore};

/// `[retention]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Days bronze keeps a version of a Spotify object after a newer one
    /// replaced it; the current version of every object always stays.
    pub history_days: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings { history_days: 30 }
    }
}

/// State-store keys of taken-down artists: `takedown/artist/<id>`.
pub const TAKEDOWN: &str = "takedown/artist/";

/// Rows read per batch.
const BATCH_ROWS: usize = 8192;
/// Documents read per landing-store page.
const PAGE: usize = 1000;

/// The Spotify ids a text names: runs of exactly 22 letters and digits.
pub fn spotify_ids(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|run| run.len() == 22)
}

/// Whether `text` names an id of `ids`.
pub fn names_any(text: &str, ids: &HashSet<String>) -> bool {
    spotify_ids(text).any(|id| ids.contains(id))
}

/// The artists taken down so far, whose documents the crawl must not land.
pub async fn taken_down(store: &SharedStore) -> Result<HashSet<String>> {
    Ok(store
        .state_with_prefix(TAKEDOWN)
        .await?
        .into_iter()
        .filter_map(|(key, _)| key.strip_prefix(TAKEDOWN).map(str::to_string))
        .collect())
}

/// An artist id from an id, a `spotify:artist:` URI or an
/// `open.spotify.com/artist/` URL.
pub fn artist_id(given: &str) -> Result<String> {
    crate::spotify::id_in("artist", given).ok_or_else(|| {
        Error::config(
            "--artist",
            format!("{given:?} is not a Spotify artist id"),
            "give the 22-character id (as in https://open.spotify.com/artist/<id>), the \
             artist's URL or its spotify:artist: URI",
        )
    })
}

/// What purging bronze's history did.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryPurge {
    pub history_days: u32,
    /// Versions replaced before this time went.
    pub cutoff: DateTime<Utc>,
    pub tables: Vec<Deleted>,
}

/// Delete from every bronze table of landed Spotify objects the versions
/// a newer version replaced more than `days` before `now`.
pub async fn purge_history(
    lake: &Lake,
    bronze: &[BronzeTable],
    days: u32,
    now: DateTime<Utc>,
    run_id: &str,
    dry_run: bool,
) -> Result<HistoryPurge> {
    let cutoff = now - TimeDelta::days(i64::from(days));
    let mut tables = Vec::new();
    for def in bronze {
        if !matches!(def.source, BronzeSource::Collection(_)) {
            // Listening events are the user's own records, not Spotify's.
            continue;
        }
        let table = lake.table(crate::bronze::LAYER, &def.name);
        let snapshot = table.snapshot().await?;
        let cutoff_stamp = cutoff.timestamp_micros();
        // A version is replaced by the next one; the newest version of an
        // id already current at the cutoff keeps it, older ones go.
        let mut current_at_cutoff: HashMap<String, i64> = HashMap::new();
        for file in &snapshot.files {
            each_version(&table, file, &def.key, |id, stamp| {
                if stamp < cutoff_stamp {
                    let held = current_at_cutoff.entry(id.to_string()).or_insert(stamp);
                    *held = (*held).max(stamp);
                }
            })
            .await?;
        }
        let doomed = |id: Option<&str>, stamp: Option<i64>| {
            id.and_then(|id| current_at_cutoff.get(id))
                .zip(stamp)
                .is_some_and(|(current, stamp)| stamp < *current)
        };
        // Only files holding a version older than the cutoff can hold one
        // to delete; of those, only the ones that do are read whole.
        let mut holding = HashSet::new();
        for file in &snapshot.files {
            if crate::bronze::stamp_range(file).is_some_and(|(min, _)| min >= cutoff_stamp) {
                continue;
            }
            let mut found = false;
            each_version(&table, file, &def.key, |id, stamp| {
                found |= doomed(Some(id), Some(stamp));
            })
            .await?;
            if found {
                holding.insert(file.path.clone());
            }
        }
        let key = def.key.clone();
        let keep = |batch: &RecordBatch| {
            let (Ok(k), Ok(s)) = (
                batch.schema().index_of(&key),
                batch.schema().index_of("ingested_at"),
            ) else {
                return Ok(BooleanArray::from(vec![true; batch.num_rows()]));
            };
            let (ids, stamps) = (texts(batch, k), stamps(batch, s));
            Ok((0..batch.num_rows())
                .map(|row| Some(!doomed(ids(row), stamps(row))))
                .collect())
        };
        let may_hold = |file: &crate::lake::DataFile| holding.contains(&file.path);
        tables.push(
            table
                .delete_rows(may_hold, keep, &["doc"], run_id, now, dry_run)
                .await?,
        );
    }
    Ok(HistoryPurge {
        history_days: days,
        cutoff,
        tables,
    })
}

/// What a takedown removed.
#[derive(Debug, Clone, Serialize)]
pub struct Takedown {
    pub artist: String,
    /// Landing documents deleted, by collection.
    pub documents: BTreeMap<Collection, u64>,
    /// Rows deleted, by table.
    pub tables: Vec<Deleted>,
}

/// Remove an artist: every landing document that names it (its own, its
/// albums and tracks, others' albums and tracks that credit it, the
/// audio features and track pages of those, searches that found it) and
/// every lake row naming any of those objects, by id or by gold's
/// surrogate key. The artist is recorded as taken down, so the crawl does
/// not land it again.
pub async fn take_down(
    store: &SharedStore,
    lake: &Lake,
    artist: &str,
    now: DateTime<Utc>,
    run_id: &str,
    dry_run: bool,
) -> Result<Takedown> {
    let key = format!("{TAKEDOWN}{artist}");
    // The ids an earlier, interrupted takedown found: their landing
    // documents may be gone already, and with them what links the lake's
    // rows of the artist's albums and tracks to the artist.
    let earlier: Vec<String> = store
        .get_state(&key)
        .await?
        .and_then(|record| serde_json::from_value(record["ids"].clone()).ok())
        .unwrap_or_default();
    let mut named: HashSet<String> = HashSet::from([artist.to_string()]);
    named.extend(earlier);
    let mut doomed: BTreeMap<Collection, Vec<String>> = BTreeMap::new();
    // Albums before their track pages and tracks, tracks before their
    // audio features: each adds the ids the next ones are named by.
    let order = [
        Collection::Artists,
        Collection::Albums,
        Collection::AlbumTracks,
        Collection::Tracks,
        Collection::AudioFeatures,
        Collection::Searches,
        Collection::Events,
    ];
    for collection in order {
        let mut after: Option<ScanCursor> = None;
        loop {
            let page = store.scan_text(collection, after.as_ref(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some((last.ingested_at, last.id.clone()));
            for doc in &page {
                if names_any(&doc.id, &named) || names_any(&doc.doc, &named) {
                    doomed.entry(collection).or_default().push(doc.id.clone());
                }
            }
        }
        if matches!(collection, Collection::Albums | Collection::Tracks) {
            named.extend(doomed.get(&collection).into_iter().flatten().cloned());
        }
    }
    let mut ids: Vec<&String> = named.iter().collect();
    ids.sort();
    let record =
        |complete: bool| json!({"at": now, "run_id": run_id, "ids": ids, "complete": complete});
    if !dry_run {
        // Before anything is deleted: a takedown killed part-way knows on
        // its rerun every id it has to delete, and the crawl withholds the
        // artist from now on.
        store.put_state(&key, &record(false)).await?;
    }
    let mut documents = BTreeMap::new();
    for (collection, ids) in &doomed {
        let count = if dry_run {
            ids.len() as u64
        } else {
            store.delete(*collection, ids).await?
        };
        documents.insert(*collection, count);
    }
    fail::fail_point!("takedown-between-store-and-lake");
    let keys: HashSet<i64> = named
        .iter()
        .map(|id| crate::sql::functions::surrogate_key(&[Some(id)]))
        .collect();
    let mut tables = Vec::new();
    for layer in crate::sql::LAYERS {
        for name in lake.tables(layer).await? {
            let keep = |batch: &RecordBatch| Ok(keep_unnamed(batch, &named, &keys));
            let payload: &[&str] = &["doc", "text"];
            let deleted = lake
                .table(layer, &name)
                .delete_rows(|_| true, keep, payload, run_id, now, dry_run)
                .await?;
            if deleted.rows > 0 {
                tables.push(deleted);
            }
        }
    }
    if !dry_run {
        store.put_state(&key, &record(true)).await?;
    }
    Ok(Takedown {
        artist: artist.to_string(),
        documents,
        tables,
    })
}

/// Call `f` with the id and ingest stamp of every version `file` holds,
/// reading those two columns only.
async fn each_version(
    table: &crate::lake::Table,
    file: &crate::lake::DataFile,
    key: &str,
    mut f: impl FnMut(&str, i64),
) -> Result<()> {
    let mut batches =
        table
            .open_file(file)
            .await?
            .read(None, Some(&[key, "ingested_at"]), BATCH_ROWS)?;
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        let (ids, stamps) = (texts(&batch, 0), stamps(&batch, 1));
        for row in 0..batch.num_rows() {
            if let (Some(id), Some(stamp)) = (ids(row), stamps(row)) {
                f(id, stamp);
            }
        }
    }
    Ok(())
}

/// Rows naming none of `ids` in a text column, and holding none of `keys`
/// in a BIGINT column.
fn keep_unnamed(batch: &RecordBatch, ids: &HashSet<String>, keys: &HashSet<i64>) -> BooleanArray {
    let mut keep = vec![true; batch.num_rows()];
    for column in 0..batch.num_columns() {
        if let Some(values) = batch.column(column).as_primitive_opt::<Int64Type>() {
            for (row, value) in values.iter().enumerate() {
                keep[row] &= !value.is_some_and(|v| keys.contains(&v));
            }
            continue;
        }
        let text = texts(batch, column);
        for (row, kept) in keep.iter_mut().enumerate() {
            *kept &= !text(row).is_some_and(|t| names_any(t, ids));
        }
    }
    BooleanArray::from(keep)
}

/// A text column's value by row; `None` for nulls and other types.
fn texts<'b>(batch: &'b RecordBatch, column: usize) -> impl Fn(usize) -> Option<&'b str> {
    let array = batch.column(column);
    let utf8 = array.as_string_opt::<i32>();
    let large = array.as_string_opt::<i64>();
    let view = array.as_string_view_opt();
    move |row| {
        if let Some(a) = utf8 {
            return a.is_valid(row).then(|| a.value(row));
        }
        if let Some(a) = large {
            return a.is_valid(row).then(|| a.value(row));
        }
        view.and_then(|a| a.is_valid(row).then(|| a.value(row)))
    }
}

/// A microsecond timestamp column's value by row.
fn stamps(batch: &RecordBatch, column: usize) -> impl Fn(usize) -> Option<i64> {
    let array = batch
        .column(column)
        .as_primitive_opt::<TimestampMicrosecondType>();
    move |row| array.and_then(|a| a.is_valid(row).then(|| a.value(row)))
}

/// A purge's outcome, one line per table it deleted rows from.
pub fn render_history(purged: &HistoryPurge, dry_run: bool) -> String {
    let verb = if dry_run { "would delete" } else { "deleted" };
    let mut out = format!(
        "bronze history older than {} days (replaced before {}):\n",
        purged.history_days,
        purged.cutoff.format("%Y-%m-%d %H:%M:%SZ")
    );
    out.push_str(&render_deleted(&purged.tables, verb));
    out
}

/// A takedown's outcome: documents by collection, rows by table.
pub fn render_takedown(taken: &Takedown, dry_run: bool) -> String {
    let verb = if dry_run { "would delete" } else { "deleted" };
    let mut out = format!("artist {}:\n", taken.artist);
    for (collection, count) in &taken.documents {
        out.push_str(&format!(
            "  landing {collection:<30} {verb} {count} documents\n"
        ));
    }
    out.push_str(&render_deleted(&taken.tables, verb));
    if !dry_run {
        out.push_str(
            "taken down: the crawl lands no document naming this artist again; the next \
             gold run recomputes the aggregates it counted in\n",
        );
    }
    out
}

fn render_deleted(tables: &[Deleted], verb: &str) -> String {
    let mut out = String::new();
    let mut rows = 0;
    for t in tables.iter().filter(|t| t.rows > 0) {
        rows += t.rows;
        out.push_str(&format!(
            "  {:<38} {verb} {} rows from {} files\n",
            t.table, t.rows, t.files
        ));
    }
    out.push_str(&format!("  {verb} {rows} rows in all\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_artist_is_given_as_an_id_a_uri_or_a_url() {
        let id = "4Z8W4fKeB5YxbusRsdQVPb";
        for given in [
            id.to_string(),
            format!("spotify:artist:{id}"),
            format!("https://open.spotify.com/artist/{id}?si=x"),
            format!("https://open.spotify.com/intl-de/artist/{id}"),
        ] {
            assert_eq!(artist_id(&given).unwrap(), id, "{given}");
        }
        for bad in [
            "",
            "radiohead",
            "spotify:track:4Z8W4fKeB5YxbusRsdQVPb",
            "4Z8W4fKeB5Yxbus",
        ] {
            let err = artist_id(bad).unwrap_err().to_string();
            assert!(
                err.contains("--artist") && err.contains("22-character"),
                "{err}"
            );
        }
    }

    #[test]
    fn ids_are_whole_runs_of_22_letters_and_digits() {
        let ids: HashSet<String> = ["4Z8W4fKeB5YxbusRsdQVPb".to_string()].into();
        assert!(names_any(
            r#"{"artists":[{"id":"4Z8W4fKeB5YxbusRsdQVPb"}]}"#,
            &ids
        ));
        assert!(names_any("spotify:artist:4Z8W4fKeB5YxbusRsdQVPb", &ids));
        assert!(
            !names_any("x4Z8W4fKeB5YxbusRsdQVPb", &ids),
            "part of a longer run"
        );
        assert!(!names_any("", &ids));
    }
}
