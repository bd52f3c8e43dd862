//! Kafka through librdkafka: the client settings, `kafka://` targets, a
//! producer, and a group consumer that starts each partition it is
//! assigned where the caller's own offset store says: the offsets recorded
//! with the data they cover, not the group's committed offsets, are what
//! a consumer resumes from.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::secret::Secret;

/// How bronze tables fed by Kafka topics consume them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Bootstrap brokers, comma-separated `host:port`.
    pub brokers: String,
    /// Consumer group prefix: a table consumes as group `<group>.<table>`.
    pub group: String,
    /// Under the daemon, a micro-batch is published after this long (or at
    /// `[ingest] commit_mib` of input, whichever comes first).
    pub batch_secs: u64,
    /// How long to wait for brokers, metadata and a partition assignment
    /// before giving up with an error.
    pub timeout_secs: u64,
    /// librdkafka client properties passed through (SASL, TLS, timeouts),
    /// like `"security.protocol" = "SASL_SSL"`. From the environment,
    /// `SOUNDLAKE__KAFKA__CLIENT__SASL_PASSWORD` sets `sasl.password`.
    /// Values are kept out of logs and dumps.
    pub client: std::collections::BTreeMap<String, crate::secret::Secret>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: "localhost:9092".into(),
            group: "soundlake".into(),
            batch_secs: 10,
            timeout_secs: 60,
            client: Default::default(),
        }
    }
}

impl KafkaSettings {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.brokers.split(',').any(|b| b.trim().is_empty()) {
            return Err(Error::config(
                "[kafka] brokers",
                format!("{:?} names no broker", self.brokers),
                "give host:port, or several separated by commas (default localhost:9092)",
            ));
        }
        if self.group.trim().is_empty() {
            return Err(Error::config(
                "[kafka] group",
                "the consumer group prefix is empty",
                "give a name (default \"soundlake\"); tables consume as <group>.<table>",
            ));
        }
        for (key, value, range) in [
            ("batch_secs", self.batch_secs, 1..=3600),
            ("timeout_secs", self.timeout_secs, 1..=3600),
        ] {
            if !range.contains(&value) {
                return Err(Error::config(
                    format!("[kafka] {key}"),
                    format!("{value} s is out of range"),
                    format!("give {} to {} seconds", range.start(), range.end()),
                ));
            }
        }
        Ok(())
    }
}

/// Topic → partition → the offset of the next message to take.
pub type Offsets = BTreeMap<String, BTreeMap<i32, i64>>;

/// A topic partition.
pub type Partition = (String, i32);

/// Properties soundlake sets itself, and why a user may not.
const MANAGED: [(&str, &str); 5] = [
    (
        "bootstrap.servers",
        "set [kafka] brokers (or the host:port of a kafka:// URL)",
    ),
    (
        "group.id",
        "set [kafka] group; each table consumes as <group>.<table>",
    ),
    (
        "enable.auto.commit",
        "soundlake commits offsets itself, after the data they cover is published",
    ),
    (
        "enable.auto.offset.store",
        "soundlake commits offsets itself, after the data they cover is published",
    ),
    (
        "enable.partition.eof",
        "soundlake uses it to tell when a bounded run has caught up",
    ),
];

/// Parts of a property name whose values are credentials.
const SECRET_PARTS: [&str; 5] = ["password", "secret", "jaas", "token", "key"];

/// The group session a consumer asks for unless `[kafka.client]` sets one.
const SESSION_TIMEOUT_MS: u64 = 10_000;
/// librdkafka's heartbeat interval, the longest soundlake picks.
const HEARTBEAT_INTERVAL_MS: u64 = 3_000;

/// A consumer's session timeout and heartbeat interval, in milliseconds:
/// those `properties` set, else a heartbeat every third of the session (at
/// most librdkafka's 3 s). A heartbeat no shorter than the session would
/// let the brokers drop a live member between two heartbeats and hand its
/// partitions round again, mid-run.
fn group_timing(properties: &BTreeMap<String, Secret>) -> Result<(u64, u64)> {
    let millis = |name: &str| -> Result<Option<u64>> {
        let Some(value) = properties.get(name) else {
            return Ok(None);
        };
        let text = value.expose().trim();
        text.parse().map(Some).map_err(|_| {
            Error::config(
                format!("[kafka.client] {name}"),
                format!("{text:?} is not a whole number of milliseconds"),
                "give milliseconds, such as 10000",
            )
        })
    };
    let session = millis("session.timeout.ms")?.unwrap_or(SESSION_TIMEOUT_MS);
    let heartbeat =
        millis("heartbeat.interval.ms")?.unwrap_or((session / 3).clamp(1, HEARTBEAT_INTERVAL_MS));
    if heartbeat >= session {
        return Err(Error::config(
            "[kafka.client] heartbeat.interval.ms",
            format!(
                "a heartbeat every {heartbeat} ms is not within the {session} ms session \
                 (session.timeout.ms): the brokers would drop a live consumer between heartbeats"
            ),
            format!(
                "set it to at most a third of the session ({} ms), or leave it out",
                session / 3
            ),
        ));
    }
    Ok((session, heartbeat))
}

/// Connection settings for one cluster.
#[derive(Debug, Clone)]
pub struct Client {
    brokers: String,
    /// librdkafka properties, names normalised (`sasl_password` →
    /// `sasl.password`).
    properties: BTreeMap<String, Secret>,
    /// A consumer's session timeout and heartbeat interval, in ms.
    group_timing: (u64, u64),
    timeout: Duration,
}

impl Client {
    /// The cluster of `[kafka]`, or of `brokers` when given (a `kafka://`
    /// URL's); `[kafka.client]` properties apply either way.
    pub fn new(settings: &KafkaSettings, brokers: Option<&str>) -> Result<Client> {
        let mut properties = BTreeMap::new();
        for (key, value) in &settings.client {
            let name = key.trim().to_ascii_lowercase().replace('_', ".");
            if let Some((_, why)) = MANAGED.iter().find(|(m, _)| *m == name) {
                return Err(Error::config(
                    format!("[kafka.client] {name}"),
                    "this property is soundlake's to set",
                    format!("remove it: {why}"),
                ));
            }
            properties.insert(name, value.clone());
        }
        Ok(Client {
            brokers: brokers.unwrap_or(&settings.brokers).trim().to_string(),
            group_timing: group_timing(&properties)?,
            properties,
            timeout: Duration::from_secs(settings.timeout_secs),
        })
    }

    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set_log_level(RDKafkaLogLevel::Error);
        for (name, value) in &self.properties {
            config.set(name, value.expose());
        }
        config
    }

    /// `text` with any credential of the properties replaced by `***`.
    fn scrub(&self, text: impl std::fmt::Display) -> String {
        let mut text = text.to_string();
        for (name, value) in &self.properties {
            let secret = SECRET_PARTS.iter().any(|p| name.contains(p));
            if secret && !value.is_empty() {
                text = text.replace(value.expose(), "***");
            }
        }
        text
    }

    /// An error about this cluster, credentials scrubbed.
    pub fn error(&self, problem: impl std::fmt::Display, fix: impl Into<String>) -> Error {
        Error::Kafka {
            brokers: self.brokers.clone(),
            problem: self.scrub(problem),
            fix: fix.into(),
        }
    }

    fn create<T: rdkafka::config::FromClientConfig>(&self, config: &ClientConfig) -> Result<T> {
        config.create().map_err(|e| match e {
            // The value is left out: it may be a credential.
            KafkaError::ClientConfig(_, description, key, _) => Error::config(
                format!("[kafka.client] {key}"),
                description,
                "use a librdkafka property name and value \
                 (https://docs.confluent.io/platform/current/clients/librdkafka/html/md_CONFIGURATION.html)",
            ),
            other => self.error(other, "check [kafka] brokers and [kafka.client]"),
        })
    }

    /// Every partition of `topics`; an error names a topic that does not
    /// exist or brokers that do not answer.
    pub async fn partitions(&self, topics: &[String]) -> Result<BTreeSet<Partition>> {
        let consumer: BaseConsumer = self.create(&self.config())?;
        let (client, topics) = (self.clone(), topics.to_vec());
        let blocking = tokio::task::spawn_blocking(move || {
            let mut found = BTreeSet::new();
            for topic in &topics {
                let metadata = consumer
                    .fetch_metadata(Some(topic), client.timeout)
                    .map_err(|e| client.unreachable(e))?;
                match metadata.topics().first() {
                    Some(meta) if meta.error().is_none() && !meta.partitions().is_empty() => {
                        found.extend(meta.partitions().iter().map(|p| (topic.clone(), p.id())));
                    }
                    _ => return Err(client.no_topic(topic)),
                }
            }
            Ok(found)
        });
        blocking.await.expect("the metadata lookup does not panic")
    }

    fn unreachable(&self, e: KafkaError) -> Error {
        self.error(
            format!("no answer within {} s ({e})", self.timeout.as_secs()),
            "check that the brokers run and [kafka] brokers names them (host:port); \
             for TLS or SASL set [kafka.client] security.protocol and its properties",
        )
    }

    fn no_topic(&self, topic: &str) -> Error {
        self.error(
            format!("topic {topic:?} does not exist"),
            "create it (or let producers create it), or fix the topic in the bronze definition",
        )
    }

    pub fn producer(&self) -> Result<Producer> {
        let mut config = self.config();
        config
            .set("enable.idempotence", "true")
            .set("linger.ms", "20")
            .set(
                "message.timeout.ms",
                (self.timeout.as_millis().max(1)).to_string(),
            );
        Ok(Producer {
            inner: self.create(&config)?,
            client: self.clone(),
        })
    }

    /// A member of `group` that starts each partition it is assigned at
    /// the offset `start` holds for it (else the group's committed offset,
    /// else the earliest).
    pub fn consumer(&self, group: &str, start: Arc<Mutex<Offsets>>) -> Result<GroupConsumer> {
        let (session, heartbeat) = self.group_timing;
        let mut config = self.config();
        // Prefetching stops at `queued.max.messages.kbytes` (64 MiB) rather
        // than at librdkafka's default of 100,000 messages: with messages of
        // a few hundred bytes the consumer emptied that queue and then
        // waited on the brokers, idle most of the time (bronze from a topic
        // of 1M events: 4.6 s against 11-13 s). Once over that threshold, a
        // partition's next fetch waits `fetch.queue.backoff.ms`, 1 s by
        // default: longer than the consumer takes to empty 64 MiB, so it
        // sat idle for half a second at a time (3.7 s against 4.7-5.0 s).
        config
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", session.to_string())
            .set("heartbeat.interval.ms", heartbeat.to_string())
            .set("queued.min.messages", "10000000")
            .set("fetch.queue.backoff.ms", "10");
        // Pass-through properties win over the defaults above...
        for (name, value) in &self.properties {
            config.set(name, value.expose());
        }
        // ...but not over these.
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true");
        let context = Assignments {
            start,
            changes: Mutex::default(),
            client: self.clone(),
        };
        let inner = config
            .create_with_context(context)
            .map_err(|e| self.error(e, "check [kafka.client]"))?;
        Ok(GroupConsumer {
            inner: Arc::new(inner),
            client: self.clone(),
        })
    }
}

/// `kafka://host:port[,host:port...]/topic`: brokers and a topic.
pub fn parse_target(url: &str) -> Result<(String, String)> {
    let bad = |problem: &str| {
        Error::config(
            crate::secret::redact_url(url),
            problem,
            "write kafka://host:port/topic, like kafka://localhost:9092/listening-events \
             (credentials go in [kafka.client] sasl.username and sasl.password)",
        )
    };
    let rest = url
        .strip_prefix("kafka://")
        .ok_or_else(|| bad("not a kafka:// URL"))?;
    let (brokers, topic) = rest
        .split_once('/')
        .ok_or_else(|| bad("no topic after the brokers"))?;
    if brokers.contains('@') {
        return Err(bad("credentials do not go in the URL"));
    }
    let valid_broker = |b: &str| {
        b.rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
    };
    if brokers.is_empty() || !brokers.split(',').all(valid_broker) {
        return Err(bad("brokers must be host:port, separated by commas"));
    }
    let topic_ok = (1..=249).contains(&topic.len())
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !topic_ok || topic == "." || topic == ".." {
        return Err(bad(
            "the topic must be 1 to 249 letters, digits, '.', '_' or '-'",
        ));
    }
    Ok((brokers.to_string(), topic.to_string()))
}

/// Sends records to a topic.
pub struct Producer {
    inner: FutureProducer,
    client: Client,
}

/// Records in flight at once while sending.
const IN_FLIGHT: usize = 10_000;

impl Producer {
    pub fn brokers(&self) -> &str {
        self.client.brokers()
    }

    /// Create `topic` with `partitions` partitions unless it exists.
    pub async fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = self.client.create(&self.client.config())?;
        let options = AdminOptions::new().operation_timeout(Some(self.client.timeout));
        let created = admin
            .create_topics(
                &[NewTopic::new(
                    topic,
                    partitions,
                    TopicReplication::Fixed(-1),
                )],
                &options,
            )
            .await
            .map_err(|e| self.client.unreachable(e))?;
        match created.into_iter().next() {
            Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | Some(Ok(_)) | None => Ok(()),
            Some(Err((_, code))) => Err(self.client.error(
                format!("cannot create topic {topic:?}: {code}"),
                "create the topic yourself, or check the client's rights on the cluster",
            )),
        }
    }

    /// Send `(key, payload)` records to `topic`, many in flight at once;
    /// returns when the brokers have them all.
    pub async fn send_all(
        &self,
        topic: &str,
        records: impl IntoIterator<Item = (String, String)>,
    ) -> Result<u64> {
        let mut sends = futures::stream::iter(records)
            .map(|(key, payload)| async move {
                let record = FutureRecord::to(topic).key(&key).payload(&payload);
                self.inner
                    .send(record, self.client.timeout)
                    .await
                    .map_err(|(e, _)| e)
            })
            .buffer_unordered(IN_FLIGHT);
        let mut sent = 0u64;
        while let Some(result) = sends.next().await {
            result.map_err(|e| {
                self.client.error(
                    format!("sending to {topic:?} failed: {e}"),
                    "check that the brokers run and the topic exists",
                )
            })?;
            sent += 1;
        }
        Ok(sent)
    }
}

/// What a consumer was given by the group, as rebalances change it.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    /// The partitions it owns now.
    pub owned: BTreeSet<Partition>,
    /// Whether partitions were taken away since the caller last looked.
    pub revoked: bool,
    /// Whether partitions were given since the caller last looked.
    pub assigned: bool,
}

/// The consumer's context: applies the caller's start offsets to each
/// assignment and notes what rebalances change.
pub struct Assignments {
    start: Arc<Mutex<Offsets>>,
    changes: Mutex<Changes>,
    /// For scrubbing credentials out of what librdkafka reports.
    client: Client,
}

impl ClientContext for Assignments {
    fn error(&self, error: KafkaError, reason: &str) {
        // Reaching a partition's end is news for the poll, not a problem.
        let caught_up = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !caught_up {
            let problem = self.client.scrub(format!("{error}: {reason}"));
            tracing::warn!(brokers = %self.client.brokers, %problem, "Kafka client");
        }
    }
}

impl ConsumerContext for Assignments {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let mut changes = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        let parts: Vec<Partition> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let start = self.start.lock().unwrap_or_else(PoisonError::into_inner);
                for (topic, partition) in &parts {
                    if let Some(offset) = start.get(topic).and_then(|p| p.get(partition)) {
                        let _ =
                            tpl.set_partition_offset(topic, *partition, Offset::Offset(*offset));
                    }
                }
                changes.owned.extend(parts);
                changes.assigned = true;
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                for part in &parts {
                    changes.owned.remove(part);
                }
                changes.revoked = true;
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    changes.owned.clear();
                    consumer.unassign()
                }
            }
            other => {
                tracing::warn!(error = ?other, "Kafka rebalance failed; giving up the assignment");
                changes.owned.clear();
                changes.revoked = true;
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "Kafka (un)assignment failed");
        }
    }
}

/// A message, or what else a poll brought.
#[derive(Debug)]
pub enum Polled {
    Message {
        topic: String,
        partition: i32,
        offset: i64,
        /// Milliseconds since the epoch: when it was produced (or appended).
        timestamp: Option<i64>,
        /// `None` for a message without a value (a tombstone).
        payload: Option<Vec<u8>>,
    },
    /// Partition `n` of some subscribed topic has no more messages now.
    CaughtUp(i32),
    /// A problem the client reported (it retries on its own).
    Problem(String),
    /// The brokers refuse what the settings ask; retrying cannot help.
    Refused(Error),
    /// Nothing within the wait.
    Idle,
}

/// What to change when the brokers refuse a consumer for good, by the
/// refusal; `None` for problems the client gets past by retrying.
fn refusal_fix(code: RDKafkaErrorCode) -> Option<&'static str> {
    Some(match code {
        RDKafkaErrorCode::InvalidSessionTimeout => {
            "set [kafka.client] session.timeout.ms within the brokers' \
             group.min.session.timeout.ms and group.max.session.timeout.ms (6 s and 30 min \
             unless the cluster says otherwise)"
        }
        RDKafkaErrorCode::GroupAuthorizationFailed | RDKafkaErrorCode::TopicAuthorizationFailed => {
            "grant these credentials Read on the topics and on the consumer group \
             ([kafka] group, with the table's name appended)"
        }
        RDKafkaErrorCode::SaslAuthenticationFailed => {
            "check [kafka.client] sasl.mechanism, sasl.username and sasl.password"
        }
        _ => return None,
    })
}

/// A consumer group member (see [`Client::consumer`]).
pub struct GroupConsumer {
    inner: Arc<StreamConsumer<Assignments>>,
    client: Client,
}

impl GroupConsumer {
    pub fn subscribe(&self, topics: &[String]) -> Result<()> {
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        self.inner
            .subscribe(&topics)
            .map_err(|e| self.client.error(e, "check the topic names"))
    }

    /// The next messages, up to `most` of them or the first to reach
    /// `bytes` of payload: waits at most `wait` for the first, then takes
    /// those already fetched. Rebalances happen inside this call.
    pub async fn next(&self, wait: Duration, most: usize, bytes: u64) -> Vec<Polled> {
        // One stream for the whole batch: each registers a waker with the
        // consumer. Like `recv`, it never ends.
        let mut stream = self.inner.stream();
        let Ok(first) = tokio::time::timeout(wait, stream.next()).await else {
            return vec![Polled::Idle];
        };
        let mut polled = Vec::with_capacity(most.min(1024));
        polled.push(self.polled(first));
        let mut held = 0;
        loop {
            if let Some(Polled::Message { payload, .. }) = polled.last() {
                held += payload.as_ref().map_or(0, |p| p.len() as u64);
            }
            if polled.len() >= most || held >= bytes {
                return polled;
            }
            match stream.next().now_or_never() {
                Some(next) => polled.push(self.polled(next)),
                None => return polled,
            }
        }
    }

    fn polled(&self, received: Option<KafkaResult<BorrowedMessage<'_>>>) -> Polled {
        match received.expect("Kafka message streams never end") {
            Ok(m) => Polled::Message {
                topic: m.topic().to_string(),
                partition: m.partition(),
                offset: m.offset(),
                timestamp: m.timestamp().to_millis(),
                payload: m.payload().map(<[u8]>::to_vec),
            },
            Err(KafkaError::PartitionEOF(partition)) => Polled::CaughtUp(partition),
            Err(KafkaError::MessageConsumption(code)) if let Some(fix) = refusal_fix(code) => {
                Polled::Refused(self.client.error(
                    format!("the brokers refuse to serve this consumer: {code}"),
                    fix,
                ))
            }
            Err(e) => Polled::Problem(self.client.scrub(e)),
        }
    }

    /// The partitions this member owns, and whether any were taken away
    /// or given since the last call.
    pub fn changes(&self) -> Changes {
        let mut changes = self
            .inner
            .context()
            .changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = changes.clone();
        changes.revoked = false;
        changes.assigned = false;
        now
    }

    /// Fetch `partition` from `offset` next. Returns whether it could: a
    /// partition no longer assigned is its new owner's to read.
    pub async fn seek(&self, (topic, partition): &Partition, offset: i64) -> bool {
        let consumer = self.inner.clone();
        let (topic, partition) = (topic.clone(), *partition);
        tokio::task::spawn_blocking(move || {
            consumer.seek(
                &topic,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(5),
            )
        })
        .await
        .expect("a seek does not panic")
        .is_ok()
    }

    /// Commit `offsets` to the group, so lag monitors and other tools see
    /// the progress. Fails while the group rebalances.
    pub async fn commit(&self, offsets: &Offsets) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        for (topic, partitions) in offsets {
            for (partition, offset) in partitions {
                tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                    .map_err(|e| self.client.error(e, "report this as a bug"))?;
            }
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        let consumer = self.inner.clone();
        let committed =
            tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
                .await
                .expect("a commit does not panic");
        committed.map_err(|e| {
            self.client.error(
                format!("committing offsets failed: {e}"),
                "nothing is lost: the offsets are recorded with the data, and the group's \
                 offsets catch up at the next commit",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(client: &[(&str, &str)]) -> KafkaSettings {
        KafkaSettings {
            client: client
                .iter()
                .map(|(k, v)| (k.to_string(), Secret::new(*v)))
                .collect(),
            ..KafkaSettings::default()
        }
    }

    #[test]
    fn targets_name_brokers_and_one_topic() {
        assert_eq!(
            parse_target("kafka://a:9092,b:9093/listening-events").unwrap(),
            ("a:9092,b:9093".into(), "listening-events".into())
        );
        for (url, problem) in [
            ("kafka:/a:1/t", "not a kafka:// URL"),
            ("kafka://a:1", "no topic"),
            ("kafka://a:1/", "the topic must be"),
            ("kafka://a:1/t/u", "the topic must be"),
            ("kafka://a:x/t", "host:port"),
            ("kafka://:1/t", "host:port"),
            ("kafka://a:1,/t", "host:port"),
            ("kafka://u:secret-pw@a:1/t", "credentials"),
        ] {
            let err = parse_target(url).unwrap_err().to_string();
            assert!(err.contains(problem), "{url}: {err}");
            assert!(!err.contains("secret-pw"), "{err}");
        }
    }

    #[test]
    fn property_names_from_the_environment_become_librdkafka_names() {
        let client = Client::new(
            &settings(&[("SASL_MECHANISM", "PLAIN"), ("ssl.ca.location", "/ca.pem")]),
            None,
        )
        .unwrap();
        let names: Vec<&str> = client.properties.keys().map(String::as_str).collect();
        assert_eq!(names, ["sasl.mechanism", "ssl.ca.location"]);
        assert_eq!(client.brokers(), "localhost:9092");
        let other = Client::new(&settings(&[]), Some("k1:9092")).unwrap();
        assert_eq!(other.brokers(), "k1:9092");
    }

    #[test]
    fn properties_soundlake_sets_are_refused_with_the_reason() {
        for name in ["enable.auto.commit", "GROUP_ID", "bootstrap.servers"] {
            let err = Client::new(&settings(&[(name, "x")]), None)
                .unwrap_err()
                .to_string();
            assert!(err.contains("soundlake's to set"), "{name}: {err}");
        }
    }

    #[test]
    fn heartbeats_fall_within_the_session() {
        let timing =
            |client: &[(&str, &str)]| Client::new(&settings(client), None).map(|c| c.group_timing);
        assert_eq!(timing(&[]).unwrap(), (10_000, 3_000));
        // A short session gets heartbeats at a third of it, a long one
        // librdkafka's 3 s; what the user sets stands.
        assert_eq!(
            timing(&[("session_timeout_ms", "2000")]).unwrap(),
            (2_000, 666)
        );
        assert_eq!(
            timing(&[("session.timeout.ms", "45000")]).unwrap(),
            (45_000, 3_000)
        );
        let both = [
            ("session.timeout.ms", "2000"),
            ("heartbeat.interval.ms", "500"),
        ];
        assert_eq!(timing(&both).unwrap(), (2_000, 500));
        for (client, says) in [
            (
                &[
                    ("session.timeout.ms", "2000"),
                    ("heartbeat.interval.ms", "3000"),
                ][..],
                "a heartbeat every 3000 ms is not within the 2000 ms session",
            ),
            (
                &[("heartbeat.interval.ms", "10000")],
                "within the 10000 ms session",
            ),
            (
                &[("session.timeout.ms", "ten")],
                "\"ten\" is not a whole number",
            ),
            (
                &[("heartbeat.interval.ms", "-1")],
                "[kafka.client] heartbeat.interval.ms",
            ),
        ] {
            let err = timing(client).unwrap_err().to_string();
            assert!(err.contains(says), "{client:?}: {err}");
        }
        let err = timing(&[
            ("heartbeat.interval.ms", "2500"),
            ("session.timeout.ms", "2000"),
        ]);
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("at most a third of the session (666 ms)")
        );
    }

    #[test]
    fn credentials_are_scrubbed_from_messages_and_dumps() {
        let s = settings(&[
            ("sasl.password", "pw-1234"),
            ("ssl.key.password", "kp-5678"),
            ("sasl.username", "alice"),
        ]);
        let client = Client::new(&s, None).unwrap();
        let err = client
            .error("auth failed for alice with pw-1234 and kp-5678", "fix it")
            .to_string();
        assert!(err.contains("alice"), "{err}");
        assert!(
            !err.contains("pw-1234") && !err.contains("kp-5678"),
            "{err}"
        );
        let dump = format!("{s:?} {client:?} {}", serde_json::to_string(&s).unwrap());
        for secret in ["pw-1234", "kp-5678"] {
            assert!(!dump.contains(secret), "{dump}");
        }
    }
}
