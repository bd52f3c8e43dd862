//! The lake's publish protocol, run against memory, local disk, a real S3
//! server (MinIO) and a real HDFS: versions appear only through their commit record,
//! staged files stay hidden, writers conflict instead of overwriting, and
//! an interrupted publish is finished by the next writer.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::Map;
use soundlake::lake::LakeSettings;
use soundlake::lake::{Lake, Snapshot, Table};

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

/// Every id of a committed version, sorted, read through the table.
async fn ids(table: &Table, snapshot: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for file in &snapshot.files {
        let batches: Vec<RecordBatch> = table
            .read(snapshot, file, 1024)
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

async fn protocol(store: Arc<dyn ObjectStore>, label: &str) {
    let lake = Lake::with_store(store.clone(), label, &LakeSettings::default()).unwrap();
    let table = lake.table("bronze", "things");

    let empty = table.snapshot().await.unwrap();
    assert_eq!((empty.version, empty.files.len()), (0, 0));

    // Staged files are invisible until the commit, then in place.
    let mut txn = table.begin("r1", t0()).await.unwrap();
    let mut w = txn
        .create_file(&[("part", "a".into())], schema(), &[])
        .unwrap();
    w.write(&batch(&["a1", "a2"])).await.unwrap();
    txn.add(w.finish().await.unwrap());
    assert!(
        visible(&store, &table).await.is_empty(),
        "{label}: staged file visible"
    );
    assert_eq!(table.snapshot().await.unwrap().version, 0);
    let v1 = txn.commit("append", Map::new(), t0()).await.unwrap();
    assert_eq!(v1.version, 1);
    let shown = visible(&store, &table).await;
    assert_eq!(shown.len(), 1, "{label}: {shown:?}");
    assert!(
        shown[0].starts_with("bronze/things/part=a/part-"),
        "{label}: {shown:?}"
    );
    assert_eq!(ids(&table, &v1).await, ["a1", "a2"]);

    // A second version adds to the first.
    let v2 = append(&table, "r2", &[("b", &["b1"]), ("a", &["a3"])]).await;
    assert_eq!((v2.version, v2.rows()), (2, 4));
    assert_eq!(
        ids(&table, &table.snapshot().await.unwrap()).await,
        ["a1", "a2", "a3", "b1"]
    );

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
        err.contains("another writer committed version 3"),
        "{label}: {err}"
    );
    assert_eq!(table.snapshot().await.unwrap().rows(), 5);

    // An abandoned write leaves nothing visible and is cleaned up by the
    // next writer.
    let mut abandoned = table.begin("crashed", t0()).await.unwrap();
    let mut w = abandoned
        .create_file(&[("part", "z".into())], schema(), &[])
        .unwrap();
    w.write(&batch(&["z1"])).await.unwrap();
    w.finish().await.unwrap();
    drop(abandoned);
    let before = visible(&store, &table).await;
    let settled = table.settle().await.unwrap();
    assert_eq!(settled.version, 3);
    let staging = Path::from("bronze/things/_soundlake/staging");
    let left: Vec<_> = store.list(Some(&staging)).try_collect().await.unwrap();
    assert!(left.is_empty(), "{label}: staging not cleaned: {left:?}");
    assert_eq!(visible(&store, &table).await, before);

    // Replace: the removed files are gone from the version and the store.
    let base = table.snapshot().await.unwrap();
    let mut txn = table.begin("r4", t0()).await.unwrap();
    for f in base.files.iter().filter(|f| f.partition["part"] == "a") {
        txn.remove(f);
    }
    let mut w = txn
        .create_file(&[("part", "a".into())], schema(), &[])
        .unwrap();
    w.write(&batch(&["a9"])).await.unwrap();
    txn.add(w.finish().await.unwrap());
    let v4 = txn.commit("replace", Map::new(), t0()).await.unwrap();
    assert_eq!(ids(&table, &v4).await, ["a9", "b1", "c1"]);
    let in_a: Vec<_> = visible(&store, &table)
        .await
        .into_iter()
        .filter(|p| p.contains("/part=a/"))
        .collect();
    assert_eq!(in_a.len(), 1, "{label}: superseded files left: {in_a:?}");

    // Old commit records are pruned; the newest ten and the current stay.
    for i in 0..12 {
        append(&table, &format!("p{i}"), &[("d", &["d"])]).await;
    }
    let commits: Vec<_> = store
        .list(Some(&Path::from("bronze/things/_soundlake/commits")))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(commits.len(), 11, "{label}");
    assert_eq!(table.snapshot().await.unwrap().version, 16);
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

/// A store whose renames fail: a writer that dies right after its commit
/// record, before moving its files into place.
/// A store whose writer "dies" at chosen steps: `dies(operation, path)`
/// says when (`put` or `rename`), and that step fails.
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
        self.0.put_opts(location, payload, opts).await
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

#[tokio::test]
async fn a_publish_cut_after_the_commit_record_is_read_and_finished_by_the_next_writer() {
    let healthy: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let broken: Arc<dyn ObjectStore> = Arc::new(Dying(healthy.clone(), |op, _| op == "rename"));
    let lake = Lake::with_store(broken, "memory://", &LakeSettings::default()).unwrap();
    let table = lake.table("silver", "t");
    let mut txn = table.begin("dies", t0()).await.unwrap();
    let mut w = txn.create_file(&[], schema(), &[]).unwrap();
    w.write(&batch(&["x", "y"])).await.unwrap();
    txn.add(w.finish().await.unwrap());
    let err = txn.commit("append", Map::new(), t0()).await.unwrap_err();
    assert!(err.to_string().contains("the writer died here"), "{err}");

    // The version exists; readers find its file in staging.
    let lake = Lake::with_store(healthy.clone(), "memory://", &LakeSettings::default()).unwrap();
    let table = lake.table("silver", "t");
    let v1 = table.snapshot().await.unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(ids(&table, &v1).await, ["x", "y"]);
    assert!(visible(&healthy, &table).await.is_empty());

    // The next writer moves it into place first.
    table.begin("next", t0()).await.unwrap();
    assert_eq!(visible(&healthy, &table).await.len(), 1);
    assert_eq!(ids(&table, &v1).await, ["x", "y"]);
}

#[tokio::test]
async fn damaged_commit_records_are_refused_with_a_fix() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let lake = Lake::with_store(store.clone(), "memory://", &LakeSettings::default()).unwrap();
    let table = lake.table("gold", "t");
    for (body, needle) in [
        (&b"{not json"[..], "is not valid"),
        (&br#"{"format": 1, "version": 2}"#[..], "is not valid"),
        (&[0xff, 0x00, 0x10][..], "is not valid"),
    ] {
        store
            .put(
                &Path::from("gold/t/_soundlake/commits/00000000000000000001.json"),
                body.to_vec().into(),
            )
            .await
            .unwrap();
        let err = table.snapshot().await.unwrap_err().to_string();
        assert!(
            err.contains(needle) && err.contains("00000000000000000001.json"),
            "{err}"
        );
        assert!(err.contains("fix:"), "{err}");
    }
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
