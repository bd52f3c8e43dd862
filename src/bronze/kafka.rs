//! Bronze from Kafka: the JSON messages of topics, each message once.
//!
//! Every commit of the table records, for each topic partition it took
//! messages from, the offset of the next message to take, in the same
//! commit as the rows: a Delta `txn` action with the application id
//! `kafka/<topic>/<partition>` (see [`claim_id`]). The consumer group's
//! offsets are committed to Kafka only after that, for lag monitors. A
//! member starts each partition it is assigned at the table's recorded
//! offset, so after a crash or a rebalance the messages already published
//! are recognised and skipped, and the rest are read again. A producer's
//! duplicate (one event under two offsets) is silver's dedupe.
//!
//! Several processes (daemons on several machines) may consume one table
//! in one group: the group splits the partitions between them and their
//! commits land side by side, because they claim different ids. Should two
//! take the same partition at once (a member that stalled past its session
//! while the group moved its partitions on), Delta refuses the second
//! commit claiming that partition since the first one's base; the loser
//! drops its batch and reads again from the offsets the table now records.
//! No table lock is taken: the claims are the fence.
//!
//! Two ways to run: bounded (a pipeline run takes the messages up to the
//! end offsets seen at its start, then stops) and continuous (under the
//! daemon: micro-batches published every `[ingest] commit_mib` of input or
//! `[kafka] batch_secs`, until stopped). Partitions revoked by a rebalance
//! flush the batch first; messages of partitions no longer owned are left
//! to their new owner.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use tokio::sync::watch;

use super::records::{self, MAX_RECORD_BYTES, Origin, Pending, Publisher, Taken};
use super::{BronzeTable, IngestSettings};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::kafka::{Client, GroupConsumer, KafkaSettings, Offsets, Partition, Polled};
use crate::lake::{Lake, Transaction};
use crate::landing::SharedStore;
use crate::stages::Stage;

/// The longest a poll waits before the run looks at its clock and flags.
const POLL: Duration = Duration::from_millis(200);
/// Messages taken from one poll and judged together: enough for both
/// cores to share, little enough to hold.
const JUDGED_MESSAGES: usize = 4096;
/// The table property where versions before per-partition claims recorded
/// every partition's offset. Tables written by them keep it, unchanged, as
/// the offset of each partition not claimed since.
const RECORDED_BEFORE_CLAIMS: &str = "kafka";

/// The application id under which a table records a partition's offset.
pub fn claim_id((topic, partition): &Partition) -> String {
    format!("kafka/{topic}/{partition}")
}

/// What one Kafka run took in.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KafkaReport {
    /// The consumer group: `<[kafka] group>.<table>`.
    pub group: String,
    /// Messages taken (as rows or quarantined), per `topic:partition`.
    pub taken: BTreeMap<String, u64>,
    pub rows: u64,
    pub quarantined: u64,
    /// Messages below the recorded offsets (published before): skipped.
    pub replayed: u64,
    /// Micro-batches published.
    pub batches: u64,
    /// Micro-batches dropped because another member of the group published
    /// some of the same partitions first; their messages were read again
    /// from the offsets the table then recorded.
    pub dropped_batches: u64,
    /// The recorded offsets after the run: the next message to take.
    pub offsets: Offsets,
    /// Why a bounded run stopped before the end offsets seen at its start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_early: Option<String>,
}

/// Runs one Kafka-fed bronze table.
pub struct KafkaRun<'a> {
    pub lake: &'a Lake,
    pub store: &'a SharedStore,
    pub clock: &'a SharedClock,
    pub def: &'a BronzeTable,
    pub topics: &'a [String],
    pub ingest: &'a IngestSettings,
    pub kafka: &'a KafkaSettings,
    pub run_id: &'a str,
}

/// Where a run stands between publishes.
struct Progress {
    txns: Option<(Transaction, Transaction)>,
    /// The partitions whose recorded offsets a run reads: its topics'
    /// partitions, and any assigned since.
    known: BTreeSet<Partition>,
    /// The offsets the table's base version records, and its quarantine's.
    at: Offsets,
    quarantined_at: Offsets,
    /// The recorded offsets plus what `pending` holds.
    next: Offsets,
    pending: Pending,
    /// What the pending batch took, counted into the report once published.
    batch: Batch,
    /// Offsets published but not yet committed to the group.
    uncommitted: Offsets,
    version: Option<u64>,
    rows: u64,
}

/// The messages of the pending batch.
#[derive(Default)]
struct Batch {
    /// Per partition: the offset of the first message taken, and how many.
    taken: BTreeMap<Partition, (i64, u64)>,
    rows: u64,
    quarantined: u64,
    /// When it took its first message: its rows' stamp.
    started: Option<DateTime<Utc>>,
}

/// Where a bounded run stops: every partition of its topics up to where
/// the brokers say it has nothing more, or to its first message stamped
/// after the run began.
struct Ends {
    /// Whether the run is bounded (no stop signal): a continuous one never ends here.
    bounded: bool,
    /// When the run began, in milliseconds since the epoch.
    began: i64,
    partitions: BTreeSet<Partition>,
    /// The partitions finished.
    done: BTreeSet<Partition>,
}

impl Ends {
    fn finished(&self) -> bool {
        self.bounded && self.partitions.iter().all(|p| self.done.contains(p))
    }

    /// Partitions to read again are not finished.
    fn reopen(&mut self, again: &[Partition]) {
        self.done.retain(|p| !again.contains(p));
    }
}

/// What one poll brought.
enum Received {
    /// A message to take.
    Taken(Accepted),
    /// A partition caught up: the run is moving.
    Moved,
    Problem(String),
    /// A message left for its owner, taken before, or past a bounded
    /// run's end: poll again at once.
    Skipped,
    Nothing,
}

/// A message taken from its partition, not yet judged.
struct Accepted {
    part: Partition,
    offset: i64,
    payload: Option<Vec<u8>>,
}

fn offset_of(offsets: &Offsets, (topic, partition): &Partition) -> Option<i64> {
    offsets.get(topic).and_then(|p| p.get(partition)).copied()
}

fn set_offset(offsets: &mut Offsets, (topic, partition): &Partition, offset: i64) {
    offsets
        .entry(topic.clone())
        .or_default()
        .insert(*partition, offset);
}

/// `a` with each partition at the larger offset of `a` and `b`.
fn furthest(a: &Offsets, b: &Offsets) -> Offsets {
    let mut out = a.clone();
    for (topic, partitions) in b {
        for (partition, offset) in partitions {
            let part = (topic.clone(), *partition);
            if offset_of(&out, &part).is_none_or(|o| o < *offset) {
                set_offset(&mut out, &part, *offset);
            }
        }
    }
    out
}

impl KafkaRun<'_> {
    fn publisher(&self) -> Publisher<'_> {
        Publisher {
            lake: self.lake,
            store: self.store,
            def: self.def,
            run_id: self.run_id,
            positions: "kafka",
        }
    }

    /// Bounded without `stop`: up to the end offsets seen now. Continuous
    /// with it: until `stop` turns true. Returns the report, the last
    /// version published and the table's rows.
    pub async fn run(
        &self,
        stop: Option<watch::Receiver<bool>>,
    ) -> Result<(KafkaReport, Option<u64>, u64)> {
        let client = Client::new(self.kafka, None)?;
        let group = format!("{}.{}", self.kafka.group, self.def.name);
        let now = self.clock.now();
        // A bounded run takes every partition of the topics up to where the
        // brokers say it has nothing more (its fetches' high watermark), or
        // to its first message stamped after the run began, whichever comes
        // first. Brokers' reported end offsets are not used: some report
        // them behind the truth.
        let mut ends = Ends {
            bounded: stop.is_none(),
            began: now.timestamp_millis(),
            partitions: client.partitions(self.topics).await?,
            done: BTreeSet::new(),
        };
        let mut progress = Progress {
            txns: None,
            known: ends.partitions.clone(),
            at: Offsets::new(),
            quarantined_at: Offsets::new(),
            next: Offsets::new(),
            pending: Pending::default(),
            batch: Batch::default(),
            uncommitted: Offsets::new(),
            version: None,
            rows: 0,
        };
        let start = Arc::new(Mutex::new(Offsets::new()));
        self.begin(&mut progress, &start).await?;
        self.create(&mut progress, &start).await?;
        let mut report = KafkaReport {
            group: group.clone(),
            offsets: progress.at.clone(),
            ..KafkaReport::default()
        };
        let consumer = client.consumer(&group, start.clone())?;
        consumer.subscribe(self.topics)?;
        let limit = self.ingest.commit_mib * 1024 * 1024;
        let batch_age = TimeDelta::seconds(i64::try_from(self.kafka.batch_secs).unwrap_or(3600));
        let (mut moved, mut problem) = (Instant::now(), None::<String>);
        loop {
            // A batch publishes as soon as its input reaches the limit, as
            // from files: the poll stops at the message that reaches it.
            let room = limit.saturating_sub(progress.pending.bytes);
            let polled = consumer.next(POLL, JUDGED_MESSAGES, room).await;
            let changes = consumer.changes();
            progress.known.extend(changes.owned.iter().cloned());
            if changes.revoked && !progress.pending.is_empty() {
                // Publish what the revoked partitions gave before another
                // member starts them from the recorded offsets.
                let again = self
                    .publish(&mut progress, &consumer, &start, &mut report)
                    .await?;
                ends.reopen(&again);
            } else if changes.assigned && progress.pending.is_empty() {
                // Partitions given anew may have moved on under another
                // member since this run's base: read where the table has
                // them now, rather than take messages it holds and drop
                // the batch at the commit.
                self.begin(&mut progress, &start).await?;
            }
            let owned = changes.owned;
            let (count, mut skipped, mut taken) = (polled.len(), 0, Vec::new());
            for polled in polled {
                match self.receive(polled, &owned, &mut ends, &mut progress, &mut report)? {
                    Received::Taken(message) => {
                        taken.push(message);
                        moved = Instant::now();
                    }
                    Received::Moved => moved = Instant::now(),
                    Received::Problem(text) => problem = Some(text),
                    Received::Skipped => skipped += 1,
                    Received::Nothing => {}
                }
            }
            self.take(&mut progress, taken);
            if skipped == count {
                continue;
            }

            let now = self.clock.now();
            let stopping = stop.as_ref().is_some_and(|s| *s.borrow());
            let finished = ends.finished();
            let waited_out = ends.bounded && moved.elapsed() > client.timeout();
            if waited_out {
                let problem = problem.as_deref();
                self.waited_out(&ends, &client, &group, problem, &mut report)?;
            }
            let full = progress.pending.bytes >= limit;
            let due = progress
                .batch
                .started
                .is_some_and(|started| !ends.bounded && now - started >= batch_age);
            let ending = stopping || finished || waited_out;
            if full || due || (ending && !progress.pending.is_empty()) {
                let again = self
                    .publish(&mut progress, &consumer, &start, &mut report)
                    .await?;
                ends.reopen(&again);
            }
            if ending {
                break;
            }
        }
        if !progress.uncommitted.is_empty() {
            self.commit_at_end(&progress, &consumer, &client).await;
        }
        report.offsets = progress.at.clone();
        Ok((report, progress.version, progress.rows))
    }

    /// Act on what one poll brought: take a message (unless another
    /// member owns its partition, it was taken before, or a bounded run is
    /// past its partition's end), or note a partition caught up.
    fn receive(
        &self,
        polled: Polled,
        owned: &BTreeSet<Partition>,
        ends: &mut Ends,
        progress: &mut Progress,
        report: &mut KafkaReport,
    ) -> Result<Received> {
        match polled {
            Polled::Message {
                topic,
                partition,
                offset,
                timestamp,
                payload,
            } => {
                let part = (topic, partition);
                // A message fetched before its partition was revoked is its
                // new owner's to take.
                if !owned.contains(&part) {
                    return Ok(Received::Skipped);
                }
                if offset_of(&progress.next, &part).is_some_and(|next| offset < next) {
                    report.replayed += 1;
                    return Ok(Received::Skipped);
                }
                // A bounded run takes nothing more from a partition it has
                // finished: offsets must stay contiguous, and producers'
                // timestamps need not rise with them.
                if ends.bounded
                    && (ends.done.contains(&part) || timestamp.is_some_and(|t| t > ends.began))
                {
                    ends.done.insert(part);
                    return Ok(Received::Skipped);
                }
                set_offset(&mut progress.next, &part, offset + 1);
                Ok(Received::Taken(Accepted {
                    part,
                    offset,
                    payload,
                }))
            }
            Polled::CaughtUp(partition) => {
                // The client names only the partition number: with several
                // topics this may end a bounded run early for another
                // topic's partition, which the next run takes.
                ends.done
                    .extend(owned.iter().filter(|p| p.1 == partition).cloned());
                Ok(Received::Moved)
            }
            Polled::Problem(text) => {
                tracing::warn!(table = %self.def.name, problem = %text, "Kafka");
                Ok(Received::Problem(text))
            }
            Polled::Refused(error) => Err(error),
            Polled::Idle => Ok(Received::Nothing),
        }
    }

    /// A bounded run heard nothing for the client's timeout: an error when
    /// it got nothing at all, otherwise it ends early, saying which
    /// partitions it could not finish.
    fn waited_out(
        &self,
        ends: &Ends,
        client: &Client,
        group: &str,
        problem: Option<&str>,
        report: &mut KafkaReport,
    ) -> Result<()> {
        if ends.done.is_empty() && report.taken.is_empty() && report.dropped_batches == 0 {
            return Err(client.error(
                format!(
                    "nothing from {} within {} s in group {group}{}",
                    self.topics.join(", "),
                    client.timeout().as_secs(),
                    problem
                        .map(|p| format!(" (last problem: {p})"))
                        .unwrap_or_default()
                ),
                "check that the brokers run; another member of the group may hold the \
                 partitions (one soundlake run per table at a time)",
            ));
        }
        let behind: Vec<String> = ends
            .partitions
            .iter()
            .filter(|p| !ends.done.contains(*p))
            .map(|(t, p)| format!("{t}:{p}"))
            .collect();
        report.stopped_early = Some(format!(
            "{} gave nothing for {} s (held by another member of the group?); \
             the next run goes on from the recorded offsets",
            behind.join(", "),
            client.timeout().as_secs(),
        ));
        Ok(())
    }

    /// Take messages as rows, or quarantine them: judged on every core,
    /// taken in their order.
    fn take(&self, progress: &mut Progress, messages: Vec<Accepted>) {
        if messages.is_empty() {
            return;
        }
        let judged = Stage::Parse.par_map(&messages, |m| self.judge(m.payload.as_deref()));
        let batch = &mut progress.batch;
        let stamp = *batch.started.get_or_insert_with(|| self.clock.now());
        for (message, judged) in messages.iter().zip(judged) {
            let Accepted { part, offset, .. } = message;
            let bytes = message.payload.as_deref().unwrap_or_default();
            progress.pending.bytes += bytes.len() as u64;
            batch.taken.entry(part.clone()).or_insert((*offset, 0)).1 += 1;
            let origin = Origin::Message {
                topic: part.0.clone(),
                partition: part.1,
                offset: *offset,
            };
            match judged {
                Ok((checked, doc, hash)) => {
                    let stamp = stamp.timestamp_micros();
                    progress
                        .pending
                        .row(self.def, &origin, checked, (doc, &hash), stamp);
                    batch.rows += 1;
                }
                Err(problem) => {
                    // The quarantine holds it already when a crash came
                    // between its commit and the table's.
                    let seen =
                        offset_of(&progress.quarantined_at, part).is_some_and(|q| *offset < q);
                    if !seen {
                        progress.pending.reject(origin, problem, bytes);
                        batch.quarantined += 1;
                    }
                }
            }
        }
    }

    /// A message's key and event time with its document, or why it is not
    /// a record.
    fn judge<'m>(
        &self,
        payload: Option<&'m [u8]>,
    ) -> std::result::Result<(records::Checked, &'m str, records::ContentHash), String> {
        let bytes =
            payload.ok_or("a message without a value (a tombstone) is not a record".to_string())?;
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(format!("longer than {MAX_RECORD_BYTES} bytes"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
        let text = text.trim_start_matches('\u{feff}').trim();
        records::checked_record(self.def, text)
            .map(|checked| (checked, text, records::content_hash(text)))
    }

    /// Start the next batch on the table's newest version: the offsets it
    /// records are where each partition goes on from.
    async fn begin(&self, progress: &mut Progress, start: &Mutex<Offsets>) -> Result<()> {
        debug_assert!(progress.pending.is_empty(), "a batch is left behind");
        let txns = self.publisher().begin(self.clock.now()).await?;
        progress.at = recorded(&txns.0, &progress.known).await?;
        progress.quarantined_at = recorded(&txns.1, &progress.known).await?;
        progress.next = progress.at.clone();
        progress.rows = txns.0.base().rows();
        progress.txns = Some(txns);
        *start.lock().unwrap_or_else(PoisonError::into_inner) = progress.at.clone();
        Ok(())
    }

    /// Create the table and its quarantine, empty, if they do not exist:
    /// members starting together race to create them, and a creation that
    /// lost its race has nothing to retry on, while appends do.
    async fn create(&self, progress: &mut Progress, start: &Mutex<Offsets>) -> Result<()> {
        let (txn, qtxn) = progress.txns.as_ref().expect("a transaction is open");
        if txn.base().exists() && qtxn.base().exists() {
            return Ok(());
        }
        let txns = progress.txns.take().expect("a transaction is open");
        self.publisher().create(txns, self.clock.now()).await?;
        self.begin(progress, start).await
    }

    /// Publish the pending batch, claiming the offsets of its partitions,
    /// then commit them to the group: a crash between the two leaves the
    /// group behind the table, and the next member skips what the table
    /// holds. Returns the partitions to read again: those of a batch
    /// dropped because another member claimed one of them first.
    async fn publish(
        &self,
        progress: &mut Progress,
        consumer: &GroupConsumer,
        start: &Mutex<Offsets>,
        report: &mut KafkaReport,
    ) -> Result<Vec<Partition>> {
        let now = self.clock.now();
        fail::fail_point!("kafka-before-publish");
        let pending = std::mem::take(&mut progress.pending);
        let batch = std::mem::take(&mut progress.batch);
        let (mut txn, mut qtxn) = progress.txns.take().expect("a transaction is open");
        let mut published = Offsets::new();
        for part in batch.taken.keys() {
            let next = offset_of(&progress.next, part).expect("a partition taken goes on");
            let quarantined =
                offset_of(&progress.quarantined_at, part).map_or(next, |q| q.max(next));
            txn.claim(claim_id(part), next);
            qtxn.claim(claim_id(part), quarantined);
            set_offset(&mut published, part, next);
        }
        let before_claims =
            |t: &Transaction| t.base().properties.get(RECORDED_BEFORE_CLAIMS).cloned();
        let positions = (before_claims(&txn), before_claims(&qtxn));
        match self
            .publisher()
            .publish((txn, qtxn), positions, pending, now)
            .await
        {
            Ok(snapshot) => {
                report.batches += 1;
                report.rows += batch.rows;
                report.quarantined += batch.quarantined;
                for ((topic, partition), (_, n)) in &batch.taken {
                    *report
                        .taken
                        .entry(format!("{topic}:{partition}"))
                        .or_default() += n;
                }
                progress.version = Some(snapshot.version);
                tracing::info!(
                    table = %self.def.name,
                    version = snapshot.version,
                    rows = snapshot.rows(),
                    "published a Kafka micro-batch"
                );
                fail::fail_point!("kafka-after-publish");
                progress.uncommitted = furthest(&progress.uncommitted, &published);
                if consumer.commit(&progress.uncommitted).await.is_ok() {
                    progress.uncommitted.clear();
                }
                self.begin(progress, start).await?;
                Ok(Vec::new())
            }
            // A quarantine that landed before the rows' conflict keeps its
            // messages: read again, they are recognised by its offsets.
            Err(Error::Conflict { version, .. }) => {
                report.dropped_batches += 1;
                tracing::warn!(
                    table = %self.def.name,
                    version,
                    "another member of the group published some of this batch's partitions \
                     first; the batch is dropped and read again from the table's offsets"
                );
                self.begin(progress, start).await?;
                let mut again = Vec::new();
                for (part, (first, _)) in batch.taken {
                    let from = offset_of(&progress.at, &part).unwrap_or(first);
                    if consumer.seek(&part, from).await {
                        again.push(part);
                    }
                }
                Ok(again)
            }
            Err(e) => Err(e),
        }
    }

    /// The group's offsets could not be committed after the last publish
    /// (a rebalance was under way): try again while serving the group,
    /// until the run's timeout. Messages polled meanwhile are not taken;
    /// the next run starts at the recorded offsets.
    async fn commit_at_end(&self, progress: &Progress, consumer: &GroupConsumer, client: &Client) {
        let waited = Instant::now();
        loop {
            match consumer.commit(&progress.uncommitted).await {
                Ok(()) => return,
                Err(e) if waited.elapsed() > client.timeout() => {
                    tracing::warn!(
                        table = %self.def.name,
                        error = %e,
                        "the group's offsets lag the table's until the next run"
                    );
                    return;
                }
                Err(_) => {
                    consumer.next(POLL, 1, 0).await;
                }
            }
        }
    }
}

/// The offsets `txn`'s base version records for `partitions`: each one's
/// claim, else what the table recorded before claims.
async fn recorded(txn: &Transaction, partitions: &BTreeSet<Partition>) -> Result<Offsets> {
    let mut offsets: Offsets = records::positions(txn, RECORDED_BEFORE_CLAIMS);
    for part in partitions {
        if let Some(offset) = txn.claimed(&claim_id(part)).await? {
            set_offset(&mut offsets, part, offset);
        }
    }
    Ok(offsets)
}

/// A Kafka run as a few lines of text.
pub fn render(table: &str, r: &KafkaReport, version: Option<u64>, rows: u64) -> String {
    let taken = Taken {
        unit: "messages",
        from: "partitions",
        per_source: &r.taken,
        published: ("batches", r.batches),
        quarantined: r.quarantined,
    };
    let mut out = records::render_head(table, &taken, version, rows);
    if r.replayed > 0 {
        out.push_str(&format!(
            "\n  {} messages skipped: published before (recorded offsets)",
            r.replayed
        ));
    }
    if r.dropped_batches > 0 {
        out.push_str(&format!(
            "\n  {} micro-batches dropped: another member of the group published their \
             partitions first (read again from the table's offsets)",
            r.dropped_batches
        ));
    }
    for (partition, n) in &r.taken {
        out.push_str(&format!("\n  {partition}: {n} messages"));
    }
    if let Some(why) = &r.stopped_early {
        out.push_str(&format!("\n  stopped early: {why}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{DataType, Field, Schema};
    use chrono::DateTime;
    use serde_json::{Map, json};

    use super::*;

    fn partitions(list: &[(&str, i32)]) -> BTreeSet<Partition> {
        list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    #[tokio::test]
    async fn claims_override_the_offsets_recorded_before_claims() {
        let lake = Lake::in_memory();
        let table = lake.table("bronze", "events");
        let now = DateTime::UNIX_EPOCH;
        // A table written before claims: every offset in one property.
        let mut txn = table.begin("old", now).await.unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
        txn.declare(schema, Some(&[]));
        let mut properties = Map::new();
        properties.insert(
            RECORDED_BEFORE_CLAIMS.into(),
            json!({"plays": {"0": 5, "1": 7}}),
        );
        txn.commit("append", properties.clone(), now).await.unwrap();
        // Then one commit claims partition 1 only, keeping the property.
        let mut txn = table.begin("new", now).await.unwrap();
        txn.claim(claim_id(&("plays".into(), 1)), 9);
        txn.commit("append", properties, now).await.unwrap();

        let txn = table.begin("reader", now).await.unwrap();
        let known = partitions(&[("plays", 0), ("plays", 1), ("plays", 2)]);
        let offsets = recorded(&txn, &known).await.unwrap();
        assert_eq!(offsets["plays"], BTreeMap::from([(0, 5), (1, 9)]));
    }

    #[test]
    fn a_report_says_what_was_dropped_and_why() {
        let report = KafkaReport {
            taken: BTreeMap::from([("plays:0".to_string(), 3)]),
            batches: 1,
            dropped_batches: 2,
            ..KafkaReport::default()
        };
        let text = render("events", &report, Some(4), 3);
        assert!(
            text.contains("2 micro-batches dropped: another member"),
            "{text}"
        );
        let quiet = render("events", &KafkaReport::default(), None, 0);
        assert!(!quiet.contains("dropped"), "{quiet}");
    }

    #[test]
    fn claim_ids_name_the_topic_and_partition() {
        assert_eq!(
            claim_id(&("listening-events".into(), 3)),
            "kafka/listening-events/3"
        );
    }
}
