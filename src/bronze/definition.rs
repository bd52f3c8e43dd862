//! `bronze/*.toml`: one file per bronze table. The file name is the table
//! name; the file says what feeds it (a landing collection, a folder of
//! event files in the lake, or Kafka topics) and how it is partitioned.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Utc};
use serde::Deserialize;

use crate::definitions::{is_identifier, read_toml, toml_files};
use crate::error::{Error, Result};
use crate::landing::Collection;

/// A bronze table definition.
#[derive(Debug, Clone, PartialEq)]
pub struct BronzeTable {
    /// The file stem: `bronze/tracks.toml` defines `bronze.tracks`.
    pub name: String,
    pub source: BronzeSource,
    /// The column holding the landing document's id; silver uses it as its
    /// default key.
    pub key: String,
    pub partition_by: Partitioning,
    /// For a records source (files, Kafka): the field holding each record's
    /// RFC 3339 time, which [`Partitioning::EventHour`] partitions by.
    pub event_time: Option<String>,
    /// For a records source: top-level fields every record must carry (not
    /// null, not empty); a record without one goes to quarantine.
    pub required: Vec<String>,
    /// For a records source: a landing collection every record taken is
    /// also upserted into (by key), for deployments that collect events there.
    pub copy_to_landing: Option<Collection>,
    /// Where the definition was read from, for messages.
    pub file: PathBuf,
}

/// What feeds a bronze table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BronzeSource {
    /// A landing-store collection, by ingest watermark.
    Collection(Collection),
    /// NDJSON or CSV files under a folder of the lake, each line once.
    Files(String),
    /// JSON messages of Kafka topics, each message once.
    Kafka(Vec<String>),
}

impl BronzeSource {
    /// `tracks`, `files:landing/events` or `kafka:listening-events`.
    pub fn describe(&self) -> String {
        match self {
            BronzeSource::Collection(c) => c.name().to_string(),
            BronzeSource::Files(folder) => format!("files:{folder}"),
            BronzeSource::Kafka(topics) => format!("kafka:{}", topics.join(",")),
        }
    }

    /// Whether it yields records checked one by one (files, Kafka) rather
    /// than whole API objects.
    pub fn is_records(&self) -> bool {
        !matches!(self, BronzeSource::Collection(_))
    }
}

/// Kafka's rule for topic names.
fn is_topic(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl<'de> Deserialize<'de> for BronzeSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Files {
            files: String,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Topics {
            One(String),
            Many(Vec<String>),
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Kafka {
            kafka: Topics,
        }
        match toml::Value::deserialize(d)? {
            toml::Value::String(name) => name
                .parse()
                .map(BronzeSource::Collection)
                .map_err(D::Error::custom),
            toml::Value::Table(t) if t.contains_key("kafka") => {
                let kafka: Kafka = toml::Value::Table(t).try_into().map_err(|_| {
                    D::Error::custom(
                        "a Kafka source is { kafka = \"<topic>\" } or { kafka = [\"<topic>\", ...] }",
                    )
                })?;
                let topics = match kafka.kafka {
                    Topics::One(topic) => vec![topic],
                    Topics::Many(topics) => topics,
                };
                if topics.is_empty() {
                    return Err(D::Error::custom("kafka = [] names no topic"));
                }
                if let Some(bad) = topics.iter().find(|t| !is_topic(t)) {
                    return Err(D::Error::custom(format!(
                        "{bad:?} is not a Kafka topic name: 1 to 249 letters, digits, '.', '_' or '-'"
                    )));
                }
                Ok(BronzeSource::Kafka(topics))
            }
            toml::Value::Table(t) => {
                let files: Files = toml::Value::Table(t).try_into().map_err(|_| {
                    D::Error::custom(
                        "a files source is { files = \"<folder in the lake>\" }, \
                         like { files = \"landing/events\" }",
                    )
                })?;
                let folder = files.files.trim_matches('/').to_string();
                if folder.is_empty() || folder.split('/').any(|p| p.is_empty() || p == "..") {
                    return Err(D::Error::custom(format!(
                        "files = {:?} must name a folder inside the lake, like \"landing/events\"",
                        files.files
                    )));
                }
                Ok(BronzeSource::Files(folder))
            }
            other => Err(D::Error::custom(format!(
                "source must be a landing collection name, {{ files = \"<folder>\" }} or \
                 {{ kafka = \"<topic>\" }}, not a {}",
                other.type_str()
            ))),
        }
    }
}

/// A partition's keys and values, outermost first.
pub type PartitionValues = Vec<(&'static str, String)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partitioning {
    /// `ingest_date=YYYY-MM-DD/` (UTC): the default.
    IngestDate,
    /// `ingest_month=YYYY-MM/`, for small collections.
    IngestMonth,
    /// One folder, no partitions.
    None,
    /// `event_date=YYYY-MM-DD/event_hour=HH/` (UTC) of each record's
    /// `event_time` field: for event files, so late events land in the
    /// hour they happened.
    EventHour,
}

impl Partitioning {
    /// The partition columns, outermost first.
    pub fn columns(self) -> Vec<&'static str> {
        self.of(DateTime::<Utc>::UNIX_EPOCH)
            .into_iter()
            .map(|(key, _)| key)
            .collect()
    }

    /// The partition `at` falls in, as a number ordered as the partitions
    /// are: rows are grouped by it, so a partition's values are formatted
    /// once per group ([`Partitioning::of`]) rather than once per row.
    pub fn bucket(self, at: DateTime<Utc>) -> i64 {
        match self {
            Partitioning::IngestDate => at.timestamp().div_euclid(86_400),
            Partitioning::IngestMonth => i64::from(at.year()) * 12 + i64::from(at.month0()),
            Partitioning::None => 0,
            Partitioning::EventHour => at.timestamp().div_euclid(3_600),
        }
    }

    /// The partition keys and values of a row stamped `at` (its ingest time,
    /// or for [`Partitioning::EventHour`] its event time).
    pub fn of(self, at: DateTime<Utc>) -> PartitionValues {
        match self {
            Partitioning::IngestDate => vec![("ingest_date", at.format("%Y-%m-%d").to_string())],
            Partitioning::IngestMonth => vec![("ingest_month", at.format("%Y-%m").to_string())],
            Partitioning::None => vec![],
            Partitioning::EventHour => vec![
                ("event_date", at.format("%Y-%m-%d").to_string()),
                ("event_hour", at.format("%H").to_string()),
            ],
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    source: BronzeSource,
    #[serde(default = "default_key")]
    key: String,
    partition_by: Option<Partitioning>,
    event_time: Option<String>,
    #[serde(default)]
    required: Vec<String>,
    copy_to_landing: Option<Collection>,
}

fn default_key() -> String {
    "id".into()
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
                "{}: {} already feeds bronze.{} ({}); one bronze table per source",
                a.file.display(),
                a.source.describe(),
                b.name,
                b.file.display()
            ));
        }
    }
    if !problems.is_empty() {
        return Err(Error::config(
            dir.display().to_string(),
            problems.join("\n  "),
            "fix each file named above; keys: source (a landing collection, \
             { files = \"<lake folder>\" } or { kafka = \"<topic>\" }), key (default \"id\"), \
             partition_by (ingest_date, ingest_month, none, or event_hour for files and Kafka), \
             and for files and Kafka event_time, required and copy_to_landing",
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
    if !file.source.is_records()
        && (file.event_time.is_some()
            || !file.required.is_empty()
            || file.copy_to_landing.is_some())
    {
        return Err(
            "event_time, required and copy_to_landing are for a files or Kafka source; a \
             landing collection is partitioned by ingest time and holds whole API objects"
                .into(),
        );
    }
    for field in file.event_time.iter().chain(&file.required) {
        if !is_identifier(field) {
            return Err(format!(
                "{field:?} must be a top-level field name (lowercase, digits, _)"
            ));
        }
    }
    let partition_by = match file.partition_by {
        Some(p) => p,
        None if file.event_time.is_some() => Partitioning::EventHour,
        None => Partitioning::IngestDate,
    };
    if partition_by == Partitioning::EventHour && file.event_time.is_none() {
        return Err(
            "partition_by = \"event_hour\" needs event_time, the field holding each \
             record's time (and a files or Kafka source)"
                .into(),
        );
    }
    Ok(BronzeTable {
        name,
        source: file.source,
        key: file.key,
        partition_by,
        event_time: file.event_time,
        required: file.required,
        copy_to_landing: file.copy_to_landing,
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
        assert_eq!(
            tables[0].source,
            BronzeSource::Collection(Collection::Tracks)
        );
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
            ("g.toml", "source = { files = \"../etc\" }\n"),
            ("h.toml", "source = { folder = \"x\" }\n"),
            ("i.toml", "source = \"tracks\"\nevent_time = \"ts\"\n"),
            (
                "j.toml",
                "source = { files = \"in\" }\npartition_by = \"event_hour\"\n",
            ),
            ("k.toml", "source = { kafka = 3 }\n"),
            ("l.toml", "source = { kafka = [\"ok\", \"bad topic!\"] }\n"),
            ("m.toml", "source = { kafka = [] }\n"),
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
            "f.toml: albums already feeds bronze.e",
            "g.toml: line 1",
            "must name a folder inside the lake",
            "h.toml: line 1",
            "a files source is { files =",
            "i.toml: event_time, required and copy_to_landing are for a files or Kafka source",
            "k.toml: line 1",
            "a Kafka source is { kafka =",
            "l.toml: line 1",
            "\"bad topic!\" is not a Kafka topic name",
            "m.toml: line 1",
            "kafka = [] names no topic",
            "j.toml: partition_by = \"event_hour\" needs event_time",
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
    fn a_files_source_partitions_by_event_hour() {
        let dir = dir_with(&[(
            "events.toml",
            "source = { files = \"/landing/events/\" }\nkey = \"event_id\"\nevent_time = \"event_ts\"\n",
        )]);
        let table = load(dir.path()).unwrap().remove(0);
        assert_eq!(table.source, BronzeSource::Files("landing/events".into()));
        assert_eq!(table.partition_by, Partitioning::EventHour);
        assert_eq!(table.event_time.as_deref(), Some("event_ts"));
        let at = DateTime::parse_from_rfc3339("2026-11-21T23:59:59-02:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            Partitioning::EventHour.of(at),
            vec![
                ("event_date", "2026-11-22".to_string()),
                ("event_hour", "01".to_string())
            ]
        );
    }

    #[test]
    fn a_kafka_source_takes_one_topic_or_several() {
        let dir = dir_with(&[
            (
                "events.toml",
                "source = { kafka = \"listening-events\" }\nkey = \"event_id\"\nevent_time = \"event_ts\"\n",
            ),
            (
                "plays.toml",
                "source = { kafka = [\"plays.v1\", \"skips_v1\"] }\nkey = \"event_id\"\n",
            ),
        ]);
        let tables = load(dir.path()).unwrap();
        assert_eq!(
            tables[0].source,
            BronzeSource::Kafka(vec!["listening-events".into()])
        );
        assert_eq!(tables[0].partition_by, Partitioning::EventHour);
        assert_eq!(tables[1].source.describe(), "kafka:plays.v1,skips_v1");
        assert_eq!(tables[1].partition_by, Partitioning::IngestDate);
    }

    #[test]
    fn partitions_are_utc_dates_or_months() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T23:59:59-02:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            Partitioning::IngestDate.of(at),
            vec![("ingest_date", "2026-11-22".to_string())]
        );
        assert_eq!(
            Partitioning::IngestMonth.of(at),
            vec![("ingest_month", "2026-11".to_string())]
        );
        assert_eq!(Partitioning::None.of(at), vec![]);
    }

    #[test]
    fn buckets_group_and_order_rows_as_their_partitions_do() {
        // Every 37 minutes over two years either side of 1970 and across
        // month and year ends: the same bucket exactly when the same
        // partition, and buckets ordered as partitions are.
        let times: Vec<DateTime<Utc>> = (-30_000..30_000)
            .map(|i| DateTime::from_timestamp(i64::from(i) * 37 * 60 + 1_700_000, 0).unwrap())
            .chain(
                (0..3000).map(|i| DateTime::from_timestamp(1_790_000_000 + i * 1_999, 0).unwrap()),
            )
            .collect();
        for p in [
            Partitioning::IngestDate,
            Partitioning::IngestMonth,
            Partitioning::None,
            Partitioning::EventHour,
        ] {
            for pair in times.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                assert_eq!(
                    p.bucket(a) == p.bucket(b),
                    p.of(a) == p.of(b),
                    "{p:?} {a} {b}"
                );
                assert_eq!(
                    p.bucket(a).cmp(&p.bucket(b)),
                    p.of(a).cmp(&p.of(b)),
                    "{p:?} {a} {b}"
                );
            }
        }
    }
}
