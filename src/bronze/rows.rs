//! Bronze rows, where they come from (the landing store, or the files an
//! interval run rewrites) and their ordered, de-duplicated merge.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow_array::builder::{StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::SchemaRef;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::landing::{Collection, ScanCursor, SharedStore, Stamp, Stored};
use crate::stages::Stage;

/// One document version.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub stamp: Stamp,
    pub run_id: String,
    pub endpoint: String,
    pub content_hash: String,
    /// The document as JSON text.
    pub doc: String,
}

impl Row {
    pub fn ingested_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.stamp).unwrap_or_default()
    }

    fn key(&self) -> (Stamp, &str) {
        (self.stamp, &self.id)
    }

    fn from_stored(s: Stored<String>) -> Row {
        Row {
            doc: s.doc,
            id: s.id,
            stamp: s.ingested_at,
            run_id: s.run_id,
            endpoint: s.endpoint,
            content_hash: s.content_hash,
        }
    }
}

/// Rows collected into the next record batch.
#[derive(Default)]
pub struct RowBatch {
    rows: Vec<Row>,
    bytes: usize,
}

impl RowBatch {
    pub fn push(&mut self, row: Row) {
        self.bytes += row.doc.len();
        self.rows.push(row);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The collected rows as a record batch of the bronze schema; empties
    /// the batch.
    pub fn take(&mut self, schema: &SchemaRef) -> RecordBatch {
        let rows = std::mem::take(&mut self.rows);
        self.bytes = 0;
        let n = rows.len();
        let text = |f: &dyn Fn(&Row) -> &str| -> ArrayRef {
            let bytes = rows.iter().map(|r| f(r).len()).sum();
            let mut b = StringBuilder::with_capacity(n, bytes);
            rows.iter().for_each(|r| b.append_value(f(r)));
            Arc::new(b.finish())
        };
        let mut stamps = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        rows.iter().for_each(|r| stamps.append_value(r.stamp));
        let columns = vec![
            text(&|r| &r.id),
            Arc::new(stamps.finish()) as ArrayRef,
            text(&|r| &r.run_id),
            text(&|r| &r.endpoint),
            text(&|r| &r.content_hash),
            text(&|r| &r.doc),
        ];
        RecordBatch::try_new(schema.clone(), columns).expect("columns match the bronze schema")
    }
}

/// Rows of a record batch in the bronze schema (any id column name).
pub fn rows_of(batch: &RecordBatch, place: &str) -> Result<Vec<Row>> {
    let bad = |what: &str| Error::Input {
        place: place.into(),
        problem: format!("not a bronze file: {what}"),
        fix: "rebuild the table: delete its folder and run bronze again (the landing store \
              holds the current versions)"
            .into(),
    };
    if batch.num_columns() != 6 {
        return Err(bad("expected 6 columns"));
    }
    let text = |i: usize| -> Result<&StringArray> {
        batch
            .column(i)
            .as_any()
            .downcast_ref::<StringArray>()
            .filter(|a| a.null_count() == 0)
            .ok_or_else(|| bad(&format!("column {i} is not non-null text")))
    };
    let stamps = batch
        .column(1)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or_else(|| bad("ingested_at is not a microsecond timestamp"))?;
    let (ids, runs, endpoints, hashes, docs) = (text(0)?, text(2)?, text(3)?, text(4)?, text(5)?);
    Ok((0..batch.num_rows())
        .map(|i| Row {
            id: ids.value(i).to_string(),
            stamp: stamps.value(i),
            run_id: runs.value(i).to_string(),
            endpoint: endpoints.value(i).to_string(),
            content_hash: hashes.value(i).to_string(),
            doc: docs.value(i).to_string(),
        })
        .collect())
}

/// An ordered stream of rows.
pub enum RowStream {
    Store {
        store: SharedStore,
        collection: Collection,
        after: Option<ScanCursor>,
        /// Stop after this stamp (inclusive).
        upto: Stamp,
        /// Documents per page, adapted so a page stays near [`PAGE_BYTES`].
        page: usize,
        /// The next page, read while the rows of the last one are written:
        /// reading and encoding take turns on one table otherwise.
        ahead: Option<Scan>,
        buffer: VecDeque<Row>,
        done: bool,
    },
    File {
        stream: BoxStream<'static, Result<RecordBatch>>,
        place: String,
        buffer: VecDeque<Row>,
    },
}

/// A page being read, and the documents it asked for.
pub struct Scan {
    limit: usize,
    task: JoinHandle<Result<Vec<Stored<String>>>>,
}

impl Scan {
    fn start(
        store: &SharedStore,
        collection: Collection,
        after: Option<ScanCursor>,
        limit: usize,
    ) -> Scan {
        let store = store.clone();
        let task = tokio::spawn(async move {
            let scan = store.scan_text(collection, after.as_ref(), limit);
            Stage::LandingRead.time_async(scan).await
        });
        Scan { limit, task }
    }
}

const PAGE_BYTES: usize = 2 * 1024 * 1024;
const FIRST_PAGE: usize = 256;
const MAX_PAGE: usize = 5000;

impl RowStream {
    pub fn store(
        store: SharedStore,
        collection: Collection,
        after: Option<ScanCursor>,
        upto: Stamp,
    ) -> RowStream {
        RowStream::Store {
            store,
            collection,
            after,
            upto,
            page: FIRST_PAGE,
            ahead: None,
            buffer: VecDeque::new(),
            done: false,
        }
    }

    pub fn file(stream: BoxStream<'static, Result<RecordBatch>>, place: String) -> RowStream {
        RowStream::File {
            stream,
            place,
            buffer: VecDeque::new(),
        }
    }

    async fn next(&mut self) -> Result<Option<Row>> {
        match self {
            RowStream::Store {
                store,
                collection,
                after,
                upto,
                page,
                ahead,
                buffer,
                done,
            } => {
                while buffer.is_empty() && !*done {
                    let scan = ahead
                        .take()
                        .unwrap_or_else(|| Scan::start(store, *collection, after.clone(), *page));
                    let docs = scan.task.await.expect("landing scan task")?;
                    *done = docs.len() < scan.limit;
                    if let Some(last) = docs.last() {
                        *after = Some((last.ingested_at, last.id.clone()));
                    }
                    let rows: Vec<Row> = docs.into_iter().map(Row::from_stored).collect();
                    if !rows.is_empty() {
                        let bytes: usize = rows.iter().map(|r| r.doc.len()).sum();
                        let average = (bytes / rows.len()).max(1);
                        *page = (PAGE_BYTES / average).clamp(16, MAX_PAGE);
                    }
                    for row in rows {
                        if row.stamp > *upto {
                            *done = true;
                            break;
                        }
                        buffer.push_back(row);
                    }
                    if !*done {
                        *ahead = Some(Scan::start(store, *collection, after.clone(), *page));
                    }
                }
                Ok(buffer.pop_front())
            }
            RowStream::File {
                stream,
                place,
                buffer,
            } => {
                while buffer.is_empty() {
                    match stream.next().await {
                        Some(batch) => buffer.extend(rows_of(&batch?, place)?),
                        None => return Ok(None),
                    }
                }
                Ok(buffer.pop_front())
            }
        }
    }
}

/// The k-way merge of ordered sources, in `(stamp, id)` order, each version
/// once: the same version from the store and from a rewritten file is one
/// row.
pub struct Merge {
    heads: Vec<(Option<Row>, RowStream)>,
    started: bool,
    last: Option<(Stamp, String)>,
}

impl Merge {
    pub fn new(sources: Vec<RowStream>) -> Merge {
        Merge {
            heads: sources.into_iter().map(|s| (None, s)).collect(),
            started: false,
            last: None,
        }
    }

    pub async fn next(&mut self) -> Result<Option<Row>> {
        if !self.started {
            for (head, source) in &mut self.heads {
                *head = source.next().await?;
            }
            self.started = true;
        }
        loop {
            let Some(i) = self
                .heads
                .iter()
                .enumerate()
                .filter_map(|(i, (head, _))| head.as_ref().map(|r| (i, r.key())))
                .min_by(|a, b| a.1.cmp(&b.1))
                .map(|(i, _)| i)
            else {
                return Ok(None);
            };
            let (head, source) = &mut self.heads[i];
            let row = std::mem::replace(head, source.next().await?).expect("chosen head");
            if self
                .last
                .as_ref()
                .is_some_and(|(s, id)| (*s, id.as_str()) == row.key())
            {
                continue;
            }
            self.last = Some((row.stamp, row.id.clone()));
            return Ok(Some(row));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::clock::{SharedClock, VirtualClock};
    use crate::landing::Batch;

    async fn land(store: &SharedStore, first: usize, count: usize) {
        let docs = (first..first + count)
            .map(|i| {
                let id = format!("t{i:05}");
                // 20 kB documents: pages of about a hundred.
                (id.clone(), json!({"id": id, "padding": "x".repeat(20_000)}))
            })
            .collect();
        let batch = Batch::new(&format!("run-{first}"), "GET /tracks", docs);
        store.upsert(Collection::Tracks, batch).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_read_ahead_yield_every_version_up_to_the_stamp_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let clock = VirtualClock::manual(DateTime::<Utc>::UNIX_EPOCH + chrono::Days::new(20_000));
        let shared: SharedClock = clock.clone();
        let url = format!("embedded://{}/landing.db", dir.path().display());
        let store = crate::landing::open(&url, shared).await.unwrap();
        for batch in 0..6 {
            land(&store, batch * 100, 100).await;
            clock.advance(Duration::from_secs(1));
        }
        let upto = store.stable_stamp().await.unwrap().unwrap();
        let expected: Vec<(Stamp, String)> = store
            .scan_text(Collection::Tracks, None, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.ingested_at, d.id))
            .collect();
        assert_eq!(expected.len(), 600);

        let mut stream = RowStream::store(store.clone(), Collection::Tracks, None, upto);
        let mut seen = Vec::new();
        while let Some(row) = stream.next().await.unwrap() {
            if seen.len() == 150 {
                // Versions landed while the stream reads ahead lie past its
                // stamp: none of them may come out.
                land(&store, 600, 300).await;
            }
            seen.push((row.stamp, row.id));
        }
        assert_eq!(seen, expected);
    }
}
