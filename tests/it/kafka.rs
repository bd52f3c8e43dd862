//! Listening events from Kafka, against a real Apache Kafka broker: a run takes
//! each message once and quarantines the malformed ones with topic,
//! partition and offset; SIGKILL between the bronze publish and the offset
//! commit (and at the other crash points) loses and doubles nothing; the
//! daemon streams in micro-batches through a rebalance; bad settings and
//! targets get clear errors that keep credentials out.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use super::events::Lake;
use super::listening::copy_of_definitions;
use super::servers::KafkaBroker;
use super::support::{files_ending, kill_when};

const TOPIC: &str = "listening-events";
/// The consumer group bronze.events uses: `<[kafka] group>.<table>`.
const GROUP: &str = "soundlake.events";

/// A deployment whose bronze.events reads a topic of a broker of its own.
struct KafkaLake {
    lake: Lake,
    defs: tempfile::TempDir,
    broker: KafkaBroker,
}

/// The shipped definitions with bronze.events reading `topic`.
fn kafka_definitions(topic: &str) -> tempfile::TempDir {
    let defs = copy_of_definitions();
    let bronze = defs.path().join("bronze/events.toml");
    let text = std::fs::read_to_string(&bronze).unwrap().replace(
        "source = { files = \"landing/events\" }",
        &format!("source = {{ kafka = \"{topic}\" }}"),
    );
    assert!(text.contains("kafka"), "the shipped definition changed");
    std::fs::write(&bronze, text).unwrap();
    defs
}

impl KafkaLake {
    fn new() -> KafkaLake {
        KafkaLake {
            lake: Lake::with_catalog(),
            defs: kafka_definitions(TOPIC),
            broker: KafkaBroker::start(),
        }
    }

    fn target(&self) -> String {
        format!("kafka://{}/{TOPIC}", self.broker.brokers())
    }

    /// `soundlake <args>` on the Kafka definitions: a short session
    /// timeout (the test broker allows 1 s and up), so a killed member's
    /// partitions come back quickly, and heartbeats well within it, so a
    /// member that is alive but not polling keeps them.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = self.lake.command(args);
        command
            .env("SOUNDLAKE__DEFINITIONS__DIR", self.defs.path())
            .env("SOUNDLAKE__KAFKA__BROKERS", self.broker.brokers())
            .env("SOUNDLAKE__KAFKA__CLIENT__SESSION_TIMEOUT_MS", "2000")
            .env("SOUNDLAKE__KAFKA__CLIENT__HEARTBEAT_INTERVAL_MS", "500")
            .env("SOUNDLAKE__KAFKA__TIMEOUT_SECS", "20");
        command
    }

    /// Make `toml` the one pipeline, `events_stream`.
    fn only_pipeline(&self, toml: &str) {
        let pipelines = self.defs.path().join("pipelines");
        std::fs::remove_dir_all(&pipelines).unwrap();
        std::fs::create_dir(&pipelines).unwrap();
        std::fs::write(pipelines.join("events_stream.toml"), toml).unwrap();
    }

    fn ok(&self, args: &[&str]) -> String {
        crate::support::succeed(&mut self.command(args))
    }

    fn run_bronze_and_silver(&self) {
        let select = "bronze.events,silver.events";
        self.ok(&["run", "listening_events", "--select", select]);
    }

    /// `generate events` to the topic: (distinct events, messages sent).
    fn produce_events(&self, days: &str, end: &str, events: &str, seed: &str) -> (i64, i64) {
        self.produce_to_partitions(days, end, events, seed, "3")
    }

    /// `produce_events` creating the topic with `partitions`.
    fn produce_to_partitions(
        &self,
        days: &str,
        end: &str,
        events: &str,
        seed: &str,
        partitions: &str,
    ) -> (i64, i64) {
        let target = self.target();
        let out = self.ok(&[
            "generate",
            "events",
            "--users",
            "60",
            "--events",
            events,
            "--days",
            days,
            "--end",
            end,
            "--seed",
            seed,
            "--to",
            &target,
            "--partitions",
            partitions,
            "--json",
        ]);
        let report: Value = serde_json::from_str(&out).unwrap();
        assert!(report["files"].as_array().unwrap().is_empty());
        (
            report["events"].as_i64().unwrap(),
            report["messages"].as_i64().unwrap(),
        )
    }

    /// Create the topic with `partitions` and no message yet.
    async fn create_topic(&self, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.broker.brokers())
            .create()
            .unwrap();
        let topic = NewTopic::new(TOPIC, partitions, TopicReplication::Fixed(1));
        let created = admin
            .create_topics(&[topic], &AdminOptions::new())
            .await
            .unwrap();
        created[0].as_ref().unwrap();
    }

    fn producer(&self) -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", self.broker.brokers())
            .create()
            .unwrap()
    }

    /// Send raw payloads (`None`: a tombstone); returns each one's
    /// (partition, offset).
    async fn send(&self, payloads: &[(&str, Option<&[u8]>)]) -> BTreeSet<(i64, i64)> {
        let producer = self.producer();
        let mut places = BTreeSet::new();
        for (key, payload) in payloads {
            let mut record = FutureRecord::<str, [u8]>::to(TOPIC).key(key);
            if let Some(p) = payload {
                record = record.payload(p);
            }
            let delivered = producer
                .send(record, Duration::from_secs(10))
                .await
                .unwrap();
            places.insert((i64::from(delivered.partition), delivered.offset));
        }
        places
    }

    fn count(&self, sql: &str) -> i64 {
        self.lake.query(sql)[0]["n"].as_i64().unwrap()
    }

    /// The commits of a bronze table.
    fn bronze_commits(&self, table: &str) -> usize {
        let dir = self
            .lake
            .dir
            .path()
            .join(format!("lake/bronze/{table}/_delta_log"));
        files_ending(&dir, ".json")
    }

    /// The group's committed offsets, by partition (absent: none). The
    /// broker may answer "not coordinator" while the group moves: asked
    /// again, it answers.
    fn committed(&self) -> BTreeMap<i32, i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.broker.brokers())
            .set("group.id", GROUP)
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(Some(TOPIC), Duration::from_secs(10))
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in metadata.topics()[0].partitions() {
            tpl.add_partition(TOPIC, p.id());
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let offsets = loop {
            match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
                Ok(offsets) => break offsets,
                Err(e) => assert!(Instant::now() < deadline, "{e}"),
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        offsets
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect()
    }
}

/// Malformed messages of every kind, under distinct keys so they spread
/// over the partitions.
const BAD: [(&str, Option<&[u8]>); 5] = [
    ("bad-a", Some(b"not json")),
    ("bad-b", Some(b"[1, 2, 3]")),
    (
        "bad-c",
        Some(br#"{"event_id":"e-bad","user_id":"u1","event_ts":"2026-11-20T10:00:00Z"}"#),
    ),
    ("bad-d", None),
    ("bad-e", Some(b"\xff\xfe not utf-8")),
];

#[tokio::test]
async fn a_run_takes_each_message_once_and_quarantines_the_malformed() {
    let k = KafkaLake::new();
    let (events, messages) = k.produce_events("2", "2026-11-20", "3000", "7");
    assert!(
        messages > events,
        "the generator delivers some events twice"
    );
    let bad = k.send(&BAD).await;

    k.run_bronze_and_silver();
    assert_eq!(
        k.count("SELECT count(*) AS n FROM bronze.events"),
        messages,
        "every well-formed message is a bronze row"
    );
    assert_eq!(
        k.count("SELECT count(DISTINCT endpoint) AS n FROM bronze.events"),
        messages,
        "no message twice"
    );
    let quarantined: BTreeSet<(i64, i64)> = k
        .lake
        .query("SELECT topic, \"partition\", \"offset\", problem FROM bronze.events_quarantine")
        .iter()
        .map(|r| {
            assert_eq!(r["topic"], TOPIC);
            assert!(!r["problem"].as_str().unwrap().is_empty());
            (
                r["partition"].as_i64().unwrap(),
                r["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(quarantined, bad, "each malformed message, at its place");
    let problems: Vec<Value> = k
        .lake
        .query("SELECT problem FROM bronze.events_quarantine ORDER BY problem");
    let problems: Vec<&str> = problems
        .iter()
        .map(|r| r["problem"].as_str().unwrap())
        .collect();
    for needle in [
        "not JSON",
        "a JSON array",
        "no track_id",
        "tombstone",
        "not UTF-8",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "{needle:?} in {problems:?}"
        );
    }
    let silver = k
        .lake
        .query("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM silver.events");
    assert_eq!(silver[0]["n"], events, "silver holds each event...");
    assert_eq!(silver[0]["d"], events, "...once");
    let committed: i64 = k.committed().values().sum();
    assert_eq!(
        committed,
        messages + BAD.len() as i64,
        "the group's offsets follow the table's"
    );

    // Nothing new: nothing written.
    let before = k.bronze_commits("events");
    let again = k.ok(&["bronze", "events"]);
    assert!(again.contains("no new messages"), "{again}");
    assert_eq!(k.bronze_commits("events"), before);

    // A day more: only the new messages.
    let (more_events, more) = k.produce_events("1", "2026-11-21", "500", "8");
    k.run_bronze_and_silver();
    assert_eq!(
        k.count("SELECT count(*) AS n FROM bronze.events"),
        messages + more
    );
    assert_eq!(
        k.count("SELECT count(DISTINCT event_id) AS n FROM silver.events"),
        events + more_events
    );
}

#[test]
fn killed_around_the_publish_it_loses_and_doubles_nothing() {
    let k = KafkaLake::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut bad = runtime.block_on(k.send(&BAD));
    // Over 1 MiB commits, the run publishes in several micro-batches.
    let (events, messages) = k.produce_events("3", "2026-11-20", "12000", "11");
    bad.extend(runtime.block_on(k.send(&BAD)));
    let bronze = |failpoints: &str| {
        let mut c = k.command(&["bronze", "events"]);
        c.env("SOUNDLAKE__INGEST__COMMIT_MIB", "1")
            .env("FAILPOINTS", failpoints);
        c
    };
    let commits = k.lake.dir.path().join("lake/bronze/events/_delta_log");
    let quarantine = k
        .lake
        .dir
        .path()
        .join("lake/bronze/events_quarantine/_delta_log");

    // 1. Between the bronze publish and the offset commit (the run creates
    // the table first, empty: version 0).
    assert!(kill_when(
        &mut bronze("kafka-after-publish=pause"),
        &commits,
        ".json",
        2
    ));
    assert!(
        k.committed().is_empty(),
        "killed before the group's offsets were committed"
    );
    // 2. Between the quarantine's commit and the table's.
    let q = files_ending(&quarantine, ".json");
    assert!(kill_when(
        &mut bronze("bronze-between-quarantine-and-rows=pause"),
        &quarantine,
        ".json",
        q + 1
    ));
    assert_eq!(k.bronze_commits("events"), 2, "the rows were not published");
    // 3. Mid-stream, before the second publish of a run.
    assert!(kill_when(
        &mut bronze("kafka-before-publish=1*off->pause"),
        &commits,
        ".json",
        3
    ));
    // 4. To the end.
    let out = bronze("").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(k.bronze_commits("events") >= 5, "several micro-batches");

    assert_eq!(
        k.count("SELECT count(*) AS n FROM bronze.events"),
        messages,
        "every message, none lost"
    );
    assert_eq!(
        k.count("SELECT count(DISTINCT endpoint) AS n FROM bronze.events"),
        messages,
        "none twice"
    );
    let quarantined = k.lake.query(
        "SELECT count(*) AS n, \
         count(DISTINCT CAST(\"partition\" AS VARCHAR) || ':' || CAST(\"offset\" AS VARCHAR)) AS d \
         FROM bronze.events_quarantine",
    );
    assert_eq!(quarantined[0]["n"].as_i64().unwrap(), bad.len() as i64);
    assert_eq!(quarantined[0]["d"].as_i64().unwrap(), bad.len() as i64);
    k.ok(&["silver", "events"]);
    assert_eq!(
        k.count("SELECT count(*) AS n FROM silver.events"),
        events,
        "silver: the events produced, each once"
    );
    assert_eq!(
        k.count("SELECT count(DISTINCT event_id) AS n FROM silver.events"),
        events
    );
    let committed: i64 = k.committed().values().sum();
    assert_eq!(committed, messages + bad.len() as i64);
}

/// Poll `soundlake query` until `sql`'s `n` is `expected` (a minute at
/// most); a table not yet written counts as not there yet.
async fn wait_for_count(k: &KafkaLake, sql: &str, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = count_if_there(k, sql);
        if n == Some(expected) {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}: {n:?}, never {expected}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `sql`'s `n` from `soundlake query`; none while its table is not written.
fn count_if_there(k: &KafkaLake, sql: &str) -> Option<i64> {
    let out = k.lake.run(&["query", "--format", "json", sql]);
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|rows| rows[0]["n"].as_i64())
}

#[tokio::test]
async fn a_run_ends_a_partition_at_its_first_message_stamped_after_it_began() {
    let lake = Lake::new();
    let broker = KafkaBroker::start();
    let defs = kafka_definitions(TOPIC);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .create()
        .unwrap();
    // One partition (one key), producers' clocks out of order: an hour ago,
    // an hour ahead, an hour ago again.
    let now = chrono::Utc::now().timestamp_millis();
    let mut offsets = Vec::new();
    for (i, at) in [now - 3_600_000, now + 3_600_000, now - 3_600_000]
        .into_iter()
        .enumerate()
    {
        let event = format!(
            r#"{{"event_id":"e{i}","user_id":"u","track_id":"t","event_type":"play","event_ts":"2026-11-20T10:00:0{i}Z"}}"#
        );
        let record = FutureRecord::to(TOPIC)
            .key("one-user")
            .payload(&event)
            .timestamp(at);
        let delivered = producer
            .send(record, Duration::from_secs(10))
            .await
            .unwrap();
        offsets.push((delivered.partition, delivered.offset));
    }
    let out = lake
        .command(&["bronze", "events", "--json"])
        .env("SOUNDLAKE__DEFINITIONS__DIR", defs.path())
        .env("SOUNDLAKE__KAFKA__BROKERS", broker.brokers())
        .env("SOUNDLAKE__KAFKA__CLIENT__SESSION_TIMEOUT_MS", "2000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let report = &report["tables"][0];
    assert_eq!(
        report["rows_written"], 1,
        "only the message before the start"
    );
    let (partition, first) = offsets[0];
    assert_eq!(
        report["kafka"]["offsets"][TOPIC][partition.to_string()],
        first + 1,
        "the partition resumes at the future message, so the one after it is not skipped"
    );
}

#[tokio::test]
async fn the_daemon_streams_micro_batches_through_a_rebalance() {
    let k = KafkaLake::new();
    // One pipeline, bronze and silver events, firing every second.
    k.only_pipeline(
        "schedule = \"* * * * * *\"\n[tasks.bronze]\ntables = [\"events\"]\n\
         [tasks.silver]\ntables = [\"events\"]\n",
    );
    let (events_a, a) = k.produce_events("1", "2026-11-19", "1500", "21");

    let mut command = k.command(&["daemon"]);
    command.env("SOUNDLAKE__KAFKA__BATCH_SECS", "1");
    let (mut child, _) = super::orchestrator::start_daemon(command).await;
    wait_for_count(&k, "SELECT count(*) AS n FROM bronze.events", a).await;

    // A second member joins the group: the daemon's partitions are revoked
    // and shared out again.
    let member: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", k.broker.brokers())
        .set("group.id", GROUP)
        .set("session.timeout.ms", "2000")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    member.subscribe(&[TOPIC]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while member.assignment().unwrap().count() == 0 {
        assert!(
            Instant::now() < deadline,
            "the member never got a partition"
        );
        member.poll(Duration::from_millis(100));
    }
    let (events_b, b) = k.produce_events("1", "2026-11-20", "1500", "22");
    // It reads some of them, takes nothing and leaves: its partitions go
    // back to the daemon, which resumes them at the table's offsets.
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while read < 100 && Instant::now() < deadline {
        if let Some(Ok(_)) = member.poll(Duration::from_millis(100)) {
            read += 1;
        }
    }
    assert!(read > 0, "the member owned partitions with messages");
    drop(member);

    wait_for_count(&k, "SELECT count(*) AS n FROM bronze.events", a + b).await;
    assert_eq!(
        k.count("SELECT count(DISTINCT endpoint) AS n FROM bronze.events"),
        a + b,
        "no message twice"
    );
    // The scheduled bronze task leaves the table to the stream; silver
    // follows it.
    wait_for_count(
        &k,
        "SELECT count(DISTINCT event_id) AS n FROM silver.events",
        events_a + events_b,
    )
    .await;

    // SIGTERM: the stream publishes what it holds and the daemon ends well.
    let pid = child.id().unwrap() as i32;
    // SAFETY: signalling a child process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = child.wait().await.unwrap();
    assert!(status.success(), "{status}");
}

/// A pipeline whose bronze.events the daemons stream, and that fires
/// nothing during a test.
const STREAM_ONLY: &str = "schedule = \"0 0 * * * *\"\n[tasks.bronze]\ntables = [\"events\"]\n";

/// Wait (a minute at most) until the consumer group is stable with
/// `members`.
async fn wait_for_members(k: &KafkaLake, members: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while stable_members(k) != members {
        assert!(
            Instant::now() < deadline,
            "the group never had {members} members"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The members of the consumer group, once it is stable (none while its
/// coordinator is still loading).
fn stable_members(k: &KafkaLake) -> usize {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", k.broker.brokers())
        .create()
        .unwrap();
    let Ok(groups) = consumer.fetch_group_list(Some(GROUP), Duration::from_secs(10)) else {
        return 0;
    };
    groups
        .groups()
        .iter()
        .filter(|g| g.state() == "Stable")
        .map(|g| g.members().len())
        .sum()
}

/// `count(*)` of bronze.events (0 before it is written), once it has not
/// moved for two seconds.
async fn settled_count(k: &KafkaLake) -> i64 {
    let mut last = (-1, Instant::now());
    loop {
        let n = count_if_there(k, "SELECT count(*) AS n FROM bronze.events").unwrap_or(0);
        if n != last.0 {
            last = (n, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(2) {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn three_daemons_share_the_partitions_and_a_killed_ones_go_on_once() {
    let k = KafkaLake::new();
    k.only_pipeline(STREAM_ONLY);
    // The topic exists with six partitions, and nothing to take while the
    // daemons join the group.
    k.create_topic(6).await;

    // Three daemons on one state store and one lake, one consumer group.
    // The third publishes its first micro-batch, then stops before its
    // second, holding messages it read but did not publish.
    let mut daemons = Vec::new();
    for failpoints in ["", "", "kafka-before-publish=1*off->pause"] {
        let mut command = k.command(&["daemon"]);
        command
            .env("SOUNDLAKE__KAFKA__BATCH_SECS", "1")
            .env("FAILPOINTS", failpoints);
        daemons.push(super::orchestrator::start_daemon(command).await.0);
    }
    wait_for_members(&k, 3).await;
    let (_, first) = k.produce_to_partitions("1", "2026-11-19", "3000", "31", "6");
    // Each daemon publishes messages of its partitions; the third, then,
    // holds the rest of its share.
    wait_for_count(
        &k,
        "SELECT count(DISTINCT run_id) AS n FROM bronze.events",
        3,
    )
    .await;

    let (_, second) = k.produce_to_partitions("1", "2026-11-20", "3000", "32", "6");
    let all = first + second;
    let published = settled_count(&k).await;
    assert!(
        published < all,
        "the third daemon holds a batch: {published} of {all}"
    );
    let mut victim = daemons.pop().unwrap();
    signal(&victim, libc::SIGKILL);
    victim.wait().await.unwrap();

    // The two others take its partitions over from the offsets the table
    // records, and every message is in bronze once.
    wait_for_count(&k, "SELECT count(*) AS n FROM bronze.events", all).await;
    assert_eq!(
        k.count("SELECT count(DISTINCT endpoint) AS n FROM bronze.events"),
        all,
        "no message twice"
    );
    assert_eq!(settled_count(&k).await, all, "and none taken again later");
    for mut daemon in daemons {
        signal(&daemon, libc::SIGTERM);
        let status = daemon.wait().await.unwrap();
        assert!(status.success(), "{status}");
    }
}

/// Send `signal` to a child process.
fn signal(child: &tokio::process::Child, signal: i32) {
    let pid = child.id().unwrap() as i32;
    // SAFETY: signalling a child process this test started.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

#[tokio::test]
async fn a_member_stalled_past_its_session_drops_its_batch_instead_of_doubling_it() {
    let k = KafkaLake::new();
    k.only_pipeline(STREAM_ONLY);
    let (_, first) = k.produce_to_partitions("1", "2026-11-18", "300", "40", "4");
    // One daemon publishes every second; the other holds its batch (an
    // hour's batch) until its partitions are taken away.
    let mut brisk = k.command(&["daemon"]);
    brisk.env("SOUNDLAKE__KAFKA__BATCH_SECS", "1");
    let (mut brisk, _) = super::orchestrator::start_daemon(brisk).await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut slow = k.command(&["daemon"]);
    slow.env("SOUNDLAKE__KAFKA__BATCH_SECS", "3600");
    let (mut stalled, _) =
        super::orchestrator::start_daemon_logging(slow, log.reopen().unwrap()).await;
    wait_for_members(&k, 2).await;
    let (_, second) = k.produce_to_partitions("1", "2026-11-19", "2000", "41", "4");
    let all = first + second;
    assert!(
        settled_count(&k).await < all,
        "the slow daemon holds its share"
    );

    // Stalled past its session (SIGSTOP: no heartbeat), it loses its
    // partitions; the other takes them from the group and publishes them.
    signal(&stalled, libc::SIGSTOP);
    wait_for_count(&k, "SELECT count(*) AS n FROM bronze.events", all).await;
    // Woken, it still holds the batch: its commit claims partitions the
    // other claimed since its base, so Delta refuses it and it drops it.
    signal(&stalled, libc::SIGCONT);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(log.path())
        .unwrap()
        .contains("the batch is dropped")
    {
        assert!(
            Instant::now() < deadline,
            "the stalled daemon never dropped its batch"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Stopped, it publishes what it took since; the other goes on alone.
    signal(&stalled, libc::SIGTERM);
    let status = stalled.wait().await.unwrap();
    assert!(status.success(), "{status}");
    let (_, third) = k.produce_to_partitions("1", "2026-11-20", "600", "42", "4");
    let all = all + third;
    wait_for_count(&k, "SELECT count(*) AS n FROM bronze.events", all).await;
    assert_eq!(settled_count(&k).await, all);
    assert_eq!(
        k.count("SELECT count(DISTINCT endpoint) AS n FROM bronze.events"),
        all,
        "no message twice"
    );
    signal(&brisk, libc::SIGTERM);
    let status = brisk.wait().await.unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn bad_brokers_topics_settings_and_targets_get_clear_errors() {
    let lake = Lake::new();
    let broker = KafkaBroker::start();
    let defs = kafka_definitions("no-such-topic");
    let fails = |args: &[&str], env: &[(&str, &str)]| {
        let out = lake
            .command(args)
            .env("SOUNDLAKE__DEFINITIONS__DIR", defs.path())
            .env("SOUNDLAKE__KAFKA__TIMEOUT_SECS", "2")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} {env:?} succeeded");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("fix:"), "{err}");
        err
    };
    let brokers = broker.brokers();
    let bronze = ["bronze", "events"];

    let err = fails(&bronze, &[("SOUNDLAKE__KAFKA__BROKERS", &brokers)]);
    assert!(
        err.contains("topic \"no-such-topic\" does not exist"),
        "{err}"
    );

    let nobody = format!("127.0.0.1:{}", super::support::free_port());
    let password = "hunter2-never-printed";
    let err = fails(
        &bronze,
        &[
            ("SOUNDLAKE__KAFKA__BROKERS", &nobody),
            (
                "SOUNDLAKE__KAFKA__CLIENT__SECURITY_PROTOCOL",
                "SASL_PLAINTEXT",
            ),
            ("SOUNDLAKE__KAFKA__CLIENT__SASL_MECHANISM", "PLAIN"),
            ("SOUNDLAKE__KAFKA__CLIENT__SASL_USERNAME", "soundlake"),
            ("SOUNDLAKE__KAFKA__CLIENT__SASL_PASSWORD", password),
        ],
    );
    assert!(
        err.contains(&format!("kafka {nobody}: no answer within 2 s")),
        "{err}"
    );
    assert!(!err.contains(password), "{err}");

    for (key, value, needle) in [
        (
            "SOUNDLAKE__KAFKA__CLIENT__ENABLE_AUTO_COMMIT",
            "true",
            "[kafka.client] enable.auto.commit: this property is soundlake's to set",
        ),
        (
            "SOUNDLAKE__KAFKA__CLIENT__NO_SUCH_PROPERTY",
            "1",
            "[kafka.client] no.such.property: No such configuration property",
        ),
        ("SOUNDLAKE__KAFKA__BATCH_SECS", "0", "[kafka] batch_secs"),
        ("SOUNDLAKE__KAFKA__BROKERS", " , ", "[kafka] brokers"),
        ("SOUNDLAKE__KAFKA__LINGER", "5", "unknown field `linger`"),
    ] {
        let err = fails(
            &bronze,
            &[(key, value), ("SOUNDLAKE__KAFKA__BROKERS", &brokers)],
        );
        let err = if key == "SOUNDLAKE__KAFKA__BROKERS" {
            fails(&bronze, &[(key, value)])
        } else {
            err
        };
        assert!(err.contains(needle), "{key}: {err}");
    }

    let generate = |to: &str, extra: &[&str]| {
        let mut args = vec![
            "generate", "events", "--users", "5", "--events", "10", "--days", "1", "--to", to,
        ];
        args.extend_from_slice(extra);
        fails(&args, &[])
    };
    for (to, needle) in [
        ("http://localhost:9092/events", "not a kafka:// URL"),
        ("kafka://localhost/events", "brokers must be host:port"),
        ("kafka://localhost:9092", "no topic after the brokers"),
        ("kafka://localhost:9092/bad topic", "the topic must be"),
        (
            "kafka://me:hunter2-never-printed@localhost:9092/events",
            "credentials do not go in the URL",
        ),
    ] {
        let err = generate(to, &[]);
        assert!(err.contains(needle), "{to}: {err}");
        assert!(!err.contains(password), "{err}");
    }
    let target = format!("kafka://{brokers}/events");
    let err = generate(&target, &["--format", "csv"]);
    assert!(err.contains("Kafka messages are JSON"), "{err}");
}

/// A setting the brokers refuse for good (a session shorter than their
/// floor) ends the run at once with what to change, instead of retrying
/// until the timeout.
#[test]
fn a_session_the_brokers_refuse_ends_the_run_with_the_fix() {
    let k = KafkaLake::new();
    k.produce_events("1", "2026-11-14", "20", "3");
    let started = std::time::Instant::now();
    let out = k
        .command(&["bronze", "events"])
        .env("SOUNDLAKE__KAFKA__CLIENT__SESSION_TIMEOUT_MS", "500")
        .env("SOUNDLAKE__KAFKA__CLIENT__HEARTBEAT_INTERVAL_MS", "100")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("the brokers refuse to serve this consumer")
            && err.contains("fix: set [kafka.client] session.timeout.ms"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "refused at the first answer, not after [kafka] timeout_secs"
    );
}
