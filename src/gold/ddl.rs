//! The statements that show every gold table to another engine, over the
//! lake URL the deployment writes to. Gold tables are Delta tables: an
//! engine registered on a table folder reads each new version from its
//! log, with no metadata refresh.
//! Names and comments are quoted for each dialect; no credential is ever
//! printed, only where each engine takes one.

use std::fmt::Write as _;
use std::path::Path;

use super::{GoldModel, LAYER};
use crate::error::{Error, Result};
use crate::lake::LakeSettings;
use crate::sql::{quote_identifier, quote_literal};
use crate::trino::TrinoSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    Trino,
    Dremio,
    Spark,
    Duckdb,
}

/// Where the lake is, as other engines name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Location {
    /// An absolute local folder.
    Folder(String),
    S3 {
        bucket: String,
        prefix: String,
    },
    Hdfs(String),
}

impl Location {
    pub(super) fn of(lake: &LakeSettings) -> Result<Location> {
        let url = lake.url.trim();
        if let Some(dir) = url.strip_prefix("file://") {
            let dir = if dir.is_empty() { "." } else { dir };
            let absolute = std::path::absolute(Path::new(dir)).map_err(|e| {
                Error::config(
                    "[lake] url",
                    format!("cannot resolve the lake folder {dir}: {e}"),
                    "write the folder in [lake] url as file:///absolute/path",
                )
            })?;
            return Ok(Location::Folder(absolute.display().to_string()));
        }
        if let Some(rest) = url
            .strip_prefix("s3://")
            .or_else(|| url.strip_prefix("s3a://"))
        {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            return Ok(Location::S3 {
                bucket: bucket.into(),
                prefix: prefix.trim_matches('/').into(),
            });
        }
        if url.starts_with("hdfs://") || url.starts_with("viewfs://") {
            return Ok(Location::Hdfs(url.trim_end_matches('/').into()));
        }
        Err(Error::config(
            "[lake] url",
            format!(
                "{:?} is not a lake other engines can read",
                crate::secret::redact_url(url)
            ),
            "point [lake] url at a folder (file://), S3/MinIO (s3://) or HDFS (hdfs://)",
        ))
    }

    /// The URL of a gold table's folder, with the scheme Hadoop-based
    /// engines use for S3 (`s3a`) or the one DuckDB uses (`s3`).
    fn table(&self, name: &str, s3_scheme: &str) -> String {
        self.folder(LAYER, name, s3_scheme)
    }

    /// The URL of the folder `<layer>/<path>` of the lake.
    fn folder(&self, layer: &str, path: &str, s3_scheme: &str) -> String {
        match self {
            Location::Folder(dir) => format!("{dir}/{layer}/{path}"),
            Location::S3 { bucket, prefix } => {
                let prefix = if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                };
                format!("{s3_scheme}://{bucket}/{prefix}{layer}/{path}")
            }
            Location::Hdfs(root) => format!("{root}/{layer}/{path}"),
        }
    }

    /// The URL Trino reads a gold table's folder at.
    pub(super) fn trino_table(&self, name: &str) -> String {
        self.trino_folder(LAYER, name)
    }

    /// The URL Trino reads the folder `<layer>/<path>` at: its lake URL, a
    /// local folder as `local://` (under a catalog with `local.location=/`).
    pub(super) fn trino_folder(&self, layer: &str, path: &str) -> String {
        match self {
            Location::Folder(_) => format!("local://{}", self.folder(layer, path, "s3")),
            _ => self.folder(layer, path, "s3"),
        }
    }
}

/// A string literal in Spark SQL, which escapes with backslashes.
fn quote_spark(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Every statement for `target`, with comments on how to run them.
pub fn render(
    target: Target,
    models: &[GoldModel],
    lake: &LakeSettings,
    trino_settings: &TrinoSettings,
) -> Result<String> {
    let location = Location::of(lake)?;
    let mut out = String::new();
    match target {
        Target::Trino => trino(&mut out, models, &location, lake, trino_settings),
        Target::Spark => spark(&mut out, models, &location),
        Target::Duckdb => duckdb(&mut out, models, &location, lake),
        Target::Dremio => dremio(&mut out, models, &location, lake),
    }
    Ok(out)
}

fn trino(
    out: &mut String,
    models: &[GoldModel],
    location: &Location,
    lake: &LakeSettings,
    settings: &TrinoSettings,
) {
    let file_system = match location {
        Location::S3 { .. } => {
            format!(
                "fs.native-s3.enabled=true\n--   s3.region=us-east-1{}\n--   \
                 (credentials: s3.aws-access-key / s3.aws-secret-key, or the AWS_* variables)",
                if lake.s3.endpoint.is_empty() {
                    String::new()
                } else {
                    format!(
                        "\n--   s3.endpoint={}\n--   s3.path-style-access=true",
                        lake.s3.endpoint
                    )
                }
            )
        }
        Location::Folder(_) => "fs.native-local.enabled=true\n--   local.location=/\n--   \
             (the folder must be at the same path on every worker)"
            .to_string(),
        Location::Hdfs(_) => "fs.hadoop.enabled=true".to_string(),
    };
    let (catalog, schema) = (
        quote_identifier(&settings.catalog),
        quote_identifier(&settings.schema),
    );
    let _ = writeln!(
        out,
        "-- Trino: a Delta Lake catalog named {catalog} ([trino] catalog), etc/catalog/{}.properties:\n\
         --   connector.name=delta_lake\n\
         --   hive.metastore=file\n\
         --   hive.metastore.catalog.dir=<a folder or bucket for Trino's own catalog>\n\
         --   delta.register-table-procedure.enabled=true\n\
         --   {file_system}\n\
         -- Each gold table is a Delta table: register it once; every later version is\n\
         -- read from its log with no further statement. `soundlake register` runs these.\n\
         CREATE SCHEMA IF NOT EXISTS {catalog}.{schema};\n",
        settings.catalog
    );
    for m in models {
        let _ = writeln!(
            out,
            "-- {}: {} Grain: {}.\n{};\n",
            m.name,
            m.comment.trim(),
            m.grain.trim(),
            register_table(
                &settings.catalog,
                &settings.schema,
                &m.name,
                &location.trino_table(&m.name)
            )
        );
        if m.quarantines() {
            let quarantine = super::quarantine_table(&m.name);
            let _ = writeln!(
                out,
                "-- {quarantine}: the rows of {} that broke a data test, with the test.\n{};\n",
                m.name,
                register_table(
                    &settings.catalog,
                    &settings.schema,
                    &quarantine,
                    &location.trino_table(&quarantine)
                )
            );
        }
    }
}

/// The tables registered with Trino: every model's, and the quarantine
/// table of each model that has one.
pub(super) fn trino_tables(models: &[GoldModel]) -> Vec<String> {
    models
        .iter()
        .flat_map(|m| {
            std::iter::once(m.name.clone())
                .chain(m.quarantines().then(|| super::quarantine_table(&m.name)))
        })
        .collect()
}

/// Trino's statement registering the Delta table at `location` as
/// `catalog.schema.name`.
pub(super) fn register_table(catalog: &str, schema: &str, name: &str, location: &str) -> String {
    format!(
        "CALL {}.system.register_table(schema_name => {}, table_name => {}, table_location => {})",
        quote_identifier(catalog),
        quote_literal(schema),
        quote_literal(name),
        quote_literal(location)
    )
}

fn spark(out: &mut String, models: &[GoldModel], location: &Location) {
    let _ = writeln!(
        out,
        "-- Spark SQL with Delta Lake (delta-spark: spark.sql.extensions=\n\
         -- io.delta.sql.DeltaSparkSessionExtension, spark.sql.catalog.spark_catalog=\n\
         -- org.apache.spark.sql.delta.catalog.DeltaCatalog): tables over the gold Delta\n\
         -- folders; columns and versions come from each table's log.{}\n\
         CREATE DATABASE IF NOT EXISTS {LAYER};\n",
        if matches!(location, Location::S3 { .. }) {
            "\n-- S3 needs hadoop-aws and spark.hadoop.fs.s3a.* settings (endpoint, path style, credentials)."
        } else {
            ""
        }
    );
    for m in models {
        let url = match location {
            Location::Folder(_) => format!("file://{}", location.table(&m.name, "s3a")),
            _ => location.table(&m.name, "s3a"),
        };
        let _ = writeln!(
            out,
            "CREATE TABLE IF NOT EXISTS {LAYER}.{}\nUSING DELTA\nLOCATION {}\nCOMMENT {};\n",
            m.name,
            quote_spark(&url),
            quote_spark(&format!("{} Grain: {}.", m.comment.trim(), m.grain.trim()))
        );
    }
}

fn duckdb(out: &mut String, models: &[GoldModel], location: &Location, lake: &LakeSettings) {
    let _ = writeln!(
        out,
        "-- DuckDB: views over the gold Delta tables (the delta extension).\n\
         INSTALL delta;\nLOAD delta;"
    );
    if let Location::S3 { .. } = location {
        let endpoint = lake
            .s3
            .endpoint
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        let _ = writeln!(
            out,
            "-- Credentials come from the AWS_* variables (credential_chain).\n\
             INSTALL httpfs;\nLOAD httpfs;\n\
             CREATE OR REPLACE SECRET soundlake_lake (TYPE s3, PROVIDER credential_chain{}{});",
            if endpoint.is_empty() {
                String::new()
            } else {
                format!(", ENDPOINT {}", quote_literal(endpoint))
            },
            if lake.s3.path_style || lake.s3.endpoint.starts_with("http://") {
                format!(
                    ", URL_STYLE 'path', USE_SSL {}",
                    !lake.s3.endpoint.starts_with("http://")
                )
            } else {
                String::new()
            }
        );
    }
    let _ = writeln!(out, "CREATE SCHEMA IF NOT EXISTS {LAYER};\n");
    for m in models {
        let _ = writeln!(
            out,
            "CREATE OR REPLACE VIEW {LAYER}.{} AS SELECT * FROM delta_scan({});\n\
             COMMENT ON VIEW {LAYER}.{} IS {};\n",
            m.name,
            quote_literal(&location.table(&m.name, "s3")),
            m.name,
            quote_literal(&format!("{} Grain: {}.", m.comment.trim(), m.grain.trim()))
        );
    }
}

fn dremio(out: &mut String, models: &[GoldModel], location: &Location, lake: &LakeSettings) {
    // Dremio addresses a folder as source.folder.folder…
    let (source_note, root): (String, Vec<String>) = match location {
        Location::S3 { bucket, prefix } => (
            format!(
                "-- 1. Add an Amazon S3 source named `lake` (Sources → + → Amazon S3, or POST\n\
                 --    /api/v3/catalog): AWS access key auth; for MinIO, Advanced Options →\n\
                 --    Enable compatibility mode and the connection properties\n\
                 --    fs.s3a.path.style.access=true{}.",
                if lake.s3.endpoint.is_empty() {
                    String::new()
                } else {
                    format!(
                        " and fs.s3a.endpoint={}",
                        lake.s3
                            .endpoint
                            .trim_start_matches("http://")
                            .trim_start_matches("https://")
                    )
                }
            ),
            std::iter::once(bucket.clone())
                .chain(
                    prefix
                        .split('/')
                        .filter(|p| !p.is_empty())
                        .map(str::to_string),
                )
                .collect(),
        ),
        Location::Folder(dir) => (
            format!(
                "-- 1. Add an NAS source named `lake` with mount path {dir}\n\
                 --    (the folder must be mounted at that path on every Dremio node)."
            ),
            Vec::new(),
        ),
        Location::Hdfs(root) => (
            format!("-- 1. Add an HDFS source named `lake` at {root}."),
            Vec::new(),
        ),
    };
    let _ = writeln!(
        out,
        "-- Dremio: the lake as a source; Dremio recognises each gold folder as a Delta table\n\
         -- (its _delta_log) and promotes it as one.\n\
         {source_note}\n\
         -- 2. Run these in the SQL Runner. New versions are seen at the source's metadata\n\
         --    refresh interval.\n"
    );
    for m in models {
        let path: Vec<String> = std::iter::once("lake".to_string())
            .chain(root.iter().cloned())
            .chain([LAYER.to_string(), m.name.clone()])
            .map(|p| quote_identifier(&p))
            .collect();
        let _ = writeln!(
            out,
            "-- {}: {} Grain: {}.\nALTER TABLE {} REFRESH METADATA AUTO PROMOTION;\n",
            m.name,
            m.comment.trim(),
            m.grain.trim(),
            path.join(".")
        );
    }
}
