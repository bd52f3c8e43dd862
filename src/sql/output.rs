//! Query results on a terminal or into a file: an aligned table, CSV with
//! a header, or a JSON array of objects.

use std::io::Write;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::json;
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

fn failed(e: impl std::fmt::Display) -> Error {
    Error::System {
        what: "writing the query result",
        source: std::io::Error::other(e.to_string()),
    }
}

/// Write `batches` (all of `schema`) to `out` in `format`.
pub fn write(
    out: &mut dyn Write,
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<()> {
    match format {
        Format::Table => {
            if batches.iter().all(|b| b.num_rows() == 0) {
                // Still show the columns, as a table with no rows.
                let empty = RecordBatch::new_empty(schema.clone());
                writeln!(out, "{}", pretty_format_batches(&[empty]).map_err(failed)?)
                    .map_err(failed)?;
            } else {
                writeln!(out, "{}", pretty_format_batches(batches).map_err(failed)?)
                    .map_err(failed)?;
            }
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" }).map_err(failed)
        }
        Format::Csv => {
            let mut writer = WriterBuilder::new().with_header(true).build(out);
            if batches.is_empty() {
                writer
                    .write(&RecordBatch::new_empty(schema.clone()))
                    .map_err(failed)?;
            }
            for batch in batches {
                writer.write(batch).map_err(failed)?;
            }
            Ok(())
        }
        Format::Json => {
            // Nulls spelled out, so every row has every column.
            let mut writer = json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, json::writer::JsonArray>(&mut *out);
            for batch in batches {
                writer.write(batch).map_err(failed)?;
            }
            writer.finish().map_err(failed)?;
            writeln!(out).map_err(failed)
        }
    }
}
