//! `silver/*.toml`: one file per silver table. With no overrides a
//! bronze table flattens on its own; a definition adds what the data cannot
//! say (renames, types, parsers, columns to drop, arrays to keep as lists).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::bronze::BronzeTable;
use crate::definitions::{is_identifier, read_toml, toml_files};
use crate::error::{Error, Result};

/// A silver table definition.
#[derive(Debug, Clone, PartialEq)]
pub struct SilverTable {
    /// The file stem: `silver/tracks.toml` defines `silver.tracks` and its
    /// child tables `silver.tracks__<array>`.
    pub name: String,
    /// The bronze table it reads.
    pub source: String,
    /// The key column of the table (its values are the bronze key).
    pub key: String,
    /// The key column's name in child tables (`track_id`).
    pub parent_key: String,
    /// Overrides by JSON path (`album.release_date`; arrays are
    /// transparent, so `artists.name` is the name of each artist).
    pub columns: BTreeMap<String, ColumnRule>,
    /// A partition key of the bronze table (`event_date`) that this table
    /// is partitioned by too: a run rebuilds whole partitions, the ones new
    /// bronze files (or a backfill's interval) touch.
    pub partition_by: Option<String>,
    /// JSON paths whose values together identify a record a second way
    /// (besides the key): of rows alike on all of them, one is kept.
    pub unique: Vec<String>,
    pub file: PathBuf,
}

impl SilverTable {
    /// `--from`/`--to` rebuild date partitions: refused, with the way to
    /// rebuild instead, for a table that has none.
    pub fn check_rebuilds_partitions(&self) -> Result<()> {
        if self.partition_by.is_some() {
            return Ok(());
        }
        Err(Error::config(
            self.file.display().to_string(),
            format!(
                "silver.{} is not partitioned, and --from/--to rebuild partitions",
                self.name
            ),
            "give --from/--to only for tables with partition_by (like silver.events); \
             rebuild the others with --full-refresh",
        ))
    }
}

/// What a definition says about one JSON path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnRule {
    /// The column (or, for an array, the child table suffix) name.
    pub rename: Option<String>,
    #[serde(rename = "type")]
    pub declared: Option<Declared>,
    pub parse: Option<Parser>,
    /// Keep an array as a list column instead of a child table.
    #[serde(default)]
    pub list: bool,
    /// Leave the path (and everything below it) out of silver.
    #[serde(default)]
    pub drop: bool,
}

/// A declared type: values are converted to it, and a value that cannot be
/// sends its row to quarantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Declared {
    Bool,
    Int,
    Float,
    /// Any scalar as text; an object or array as its JSON text.
    String,
    /// The value, whatever it is, as JSON text.
    Json,
}

/// A parser from text to a typed column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parser {
    /// Spotify's `release_date`: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, as the
    /// first day it can mean (the sibling `release_date_precision` says
    /// which).
    SpotifyReleaseDate,
    /// `YYYY-MM-DD`.
    Date,
    /// RFC 3339, stored in UTC.
    Timestamp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    source: Option<String>,
    key: Option<String>,
    parent_key: Option<String>,
    partition_by: Option<String>,
    #[serde(default)]
    unique: Vec<String>,
    #[serde(default)]
    columns: BTreeMap<String, ColumnRule>,
}

/// Every `*.toml` in `dir`, checked against the bronze tables they read.
/// All problems are reported at once, each with its file and a fix.
pub fn load(dir: &Path, bronze: &[BronzeTable]) -> Result<Vec<SilverTable>> {
    let mut tables = Vec::new();
    let mut problems = Vec::new();
    for path in toml_files(dir, "silver")? {
        match parse(&path, bronze) {
            Ok(table) => tables.push(table),
            Err(problem) => problems.push(format!("{}: {problem}", path.display())),
        }
    }
    if !problems.is_empty() {
        return Err(Error::config(
            dir.display().to_string(),
            problems.join("\n  "),
            "fix each file named above; keys: source (a bronze table), key, parent_key, \
             partition_by (a partition key of the bronze table), unique (JSON paths), and \
             [columns.\"<json.path>\"] tables with rename, type (bool, int, float, string, \
             json), parse (spotify_release_date, date, timestamp), list and drop",
        ));
    }
    if tables.is_empty() {
        return Err(Error::config(
            dir.display().to_string(),
            "no silver definitions (*.toml) found",
            "add one <table>.toml per silver table, for example tracks.toml with \
             source = \"tracks\"",
        ));
    }
    Ok(tables)
}

fn parse(path: &Path, bronze: &[BronzeTable]) -> std::result::Result<SilverTable, String> {
    let (name, file): (String, File) = read_toml(path)?;
    if name.contains("__") {
        return Err(format!(
            "{name:?}: `__` separates a table from its child tables; rename the file"
        ));
    }
    let source = file.source.unwrap_or_else(|| name.clone());
    let Some(origin) = bronze.iter().find(|b| b.name == source) else {
        let known: Vec<&str> = bronze.iter().map(|b| b.name.as_str()).collect();
        return Err(format!(
            "source {source:?} is not a bronze table (there are: {})",
            known.join(", ")
        ));
    };
    let key = file.key.unwrap_or_else(|| origin.key.clone());
    let parent_key = file
        .parent_key
        .unwrap_or_else(|| format!("{}_{key}", singular(&name)));
    let mut problems = Vec::new();
    for (what, column) in [("key", &key), ("parent_key", &parent_key)] {
        if !is_identifier(column) {
            problems.push(format!(
                "{what} {column:?} must be a column name (lowercase, digits, _)"
            ));
        }
    }
    for (path, rule) in &file.columns {
        if let Err(problem) = check_rule(path, rule) {
            problems.push(format!("[columns.{path:?}]: {problem}"));
        }
    }
    let bronze_keys: Vec<&str> = origin
        .partition_by
        .of(chrono::DateTime::UNIX_EPOCH)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    if let Some(key) = &file.partition_by
        && !bronze_keys.contains(&key.as_str())
    {
        problems.push(format!(
            "partition_by {key:?} is not a partition key of bronze.{source} (it has: {})",
            if bronze_keys.is_empty() {
                "none".to_string()
            } else {
                bronze_keys.join(", ")
            }
        ));
    }
    if !file.unique.is_empty() && file.partition_by.is_none() {
        problems.push(
            "unique needs partition_by: rows alike are found within the partitions a run \
             rebuilds, so the partition must follow from the unique fields (like event_date \
             from event_ts)"
                .into(),
        );
    }
    for path in &file.unique {
        if path.is_empty() || path.split('.').any(str::is_empty) {
            problems.push(format!(
                "unique {path:?}: a path is JSON keys joined by dots, like user_id"
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(SilverTable {
        name,
        source,
        key,
        parent_key,
        columns: file.columns,
        partition_by: file.partition_by,
        unique: file.unique,
        file: path.to_path_buf(),
    })
}

fn check_rule(path: &str, rule: &ColumnRule) -> std::result::Result<(), String> {
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err("a path is JSON keys joined by dots, like album.release_date".into());
    }
    if let Some(name) = &rule.rename
        && !is_identifier(name)
    {
        return Err(format!(
            "rename {name:?} must be a column name (lowercase, digits, _)"
        ));
    }
    if rule.drop
        && (rule.rename.is_some() || rule.declared.is_some() || rule.parse.is_some() || rule.list)
    {
        return Err("drop = true leaves the path out; it takes no other setting".into());
    }
    if rule.declared.is_some() && rule.parse.is_some() {
        return Err("give type or parse, not both (a parser decides the type)".into());
    }
    if rule.list && (rule.declared.is_some() || rule.parse.is_some()) {
        return Err("list = true keeps an array; its element type is inferred".into());
    }
    Ok(())
}

/// `tracks` → `track`, `searches` → `search`, `categories` → `category`:
/// the row noun for child-table key names.
fn singular(name: &str) -> String {
    if let Some(stem) = name.strip_suffix("ies") {
        format!("{stem}y")
    } else if ["ches", "shes", "sses", "xes"]
        .iter()
        .any(|suffix| name.ends_with(suffix))
    {
        name[..name.len() - 2].to_string()
    } else if let Some(stem) = name.strip_suffix('s')
        && !stem.ends_with(['s', 'u'])
    {
        stem.to_string()
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bronze::{BronzeSource, Partitioning};
    use crate::definitions::tests::dir_with;
    use crate::landing::Collection;

    fn bronze() -> Vec<BronzeTable> {
        [
            ("tracks", Collection::Tracks, "id"),
            ("searches", Collection::Searches, "match_key"),
        ]
        .into_iter()
        .map(|(name, source, key)| BronzeTable {
            name: name.into(),
            source: BronzeSource::Collection(source),
            key: key.into(),
            partition_by: Partitioning::IngestDate,
            event_time: None,
            required: Vec::new(),
            copy_to_landing: None,
            file: PathBuf::from(format!("bronze/{name}.toml")),
        })
        .collect()
    }

    #[test]
    fn an_empty_file_flattens_its_namesake_with_the_bronze_key() {
        let dir = dir_with(&[("tracks.toml", ""), ("searches.toml", "")]);
        let tables = load(dir.path(), &bronze()).unwrap();
        assert_eq!(tables[1].name, "tracks");
        assert_eq!(tables[1].source, "tracks");
        assert_eq!(tables[1].key, "id");
        assert_eq!(tables[1].parent_key, "track_id");
        assert_eq!(tables[0].key, "match_key");
        assert_eq!(tables[0].parent_key, "search_match_key");
    }

    #[test]
    fn overrides_are_read_by_path() {
        let dir = dir_with(&[(
            "tracks.toml",
            r#"
source = "tracks"
[columns."album.release_date"]
parse = "spotify_release_date"
[columns."external_ids.isrc"]
rename = "isrc"
[columns.available_markets]
list = true
[columns.href]
drop = true
[columns.popularity]
type = "float"
"#,
        )]);
        let table = load(dir.path(), &bronze()).unwrap().remove(0);
        let rule = |p: &str| table.columns[p].clone();
        assert_eq!(
            rule("album.release_date").parse,
            Some(Parser::SpotifyReleaseDate)
        );
        assert_eq!(rule("external_ids.isrc").rename.as_deref(), Some("isrc"));
        assert!(rule("available_markets").list);
        assert!(rule("href").drop);
        assert_eq!(rule("popularity").declared, Some(Declared::Float));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_file() {
        let dir = dir_with(&[
            ("a.toml", "source = \"songs\"\n"),
            (
                "b.toml",
                "source = \"tracks\"\n[columns.x]\nrenam = \"y\"\n",
            ),
            (
                "c.toml",
                "source = \"tracks\"\n[columns.x]\ndrop = true\nrename = \"y\"\n",
            ),
            (
                "d.toml",
                "source = \"tracks\"\n[columns.\"a..b\"]\ndrop = true\n",
            ),
            (
                "e.toml",
                "source = \"tracks\"\n[columns.x]\ntype = \"decimal\"\n",
            ),
            (
                "f.toml",
                "source = \"tracks\"\n[columns.x]\nrename = \"Bad Name\"\n",
            ),
            ("g__h.toml", "source = \"tracks\"\n"),
            (
                "i.toml",
                "source = \"tracks\"\n[columns.x]\ntype = \"int\"\nparse = \"date\"\n",
            ),
            (
                "j.toml",
                "source = \"tracks\"\npartition_by = \"event_date\"\n",
            ),
            ("k.toml", "source = \"tracks\"\nunique = [\"a\"]\n"),
            (
                "l.toml",
                "source = \"tracks\"\npartition_by = \"ingest_date\"\nunique = [\"a..b\"]\n",
            ),
        ]);
        let err = load(dir.path(), &bronze()).unwrap_err().to_string();
        for needle in [
            "a.toml: source \"songs\" is not a bronze table (there are: tracks, searches)",
            "b.toml: line 3, column 1: unknown field `renam`",
            "c.toml: [columns.\"x\"]: drop = true",
            "d.toml: [columns.\"a..b\"]",
            "e.toml: line 3",
            "f.toml: [columns.\"x\"]: rename \"Bad Name\"",
            "g__h.toml",
            "i.toml: [columns.\"x\"]: give type or parse",
            "j.toml: partition_by \"event_date\" is not a partition key of bronze.tracks (it has: ingest_date)",
            "k.toml: unique needs partition_by",
            "l.toml: unique \"a..b\"",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in {err}");
        }
    }

    #[test]
    fn an_event_table_is_partitioned_like_its_bronze_and_has_a_second_identity() {
        let mut bronze = bronze();
        bronze[0].partition_by = Partitioning::EventHour;
        let dir = dir_with(&[(
            "tracks.toml",
            "partition_by = \"event_date\"\nunique = [\"user_id\", \"event_ts\"]\n",
        )]);
        let table = load(dir.path(), &bronze).unwrap().remove(0);
        assert_eq!(table.partition_by.as_deref(), Some("event_date"));
        assert_eq!(table.unique, ["user_id", "event_ts"]);
    }

    #[test]
    fn missing_or_empty_folder_says_what_to_add() {
        let err = load(Path::new("/nonexistent/silver"), &bronze())
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/silver"), "{err}");
        let empty = dir_with(&[]);
        let err = load(empty.path(), &bronze()).unwrap_err().to_string();
        assert!(err.contains("no silver definitions"), "{err}");
    }

    #[test]
    fn singular_nouns_for_key_names() {
        for (plural, one) in [
            ("tracks", "track"),
            ("searches", "search"),
            ("categories", "category"),
            ("boxes", "box"),
            ("audio_features", "audio_feature"),
            ("status", "status"),
            ("class", "class"),
            ("data", "data"),
        ] {
            assert_eq!(singular(plural), one, "{plural}");
        }
    }
}
