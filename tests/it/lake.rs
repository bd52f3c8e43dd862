//! The lake's Delta tables, against memory, local disk, a real S3 server
//! (MinIO) and a real HDFS: versions appear only through their commit,
//! uncommitted files stay out of every version, writers conflict instead
//! of overwriting, superseded files stay readable for older versions, and
//! a commit whose answer was lost is recognised as the writer's own.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::Map;
use soundlake::lake::LakeSettings;
use soundlake::lake::{At, Lake, Snapshot, Table, Transaction};

use crate::support::t0;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("n", DataType::Int64, false),
    ]))
}

fn batch(ids: &[&str]) -> RecordBatch {
    let n: Vec<i64> = (0..ids.len() as i64).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(ids.to_vec())) as ArrayRef,
            Arc::new(Int64Array::from(n)),
        ],
    )
    .unwrap()
}

/// A lake on local disk in `dir`, with the default settings.
fn local_lake(dir: &std::path::Path) -> Lake {
    Lake::open(&LakeSettings {
        url: format!("file://{}", dir.display()),
        ..LakeSettings::default()
    })
    .unwrap()
}

/// Commit one file per `(partition value, ids)` on top of the newest version.
async fn append(table: &Table, run: &str, files: &[(&str, &[&str])]) -> Snapshot {
    let mut txn = table.begin(run, t0()).await.unwrap();
    for (part, ids) in files {
        let mut w = txn
            .create_file(&[("part", part.to_string())], schema(), &[])
            .unwrap();
        w.write(&batch(ids)).await.unwrap();
        let file = w.finish().await.unwrap();
        txn.add(file);
    }
    txn.commit("append", Map::new(), t0()).await.unwrap()
}

/// Commit one file of `ids` in partition `part` that replaces every file
/// of the newest version.
async fn replace_all(table: &Table, run: &str, part: &str, ids: &[&str]) -> Snapshot {
    let mut txn = table.begin(run, t0()).await.unwrap();
    for f in txn.base().files.clone() {
        txn.remove(&f);
    }
    let mut w = txn
        .create_file(&[("part", part.to_string())], schema(), &[])
        .unwrap();
    w.write(&batch(ids)).await.unwrap();
    txn.add(w.finish().await.unwrap());
    txn.commit("replace", Map::new(), t0()).await.unwrap()
}

/// Every id of a committed version, sorted, read through the table.
async fn ids(table: &Table, snapshot: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for file in &snapshot.files {
        let batches: Vec<RecordBatch> = table
            .read(file, 1024)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        for b in batches {
            let col = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            out.extend(col.iter().map(|v| v.unwrap().to_string()));
        }
    }
    out.sort();
    out
}

/// Objects an engine listing the table would see as data: `.parquet` files
/// outside folders starting with `_`.
async fn visible(store: &Arc<dyn ObjectStore>, table: &Table) -> Vec<String> {
    let listed: Vec<_> = store.list(Some(table.root())).try_collect().await.unwrap();
    let mut out: Vec<String> = listed
        .into_iter()
        .map(|m| m.location.to_string())
        .filter(|p| p.ends_with(".parquet") && !p.split('/').any(|s| s.starts_with('_')))
        .collect();
    out.sort();
    out
}

/// The objects under the table's Delta log.
async fn log(store: &Arc<dyn ObjectStore>, table: &Table) -> Vec<String> {
    let root = table.root().clone().join("_delta_log");
    let listed: Vec<_> = store.list(Some(&root)).try_collect().await.unwrap();
    let mut out: Vec<String> = listed
        .into_iter()
        .filter_map(|m| m.location.filename().map(str::to_string))
        .collect();
    out.sort();
    out
}

async fn protocol(store: Arc<dyn ObjectStore>, label: &str) {
    let lake = Lake::with_store(store.clone(), label, &LakeSettings::default()).unwrap();
    let table = lake.table("bronze", "things");

    let empty = table.snapshot().await.unwrap();
    assert_eq!((empty.exists(), empty.files.len()), (false, 0));

    // A written file is in no version until the commit names it. The first
    // commit, version 0, creates the table with its data.
    let mut txn = table.begin("r1", t0()).await.unwrap();
    let mut w = txn
        .create_file(&[("part", "a".into())], schema(), &[])
        .unwrap();
    w.write(&batch(&["a1", "a2"])).await.unwrap();
    txn.add(w.finish().await.unwrap());
    assert_eq!(visible(&store, &table).await.len(), 1, "{label}");
    let before = table.snapshot().await.unwrap();
    assert_eq!((before.exists(), before.files.len()), (false, 0), "{label}");
    let mut properties = Map::new();
    properties.insert(
        "watermark".into(),
        serde_json::json!({"stamp": 7, "id": "x"}),
    );
    let v0 = txn
        .commit("append", properties.clone(), t0())
        .await
        .unwrap();
    assert_eq!(v0.version, 0);
    assert_eq!(
        log(&store, &table).await,
        ["00000000000000000000.json"],
        "{label}"
    );
    let shown = visible(&store, &table).await;
    assert!(
        shown[0].starts_with("bronze/things/part=a/part-"),
        "{label}: {shown:?}"
    );
    assert_eq!(ids(&table, &v0).await, ["a1", "a2"]);
    assert_eq!(table.snapshot().await.unwrap().properties, properties);

    // A second version adds to the first; properties are each commit's own.
    let v1 = append(&table, "r2", &[("b", &["b1"]), ("a", &["a3"])]).await;
    assert_eq!((v1.version, v1.rows()), (1, 4));
    assert_eq!(
        ids(&table, &table.snapshot().await.unwrap()).await,
        ["a1", "a2", "a3", "b1"]
    );
    assert!(v1.properties.is_empty(), "{label}: {:?}", v1.properties);

    // Two writers on the same base: the second commit is refused.
    let mut first = table.begin("w1", t0()).await.unwrap();
    let mut second = table.begin("w2", t0()).await.unwrap();
    for txn in [&mut first, &mut second] {
        let mut w = txn
            .create_file(&[("part", "c".into())], schema(), &[])
            .unwrap();
        w.write(&batch(&["c1"])).await.unwrap();
        txn.add(w.finish().await.unwrap());
    }
    first.commit("append", Map::new(), t0()).await.unwrap();
    let err = second
        .commit("append", Map::new(), t0())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("another writer committed version 2"),
        "{label}: {err}"
    );
    let v2 = table.snapshot().await.unwrap();
    assert_eq!((v2.version, v2.rows()), (2, 5));

    // An abandoned write changes no version.
    let mut abandoned = table.begin("crashed", t0()).await.unwrap();
    let mut w = abandoned
        .create_file(&[("part", "z".into())], schema(), &[])
        .unwrap();
    w.write(&batch(&["z1"])).await.unwrap();
    w.finish().await.unwrap();
    drop(abandoned);
    assert_eq!(
        ids(&table, &table.snapshot().await.unwrap()).await,
        ids(&table, &v2).await
    );

    // Replace: the removed files leave the new version and stay on
    // storage, so a reader of the older version keeps reading it.
    let mut txn = table.begin("r4", t0()).await.unwrap();
    for f in v2.files.iter().filter(|f| f.partition["part"] == "a") {
        txn.remove(f);
    }
    let mut w = txn
        .create_file(&[("part", "a".into())], schema(), &[])
        .unwrap();
    w.write(&batch(&["a9"])).await.unwrap();
    txn.add(w.finish().await.unwrap());
    let v3 = txn.commit("replace", Map::new(), t0()).await.unwrap();
    assert_eq!(ids(&table, &v3).await, ["a9", "b1", "c1"]);
    assert_eq!(ids(&table, &v2).await, ["a1", "a2", "a3", "b1", "c1"]);

    for i in 0..12 {
        append(&table, &format!("p{i}"), &[("d", &["d"])]).await;
    }
    assert_eq!(table.snapshot().await.unwrap().version, 15);
}

#[tokio::test]
async fn protocol_in_memory() {
    protocol(Arc::new(object_store::memory::InMemory::new()), "memory://").await;
}

#[tokio::test]
async fn protocol_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let fs = object_store::local::LocalFileSystem::new_with_prefix(dir.path())
        .unwrap()
        .with_automatic_cleanup(true);
    protocol(Arc::new(fs), "file://").await;
}

/// A store that fails chosen steps: `dies(operation, path)` says when
/// (`put`: the put fails; `answer`: the put is stored and its answer lost;
/// `rename`: the rename fails).
#[derive(Debug)]
pub struct Dying(pub Arc<dyn ObjectStore>, pub fn(&str, &Path) -> bool);

impl Dying {
    fn died() -> object_store::Error {
        object_store::Error::Generic {
            store: "Dying",
            source: "the writer died here".into(),
        }
    }
}

impl std::fmt::Display for Dying {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dying")
    }
}

#[async_trait::async_trait]
impl ObjectStore for Dying {
    async fn put_opts(
        &self,
        location: &Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        if (self.1)("put", location) {
            return Err(Dying::died());
        }
        let stored = self.0.put_opts(location, payload, opts).await?;
        if (self.1)("answer", location) {
            return Err(Dying::died());
        }
        Ok(stored)
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.0.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
        self.0.delete_stream(locations)
    }
    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.0.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.0.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.0.copy_opts(from, to, options).await
    }
    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: object_store::RenameOptions,
    ) -> object_store::Result<()> {
        if (self.1)("rename", from) {
            return Err(Dying::died());
        }
        self.0.rename_opts(from, to, options).await
    }
}

/// A write on the newest version adding one file of `ids` and claiming
/// `claims`.
async fn claiming(table: &Table, run: &str, ids: &[&str], claims: &[(&str, i64)]) -> Transaction {
    let mut txn = table.begin(run, t0()).await.unwrap();
    let mut w = txn
        .create_file(&[("part", "k".into())], schema(), &[])
        .unwrap();
    w.write(&batch(ids)).await.unwrap();
    txn.add(w.finish().await.unwrap());
    for (app, version) in claims {
        txn.claim(app.to_string(), *version);
    }
    txn
}

#[tokio::test]
async fn writers_claiming_different_ids_commit_side_by_side_and_the_same_id_conflicts() {
    let lake = Lake::in_memory();
    let table = lake.table("bronze", "events");
    append(&table, "create", &[("k", &["k0"])]).await;

    // Three writers on one base: two claim disjoint ids, the third one id
    // of the first. The first two both land, one retried on top of the
    // other; the third is refused, with nothing of it visible.
    let a = claiming(&table, "a", &["a1"], &[("kafka/t/0", 10), ("kafka/t/1", 5)]).await;
    let b = claiming(&table, "b", &["b1"], &[("kafka/t/2", 7)]).await;
    let c = claiming(&table, "c", &["c1"], &[("kafka/t/1", 9)]).await;
    let unclaimed = table.begin("plain", t0()).await.unwrap();
    assert_eq!(unclaimed.claimed("kafka/t/0").await.unwrap(), None);
    a.commit("append", Map::new(), t0()).await.unwrap();
    let landed = b.commit("append", Map::new(), t0()).await.unwrap();
    assert_eq!(landed.version, 2, "b landed after a, on a's version");
    let err = c.commit("append", Map::new(), t0()).await.unwrap_err();
    assert!(
        matches!(err, soundlake::error::Error::Conflict { version: 2, .. }),
        "{err}"
    );
    let now = table.snapshot().await.unwrap();
    assert_eq!(ids(&table, &now).await, ["a1", "b1", "k0"]);

    // The claims are read back from the newest version; a later claim of
    // an id replaces its version.
    let next = table.begin("reader", t0()).await.unwrap();
    for (app, version) in [
        ("kafka/t/0", Some(10)),
        ("kafka/t/1", Some(5)),
        ("kafka/t/2", Some(7)),
    ] {
        assert_eq!(next.claimed(app).await.unwrap(), version, "{app}");
    }
    claiming(&table, "d", &["d1"], &[("kafka/t/1", 12)])
        .await
        .commit("append", Map::new(), t0())
        .await
        .unwrap();
    let after = table.begin("reader", t0()).await.unwrap();
    assert_eq!(after.claimed("kafka/t/1").await.unwrap(), Some(12));

    // A writer claiming nothing takes the table-wide id: it conflicts with
    // another such writer (see `protocol`), not with one claiming its own.
    let plain = claiming(&table, "e", &["e1"], &[]).await;
    claiming(&table, "f", &["f1"], &[("kafka/t/0", 11)])
        .await
        .commit("append", Map::new(), t0())
        .await
        .unwrap();
    let refused = plain.commit("append", Map::new(), t0()).await;
    assert!(refused.is_ok(), "{refused:?}");
}

#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_the_writers_own() {
    let healthy: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    // The commit of version 0 is stored, and its answer lost.
    let lossy: Arc<dyn ObjectStore> = Arc::new(Dying(healthy.clone(), |op, path| {
        op == "answer"
            && path
                .as_ref()
                .ends_with("_delta_log/00000000000000000000.json")
    }));
    let lake = Lake::with_store(lossy, "memory://", &LakeSettings::default()).unwrap();
    let table = lake.table("silver", "t");
    let mut txn = table.begin("lost", t0()).await.unwrap();
    let mut w = txn.create_file(&[], schema(), &[]).unwrap();
    w.write(&batch(&["x", "y"])).await.unwrap();
    txn.add(w.finish().await.unwrap());
    let v0 = txn.commit("append", Map::new(), t0()).await.unwrap();
    assert_eq!(v0.version, 0);
    assert_eq!(ids(&table, &v0).await, ["x", "y"]);
    assert_eq!(table.snapshot().await.unwrap().version, 0, "committed once");
}

#[tokio::test]
async fn a_damaged_log_is_refused_with_a_fix() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let lake = Lake::with_store(store.clone(), "memory://", &LakeSettings::default()).unwrap();
    let table = lake.table("gold", "t");
    append(&table, "r1", &[("a", &["a1"])]).await;
    for body in [&b"{not json"[..], &[0xff, 0x00, 0x10][..]] {
        store
            .put(
                &Path::from("gold/t/_delta_log/00000000000000000002.json"),
                body.to_vec().into(),
            )
            .await
            .unwrap();
        let err = table.snapshot().await.unwrap_err().to_string();
        assert!(err.contains("gold/t"), "{err}");
        assert!(err.contains("fix:"), "{err}");
    }
}

#[tokio::test]
async fn history_time_travel_and_vacuum_keep_older_versions_readable_until_retention() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let lake = Lake::with_store(store.clone(), "memory://", &LakeSettings::default()).unwrap();
    let table = lake.table("gold", "t");
    let at = |hours: i64| t0() + chrono::TimeDelta::hours(hours);
    let write = async |run: &str, when, replace: bool, ids: &[&str]| {
        let mut txn = table.begin(run, when).await.unwrap();
        if replace {
            for f in txn.base().files.clone() {
                txn.remove(&f);
            }
        }
        let mut w = txn.create_file(&[], schema(), &[]).unwrap();
        w.write(&batch(ids)).await.unwrap();
        txn.add(w.finish().await.unwrap());
        let mode = if replace { "replace" } else { "append" };
        txn.commit(mode, Map::new(), when).await.unwrap()
    };
    write("r1", at(0), false, &["a", "b"]).await;
    write("r2", at(1), false, &["c"]).await;
    let v3 = write("r3", at(2), true, &["z"]).await;
    assert_eq!(ids(&table, &v3).await, ["z"]);

    let history = table.history(None).await.unwrap();
    let summary: Vec<_> = history
        .iter()
        .map(|c| {
            (
                c.version,
                c.mode.clone(),
                c.run_id.clone(),
                c.rows_added,
                c.rows_removed,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                2,
                Some("replace".into()),
                Some("r3".into()),
                Some(1),
                Some(3)
            ),
            (
                1,
                Some("append".into()),
                Some("r2".into()),
                Some(1),
                Some(0)
            ),
            (
                0,
                Some("append".into()),
                Some("r1".into()),
                Some(2),
                Some(0)
            ),
        ]
    );
    assert_eq!(history[0].at, at(2));
    assert_eq!(history[2].operation, "WRITE");
    assert_eq!(table.history(Some(2)).await.unwrap().len(), 2);

    // Time travel, by version and by time.
    let v0 = table.snapshot_at(&At::Version(0)).await.unwrap();
    assert_eq!(ids(&table, &v0).await, ["a", "b"]);
    let before_replace = table
        .snapshot_at(&At::Time(at(1) + chrono::TimeDelta::minutes(30)))
        .await
        .unwrap();
    assert_eq!(before_replace.version, 1);
    assert_eq!(ids(&table, &before_replace).await, ["a", "b", "c"]);
    let err = table
        .snapshot_at(&At::Time(at(-1)))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no version committed by"), "{err}");
    let err = table
        .snapshot_at(&At::Version(9))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no version 9"), "{err}");

    // An abandoned write's file is in no version.
    let mut abandoned = table.begin("crashed", at(3)).await.unwrap();
    let mut w = abandoned.create_file(&[], schema(), &[]).unwrap();
    w.write(&batch(&["x"])).await.unwrap();
    w.finish().await.unwrap();
    drop(abandoned);
    assert_eq!(visible(&store, &table).await.len(), 4);

    // Within the retention, vacuum deletes nothing and version 2 reads on.
    let week = chrono::TimeDelta::days(7);
    assert!(table.vacuum(week, at(3), false).await.unwrap().is_empty());
    assert_eq!(ids(&table, &before_replace).await, ["a", "b", "c"]);
    // Past it, the superseded and the abandoned files go; the current
    // version is untouched. A dry run only says so.
    // (The abandoned file's age is the store's: it was written just now.)
    let later = chrono::Utc::now().max(at(3)) + chrono::TimeDelta::days(30);
    let would = table.vacuum(week, later, true).await.unwrap();
    assert_eq!(would.len(), 3, "{would:?}");
    assert_eq!(visible(&store, &table).await.len(), 4);
    let deleted = table.vacuum(week, later, false).await.unwrap();
    assert_eq!(deleted, would);
    let left = visible(&store, &table).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(ids(&table, &table.snapshot().await.unwrap()).await, ["z"]);
}

#[tokio::test]
async fn a_table_with_many_commits_is_checkpointed_and_reads_from_the_checkpoint() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let lake = Lake::with_store(store.clone(), "memory://", &LakeSettings::default()).unwrap();
    let table = lake.table("bronze", "many");
    for i in 0..100 {
        append(&table, &format!("r{i}"), &[("p", &["x"])]).await;
    }
    // Version 99 is the hundredth commit; Delta checkpoints every hundred
    // versions.
    let log = log(&store, &table).await;
    assert!(
        log.contains(&"00000000000000000099.checkpoint.parquet".to_string()),
        "{log:?}"
    );
    // Without the commits the checkpoint covers, the table still reads.
    for version in 0..99 {
        store
            .delete(&Path::from(format!(
                "bronze/many/_delta_log/{version:020}.json"
            )))
            .await
            .unwrap();
    }
    let snapshot = table.snapshot().await.unwrap();
    assert_eq!((snapshot.version, snapshot.rows()), (99, 100));
}

#[tokio::test]
async fn history_vacuum_and_as_of_commands_read_the_lake_and_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path());
    let table = lake.table("gold", "t");
    append(&table, "first-run", &[("a", &["a1", "a2"])]).await;
    replace_all(&table, "second-run", "b", &["b1"]).await;

    let run = |args: &[&str]| {
        let out = crate::support::soundlake(dir.path())
            .env(
                "SOUNDLAKE__LAKE__URL",
                format!("file://{}", dir.path().display()),
            )
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["history", "gold.t"]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[2].trim_start().starts_with("1 ") && lines[2].contains("replace"));
    assert!(
        lines[2].contains("second-run") && lines[2].contains(" 1 ") && lines[2].contains(" 2 ")
    );
    assert!(
        lines[3].contains("append") && lines[3].contains("first-run"),
        "{out}"
    );
    assert_eq!(lines.len(), 4, "two versions: {out}");
    let (_, json, _) = run(&["history", "gold.t", "--json", "--limit", "1"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["rows_removed"], 2);

    let count = |at: &str| {
        let (code, out, err) = run(&[
            "query",
            "--as-of",
            at,
            "--format",
            "csv",
            "SELECT count(*) AS n FROM gold.t",
        ]);
        assert_eq!(code, Some(0), "{err}");
        out
    };
    assert_eq!(count("0"), "n\n2\n");
    assert_eq!(count("1"), "n\n1\n");

    let (code, out, err) = run(&["vacuum", "--retain-hours", "0", "--dry-run"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("gold.t") && out.contains("would delete 1 files"),
        "{out}"
    );
    // The daemon vacuums through a pipeline's vacuum task.
    let defs = crate::support::copy_of_shipped(&["bronze", "silver", "gold", "pipelines"]);
    std::fs::write(
        defs.path().join("pipelines/maintenance.toml"),
        "schedule = \"30 4 * * *\"\n[tasks.vacuum]\nparams = { retain_hours = 0 }\n",
    )
    .unwrap();
    let out = crate::support::soundlake(defs.path())
        .env(
            "SOUNDLAKE__LAKE__URL",
            format!("file://{}", dir.path().display()),
        )
        .current_dir(dir.path())
        .args(["run", "maintenance", "--json"])
        .output()
        .unwrap();
    let (code, out, err) = (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("part=a/part-"), "the superseded file: {out}");
    let (_, again, _) = run(&["vacuum", "gold.t", "--retain-hours", "0", "--json"]);
    assert!(again.contains("\"files\": []"), "{out}\n{again}");
    assert_eq!(count("1"), "n\n1\n");

    for (args, needle) in [
        (&["history", "nope"][..], "\"nope\" is not a table"),
        (
            &["history", "platinum.t"][..],
            "the layer one of bronze, silver, gold",
        ),
        (&["vacuum", "gold"][..], "layer.table"),
        (
            &["query", "--as-of", "yesterday", "SELECT 1"][..],
            "neither a version nor a time",
        ),
    ] {
        let (code, _, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle) && err.contains("fix:"),
            "{args:?}: {err}"
        );
    }
}

#[tokio::test]
async fn a_bounded_session_spills_what_it_can_and_names_the_limit_when_it_cannot() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let lake = Lake::with_store(store, "memory://", &LakeSettings::default()).unwrap();
    // 1,000,000 rows of ~100 bytes: ~100 MB, against a limit of 64 MiB.
    let rows = "SELECT v, repeat('x', 90) || CAST(v AS VARCHAR) AS pad \
                FROM generate_series(1, 1000000) AS t(v)";
    let bounded = soundlake::sql::Engine::open_within(&lake, 64 << 20)
        .await
        .unwrap();
    let unbounded = soundlake::sql::Engine::open(&lake).await.unwrap();
    // A whole sort (a window's) spills to disk and answers as an unbounded
    // one does.
    let sorted = format!(
        "SELECT r, pad FROM (SELECT pad, row_number() OVER (ORDER BY pad DESC) AS r \
         FROM ({rows})) WHERE r IN (1, 500000, 1000000) ORDER BY r"
    );
    let within = bounded.collect("sort", &sorted).await.unwrap().1;
    let without = unbounded.collect("sort", &sorted).await.unwrap().1;
    assert_eq!(within, without);
    assert_eq!(within.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    // A hash join's build side cannot spill: it fails, naming the setting.
    let joined = format!("SELECT count(*) FROM ({rows}) a JOIN ({rows}) b ON a.pad = b.pad");
    let err = bounded
        .collect("model.sql", &joined)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Resources exhausted") && err.contains("raise [gold] memory_mib"),
        "{err}"
    );
    let n = unbounded.collect("join", &joined).await.unwrap().1;
    let n = n[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(n.value(0), 1_000_000, "unbounded, the same join answers");
}

#[tokio::test]
async fn a_reader_keeps_its_version_while_newer_versions_are_committed() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let lake = Lake::with_store(store, "memory://", &LakeSettings::default()).unwrap();
    let table = lake.table("gold", "t");
    append(&table, "r1", &[("a", &["a1", "a2"])]).await;
    let count = async |engine: &soundlake::sql::Engine| {
        let (_, batches) = engine
            .collect("test", "SELECT count(*) AS n FROM gold.t")
            .await
            .unwrap();
        batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0)
    };
    let reader = soundlake::sql::Engine::open(&lake).await.unwrap();
    assert_eq!(count(&reader).await, 2);
    // Two versions replace every file, as a backfill's intervals would.
    replace_all(&table, "r2", "x", &["b1"]).await;
    replace_all(&table, "r3", "x", &["c1", "c2", "c3"]).await;
    assert_eq!(count(&reader).await, 2, "the reader stays on version 1");
    let fresh = soundlake::sql::Engine::open(&lake).await.unwrap();
    assert_eq!(count(&fresh).await, 3, "a new reader sees version 3");
}

/// A Parquet file of `ids` at `path` under `root`, as the pre-Delta
/// writer left it; returns its size.
fn old_file(root: &std::path::Path, path: &str, ids: &[&str]) -> u64 {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    let file = std::fs::File::create(&full).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema(), None).unwrap();
    writer.write(&batch(ids)).unwrap();
    writer.close().unwrap();
    std::fs::metadata(&full).unwrap().len()
}

#[tokio::test]
async fn a_table_of_the_pre_delta_format_converts_on_first_use_keeping_rows_and_properties() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bronze/old");
    let kept = old_file(&root, "part=a/part-T1-00000.parquet", &["a1", "a2"]);
    // The newest version's publish was interrupted: its file is still staged.
    let staged = old_file(
        &root,
        "_soundlake/staging/T2/part=b/part-T2-00000.parquet.pending",
        &["b1"],
    );
    let record = |version: u64, files: serde_json::Value, added: &[&str], staging: &str| {
        serde_json::json!({
            "format": 1, "version": version, "committed_at": "2026-11-21T09:00:00Z",
            "run_id": format!("run{version}"), "operation": "append",
            "files": files, "added": added, "removed": [], "staging": staging,
            "properties": {"watermark": {"stamp": version, "id": "x"}},
        })
    };
    let first = serde_json::json!({"path": "part=a/part-T1-00000.parquet",
        "partition": {"part": "a"}, "rows": 2, "bytes": kept,
        "stats": {"min_ingested_at": 1, "max_ingested_at": 2}});
    let second = serde_json::json!({"path": "part=b/part-T2-00000.parquet",
        "partition": {"part": "b"}, "rows": 1, "bytes": staged});
    let commits = root.join("_soundlake/commits");
    std::fs::create_dir_all(&commits).unwrap();
    for (version, body) in [
        (
            1,
            record(
                1,
                serde_json::json!([first.clone()]),
                &["part=a/part-T1-00000.parquet"],
                "T1",
            ),
        ),
        (
            2,
            record(
                2,
                serde_json::json!([first, second]),
                &["part=b/part-T2-00000.parquet"],
                "T2",
            ),
        ),
    ] {
        std::fs::write(
            commits.join(format!("{version:020}.json")),
            serde_json::to_vec_pretty(&body).unwrap(),
        )
        .unwrap();
    }

    let lake = local_lake(dir.path());
    let table = lake.table("bronze", "old");
    let converted = table.snapshot().await.unwrap();
    assert_eq!(converted.version, 0);
    assert_eq!(ids(&table, &converted).await, ["a1", "a2", "b1"]);
    assert_eq!(
        converted.properties["watermark"],
        serde_json::json!({"stamp": 2, "id": "x"}),
        "the newest record's properties"
    );
    assert_eq!(
        converted.files[0].stats["max_ingested_at"],
        serde_json::json!(2)
    );
    assert_eq!(
        crate::support::files_ending(&root.join("_soundlake"), ""),
        0,
        "the old records are gone"
    );
    assert!(root.join("_delta_log/00000000000000000000.json").exists());
    let history = table.history(None).await.unwrap();
    assert_eq!(history[0].mode.as_deref(), Some("convert"));
    assert_eq!(history[0].run_id.as_deref(), Some("run2"));

    // And it is an ordinary Delta table from then on.
    let v1 = append(&table, "next", &[("a", &["a3"])]).await;
    assert_eq!((v1.version, v1.rows()), (1, 4));
}

/// A copy of the folder `from` (files and subfolders) at `to`.
fn copy_folder(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `tests/fixtures/legacy-lake`: a lake and landing store the last
/// pre-Delta build wrote, and every table's row count as it read them.
#[test]
fn a_lake_written_by_the_pre_delta_build_converts_keeping_rows_and_watermarks() {
    let dir = tempfile::tempdir().unwrap();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-lake");
    copy_folder(&fixture, dir.path());
    let cli = |args: &[&str]| {
        crate::support::succeed(
            crate::support::soundlake(crate::support::shipped())
                .current_dir(dir.path())
                .env(
                    "SOUNDLAKE__LANDING__URL",
                    format!("embedded://{}/landing", dir.path().display()),
                )
                .env(
                    "SOUNDLAKE__LAKE__URL",
                    format!("file://{}/lake", dir.path().display()),
                )
                .args(args),
        )
    };
    let count = |table: &str| -> u64 {
        let rows: Vec<serde_json::Value> = serde_json::from_str(&cli(&[
            "query",
            "--format",
            "json",
            &format!("SELECT count(*) AS n FROM {table}"),
        ]))
        .unwrap();
        rows[0]["n"].as_u64().unwrap()
    };
    let counts: std::collections::BTreeMap<String, u64> =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("counts.json")).unwrap())
            .unwrap();
    assert!(counts.len() >= 20, "{counts:?}");
    for (table, rows) in &counts {
        assert_eq!(count(table), *rows, "{table} after conversion");
    }
    let tracks = dir.path().join("lake/bronze/tracks");
    assert!(tracks.join("_delta_log").exists() && !tracks.join("_soundlake").exists());
    let history = cli(&["history", "bronze.tracks", "--json"]);
    assert!(history.contains("\"convert\""), "{history}");

    // The watermarks came along: the same landing store gives bronze nothing
    // new, and a new landing gives it exactly the new versions.
    let bronze = ["run", "spotify_catalog", "--select", "bronze.*", "--json"];
    let report: serde_json::Value = serde_json::from_str(&cli(&bronze)).unwrap();
    for task in report["tasks"].as_array().unwrap() {
        assert_eq!(task["report"]["rows_written"], 0, "{task}");
    }
    let more = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/spotify/tracks_several_with_null.json");
    cli(&["import", "tracks", more.to_str().unwrap()]);
    cli(&bronze);
    assert_eq!(count("bronze.tracks"), counts["bronze.tracks"] + 1);
}

/// The tests that need the real servers or Python readers `tests/run.sh`
/// installs.
#[cfg(feature = "servers")]
mod with_servers {
    use super::*;
    use crate::servers::{HdfsCluster, S3_SECRET_KEY, S3Server};

    #[tokio::test]
    async fn protocol_on_s3() {
        let s3 = S3Server::start(&["lake"]);
        let store = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name("lake")
            .with_endpoint(s3.endpoint())
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id(crate::servers::S3_ACCESS_KEY)
            .with_secret_access_key(S3_SECRET_KEY)
            .build()
            .unwrap();
        protocol(Arc::new(store), "s3://lake").await;
    }

    #[tokio::test]
    async fn protocol_on_hdfs() {
        let hdfs = HdfsCluster::start();
        let store = hdfs_native_object_store::HdfsObjectStoreBuilder::new()
            .with_url(hdfs.url())
            .build()
            .unwrap();
        protocol(Arc::new(store), "hdfs://").await;
    }

    #[tokio::test]
    async fn s3_failures_name_the_url_and_fix_and_never_the_secret() {
        let s3 = S3Server::start(&["lake"]);
        let check = async |settings: &LakeSettings| {
            let lake = Lake::open(settings).unwrap();
            assert_eq!(format!("{lake:?}").matches(S3_SECRET_KEY).count(), 0);
            lake.check().await.unwrap_err().to_string()
        };
        let err = check(&s3.lake("no-such-bucket", "lake")).await;
        assert!(err.contains("s3://no-such-bucket/lake"), "{err}");
        assert!(err.contains("create the bucket"), "{err}");
        assert!(!err.contains(S3_SECRET_KEY), "{err}");

        // A secret the server does not know, and a key it does not know: MinIO
        // refuses both, and the message says to check the credentials.
        let wrong_secret = "not-the-secret-either-1234";
        for (key, secret) in [
            (crate::servers::S3_ACCESS_KEY, wrong_secret),
            ("no-such-access-key", S3_SECRET_KEY),
        ] {
            let mut settings = s3.lake("lake", "");
            settings.s3.access_key_id = key.into();
            settings.s3.secret_access_key = soundlake::secret::Secret::new(secret);
            let err = check(&settings).await;
            assert!(err.contains("s3://lake"), "{err}");
            assert!(err.contains("check the credentials"), "{err}");
            assert!(!err.contains(secret), "{err}");
        }

        // Nothing listening: fails after the configured retries, with a fix.
        let mut settings = s3.lake("lake", "");
        settings.s3.endpoint = format!("http://127.0.0.1:{}", crate::support::free_port());
        settings.max_retries = 1;
        settings.retry_timeout_secs = 2;
        let err = check(&settings).await;
        assert!(err.contains("reachable"), "{err}");
        assert!(!err.contains(S3_SECRET_KEY), "{err}");
    }
}

/// A column of few values keeps its dictionary; a column whose values
/// rarely repeat gives up on it early (at 64 KiB, not the Parquet writer's
/// 1 MiB) and is written plain from there.
#[tokio::test]
async fn dictionaries_stay_small_on_columns_whose_values_rarely_repeat() {
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path());
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
    ]));
    let rows = 20_000u64;
    // 20,000 distinct ids of 32 hex digits: a 640 KB dictionary, within
    // the writer's default limit.
    let ids: Vec<String> = (0..rows)
        .map(|i| format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes())))
        .collect();
    let countries: Vec<String> = (0..rows).map(|i| format!("country-{}", i % 200)).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(ids)) as ArrayRef,
            Arc::new(StringArray::from(countries)),
        ],
    )
    .unwrap();
    let table = lake.table("silver", "dictionaries");
    let mut txn = table.begin("r1", t0()).await.unwrap();
    let mut writer = txn.create_file(&[], schema, &[]).unwrap();
    writer.write(&batch).await.unwrap();
    let file = writer.finish().await.unwrap();
    let path = dir.path().join("silver/dictionaries").join(&file.path);
    let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let group = reader.metadata().row_group(0);
    let dictionary_bytes = |column: usize| {
        let chunk = group.column(column);
        let start = chunk.dictionary_page_offset().expect("a dictionary page");
        (chunk.data_page_offset() - start) as u64
    };
    let (ids, countries) = (dictionary_bytes(0), dictionary_bytes(1));
    assert!(ids <= 64 * 1024, "the ids' dictionary took {ids} bytes");
    assert!(ids > 16 * 1024, "the ids' dictionary took only {ids} bytes");
    assert!(countries < 4 * 1024, "{countries}");
}
