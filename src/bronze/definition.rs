//! `bronze/*.toml`: one file per bronze table. The file name is the table
//! name; the file says which landing collection feeds it and how it is
//! partitioned.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::definitions::{is_identifier, read_toml, toml_files};
use crate::error::{Error, Result};
use crate::landing::Collection;

/// A bronze table definition.
#[derive(Debug, Clone, PartialEq)]
pub struct BronzeTable {
    /// The file stem: `bronze/tracks.toml` defines `bronze.tracks`.
    pub name: String,
    pub source: Collection,
    /// The column holding the landing document's id; silver uses it as its
    /// default key.
    pub key: String,
    pub partition_by: Partitioning,
    /// Where the definition was read from, for messages.
    pub file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partitioning {
    /// `ingest_date=YYYY-MM-DD/` (UTC): the default.
    IngestDate,
    /// `ingest_month=YYYY-MM/`, for small collections.
    IngestMonth,
    /// One folder, no partitions.
    None,
}

impl Partitioning {
    /// The partition key and value of a version ingested at `at`.
    pub fn of(self, at: DateTime<Utc>) -> Option<(&'static str, String)> {
        match self {
            Partitioning::IngestDate => Some(("ingest_date", at.format("%Y-%m-%d").to_string())),
            Partitioning::IngestMonth => Some(("ingest_month", at.format("%Y-%m").to_string())),
            Partitioning::None => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    source: Collection,
    #[serde(default = "default_key")]
    key: String,
    #[serde(default = "default_partitioning")]
    partition_by: Partitioning,
}

fn default_key() -> String {
    "id".into()
}

fn default_partitioning() -> Partitioning {
    Partitioning::IngestDate
}

/// Column names bronze writes itself, which a key must not take.
pub const METADATA_COLUMNS: [&str; 5] =
    ["ingested_at", "run_id", "endpoint", "content_hash", "doc"];

/// Every `*.toml` in `dir`, sorted by name. All problems are reported at
/// once, each with its file and a fix.
pub fn load(dir: &Path) -> Result<Vec<BronzeTable>> {
    let mut tables = Vec::new();
    let mut problems = Vec::new();
    for path in toml_files(dir, "bronze")? {
        match parse(&path) {
            Ok(table) => tables.push(table),
            Err(problem) => problems.push(format!("{}: {problem}", path.display())),
        }
    }
    for (i, a) in tables.iter().enumerate() {
        if let Some(b) = tables[..i].iter().find(|b| b.source == a.source) {
            problems.push(format!(
                "{}: collection {} already feeds bronze.{} ({}); one bronze table per collection",
                a.file.display(),
                a.source,
                b.name,
                b.file.display()
            ));
        }
    }
    if !problems.is_empty() {
        return Err(Error::config(
            dir.display().to_string(),
            problems.join("\n  "),
            "fix each file named above; keys: source (a landing collection), key (default \
             \"id\"), partition_by (ingest_date, ingest_month or none)",
        ));
    }
    if tables.is_empty() {
        return Err(Error::config(
            dir.display().to_string(),
            "no bronze definitions (*.toml) found",
            "add one <table>.toml per landing collection, for example \
             tracks.toml with source = \"tracks\"",
        ));
    }
    Ok(tables)
}

fn parse(path: &Path) -> std::result::Result<BronzeTable, String> {
    let (name, file): (String, File) = read_toml(path)?;
    if !is_identifier(&file.key) || METADATA_COLUMNS.contains(&file.key.as_str()) {
        return Err(format!(
            "key {:?} must be a column name (lowercase, digits, _) other than {}",
            file.key,
            METADATA_COLUMNS.join(", ")
        ));
    }
    Ok(BronzeTable {
        name,
        source: file.source,
        key: file.key,
        partition_by: file.partition_by,
        file: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::tests::dir_with;

    #[test]
    fn defaults_and_file_name_as_table_name() {
        let dir = dir_with(&[("tracks.toml", "source = \"tracks\"\n")]);
        let tables = load(dir.path()).unwrap();
        assert_eq!(tables.len(), 1);
        assert_eq!(tables[0].name, "tracks");
        assert_eq!(tables[0].source, Collection::Tracks);
        assert_eq!(tables[0].key, "id");
        assert_eq!(tables[0].partition_by, Partitioning::IngestDate);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_file() {
        let dir = dir_with(&[
            ("a.toml", "source = \"tracks\"\npartiton_by = \"none\"\n"),
            ("b.toml", "source = \"songs\"\n"),
            ("c.toml", "source = \"artists\"\nkey = \"doc\"\n"),
            ("Bad-Name.toml", "source = \"artists\"\n"),
            ("d.toml", "source = [\n"),
            ("e.toml", "source = \"albums\"\n"),
            ("f.toml", "source = \"albums\"\n"),
            ("notes.txt", "ignored"),
        ]);
        let err = load(dir.path()).unwrap_err().to_string();
        for needle in [
            "a.toml: line 2, column 1: unknown field `partiton_by`",
            "b.toml",
            "songs",
            "c.toml",
            "Bad-Name.toml",
            "d.toml",
            "f.toml: collection albums already feeds bronze.e",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in {err}");
        }
    }

    #[test]
    fn missing_or_empty_folder_says_what_to_add() {
        let err = load(Path::new("/nonexistent/bronze"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/bronze"), "{err}");
        let empty = dir_with(&[]);
        let err = load(empty.path()).unwrap_err().to_string();
        assert!(err.contains("no bronze definitions"), "{err}");
    }

    #[test]
    fn huge_and_binary_files_are_refused_cleanly() {
        let dir = dir_with(&[("x.toml", "")]);
        std::fs::write(dir.path().join("x.toml"), vec![b'#'; 2 * 1024 * 1024]).unwrap();
        std::fs::write(dir.path().join("y.toml"), [0xff, 0xfe, 0x00, 0x41]).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("x.toml") && err.contains("too large"), "{err}");
        assert!(err.contains("y.toml"), "{err}");
    }

    #[test]
    fn partitions_are_utc_dates_or_months() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T23:59:59-02:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            Partitioning::IngestDate.of(at),
            Some(("ingest_date", "2026-11-22".to_string()))
        );
        assert_eq!(
            Partitioning::IngestMonth.of(at),
            Some(("ingest_month", "2026-11".to_string()))
        );
        assert_eq!(Partitioning::None.of(at), None);
    }
}
