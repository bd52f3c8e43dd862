//! Gold models as files: `gold/<model>.sql`, one SELECT over silver, bronze
//! or other gold tables, and `gold/<model>.toml` beside it, the model's
//! contract and documentation: grain, comment, every output column with its
//! type and comment, and the data tests that gate its publication.
//!
//! ```toml
//! comment = "Tracks of the catalog."
//! grain = "one row per Spotify track"
//! key = ["track_key"]            # the grain: unique together, never null
//! min_rows = 1                   # optional row-count thresholds
//! max_rows = 10000000
//! freshness = { column = "ingested_at", max_age_hours = 48 }
//! on_failure = { min_rows = "warn" }   # the model's own tests: key, min_rows, max_rows, freshness
//!
//! [[columns]]
//! name = "album_key"
//! type = "bigint"                # string int bigint double boolean date timestamp decimal(p,s)
//! comment = "The track's album."
//! not_null = true
//! unique = false
//! accepted_values = []           # for text columns
//! references = "gold.dim_album.album_key"
//! # What a failing test does: "error" (default) keeps the published version
//! # and fails the task; "warn" publishes and reports the failure; a row test
//! # (not_null, accepted_values, references) may say "quarantine": its rows
//! # go to gold.<model>_quarantine, the rest is published.
//! on_failure = { references = "quarantine" }
//!
//! # Optional: rebuild only the days whose events changed (see [`Incremental`]).
//! [incremental]
//! by = "activity_date"           # a date column of the key; the table is partitioned by it
//! source = "silver.events"       # the date-partitioned input whose changed days drive a run
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::Deserialize;

use crate::definitions::TableId;
use crate::definitions::{is_identifier, read_toml, toml_files};
use crate::error::{Error, Result};
use crate::sql::references::tables_read;

/// The largest model file read.
const MAX_SQL_BYTES: u64 = 1024 * 1024;

/// A column type every engine reads the same way from Parquet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Int,
    Bigint,
    Double,
    Boolean,
    Date,
    /// Microseconds, UTC.
    Timestamp,
    Decimal(u8, i8),
}

impl ColumnType {
    fn parse(text: &str) -> Option<ColumnType> {
        let text = text.trim().to_ascii_lowercase();
        Some(match text.as_str() {
            "string" => ColumnType::String,
            "int" => ColumnType::Int,
            "bigint" => ColumnType::Bigint,
            "double" => ColumnType::Double,
            "boolean" => ColumnType::Boolean,
            "date" => ColumnType::Date,
            "timestamp" => ColumnType::Timestamp,
            _ => {
                let inner = text.strip_prefix("decimal(")?.strip_suffix(')')?;
                let (p, s) = inner.split_once(',')?;
                let (p, s): (u8, i8) = (p.trim().parse().ok()?, s.trim().parse().ok()?);
                // Precision above 38 has no Parquet reader in Trino or Spark.
                if !(1..=38).contains(&p) || s < 0 || s as u8 > p {
                    return None;
                }
                ColumnType::Decimal(p, s)
            }
        })
    }

    pub fn arrow(self) -> DataType {
        match self {
            ColumnType::String => DataType::Utf8,
            ColumnType::Int => DataType::Int32,
            ColumnType::Bigint => DataType::Int64,
            ColumnType::Double => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Date => DataType::Date32,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ColumnType::Decimal(p, s) => DataType::Decimal128(p, s),
        }
    }

    /// The type's name in SQL DDL (Trino, Spark and DuckDB agree on these
    /// but for text).
    pub fn sql(self, text: &str) -> String {
        match self {
            ColumnType::String => text.into(),
            ColumnType::Int => "integer".into(),
            ColumnType::Bigint => "bigint".into(),
            ColumnType::Double => "double".into(),
            ColumnType::Boolean => "boolean".into(),
            ColumnType::Date => "date".into(),
            ColumnType::Timestamp => "timestamp".into(),
            ColumnType::Decimal(p, s) => format!("decimal({p},{s})"),
        }
    }
}

/// What a failing data test does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// The new version is not published and the task fails.
    #[default]
    Error,
    /// The version is published; the failure is reported with the run.
    Warn,
    /// The rows that break the test go to `gold.<model>_quarantine` with
    /// the test's name; the rest is published. Row tests only.
    Quarantine,
}

/// The column tests that judge one row at a time, so a failing row can be
/// set aside.
const ROW_TESTS: [&str; 3] = ["not_null", "accepted_values", "references"];
/// The tests of a whole model.
const MODEL_TESTS: [&str; 4] = ["key", "min_rows", "max_rows", "freshness"];

/// One output column of a model.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub kind: ColumnType,
    pub comment: String,
    pub not_null: bool,
    pub unique: bool,
    pub accepted_values: Vec<String>,
    pub references: Option<ColumnRef>,
    /// What each of its failing tests does, by test name; absent: error.
    pub on_failure: BTreeMap<String, OnFailure>,
}

impl Column {
    /// What the column's test `test` does when it fails.
    pub fn on_failure(&self, test: &str) -> OnFailure {
        self.on_failure.get(test).copied().unwrap_or_default()
    }
}

/// `layer.table.column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    pub table: TableId,
    pub column: String,
}

impl std::fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.table, self.column)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freshness {
    /// A timestamp or date column.
    pub column: String,
    pub max_age_hours: u64,
}

/// A gold model: its SQL and its contract.
#[derive(Debug, Clone)]
pub struct GoldModel {
    pub name: String,
    pub sql: String,
    /// What the SQL reads; with the tables its columns reference, what the
    /// model depends on.
    pub reads: BTreeSet<TableId>,
    pub comment: String,
    pub grain: String,
    pub key: Vec<String>,
    pub columns: Vec<Column>,
    pub min_rows: Option<u64>,
    pub max_rows: Option<u64>,
    pub freshness: Option<Freshness>,
    /// What each of the model's own failing tests does; absent: error.
    pub on_failure: BTreeMap<String, OnFailure>,
    /// Where the model runs, if not where `[gold] engine` says.
    pub engine: Option<super::GoldEngine>,
    /// The nearest-neighbour step that turns the SELECT's items into
    /// their neighbours, if the model has one.
    pub neighbours: Option<super::Neighbours>,
    /// How the model rebuilds only the days that changed, if it does.
    pub incremental: Option<Incremental>,
    pub sql_file: PathBuf,
}

/// `[incremental]`: a model whose rows of a day come from its source's
/// rows of that day only (a day's plays, a user's day), so a run rebuilds
/// the days whose partitions of `source` changed since the version it last
/// built from, and keeps the other days' files. Its other inputs (the
/// catalog's dimensions) are read as they are now for the days rebuilt;
/// the days kept keep what those inputs said when they were built, until a
/// full refresh.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    /// The model's date column, part of its key: the table is partitioned
    /// by it.
    pub by: String,
    /// The input partitioned by date whose changed partitions are the days
    /// a run rebuilds.
    #[serde(deserialize_with = "table_id")]
    pub source: TableId,
}

fn table_id<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<TableId, D::Error> {
    let text = String::deserialize(d)?;
    TableId::parse(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "source {text:?}: name the input as <layer>.<table>, e.g. \"silver.events\""
        ))
    })
}

impl GoldModel {
    /// What the model's own test `test` (key, min_rows, …) does when it fails.
    pub fn on_failure(&self, test: &str) -> OnFailure {
        self.on_failure.get(test).copied().unwrap_or_default()
    }

    /// Whether any test of the model sets rows aside.
    pub fn quarantines(&self) -> bool {
        self.columns
            .iter()
            .any(|c| c.on_failure.values().any(|o| *o == OnFailure::Quarantine))
    }

    /// The tables the model needs before it runs: those it reads and those
    /// its columns reference.
    pub fn depends_on(&self) -> BTreeSet<TableId> {
        let mut all = self.reads.clone();
        all.extend(
            self.columns
                .iter()
                .filter_map(|c| c.references.as_ref().map(|r| r.table.clone())),
        );
        all.retain(|t| !(t.layer == super::LAYER && t.name == self.name));
        all
    }

    /// The Arrow schema of the published table.
    /// The model's description and column comments, for its Delta table.
    pub fn docs(&self) -> crate::lake::TableDocs {
        crate::lake::TableDocs {
            description: format!("{} Grain: {}.", self.comment.trim(), self.grain.trim()),
            columns: self
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.comment.clone()))
                .collect(),
        }
    }

    pub fn schema(&self) -> SchemaRef {
        SchemaRef::new(Schema::new(
            self.columns
                .iter()
                .map(|c| {
                    // A not-null test that only warns or quarantines must
                    // be able to see the NULLs it judges.
                    let nullable = !self.key.contains(&c.name)
                        && (!c.not_null || c.on_failure("not_null") != OnFailure::Error);
                    Field::new(&c.name, c.kind.arrow(), nullable)
                })
                .collect::<Vec<_>>(),
        ))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    comment: String,
    grain: String,
    key: Vec<String>,
    min_rows: Option<u64>,
    max_rows: Option<u64>,
    freshness: Option<Freshness>,
    #[serde(default)]
    on_failure: BTreeMap<String, OnFailure>,
    engine: Option<super::GoldEngine>,
    neighbours: Option<super::Neighbours>,
    incremental: Option<Incremental>,
    columns: Vec<ColumnFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnFile {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    comment: String,
    #[serde(default)]
    not_null: bool,
    #[serde(default)]
    unique: bool,
    #[serde(default)]
    accepted_values: Vec<String>,
    references: Option<String>,
    #[serde(default)]
    on_failure: BTreeMap<String, OnFailure>,
}

/// The tables of bronze and the families of silver a model may read, by
/// layer.
pub type Known = BTreeMap<&'static str, BTreeSet<String>>;

/// What a model may read from `bronze` and `silver`.
pub fn known(
    bronze: &[crate::bronze::BronzeTable],
    silver: &[crate::silver::SilverTable],
) -> Known {
    let mut known = Known::new();
    known.insert(
        crate::bronze::LAYER,
        bronze.iter().map(|b| b.name.clone()).collect(),
    );
    known.insert(
        crate::silver::LAYER,
        silver.iter().map(|s| s.name.clone()).collect(),
    );
    known
}

/// The silver family a silver table belongs to: `tracks` for `tracks`,
/// `tracks__artists` and `tracks_quarantine`.
pub fn silver_family<'k>(known: &'k Known, table: &TableId) -> Option<&'k str> {
    if table.layer != crate::silver::LAYER {
        return None;
    }
    known
        .get(crate::silver::LAYER)?
        .iter()
        .map(String::as_str)
        .find(|family| {
            table.name == *family
                || table
                    .name
                    .strip_prefix(family)
                    .is_some_and(|rest| rest.starts_with("__") || rest == "_quarantine")
        })
}

/// Every model of `dir`: each `*.toml` with its `*.sql`. All problems are
/// reported at once.
pub fn load(dir: &Path, known: &Known) -> Result<Vec<GoldModel>> {
    let mut models = Vec::new();
    let mut problems = Vec::new();
    for path in toml_files(dir, "gold")? {
        match parse(&path) {
            Ok(model) => models.push(model),
            Err(problem) => problems.push(format!("{}: {problem}", path.display())),
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut orphans: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "sql") && !p.with_extension("toml").exists()
            })
            .collect();
        orphans.sort();
        for sql in orphans {
            problems.push(format!(
                "{}: a model needs its contract beside it: create {} with comment, grain, key \
                 and [[columns]]",
                sql.display(),
                sql.with_extension("toml").display()
            ));
        }
    }
    let names: BTreeSet<String> = models.iter().map(|m| m.name.clone()).collect();
    for model in models.iter().filter(|m| m.quarantines()) {
        let set_aside = super::quarantine_table(&model.name);
        if names.contains(&set_aside) {
            problems.push(format!(
                "{}: gold.{set_aside} is where this model's quarantined rows go, and a model \
                 of that name exists; rename that model",
                model.sql_file.display()
            ));
        }
    }
    for model in &models {
        for table in model.depends_on() {
            let exists = match table.layer.as_str() {
                super::LAYER => names.contains(&table.name),
                crate::silver::LAYER => silver_family(known, &table).is_some(),
                layer => known.get(layer).is_some_and(|t| t.contains(&table.name)),
            };
            if !exists {
                problems.push(format!(
                    "{}: reads {table}, which no definition makes; check the name \
                     (`soundlake query \"SHOW TABLES\"` lists the lake's tables)",
                    model.sql_file.display()
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::config(
            dir.display().to_string(),
            problems.join("\n  "),
            "fix each file named above; a model is <name>.sql (one SELECT) and <name>.toml \
             (comment, grain, key, [[columns]] with name, type, comment and tests: not_null, \
             unique, accepted_values, references)",
        ));
    }
    Ok(models)
}

fn parse(path: &Path) -> std::result::Result<GoldModel, String> {
    let (name, file): (String, File) = read_toml(path)?;
    let sql_file = path.with_extension("sql");
    let size = std::fs::metadata(&sql_file)
        .map_err(|e| format!("cannot read its SQL {}: {e}", sql_file.display()))?
        .len();
    if size > MAX_SQL_BYTES {
        return Err(format!(
            "{} is {size} bytes, far too large for a model",
            sql_file.display()
        ));
    }
    let sql = std::fs::read_to_string(&sql_file)
        .map_err(|e| format!("cannot read its SQL {}: {e}", sql_file.display()))?;
    let reads = tables_read(&sql).map_err(|e| format!("{}: {e}", sql_file.display()))?;
    let mut problems = Vec::new();
    if file.columns.is_empty() {
        problems.push("declares no [[columns]]".to_string());
    }
    let mut columns: Vec<Column> = Vec::new();
    for c in file.columns {
        if let Some(column) = column(c, &columns, &file.key, &mut problems) {
            columns.push(column);
        }
    }
    if file.key.is_empty() {
        problems.push("key is empty: name the columns that make a row unique (the grain)".into());
    }
    for k in &file.key {
        if !columns.iter().any(|c| &c.name == k) {
            problems.push(format!("key column {k} is not among the [[columns]]"));
        }
    }
    if let Some(f) = &file.freshness {
        match columns.iter().find(|c| c.name == f.column) {
            Some(c) if matches!(c.kind, ColumnType::Timestamp | ColumnType::Date) => {}
            _ => problems.push(format!(
                "freshness column {} must be a declared timestamp or date column",
                f.column
            )),
        }
    }
    for (test, action) in &file.on_failure {
        let declared = match test.as_str() {
            "key" => true,
            "min_rows" => file.min_rows.is_some(),
            "max_rows" => file.max_rows.is_some(),
            "freshness" => file.freshness.is_some(),
            _ => {
                problems.push(format!(
                    "on_failure names {test:?}, not a model test ({}; a column's tests go in \
                     its [[columns]] entry)",
                    MODEL_TESTS.join(", ")
                ));
                continue;
            }
        };
        if !declared {
            problems.push(format!(
                "on_failure sets {test}, which the model does not declare"
            ));
        } else if *action == OnFailure::Quarantine {
            problems.push(format!(
                "{test} cannot quarantine (it judges the table as a whole); use \"warn\" or \"error\""
            ));
        }
    }
    if let (Some(min), Some(max)) = (file.min_rows, file.max_rows)
        && min > max
    {
        problems.push(format!("min_rows {min} is above max_rows {max}"));
    }
    if let Some(step) = &file.neighbours {
        let declared: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        problems.extend(step.problems(&declared));
    }
    if file.comment.trim().is_empty() || file.grain.trim().is_empty() {
        problems.push("write a comment and a grain (what one row is)".into());
    }
    if let Some(incremental) = &file.incremental {
        let shape = (file.key.as_slice(), file.neighbours.is_some());
        problems.extend(incremental_problems(incremental, shape, &columns, &reads));
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(GoldModel {
        name,
        sql,
        reads,
        comment: file.comment,
        grain: file.grain,
        key: file.key,
        columns,
        min_rows: file.min_rows,
        max_rows: file.max_rows,
        freshness: file.freshness,
        on_failure: file.on_failure,
        engine: file.engine,
        neighbours: file.neighbours,
        incremental: file.incremental,
        sql_file,
    })
}

/// What stops `[incremental]` from rebuilding the model day by day.
fn incremental_problems(
    incremental: &Incremental,
    (key, neighbours): (&[String], bool),
    columns: &[Column],
    reads: &BTreeSet<TableId>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let by = &incremental.by;
    match columns.iter().find(|c| &c.name == by) {
        Some(c) if c.kind == ColumnType::Date && key.contains(by) => {}
        _ => problems.push(format!(
            "[incremental] by = {by:?} must name a date column of the key: a day's rows \
             replace that day's rows"
        )),
    }
    if !reads.contains(&incremental.source) {
        problems.push(format!(
            "[incremental] source = \"{}\" is not a table the SQL reads; name the \
             date-partitioned input whose days drive the model",
            incremental.source
        ));
    }
    if neighbours {
        problems.push(
            "[incremental] and [neighbours] do not go together: neighbours span every day".into(),
        );
    }
    if columns
        .iter()
        .any(|c| c.on_failure.values().any(|o| *o == OnFailure::Quarantine))
    {
        problems.push(
            "[incremental] models cannot quarantine rows (their quarantine would hold the \
             rebuilt days only); use on_failure \"warn\" or \"error\""
                .into(),
        );
    }
    problems
}

/// One `[[columns]]` entry checked against the columns `before` it and the
/// model's `key`; its problems go to `problems`.
fn column(
    c: ColumnFile,
    before: &[Column],
    key: &[String],
    problems: &mut Vec<String>,
) -> Option<Column> {
    if !is_identifier(&c.name) {
        problems.push(format!(
            "column {:?}: use lowercase letters, digits and _, starting with a letter",
            c.name
        ));
    }
    if before.iter().any(|d| d.name == c.name) {
        problems.push(format!("column {} is declared twice", c.name));
    }
    if c.comment.trim().is_empty() {
        problems.push(format!(
            "column {}: write a comment saying what it holds",
            c.name
        ));
    }
    let Some(kind) = ColumnType::parse(&c.kind) else {
        problems.push(format!(
            "column {}: type {:?} is not one of string, int, bigint, double, boolean, \
             date, timestamp, decimal(p,s) with p ≤ 38",
            c.name, c.kind
        ));
        return None;
    };
    let references = match c.references.as_deref().map(parse_column_ref).transpose() {
        Ok(r) => r,
        Err(e) => {
            problems.push(format!("column {}: {e}", c.name));
            None
        }
    };
    let declared = [
        ("not_null", c.not_null),
        ("unique", c.unique),
        ("accepted_values", !c.accepted_values.is_empty()),
        ("references", references.is_some()),
    ];
    for (test, action) in &c.on_failure {
        if !declared.iter().any(|(t, _)| t == test) {
            let tests: Vec<&str> = declared.iter().map(|(t, _)| *t).collect();
            problems.push(format!(
                "column {}: on_failure names {test:?}, not a column test ({})",
                c.name,
                tests.join(", ")
            ));
        } else if !declared.iter().any(|(t, on)| t == test && *on) {
            problems.push(format!(
                "column {}: on_failure sets {test}, which the column does not declare",
                c.name
            ));
        } else if *action == OnFailure::Quarantine && !ROW_TESTS.contains(&test.as_str()) {
            problems.push(format!(
                "column {}: {test} cannot quarantine (it judges rows together); use \
                 \"warn\" or \"error\"",
                c.name
            ));
        } else if *action != OnFailure::Error && test == "not_null" && key.contains(&c.name) {
            problems.push(format!(
                "column {}: a key column is never null; its not_null test is always an error",
                c.name
            ));
        }
    }
    Some(Column {
        name: c.name,
        kind,
        comment: c.comment,
        not_null: c.not_null,
        unique: c.unique,
        accepted_values: c.accepted_values,
        references,
        on_failure: c.on_failure,
    })
}

fn parse_column_ref(text: &str) -> std::result::Result<ColumnRef, String> {
    let parts: Vec<&str> = text.split('.').collect();
    match parts.as_slice() {
        [layer, table, column] if crate::sql::LAYERS.contains(layer) => Ok(ColumnRef {
            table: TableId {
                layer: (*layer).into(),
                name: (*table).into(),
            },
            column: (*column).into(),
        }),
        _ => Err(format!(
            "references {text:?} is not <layer>.<table>.<column>, for example \
             gold.dim_album.album_key"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::tests::dir_with;

    const CONTRACT: &str = r#"
comment = "Albums."
grain = "one row per album"
key = ["album_key"]
[[columns]]
name = "album_key"
type = "bigint"
comment = "Surrogate key."
[[columns]]
name = "artist_key"
type = "bigint"
comment = "Main artist."
references = "gold.dim_artist.artist_key"
[[columns]]
name = "price"
type = "decimal(10,2)"
comment = "Price."
"#;

    const ARTIST_CONTRACT: &str = "comment = \"A.\"\ngrain = \"one row per artist\"\n\
        key = [\"artist_key\"]\n[[columns]]\nname = \"artist_key\"\ntype = \"bigint\"\n\
        comment = \"Key.\"\n";

    fn known() -> Known {
        let mut known = Known::new();
        known.insert("silver", ["albums".to_string()].into());
        known
    }

    #[test]
    fn a_model_depends_on_what_it_reads_and_what_it_references() {
        let dir = dir_with(&[
            ("dim_album.toml", CONTRACT),
            ("dim_album.sql", "SELECT * FROM silver.albums"),
            ("dim_artist.toml", ARTIST_CONTRACT),
            ("dim_artist.sql", "SELECT 1 AS artist_key"),
        ]);
        let models = load(dir.path(), &known()).unwrap();
        let album = models.iter().find(|m| m.name == "dim_album").unwrap();
        let deps: Vec<String> = album.depends_on().iter().map(ToString::to_string).collect();
        assert_eq!(deps, ["gold.dim_artist", "silver.albums"]);
        assert_eq!(
            album.schema().field(2).data_type(),
            &DataType::Decimal128(10, 2)
        );
        assert!(
            !album.schema().field(0).is_nullable(),
            "key columns are not null"
        );
    }

    #[test]
    fn incremental_needs_a_date_of_the_key_and_a_source_the_sql_reads() {
        const DAILY: &str = "comment = \"Daily.\"\ngrain = \"one row per day\"\n\
            key = [\"day\"]\n[incremental]\nby = \"day\"\nsource = \"silver.albums\"\n\
            [[columns]]\nname = \"day\"\ntype = \"date\"\ncomment = \"Day.\"\n\
            [[columns]]\nname = \"n\"\ntype = \"bigint\"\ncomment = \"Count.\"\n";
        const SQL: &str = "SELECT CAST(released AS DATE) AS day, count(*) AS n \
            FROM silver.albums GROUP BY 1";
        let dir = dir_with(&[("daily.toml", DAILY), ("daily.sql", SQL)]);
        let models = load(dir.path(), &known()).unwrap();
        assert_eq!(
            models[0].incremental,
            Some(Incremental {
                by: "day".into(),
                source: TableId::new("silver", "albums"),
            })
        );
        for (bad, expected) in [
            (
                DAILY.replace("by = \"day\"", "by = \"n\""),
                "by = \"n\" must name a date column of the key",
            ),
            (
                DAILY.replace("key = [\"day\"]", "key = [\"n\"]"),
                "by = \"day\" must name a date column of the key",
            ),
            (
                DAILY.replace("silver.albums", "silver.tracks"),
                "source = \"silver.tracks\" is not a table the SQL reads",
            ),
            (
                DAILY.replace("silver.albums", "albums"),
                "name the input as <layer>.<table>",
            ),
            (
                DAILY.replace("source =", "sauce ="),
                "unknown field `sauce`",
            ),
            (
                DAILY.replace(
                    "comment = \"Count.\"",
                    "comment = \"Count.\"\nnot_null = true\non_failure = { not_null = \"quarantine\" }",
                ),
                "cannot quarantine rows",
            ),
        ] {
            let dir = dir_with(&[("daily.toml", &bad), ("daily.sql", SQL)]);
            let message = load(dir.path(), &known()).unwrap_err().to_string();
            assert!(
                message.contains(expected) && message.contains("daily.toml"),
                "{expected:?} missing from {message}"
            );
        }
    }

    #[test]
    fn every_problem_is_named_with_its_file() {
        let dir = dir_with(&[
            (
                "a.toml",
                &CONTRACT.replace("bigint\"\ncomment = \"Main", "uint64\"\ncomment = \"Main"),
            ),
            ("a.sql", "SELECT 1"),
            ("d.toml", CONTRACT),
            ("d.sql", "SELECT * FROM silver.nope"),
            ("b.sql", "SELECT 1"),
            (
                "c.toml",
                &CONTRACT.replace("decimal(10,2)", "decimal(40,2)"),
            ),
            ("c.sql", "DELETE FROM silver.albums"),
        ]);
        let message = load(dir.path(), &known()).unwrap_err().to_string();
        for expected in [
            "a.toml",
            "\"uint64\" is not one of",
            "reads silver.nope",
            "b.sql: a model needs its contract",
            "c.sql: a model is one SELECT",
        ] {
            assert!(
                message.contains(expected),
                "{expected:?} missing from {message}"
            );
        }
    }

    #[test]
    fn on_failure_is_read_per_test_and_checked() {
        let contract = CONTRACT.replace(
            "references = \"gold.dim_artist.artist_key\"",
            "not_null = true\nreferences = \"gold.dim_artist.artist_key\"\n\
             on_failure = { references = \"quarantine\", not_null = \"warn\" }",
        );
        let dir = dir_with(&[
            (
                "dim_album.toml",
                &format!("min_rows = 1\non_failure = {{ min_rows = \"warn\" }}\n{contract}"),
            ),
            ("dim_album.sql", "SELECT * FROM silver.albums"),
            ("dim_artist.toml", ARTIST_CONTRACT),
            ("dim_artist.sql", "SELECT 1 AS artist_key"),
        ]);
        let models = load(dir.path(), &known()).unwrap();
        let album = models.iter().find(|m| m.name == "dim_album").unwrap();
        assert_eq!(album.on_failure("min_rows"), OnFailure::Warn);
        assert_eq!(album.on_failure("key"), OnFailure::Error, "the default");
        let artist = &album.columns[1];
        assert_eq!(artist.on_failure("references"), OnFailure::Quarantine);
        assert_eq!(artist.on_failure("not_null"), OnFailure::Warn);
        assert!(album.quarantines());
        assert!(
            album.schema().field(1).is_nullable(),
            "a not-null test that warns must see the NULLs"
        );

        for (bad, expected) in [
            (
                "on_failure = { unique = \"quarantine\" }",
                "unique cannot quarantine",
            ),
            (
                "on_failure = { accepted_values = \"warn\" }",
                "does not declare",
            ),
            ("on_failure = { typo = \"warn\" }", "not a column test"),
            (
                "on_failure = { references = \"ignore\" }",
                "unknown variant",
            ),
        ] {
            let column = CONTRACT.replace(
                "references = \"gold.dim_artist.artist_key\"",
                &format!("references = \"gold.dim_artist.artist_key\"\nunique = true\n{bad}"),
            );
            let dir = dir_with(&[("m.toml", &column), ("m.sql", "SELECT 1")]);
            let message = load(dir.path(), &known()).unwrap_err().to_string();
            assert!(message.contains(expected), "{bad}: {message}");
        }
        for (bad, expected) in [
            (
                "min_rows = 1\non_failure = { min_rows = \"quarantine\" }",
                "min_rows cannot quarantine",
            ),
            ("on_failure = { max_rows = \"warn\" }", "does not declare"),
            ("on_failure = { not_null = \"warn\" }", "not a model test"),
        ] {
            let dir = dir_with(&[
                ("m.toml", &format!("{bad}\n{CONTRACT}")),
                ("m.sql", "SELECT 1"),
            ]);
            let message = load(dir.path(), &known()).unwrap_err().to_string();
            assert!(message.contains(expected), "{bad}: {message}");
        }
    }
}
