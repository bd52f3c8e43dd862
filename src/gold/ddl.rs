//! The statements that show every gold table to another engine, over the
//! lake URL the deployment writes to. Gold tables are unpartitioned
//! folders of Parquet, so an external table over each folder sees every
//! new version without a metadata refresh (Dremio's promotion aside).
//! Names and comments are quoted for each dialect; no credential is ever
//! printed, only where each engine takes one.

use std::fmt::Write as _;
use std::path::Path;

use super::{GoldModel, LAYER};
use crate::error::{Error, Result};
use crate::lake::LakeSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    Trino,
    Dremio,
    Spark,
    Duckdb,
}

/// Where the lake is, as other engines name it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    /// An absolute local folder.
    Folder(String),
    S3 {
        bucket: String,
        prefix: String,
    },
    Hdfs(String),
}

impl Location {
    fn of(lake: &LakeSettings) -> Result<Location> {
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

    /// The URL of a table folder, with the scheme Hadoop-based engines use
    /// for S3 (`s3a`) or the one DuckDB uses (`s3`).
    fn table(&self, name: &str, s3_scheme: &str) -> String {
        match self {
            Location::Folder(dir) => format!("{dir}/{LAYER}/{name}"),
            Location::S3 { bucket, prefix } => {
                let prefix = if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                };
                format!("{s3_scheme}://{bucket}/{prefix}{LAYER}/{name}")
            }
            Location::Hdfs(root) => format!("{root}/{LAYER}/{name}"),
        }
    }
}

/// A string literal in standard SQL (Trino, DuckDB, Dremio): `'` doubled.
fn quote_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A string literal in Spark SQL, which escapes with backslashes.
fn quote_spark(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Every statement for `target`, with comments on how to run them.
pub fn render(target: Target, models: &[GoldModel], lake: &LakeSettings) -> Result<String> {
    let location = Location::of(lake)?;
    let mut out = String::new();
    match target {
        Target::Trino => trino(&mut out, models, &location, lake),
        Target::Spark => spark(&mut out, models, &location),
        Target::Duckdb => duckdb(&mut out, models, &location, lake),
        Target::Dremio => dremio(&mut out, models, &location, lake),
    }
    Ok(out)
}

fn trino(out: &mut String, models: &[GoldModel], location: &Location, lake: &LakeSettings) {
    let _ = writeln!(
        out,
        "-- Trino: external tables in a Hive connector catalog named `hive` (any metastore,\n\
         -- for example hive.metastore=file; hive.non-managed-table-creates-enabled=true).{}\n\
         -- Gold tables are unpartitioned: new versions show up without a metadata sync.",
        match location {
            Location::S3 { .. } if !lake.s3.endpoint.is_empty() => format!(
                "\n-- The catalog reads S3 at {} (fs.native-s3.enabled=true, s3.endpoint, \
                 s3.path-style-access=true).",
                lake.s3.endpoint
            ),
            Location::Folder(_) => "\n-- A local folder needs fs.hadoop.enabled=true and the same path on every worker.".into(),
            _ => String::new(),
        }
    );
    let schema_location = location.table("", "s3a");
    let _ = writeln!(
        out,
        "CREATE SCHEMA IF NOT EXISTS hive.{LAYER} WITH (location = {});\n",
        quote_text(schema_location.trim_end_matches('/'))
    );
    for m in models {
        let columns: Vec<String> = m
            .columns
            .iter()
            .map(|c| {
                format!(
                    "  \"{}\" {} COMMENT {}",
                    c.name,
                    c.kind.sql("varchar"),
                    quote_text(&c.comment)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "CREATE TABLE IF NOT EXISTS hive.{LAYER}.{} (\n{}\n)\nCOMMENT {}\nWITH (external_location = {}, format = 'PARQUET');\n",
            m.name,
            columns.join(",\n"),
            quote_text(&format!("{} Grain: {}.", m.comment.trim(), m.grain.trim())),
            quote_text(&location.table(&m.name, "s3a"))
        );
    }
}

fn spark(out: &mut String, models: &[GoldModel], location: &Location) {
    let _ = writeln!(
        out,
        "-- Spark SQL: tables over the gold folders (any catalog; spark.sql.catalogImplementation=in-memory works).{}\n\
         CREATE DATABASE IF NOT EXISTS {LAYER};\n",
        if matches!(location, Location::S3 { .. }) {
            "\n-- S3 needs hadoop-aws and spark.hadoop.fs.s3a.* settings (endpoint, path style, credentials)."
        } else {
            ""
        }
    );
    for m in models {
        let columns: Vec<String> = m
            .columns
            .iter()
            .map(|c| {
                format!(
                    "  `{}` {} COMMENT {}",
                    c.name,
                    c.kind.sql("string"),
                    quote_spark(&c.comment)
                )
            })
            .collect();
        let url = match location {
            Location::Folder(_) => format!("file://{}", location.table(&m.name, "s3a")),
            _ => location.table(&m.name, "s3a"),
        };
        let _ = writeln!(
            out,
            "CREATE TABLE IF NOT EXISTS {LAYER}.{} (\n{}\n)\nUSING parquet\nLOCATION {}\nCOMMENT {};\n",
            m.name,
            columns.join(",\n"),
            quote_spark(&url),
            quote_spark(&format!("{} Grain: {}.", m.comment.trim(), m.grain.trim()))
        );
    }
}

fn duckdb(out: &mut String, models: &[GoldModel], location: &Location, lake: &LakeSettings) {
    let _ = writeln!(out, "-- DuckDB: views over the gold folders.");
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
                format!(", ENDPOINT {}", quote_text(endpoint))
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
            "CREATE OR REPLACE VIEW {LAYER}.{} AS SELECT * FROM read_parquet({});\n\
             COMMENT ON VIEW {LAYER}.{} IS {};\n",
            m.name,
            quote_text(&format!("{}/*.parquet", location.table(&m.name, "s3"))),
            m.name,
            quote_text(&format!("{} Grain: {}.", m.comment.trim(), m.grain.trim()))
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
        "-- Dremio: the lake as a source, each gold folder promoted to a Parquet dataset.\n\
         {source_note}\n\
         -- 2. Run these in the SQL Runner. Rerun them after a schema change; new files are\n\
         --    seen at the source's metadata refresh interval.\n"
    );
    for m in models {
        let path: Vec<String> = std::iter::once("lake".to_string())
            .chain(root.iter().cloned())
            .chain([LAYER.to_string(), m.name.clone()])
            .map(|p| format!("\"{p}\""))
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
