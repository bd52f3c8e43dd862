//! The landing-store contract, run against both implementations: the
//! embedded SQLite file and MongoDB, on two real wire-protocol servers
//! (SecantusDB and FerretDB). It comes in the store's two roles, so a new
//! backend can be checked role by role: [`document_contract`] and
//! [`state_contract`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use soundlake::clock::{SharedClock, VirtualClock};
use soundlake::landing::{
    self, Batch, Collection, RunRecord, SharedStore, StateStore, UpsertCounts,
};

#[cfg(feature = "servers")]
use crate::servers::MongoServer;
use crate::support::t0;

/// Where each case gets a fresh, empty store.
enum Backend {
    Embedded(tempfile::TempDir),
    /// A MongoDB wire-protocol server, and what it does as MongoDB does.
    #[cfg(feature = "servers")]
    Mongo(MongoServer, Behaves),
}

/// Which of MongoDB's documented behaviours a server shares; the cases
/// that need one say so where a server deviates.
#[derive(Clone, Copy)]
struct Behaves {
    /// It stores arrays inside arrays.
    nested_arrays: bool,
    /// A conditional update of one document is atomic: of two concurrent
    /// updates matching the same version, one modifies it.
    atomic_updates: bool,
}

const LIKE_MONGODB: Behaves = Behaves {
    nested_arrays: true,
    atomic_updates: true,
};

impl Backend {
    fn url(&self, case: &str) -> String {
        match self {
            Backend::Embedded(dir) => format!("embedded://{}/{case}.db", dir.path().display()),
            #[cfg(feature = "servers")]
            Backend::Mongo(server, _) => server.url(case),
        }
    }
}

struct Case {
    store: SharedStore,
    clock: Arc<VirtualClock>,
    url: String,
    behaves: Behaves,
}

async fn fresh(backend: &Backend, case: &str) -> Case {
    let clock = VirtualClock::manual(t0());
    let url = backend.url(case);
    let shared: SharedClock = clock.clone();
    let store = landing::open(&url, shared).await.unwrap();
    let behaves = match backend {
        #[cfg(feature = "servers")]
        Backend::Mongo(_, behaves) => *behaves,
        Backend::Embedded(_) => LIKE_MONGODB,
    };
    Case {
        store,
        clock,
        url,
        behaves,
    }
}

fn batch(run: &str, docs: &[(&str, Value)]) -> Batch {
    Batch::new(
        run,
        "several_tracks",
        docs.iter()
            .map(|(id, d)| (id.to_string(), d.clone()))
            .collect(),
    )
}

/// A backend's whole contract: both roles, and what survives reopening it.
async fn contract(backend: Backend) {
    document_contract(&backend).await;
    state_contract(&backend).await;
    survives_reopening(&fresh(&backend, "reopen").await).await;
}

/// What a `landing::DocumentStore` must do.
async fn document_contract(backend: &Backend) {
    versions_and_metadata(&fresh(backend, "versions").await).await;
    stamps_increase(&fresh(backend, "stamps").await).await;
    scan_pages_through_everything(&fresh(backend, "scan").await).await;
    hostile_documents_round_trip(&fresh(backend, "hostile").await).await;
    bad_batches_are_refused(&fresh(backend, "bad").await).await;
    concurrent_writers_are_never_half_read(&fresh(backend, "concurrent").await).await;
    racing_writers_land_each_document_once(&fresh(backend, "racing").await).await;
}

/// What a [`StateStore`] must do: each case sees the store as one.
async fn state_contract(backend: &Backend) {
    state_entries(&*fresh(backend, "state").await.store).await;
    versioned_values(fresh(backend, "versioned").await.store).await;
    leased_locks(&*fresh(backend, "locks").await.store).await;
    run_records(&*fresh(backend, "runs").await.store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_meets_the_contract() {
    contract(Backend::Embedded(tempfile::tempdir().unwrap())).await;
}

async fn versions_and_metadata(c: &Case) {
    let s = &c.store;
    let counts = s
        .upsert(
            Collection::Tracks,
            batch(
                "run-1",
                &[("a", json!({"id": "a", "n": 1})), ("b", json!({"id": "b"}))],
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        counts,
        UpsertCounts {
            new: 2,
            changed: 0,
            unchanged: 0
        }
    );
    let first = s.get(Collection::Tracks, "a").await.unwrap().unwrap();
    assert_eq!(first.doc, json!({"id": "a", "n": 1}));
    assert_eq!((first.versions, first.run_id.as_str()), (1, "run-1"));
    assert_eq!(first.endpoint, "several_tracks");
    assert_eq!(first.first_seen, t0());

    c.clock.advance(Duration::from_secs(60));
    // Same content with its keys in another order: unchanged.
    let counts = s
        .upsert(
            Collection::Tracks,
            batch(
                "run-2",
                &[
                    ("a", json!({"n": 1, "id": "a"})),
                    ("b", json!({"id": "b", "x": true})),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        counts,
        UpsertCounts {
            new: 0,
            changed: 1,
            unchanged: 1
        }
    );
    let a = s.get(Collection::Tracks, "a").await.unwrap().unwrap();
    assert_eq!(
        (a.versions, a.run_id.as_str()),
        (1, "run-1"),
        "unchanged keeps its version"
    );
    assert_eq!(
        a.ingested_at, first.ingested_at,
        "no new version, no new stamp"
    );
    assert_eq!(a.last_fetched, t0() + Duration::from_secs(60));
    let b = s.get(Collection::Tracks, "b").await.unwrap().unwrap();
    assert_eq!((b.versions, b.run_id.as_str()), (2, "run-2"));
    assert_eq!(b.first_seen, t0(), "first seen survives a new version");
    assert!(b.ingested_at > first.ingested_at);
    assert_eq!(b.doc, json!({"id": "b", "x": true}));

    let fetched = s
        .last_fetched(Collection::Tracks, &["a".into(), "zzz".into()])
        .await
        .unwrap();
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched["a"], t0() + Duration::from_secs(60));
    assert_eq!(s.count(Collection::Tracks).await.unwrap(), 2);
    assert_eq!(s.count(Collection::Albums).await.unwrap(), 0);
    assert!(s.get(Collection::Albums, "a").await.unwrap().is_none());

    // A takedown deletes by id; ids not there are no error.
    let deleted = s
        .delete(Collection::Tracks, &["b".into(), "zzz".into()])
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert!(s.get(Collection::Tracks, "b").await.unwrap().is_none());
    assert_eq!(s.count(Collection::Tracks).await.unwrap(), 1);
    assert_eq!(s.delete(Collection::Albums, &[]).await.unwrap(), 0);
}

async fn stamps_increase(c: &Case) {
    // The clock stands still: every batch still gets a later stamp, and
    // once written it is the stable stamp bronze may read up to.
    assert_eq!(c.store.stable_stamp().await.unwrap(), None);
    let mut last = i64::MIN;
    for i in 0..5 {
        let id = format!("t{i}");
        c.store
            .upsert(Collection::Artists, batch("r", &[(&id, json!({"id": id}))]))
            .await
            .unwrap();
        let stamp = c
            .store
            .get(Collection::Artists, &id)
            .await
            .unwrap()
            .unwrap()
            .ingested_at;
        assert!(stamp > last, "stamp {stamp} after {last}");
        assert_eq!(c.store.stable_stamp().await.unwrap(), Some(stamp));
        last = stamp;
    }
}

async fn scan_pages_through_everything(c: &Case) {
    let docs: Vec<(String, Value)> = (0..57)
        .map(|i| {
            (
                format!("id{i:03}"),
                json!({"id": format!("id{i:03}"), "v": i}),
            )
        })
        .collect();
    for chunk in docs.chunks(10) {
        c.store
            .upsert(
                Collection::Albums,
                Batch::new("r", "several_albums", chunk.to_vec()),
            )
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = c
            .store
            .scan(Collection::Albums, cursor.as_ref(), 8)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 8);
        let last = page.last().unwrap();
        cursor = Some((last.ingested_at, last.id.clone()));
        seen.extend(page.into_iter().map(|d| (d.ingested_at, d.id)));
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "scan is in (ingested_at, id) order");
    let ids: Vec<&str> = seen.iter().map(|(_, id)| id.as_str()).collect();
    let mut expected: Vec<&str> = docs.iter().map(|(id, _)| id.as_str()).collect();
    expected.sort();
    let mut got = ids.clone();
    got.sort();
    assert_eq!(got, expected, "every document once");

    // The text scan bronze reads is the same page with each document as
    // its compact JSON.
    let parsed = c.store.scan(Collection::Albums, None, 50).await.unwrap();
    let text = c
        .store
        .scan_text(Collection::Albums, None, 50)
        .await
        .unwrap();
    assert_eq!(parsed.len(), text.len());
    for (p, t) in parsed.into_iter().zip(text) {
        assert_eq!(t.doc, p.doc.to_string(), "{}", p.id);
        assert_eq!(t.map_doc(|d| serde_json::from_str(&d).unwrap()), p);
    }
}

async fn hostile_documents_round_trip(c: &Case) {
    let doc = json!({
        "id": "weird",
        "name": "Sigur Rós — 東京 🎵 \u{0}",
        "$date": {"$numberLong": "1"},
        "a.b": [null, [], {}, [[1]]],
        "50%.$x": {"%24": 1, "\u{0}k": 2},
        "big": 9_007_199_254_740_993_i64,
        "float": 0.1,
        "neg": -0.0,
        "long": "x".repeat(200_000),
        "deep": (0..60).fold(json!(1), |inner, _| json!({"d": inner})),
    });
    let mut doc = doc;
    if !c.behaves.nested_arrays {
        // FerretDB v1 deviates from MongoDB here: it refuses arrays inside
        // arrays. The refusal names the problem, and writes nothing.
        let err = c
            .store
            .upsert(Collection::Tracks, batch("r", &[("weird", doc.clone())]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("nested arrays"), "{err}");
        assert!(
            c.store
                .get(Collection::Tracks, "weird")
                .await
                .unwrap()
                .is_none()
        );
        doc["a.b"] = json!([null, {}, "x"]);
    }
    c.store
        .upsert(Collection::Tracks, batch("r", &[("weird", doc.clone())]))
        .await
        .unwrap();
    let back = c
        .store
        .get(Collection::Tracks, "weird")
        .await
        .unwrap()
        .unwrap();
    assert!(back.doc == doc, "the document came back altered");
    assert_eq!(back.content_hash, landing::content_hash(&doc));
    let text = c
        .store
        .scan_text(Collection::Tracks, None, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.id == "weird")
        .expect("the text scan has it");
    let reparsed: serde_json::Value = serde_json::from_str(&text.doc).unwrap();
    assert!(reparsed == doc, "the text scan altered the document");
}

async fn bad_batches_are_refused(c: &Case) {
    let twice = batch(
        "r",
        &[("x", json!({"id": "x"})), ("x", json!({"id": "x", "v": 2}))],
    );
    let err = c.store.upsert(Collection::Tracks, twice).await.unwrap_err();
    assert!(err.to_string().contains("appears twice"), "{err}");
    let empty = batch("r", &[("", json!({}))]);
    let err = c.store.upsert(Collection::Tracks, empty).await.unwrap_err();
    assert!(err.to_string().contains("empty id"), "{err}");
    assert_eq!(
        c.store.count(Collection::Tracks).await.unwrap(),
        0,
        "nothing partly written"
    );
}

async fn state_entries(s: &dyn StateStore) {
    assert_eq!(s.get_state("crawl/x").await.unwrap(), None);
    s.put_state("crawl/a.b*", &json!({"n": 1})).await.unwrap();
    s.put_state("crawl/a.b*", &json!({"n": 2})).await.unwrap();
    s.put_state("crawl/axb", &json!([1, 2])).await.unwrap();
    s.put_state("other", &json!("z")).await.unwrap();
    assert_eq!(
        s.get_state("crawl/a.b*").await.unwrap(),
        Some(json!({"n": 2}))
    );
    let listed = s.state_with_prefix("crawl/a.").await.unwrap();
    assert_eq!(
        listed,
        vec![("crawl/a.b*".to_string(), json!({"n": 2}))],
        "prefix is literal"
    );
    assert_eq!(s.state_with_prefix("crawl/").await.unwrap().len(), 2);
    s.delete_state("crawl/axb").await.unwrap();
    s.delete_state("never-there").await.unwrap();
    assert_eq!(s.get_state("crawl/axb").await.unwrap(), None);
    assert_eq!(s.state_with_prefix("crawl/").await.unwrap().len(), 1);
}

/// Versioned values: a stale writer is refused, writers racing with
/// retries lose no update, and a listing shows the latest versions.
async fn versioned_values(s: SharedStore) {
    assert_eq!(s.get_versioned("rate/x").await.unwrap(), None);
    assert!(
        s.put_versioned("rate/x", 1, &json!({"n": 0}))
            .await
            .unwrap()
    );
    assert!(
        !s.put_versioned("rate/x", 1, &json!({"n": 9}))
            .await
            .unwrap(),
        "version 1 exists already"
    );
    assert!(
        !s.put_versioned("rate/x", 5, &json!({"n": 9}))
            .await
            .unwrap(),
        "version 4 is not the latest"
    );
    assert!(
        !s.put_versioned("rate/absent", 2, &json!({})).await.unwrap(),
        "nothing to follow"
    );
    assert_eq!(s.get_versioned("rate/absent").await.unwrap(), None);
    let writers = (0..4).map(|_| {
        let s = s.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                loop {
                    let (version, value) = s.get_versioned("rate/x").await.unwrap().unwrap();
                    let next = json!({"n": value["n"].as_u64().unwrap() + 1});
                    if s.put_versioned("rate/x", version + 1, &next).await.unwrap() {
                        break;
                    }
                }
            }
        })
    });
    for w in writers.collect::<Vec<_>>() {
        w.await.unwrap();
    }
    assert_eq!(
        s.get_versioned("rate/x").await.unwrap(),
        Some((41, json!({"n": 40}))),
        "every increment landed once"
    );
    assert!(s.put_versioned("rate/y", 1, &json!("y")).await.unwrap());
    assert!(s.put_versioned("other", 1, &json!("o")).await.unwrap());
    assert_eq!(
        s.versioned_with_prefix("rate/").await.unwrap(),
        vec![
            ("rate/x".to_string(), 41, json!({"n": 40})),
            ("rate/y".to_string(), 1, json!("y")),
        ]
    );
    assert_eq!(
        s.get_state("rate/x").await.unwrap(),
        None,
        "apart from plain state"
    );
}

async fn leased_locks(s: &dyn StateStore) {
    let now = t0();
    let lease = |secs| now + Duration::from_secs(secs);
    assert!(
        s.try_lock("pipeline", "alice", now, lease(60))
            .await
            .unwrap()
    );
    assert!(
        !s.try_lock("pipeline", "bob", now, lease(60)).await.unwrap(),
        "held"
    );
    assert_eq!(
        s.lock_holder("pipeline").await.unwrap().as_deref(),
        Some("alice")
    );
    assert_eq!(s.lock_holder("other").await.unwrap(), None);
    assert!(
        s.try_lock("pipeline", "alice", lease(30), lease(90))
            .await
            .unwrap(),
        "renewed"
    );
    assert!(
        !s.try_lock("pipeline", "bob", lease(61), lease(120))
            .await
            .unwrap(),
        "renewal counts"
    );
    assert!(
        s.try_lock("pipeline", "bob", lease(91), lease(150))
            .await
            .unwrap(),
        "expired lease"
    );
    s.unlock("pipeline", "alice").await.unwrap();
    assert!(
        !s.try_lock("pipeline", "carol", lease(100), lease(160))
            .await
            .unwrap(),
        "not alice's to free"
    );
    s.unlock("pipeline", "bob").await.unwrap();
    assert!(
        s.try_lock("pipeline", "carol", lease(100), lease(160))
            .await
            .unwrap()
    );
    assert!(
        s.try_lock("other", "dave", now, lease(10)).await.unwrap(),
        "locks are by name"
    );
}

async fn run_records(s: &dyn StateStore) {
    let record = |id: &str, offset: u64, status: &str| RunRecord {
        id: id.into(),
        task: "crawl".into(),
        started_at: t0() + Duration::from_secs(offset),
        finished_at: None,
        status: status.into(),
        report: json!({"requests": offset}),
    };
    assert!(s.create_run(&record("r1", 0, "running")).await.unwrap());
    assert!(s.create_run(&record("r2", 10, "running")).await.unwrap());
    s.put_run(&record("r1", 0, "succeeded")).await.unwrap();
    assert!(
        !s.create_run(&record("r1", 20, "running")).await.unwrap(),
        "an id names one run: starting it again is refused"
    );
    let runs = s.runs(10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0], record("r2", 10, "running"), "newest first");
    assert_eq!(
        runs[1],
        record("r1", 0, "succeeded"),
        "a run record is replaced, not repeated, and a refused start leaves it as it was"
    );
    assert_eq!(s.runs(1).await.unwrap().len(), 1);
    // Racing starts of one id: exactly one wins.
    let r3 = record("r3", 30, "running");
    let won = futures::future::join_all((0..8).map(|_| s.create_run(&r3))).await;
    assert_eq!(
        won.iter().filter(|w| *w.as_ref().unwrap()).count(),
        1,
        "{won:?}"
    );
}

/// Two writers landing the same new documents at once (a crawl and an
/// import, say) both succeed, and each document is there once, in one
/// version: whichever wrote second finds it there, or is told so by the
/// server when both saw it missing. FerretDB v1 stalls when they race
/// (one process at a time there, as the README says): they take turns.
async fn racing_writers_land_each_document_once(c: &Case) {
    const ROUNDS: usize = 10;
    const SIZE: usize = 100;
    for round in 0..ROUNDS {
        let ids: Vec<String> = (0..SIZE).map(|i| format!("r{round:02}-{i:03}")).collect();
        let writer = |w: usize| {
            let (store, ids) = (c.store.clone(), ids.clone());
            tokio::spawn(async move {
                let docs = ids
                    .iter()
                    .map(|id| (id.clone(), json!({"id": id})))
                    .collect();
                let batch = Batch::new(&format!("racer-{w}"), "several_tracks", docs);
                store.upsert(Collection::Tracks, batch).await
            })
        };
        let (a, b) = if c.behaves.atomic_updates {
            let (a, b) = (writer(0), writer(1));
            (a.await.unwrap().unwrap(), b.await.unwrap().unwrap())
        } else {
            let a = writer(0).await.unwrap().unwrap();
            (a, writer(1).await.unwrap().unwrap())
        };
        assert_eq!(a.new + b.new, SIZE as u64, "each lands once: {a:?} {b:?}");
        assert_eq!(a.new + b.new + a.unchanged + b.unchanged, 2 * SIZE as u64);
        assert_eq!(a.changed + b.changed, 0, "{a:?} {b:?}");
        for id in &ids {
            let stored = c.store.get(Collection::Tracks, id).await.unwrap();
            let stored = stored.unwrap_or_else(|| panic!("{id} was not landed"));
            assert_eq!(stored.versions, 1, "{id}");
            assert_eq!(stored.doc, json!({"id": id}));
        }
    }
    let count = c.store.count(Collection::Tracks).await.unwrap();
    assert_eq!(count, (ROUNDS * SIZE) as u64);
}

/// Two writers land batches while a reader takes everything up to the
/// stable stamp, again and again, as bronze does: every batch it sees is
/// whole (one stamp per batch, all of its documents), never half-written.
/// A server without atomic updates gets one writer (and the reader).
async fn concurrent_writers_are_never_half_read(c: &Case) {
    const BATCHES: usize = 15;
    const SIZE: usize = 40;
    let writer = |w: usize| {
        let store = c.store.clone();
        tokio::spawn(async move {
            for b in 0..BATCHES {
                let docs: Vec<(String, Value)> = (0..SIZE)
                    .map(|i| {
                        let id = format!("w{w}-b{b:02}-{i:02}");
                        (id.clone(), json!({"id": id, "writer": w}))
                    })
                    .collect();
                let batch = Batch::new(&format!("writer-{w}"), "several_tracks", docs);
                store.upsert(Collection::Tracks, batch).await.unwrap();
            }
        })
    };
    let writers: Vec<_> = if c.behaves.atomic_updates {
        vec![writer(0), writer(1)]
    } else {
        vec![writer(0)]
    };
    let landed = writers.len() * BATCHES * SIZE;
    let mut reads = 0;
    loop {
        let finished = writers.iter().all(|w| w.is_finished());
        if let Some(stable) = c.store.stable_stamp().await.unwrap() {
            let visible = c
                .store
                .scan(Collection::Tracks, None, 10_000)
                .await
                .unwrap();
            let mut per_stamp: std::collections::BTreeMap<i64, usize> = Default::default();
            for d in visible.iter().filter(|d| d.ingested_at <= stable) {
                *per_stamp.entry(d.ingested_at).or_default() += 1;
            }
            assert!(
                per_stamp.values().all(|n| *n == SIZE),
                "a batch read half-written: {per_stamp:?}"
            );
            reads += 1;
        }
        if finished {
            break;
        }
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(
        reads > 2,
        "the reader ran while the writers wrote ({reads} reads)"
    );
    assert_eq!(
        c.store.count(Collection::Tracks).await.unwrap(),
        landed as u64
    );
}

async fn survives_reopening(c: &Case) {
    c.store
        .upsert(
            Collection::AudioFeatures,
            batch("r", &[("k", json!({"id": "k"}))]),
        )
        .await
        .unwrap();
    c.store.put_state("cursor", &json!(7)).await.unwrap();
    let clock: SharedClock = c.clock.clone();
    let again = landing::open(&c.url, clock).await.unwrap();
    assert_eq!(again.count(Collection::AudioFeatures).await.unwrap(), 1);
    assert_eq!(again.get_state("cursor").await.unwrap(), Some(json!(7)));
}

#[tokio::test]
async fn bad_landing_urls_say_what_to_use() {
    let clock: SharedClock = VirtualClock::manual(t0());
    let err = landing::open("postgres://u:hunter2@db/x", clock.clone())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("embedded://") && text.contains("mongodb://"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let not_a_db = dir.path().join("notes.txt");
    std::fs::write(
        &not_a_db,
        "this is not a database, just some notes\n".repeat(100),
    )
    .unwrap();
    let err = landing::open(&format!("embedded://{}", not_a_db.display()), clock.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not a soundlake store") && err.contains("notes.txt"),
        "{err}"
    );

    let port = crate::support::free_port();
    let err = landing::open(
        &format!("mongodb://reader:s3cret-pw@127.0.0.1:{port}/db?serverSelectionTimeoutMS=300"),
        clock,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("check that MongoDB is running"), "{err}");
    assert!(!err.contains("s3cret-pw"), "{err}");
}

/// The tests that need the real servers or Python readers `tests/run.sh`
/// installs.
#[cfg(feature = "servers")]
mod with_servers {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mongodb_store_meets_the_contract_on_secantusdb() {
        contract(Backend::Mongo(MongoServer::start(), LIKE_MONGODB)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mongodb_store_meets_the_contract_on_ferretdb() {
        // FerretDB v1 deviates from MongoDB twice: it refuses arrays inside
        // arrays, and two concurrent conditional updates of one document can
        // both succeed (seen as two writers' batches under one stamp).
        let ferretdb = Behaves {
            nested_arrays: false,
            atomic_updates: false,
        };
        contract(Backend::Mongo(MongoServer::ferretdb(), ferretdb)).await;
    }
}
