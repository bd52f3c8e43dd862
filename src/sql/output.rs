//! Query results on a terminal or into a file: an aligned table, CSV with
//! a header, or a JSON array of objects.

use std::io::Write;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};
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

/// A write that failed, its I/O error kept whole, so a reader that closed
/// the pipe (`soundlake query … | head`) can be told apart.
fn failed_io(source: std::io::Error) -> Error {
    Error::System {
        what: "writing the query result",
        source,
    }
}

fn failed(e: ArrowError) -> Error {
    failed_io(std::io::Error::other(e.to_string()))
}

/// The output, noting whether its reader went away: Arrow's CSV writer
/// reports that only as text.
struct Watched<'o> {
    out: &'o mut dyn Write,
    reader_gone: bool,
}

impl Write for Watched<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.out.write(buf);
        self.note(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let flushed = self.out.flush();
        self.note(flushed)
    }
}

impl Watched<'_> {
    fn note<T>(&mut self, result: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &result
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            self.reader_gone = true;
        }
        result
    }
}

/// Whether `error` is only that the reader of the output went away.
pub fn reader_gone(error: &Error) -> bool {
    matches!(error, Error::System { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Write `batches` (all of `schema`) to `out` in `format`.
pub fn write(
    out: &mut dyn Write,
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<()> {
    let mut watched = Watched {
        out,
        reader_gone: false,
    };
    let written = write_as(&mut watched, format, schema, batches);
    match written {
        Err(_) if watched.reader_gone => Err(failed_io(std::io::ErrorKind::BrokenPipe.into())),
        written => written,
    }
}

fn write_as(
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
                    .map_err(failed_io)?;
            } else {
                writeln!(out, "{}", pretty_format_batches(batches).map_err(failed)?)
                    .map_err(failed_io)?;
            }
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" }).map_err(failed_io)
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
            writeln!(out).map_err(failed_io)
        }
    }
}
