//! Parquet in and out of the object store, streaming both ways: a writer
//! holds at most one row group in memory and uploads in parts; a reader
//! yields record batches.

use std::collections::BTreeMap;
use std::sync::Arc;

use std::ops::Range;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, RowSelection, RowSelector,
};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::{AsyncArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde_json::{Map, Value};

use super::{DataFile, Lake, LakeSettings};
use crate::error::{Error, Result};
use crate::stages::Stage;

pub(super) const MIB: usize = 1024 * 1024;

/// A column chunk's dictionary stops growing at this size and the rest of
/// the chunk is written plain. Columns of a few thousand values (genres,
/// countries, event types, users) stay within it; ids and names, which
/// rarely repeat, give up on a dictionary after a few thousand values
/// instead of hashing 1 MiB of them (the Parquet writer's default) into
/// every row group. Bronze+silver over the 2M catalog: 38.7 s and 647 MB
/// against 43.2 s and 756 MB, silver 1.5% smaller.
const DICTIONARY_PAGE_BYTES: usize = 64 * 1024;

/// How files are encoded and sized; from `[lake]` settings.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    compression: Compression,
    row_group_rows: usize,
    row_group_bytes: usize,
    file_bytes: usize,
}

impl WriteOptions {
    pub(super) fn from_settings(s: &LakeSettings) -> Result<Self> {
        for (key, value) in [
            ("row_group_rows", s.row_group_rows),
            ("row_group_mib", s.row_group_mib),
            ("file_mib", s.file_mib),
        ] {
            if value == 0 {
                return Err(Error::config(
                    format!("[lake] {key}"),
                    "must be at least 1",
                    "leave the key out for the default",
                ));
            }
        }
        Ok(WriteOptions {
            compression: match s.compression {
                // Level 1, not the usual 3: at 200k tracks bronze+silver ran
                // 4.6% faster and wrote no larger files (151 against 153 MB).
                super::Compression::Zstd => {
                    Compression::ZSTD(ZstdLevel::try_new(1).expect("1 is a zstd level"))
                }
                super::Compression::Snappy => Compression::SNAPPY,
            },
            row_group_rows: s.row_group_rows,
            row_group_bytes: s.row_group_mib * MIB,
            file_bytes: s.file_mib * MIB,
        })
    }

    /// Writer properties: page-level statistics and page indexes on every
    /// column engines filter by; none, and no dictionary, on `payload`
    /// columns (large JSON text), where they cost space and never prune.
    fn properties(&self, payload: &[&str]) -> WriterProperties {
        let mut props = WriterProperties::builder()
            .set_compression(self.compression)
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .set_max_row_group_bytes(Some(self.row_group_bytes))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
            .set_created_by(format!("soundlake {}", env!("CARGO_PKG_VERSION")));
        for column in payload {
            let path = ColumnPath::from(*column);
            props = props
                .set_column_statistics_enabled(path.clone(), EnabledStatistics::None)
                .set_column_dictionary_enabled(path, false);
        }
        props.build()
    }
}

/// One Parquet file being written to its staged location. Finish it to
/// get the [`DataFile`] entry a transaction commits.
pub struct FileWriter {
    writer: AsyncArrowWriter<BufWriter>,
    lake: Lake,
    staged: Path,
    path: String,
    partition: BTreeMap<String, String>,
    file_bytes: usize,
    rows: u64,
    stats: Map<String, Value>,
    schema: SchemaRef,
}

impl FileWriter {
    pub(super) fn new(
        lake: &Lake,
        staged: Path,
        path: String,
        partition: BTreeMap<String, String>,
        schema: SchemaRef,
        payload: &[&str],
    ) -> Result<Self> {
        let options = lake.write_options();
        // Two parts in flight: the upload holds at most three parts
        // however large the file.
        let sink = BufWriter::with_capacity(
            Arc::clone(lake.store()),
            staged.clone(),
            lake.upload_part_bytes(),
        )
        .with_max_concurrency(2);
        let writer =
            AsyncArrowWriter::try_new(sink, schema.clone(), Some(options.properties(payload)))
                .map_err(|e| parquet_error(lake, &staged, e))?;
        Ok(FileWriter {
            writer,
            lake: lake.clone(),
            staged,
            path,
            partition,
            file_bytes: options.file_bytes,
            rows: 0,
            stats: Map::new(),
            schema,
        })
    }

    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.lake.rows_written().add(batch.num_rows() as u64);
        Stage::Encode
            .time_async(self.writer.write(batch))
            .await
            .map_err(|e| parquet_error(&self.lake, &self.staged, e))
    }

    /// The schema the file is written in.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Whether the file reached `[lake] file_mib` and the caller should
    /// start the next one.
    pub fn is_full(&self) -> bool {
        self.writer.bytes_written() + self.writer.in_progress_size() >= self.file_bytes
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Layer-specific facts recorded with the file in the commit (bronze
    /// keeps the range of ingest stamps it holds).
    pub fn set_stat(&mut self, key: &str, value: Value) {
        self.stats.insert(key.into(), value);
    }

    pub async fn finish(mut self) -> Result<DataFile> {
        Stage::Write
            .time_async(self.writer.finish())
            .await
            .map_err(|e| parquet_error(&self.lake, &self.staged, e))?;
        let bytes = self.writer.bytes_written() as u64;
        Ok(DataFile {
            path: self.path,
            partition: self.partition,
            rows: self.rows,
            bytes,
            stats: self.stats,
        })
    }
}

/// A Parquet file with its footer read: row groups and columns are read
/// on demand, so a reader can split a file across workers and fetch only
/// the columns it needs.
pub struct ParquetFile {
    lake: Lake,
    path: Path,
    size: u64,
    metadata: ArrowReaderMetadata,
}

/// A row group's rows and their uncompressed bytes.
#[derive(Debug, Clone, Copy)]
pub struct GroupSize {
    pub rows: u64,
    pub bytes: u64,
}

impl ParquetFile {
    /// Read the footer of the `size`-byte file at `path` (one request).
    pub async fn open(lake: &Lake, path: &Path, size: u64) -> Result<ParquetFile> {
        let mut reader = ObjectReader {
            store: Arc::clone(lake.store()),
            path: path.clone(),
            size,
        };
        // The offset index lets a slice read only its own pages.
        let options = ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional);
        let metadata = ArrowReaderMetadata::load_async(&mut reader, options)
            .await
            .map_err(|e| parquet_error(lake, path, e))?;
        Ok(ParquetFile {
            lake: lake.clone(),
            path: path.clone(),
            size,
            metadata,
        })
    }

    pub fn schema(&self) -> &SchemaRef {
        self.metadata.schema()
    }

    /// The rows the footer says the file holds.
    pub fn rows(&self) -> u64 {
        self.metadata.metadata().file_metadata().num_rows() as u64
    }

    /// The size of each row group, in file order.
    pub fn row_groups(&self) -> Vec<GroupSize> {
        self.metadata
            .metadata()
            .row_groups()
            .iter()
            .map(|g| GroupSize {
                rows: g.num_rows() as u64,
                bytes: g.total_byte_size() as u64,
            })
            .collect()
    }

    /// Record batches of `batch_rows` rows from one slice of a row group
    /// (the whole file when `None`), with only the named top-level columns
    /// (all when `None`; a name the file lacks is an error). A slice reads
    /// only the pages that hold its rows, so workers can split a row group.
    pub fn read(
        &self,
        slice: Option<(usize, Range<usize>)>,
        columns: Option<&[&str]>,
        batch_rows: usize,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let reader = ObjectReader {
            store: Arc::clone(self.lake.store()),
            path: self.path.clone(),
            size: self.size,
        };
        let mut builder =
            ParquetRecordBatchStreamBuilder::new_with_metadata(reader, self.metadata.clone())
                .with_batch_size(batch_rows);
        if let Some((group, rows)) = slice {
            let selection = RowSelection::from(vec![
                RowSelector::skip(rows.start),
                RowSelector::select(rows.len()),
            ]);
            builder = builder
                .with_row_groups(vec![group])
                .with_row_selection(selection);
        }
        if let Some(names) = columns {
            let mut indices = Vec::with_capacity(names.len());
            for name in names {
                let index = self.schema().index_of(name).map_err(|_| {
                    parquet_message(&self.lake, &self.path, &format!("has no column {name:?}"))
                })?;
                indices.push(index);
            }
            let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
            builder = builder.with_projection(mask);
        }
        let stream = builder
            .build()
            .map_err(|e| parquet_error(&self.lake, &self.path, e))?;
        let lake = self.lake.clone();
        let path = self.path.clone();
        Ok(stream
            .map(move |batch| batch.map_err(|e| parquet_error(&lake, &path, e)))
            .boxed())
    }
}

/// Ranged reads of one object; the size comes from the commit record, so
/// the footer is one request.
struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
}

fn external(e: object_store::Error) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

fn parquet_error(lake: &Lake, path: &Path, e: parquet::errors::ParquetError) -> Error {
    match e {
        parquet::errors::ParquetError::External(inner) => {
            match inner.downcast::<object_store::Error>() {
                Ok(store_error) => lake.error(&format!("access {path}"), *store_error),
                Err(other) => parquet_message(lake, path, &other.to_string()),
            }
        }
        other => parquet_message(lake, path, &other.to_string()),
    }
}

fn parquet_message(lake: &Lake, path: &Path, message: &str) -> Error {
    Error::Lake {
        url: lake.describe().into(),
        problem: format!("{path}: {message}"),
        fix: "the file is not valid Parquet or was cut short; it was not written by a \
              committed soundlake version, or was changed afterwards: rerun the task with \
              --full-refresh to rebuild the table"
            .into(),
    }
}
