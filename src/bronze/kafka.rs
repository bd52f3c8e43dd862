//! Bronze from Kafka: the JSON messages of topics, each message once.
//!
//! Every commit of the table records, per topic partition, the offset of
//! the next message to take, in the same commit as the rows; the consumer
//! group's offsets are committed to Kafka only after that, for lag
//! monitors. A member starts each partition it is assigned at the table's
//! recorded offset, so after a crash or a rebalance the messages already
//! published are recognised and skipped, and the rest are read again. A
//! producer's duplicate (one event under two offsets) is silver's dedupe.
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
use serde_json::json;
use tokio::sync::watch;

use super::records::{self, MAX_RECORD_BYTES, Origin, Pending, Publisher, Taken};
use super::{BronzeTable, IngestSettings, LOCK_LEASE};
use crate::clock::SharedClock;
use crate::error::Result;
use crate::kafka::{Client, GroupConsumer, KafkaSettings, Offsets, Partition, Polled};
use crate::lake::{Lake, Transaction};
use crate::landing::{SharedStore, lease};

/// The longest a poll waits before the run looks at its clock and flags.
const POLL: Duration = Duration::from_millis(200);

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
    /// The table's lock and its holder, renewed at each publish.
    pub lock: (&'a str, &'a str),
    pub def: &'a BronzeTable,
    pub topics: &'a [String],
    pub ingest: &'a IngestSettings,
    pub kafka: &'a KafkaSettings,
    pub run_id: &'a str,
}

/// Where a run stands between publishes.
struct Progress {
    txns: Option<(Transaction, Transaction)>,
    /// The table's recorded offsets, and its quarantine's.
    at: Offsets,
    quarantined_at: Offsets,
    /// The recorded offsets plus what `pending` holds.
    next: Offsets,
    pending: Pending,
    /// When the pending batch took its first message: its rows' stamp.
    batch_started: Option<DateTime<Utc>>,
    last_renewal: DateTime<Utc>,
    /// Whether the group holds the recorded offsets.
    committed: bool,
    version: Option<u64>,
    rows: u64,
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
}

/// What one poll brought.
enum Received {
    /// A message taken, or a partition caught up: the run is moving.
    Moved,
    Problem(String),
    /// A message left for its owner, taken before, or past a bounded
    /// run's end: poll again at once.
    Skipped,
    Nothing,
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
        let txns = self.publisher().begin(now).await?;
        let at: Offsets = records::positions(&txns.0, "kafka");
        let mut report = KafkaReport {
            group: group.clone(),
            offsets: at.clone(),
            ..KafkaReport::default()
        };
        let mut progress = Progress {
            quarantined_at: records::positions(&txns.1, "kafka"),
            rows: txns.0.base().rows(),
            txns: Some(txns),
            next: at.clone(),
            at,
            pending: Pending::default(),
            batch_started: None,
            last_renewal: now,
            committed: true,
            version: None,
        };

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
        let start = Arc::new(Mutex::new(progress.at.clone()));
        let consumer = client.consumer(&group, start.clone())?;
        consumer.subscribe(self.topics)?;
        let limit = self.ingest.commit_mib * 1024 * 1024;
        let batch_age = TimeDelta::seconds(i64::try_from(self.kafka.batch_secs).unwrap_or(3600));
        let (mut moved, mut problem) = (Instant::now(), None::<String>);
        loop {
            let polled = consumer.next(POLL).await;
            let (owned, revoked) = consumer.changes();
            if revoked && !progress.pending.is_empty() {
                // Publish what the revoked partitions gave before another
                // member starts them from the recorded offsets.
                self.publish(&mut progress, &consumer, &start, &mut report)
                    .await?;
            }
            match self.receive(polled, &owned, &mut ends, &mut progress, &mut report)? {
                Received::Moved => moved = Instant::now(),
                Received::Problem(text) => problem = Some(text),
                Received::Skipped => continue,
                Received::Nothing => {}
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
                .batch_started
                .is_some_and(|started| !ends.bounded && now - started >= batch_age);
            let ending = stopping || finished || waited_out;
            if full || due || (ending && !progress.pending.is_empty()) {
                self.publish(&mut progress, &consumer, &start, &mut report)
                    .await?;
            } else if now - progress.last_renewal >= LOCK_LEASE / 4 {
                self.renew(&mut progress).await?;
            }
            if ending {
                break;
            }
        }
        if !progress.committed {
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
                self.take(progress, &part, offset, payload.as_deref(), report);
                Ok(Received::Moved)
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
        if ends.done.is_empty() && report.taken.is_empty() {
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

    /// Take one message as a row, or quarantine it.
    fn take(
        &self,
        progress: &mut Progress,
        part: &Partition,
        offset: i64,
        payload: Option<&[u8]>,
        report: &mut KafkaReport,
    ) {
        let stamp = *progress
            .batch_started
            .get_or_insert_with(|| self.clock.now());
        let bytes = payload.unwrap_or_default();
        progress.pending.bytes += bytes.len() as u64;
        set_offset(&mut progress.next, part, offset + 1);
        *report
            .taken
            .entry(format!("{}:{}", part.0, part.1))
            .or_default() += 1;
        let origin = Origin::Message {
            topic: part.0.clone(),
            partition: part.1,
            offset,
        };
        let record = match payload {
            None => Err("a message without a value (a tombstone) is not a record".to_string()),
            Some(b) if b.len() > MAX_RECORD_BYTES => {
                Err(format!("longer than {MAX_RECORD_BYTES} bytes"))
            }
            Some(b) => match std::str::from_utf8(b) {
                Err(_) => Err("not UTF-8 text".to_string()),
                Ok(text) => {
                    let text = text.trim_start_matches('\u{feff}').trim();
                    records::json_object(text)
                        .and_then(|object| records::check(self.def, &object))
                        .map(|checked| (checked, text.to_string()))
                }
            },
        };
        match record {
            Ok((checked, doc)) => {
                let stamp = stamp.timestamp_micros();
                progress
                    .pending
                    .row(self.def, &origin, checked, doc, (stamp, self.run_id));
                report.rows += 1;
            }
            Err(problem) => {
                // The quarantine holds it already when a crash came between
                // its commit and the table's.
                let seen = offset_of(&progress.quarantined_at, part).is_some_and(|q| offset < q);
                if !seen {
                    progress.pending.reject(origin, problem, bytes);
                    report.quarantined += 1;
                }
            }
        }
    }

    /// Publish the pending batch with its offsets, then commit them to the
    /// group: a crash between the two leaves the group behind the table,
    /// and the next member skips what the table holds.
    async fn publish(
        &self,
        progress: &mut Progress,
        consumer: &GroupConsumer,
        start: &Mutex<Offsets>,
        report: &mut KafkaReport,
    ) -> Result<()> {
        let now = self.clock.now();
        let publisher = self.publisher();
        fail::fail_point!("kafka-before-publish");
        let pending = std::mem::take(&mut progress.pending);
        let quarantined_at = furthest(&progress.next, &progress.quarantined_at);
        let txns = progress.txns.take().expect("a transaction is open");
        let snapshot = publisher
            .publish(
                txns,
                (json!(progress.next), json!(quarantined_at)),
                pending,
                now,
            )
            .await?;
        progress.at = progress.next.clone();
        progress.quarantined_at = quarantined_at;
        progress.batch_started = None;
        progress.version = Some(snapshot.version);
        progress.rows = snapshot.rows();
        report.batches += 1;
        *start.lock().unwrap_or_else(PoisonError::into_inner) = progress.at.clone();
        fail::fail_point!("kafka-after-publish");
        progress.committed = consumer.commit(&progress.at).await.is_ok();
        tracing::info!(
            table = %self.def.name,
            version = snapshot.version,
            rows = snapshot.rows(),
            "published a Kafka micro-batch"
        );
        self.renew(progress).await?;
        progress.txns = Some(publisher.begin(now).await?);
        Ok(())
    }

    /// The group's offsets could not be committed after the last publish
    /// (a rebalance was under way): try again while serving the group,
    /// until the run's timeout. Messages polled meanwhile are not taken;
    /// the next run starts at the recorded offsets.
    async fn commit_at_end(&self, progress: &Progress, consumer: &GroupConsumer, client: &Client) {
        let waited = Instant::now();
        loop {
            match consumer.commit(&progress.at).await {
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
                    consumer.next(POLL).await;
                }
            }
        }
    }

    async fn renew(&self, progress: &mut Progress) -> Result<()> {
        let (lock, holder) = self.lock;
        progress.last_renewal = self.clock.now();
        lease::hold(self.store, lock, holder, progress.last_renewal, LOCK_LEASE).await
    }
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
    for (partition, n) in &r.taken {
        out.push_str(&format!("\n  {partition}: {n} messages"));
    }
    if let Some(why) = &r.stopped_early {
        out.push_str(&format!("\n  stopped early: {why}"));
    }
    out
}
