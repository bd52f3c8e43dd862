//! The lake: object storage holding the bronze, silver and gold tables as
//! Hive-style partitioned Parquet. One URL picks the backend (local disk,
//! S3 and S3-compatible servers, HDFS, memory); everything above this
//! module sees only [`Lake`] and [`Table`]. The lake knows nothing of
//! Spotify or of what the layers mean.

mod delete;
mod legacy;
pub mod maintenance;
mod ordered;
mod parquet_io;
mod table;
mod transaction;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::secret::redact_url;

pub use delete::Deleted;
pub use parquet_io::{FileWriter, GroupSize, ParquetFile, WriteOptions};
pub use table::{At, Commit, DataFile, Located, Snapshot, Table};
pub use transaction::{TableDocs, Transaction};

/// `[lake]`: where the tables are and how their files are written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LakeSettings {
    /// `file://./lake`, `s3://bucket/prefix`, `hdfs://namenode:port/path` or `memory://`.
    pub url: String,
    /// Parquet compression: `zstd` or `snappy`.
    pub compression: Compression,
    /// A row group is closed at this many rows...
    pub row_group_rows: usize,
    /// ...or at this many MiB of encoded data, whichever comes first: what
    /// bounds a writer's memory, and the unit engines skip by statistics.
    pub row_group_mib: usize,
    /// A file is closed once it holds this many MiB; the next one starts.
    pub file_mib: usize,
    /// Attempts of a request that failed transiently (5xx, timeouts, resets)
    /// against S3, with exponential backoff (the HDFS client retries on its own).
    pub max_retries: usize,
    /// Give up retrying a request after this many seconds.
    pub retry_timeout_secs: u64,
    /// Files a newer version superseded, and files of writes that never
    /// committed, are deleted by `soundlake vacuum` once this old; readers
    /// of a version committed within it keep working.
    pub vacuum_retention_hours: u64,
    pub s3: S3Settings,
}

impl Default for LakeSettings {
    fn default() -> Self {
        LakeSettings {
            url: "file://./lake".into(),
            compression: Compression::Zstd,
            row_group_rows: 122_880,
            row_group_mib: 64,
            file_mib: 512,
            max_retries: 10,
            retry_timeout_secs: 180,
            vacuum_retention_hours: 168,
            s3: S3Settings::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    Zstd,
    Snappy,
}

/// S3 connection settings. Each empty value falls back to the standard AWS
/// variable (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and then to AWS defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    /// For MinIO and other S3 servers: `http://minio:9000`.
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: crate::secret::Secret,
    pub session_token: crate::secret::Secret,
    /// Path-style requests (`endpoint/bucket/key`), which MinIO needs;
    /// virtual-hosted style (`bucket.endpoint/key`) otherwise.
    pub path_style: bool,
}

/// An object found by [`Lake::list_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Relative to the lake root.
    pub path: String,
    pub size: u64,
    pub modified: chrono::DateTime<chrono::Utc>,
}

/// A handle on the lake; cheap to clone.
#[derive(Debug, Clone)]
pub struct Lake {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn ObjectStore>,
    /// The URL as given, credentials redacted: for messages only.
    url: String,
    write: WriteOptions,
    /// A lake on disk: its folder, which can hold empty folders that an
    /// object store cannot.
    folder: Option<PathBuf>,
    /// Rows written to data files through this lake, for progress bars.
    written: crate::progress::Tally,
}

impl Lake {
    /// Open the lake `settings.url` names. Local folders are created; remote
    /// stores are not contacted until [`Lake::check`] or the first operation.
    pub fn open(settings: &LakeSettings) -> Result<Lake> {
        let url = settings.url.trim();
        let shown = redact_url(url);
        let mut folder = None;
        let store: Arc<dyn ObjectStore> = if let Some(dir) = url.strip_prefix("file://") {
            let dir = if dir.is_empty() { "." } else { dir };
            folder = Some(PathBuf::from(dir));
            local(dir, &shown)?
        } else if url == "memory://" || url == "memory:" {
            Arc::new(object_store::memory::InMemory::new())
        } else if let Some(rest) = strip_any(url, &["s3://", "s3a://"]) {
            s3(rest, settings, &shown)?
        } else if url.starts_with("hdfs://") || url.starts_with("viewfs://") {
            hdfs(url, &shown)?
        } else {
            return Err(Error::config(
                "[lake] url",
                format!("{shown:?} is not a lake URL"),
                "use file://./lake (the default), s3://bucket/prefix, \
                 hdfs://namenode:8020/path or memory://",
            ));
        };
        Lake::build(store, &shown, settings, folder)
    }

    /// A lake over an object store built elsewhere (a wrapped or custom
    /// store); `label` names it in messages and must carry no credentials.
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        label: &str,
        settings: &LakeSettings,
    ) -> Result<Lake> {
        Lake::build(store, label, settings, None)
    }

    fn build(
        store: Arc<dyn ObjectStore>,
        label: &str,
        settings: &LakeSettings,
        folder: Option<PathBuf>,
    ) -> Result<Lake> {
        Ok(Lake {
            inner: Arc::new(Inner {
                store,
                url: label.into(),
                write: WriteOptions::from_settings(settings)?,
                folder,
                written: Default::default(),
            }),
        })
    }

    /// An empty lake in memory, for tests and dry runs.
    pub fn in_memory() -> Lake {
        Lake::open(&LakeSettings {
            url: "memory://".into(),
            ..LakeSettings::default()
        })
        .expect("memory:// always opens")
    }

    /// Remove the empty folders under `prefix` (and it, if empty) of a
    /// lake on disk; object stores have no folders. Best effort: a folder
    /// that cannot go stays, and readers skip it.
    pub fn remove_empty_folders(&self, prefix: &Path) {
        fn remove(dir: &std::path::Path) {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        remove(&entry.path());
                    }
                }
            }
            // Fails, as it should, when the folder still holds a file.
            let _ = std::fs::remove_dir(dir);
        }
        if let Some(folder) = &self.inner.folder {
            remove(&folder.join(prefix.as_ref()));
        }
    }

    /// Rows written to data files through this lake (and its clones) so
    /// far, counted as they are written.
    pub fn rows_written(&self) -> &crate::progress::Tally {
        &self.inner.written
    }

    /// The lake URL with credentials redacted.
    pub fn describe(&self) -> &str {
        &self.inner.url
    }

    /// One cheap request, so a missing bucket, a refused credential or an
    /// unreachable server fails before any work starts.
    pub async fn check(&self) -> Result<()> {
        self.inner
            .store
            .list_with_delimiter(None)
            .await
            .map(|_| ())
            .map_err(|e| self.error("list the lake root", e))
    }

    /// The table `<layer>/<name>/`.
    pub fn table(&self, layer: &str, name: &str) -> Table {
        Table::new(self.clone(), Path::from(layer).join(name))
    }

    /// The names of a layer's tables: its folders.
    pub async fn tables(&self, layer: &str) -> Result<Vec<String>> {
        let listing = self
            .inner
            .store
            .list_with_delimiter(Some(&Path::from(layer)))
            .await
            .map_err(|e| self.error(&format!("list {layer}/"), e))?;
        let mut names: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .filter(|n| !n.starts_with(['_', '.']))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Write one whole file at `path` (relative to the lake root): readers
    /// see all of it or nothing (a rename on disk, one PUT on S3).
    pub async fn put_file(&self, path: &str, bytes: Vec<u8>) -> Result<()> {
        use object_store::ObjectStoreExt;
        self.inner
            .store
            .put(&Path::from(path), bytes.into())
            .await
            .map(drop)
            .map_err(|e| self.error(&format!("write {path}"), e))
    }

    /// Every object under `folder` (relative to the lake root, at any
    /// depth), sorted by path.
    pub async fn list_files(&self, folder: &str) -> Result<Vec<ObjectInfo>> {
        use futures::TryStreamExt;
        let prefix = Path::from(folder);
        let mut found: Vec<ObjectInfo> = self
            .inner
            .store
            .list(Some(&prefix))
            .map_ok(|meta| ObjectInfo {
                path: meta.location.to_string(),
                size: meta.size,
                modified: meta.last_modified,
            })
            .try_collect()
            .await
            .map_err(|e| self.error(&format!("list {folder}/"), e))?;
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }

    /// Bytes `range` of the object at `path`, as a stream of chunks.
    pub async fn read_range(
        &self,
        path: &str,
        range: std::ops::Range<u64>,
    ) -> Result<futures::stream::BoxStream<'static, Result<bytes::Bytes>>> {
        use futures::{StreamExt, TryStreamExt};
        let options = object_store::GetOptions {
            range: Some(object_store::GetRange::Bounded(range)),
            ..Default::default()
        };
        let got = self
            .inner
            .store
            .get_opts(&Path::from(path), options)
            .await
            .map_err(|e| self.error(&format!("read {path}"), e))?;
        let lake = self.clone();
        let path = path.to_string();
        let chunks = match got.payload {
            object_store::GetResultPayload::File(file, _) => file_chunks(file, got.range),
            object_store::GetResultPayload::Stream(stream) => stream,
        };
        Ok(chunks
            .map_err(move |e| lake.error(&format!("read {path}"), e))
            .boxed())
    }

    pub(crate) fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    /// The bytes a file's upload gathers before sending them as a part.
    /// S3 takes parts of at least 5 MiB; a file on disk any, and silver
    /// has a file open for every table of a family at once: at 8 MiB, the
    /// buffers of silver.albums' files held 39 MB at 2M tracks.
    pub(crate) fn upload_part_bytes(&self) -> usize {
        use parquet_io::MIB;
        if self.inner.folder.is_some() {
            MIB
        } else {
            8 * MIB
        }
    }

    pub(crate) fn write_options(&self) -> &WriteOptions {
        &self.inner.write
    }

    /// An object-store failure as a message with the lake URL and a fix.
    /// Retryable failures were already retried by the store client; what
    /// arrives here is permanent or out of retries.
    pub(crate) fn error(&self, action: &str, e: object_store::Error) -> Error {
        use object_store::Error as E;
        let fix = match &e {
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => CREDENTIALS_FIX,
            // S3 servers refuse a wrong key or secret with a 403 that the
            // store client passes on as a generic error.
            _ if is_refused_credential(&e) => CREDENTIALS_FIX,
            E::NotFound { .. } => {
                "the object is gone: another writer or a manual delete removed it; \
                 rerun the task, which rebuilds from the last committed version"
            }
            _ if is_missing_bucket(&e) => {
                "create the bucket (for MinIO: mc mb <alias>/<bucket>) or fix [lake] url"
            }
            E::AlreadyExists { .. } | E::Precondition { .. } => {
                "another writer changed the table at the same time; run the task again"
            }
            E::NotImplemented { .. } | E::NotSupported { .. } => {
                "this object store cannot do what the lake needs (conditional create); \
                 use a store with S3 conditional writes (AWS S3, MinIO), HDFS or local disk"
            }
            _ => {
                "check that the storage server is reachable and healthy; transient failures \
                 were retried ([lake] max_retries, retry_timeout_secs)"
            }
        };
        Error::Lake {
            url: self.inner.url.clone(),
            problem: format!("could not {action}: {}", scrub(&e.to_string())),
            fix: fix.into(),
        }
    }
}

fn strip_any<'a>(url: &'a str, prefixes: &[&str]) -> Option<&'a str> {
    prefixes.iter().find_map(|p| url.strip_prefix(p))
}

const CREDENTIALS_FIX: &str = "check the credentials ([lake.s3] access_key_id / \
     secret_access_key or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and that they may read, \
     write, list and delete under the lake URL";

fn is_missing_bucket(e: &object_store::Error) -> bool {
    e.to_string().contains("NoSuchBucket")
}

fn is_refused_credential(e: &object_store::Error) -> bool {
    let text = e.to_string();
    [
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AccessDenied",
    ]
    .iter()
    .any(|code| text.contains(code))
}

/// Object-store messages can quote request URLs with signatures in their
/// query; keep only what a reader needs.
fn scrub(message: &str) -> String {
    message
        .split_whitespace()
        .map(|word| {
            if word.contains("X-Amz-Signature") || word.contains("X-Amz-Credential") {
                redact_url(word.split('?').next().unwrap_or(word))
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn local(dir: &str, shown: &str) -> Result<Arc<dyn ObjectStore>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Lake {
        url: shown.into(),
        problem: format!("cannot create the lake folder {dir}: {e}"),
        fix: "choose a writable folder in [lake] url (file://<folder>)".into(),
    })?;
    let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| Error::Lake {
            url: shown.into(),
            problem: e.to_string(),
            fix: "choose a readable folder in [lake] url (file://<folder>)".into(),
        })?
        // Deleting the last file of a partition removes its folder, so
        // engines listing the table do not find empty partitions.
        .with_automatic_cleanup(true);
    Ok(Arc::new(fs))
}

fn retry(settings: &LakeSettings) -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: settings.max_retries,
        retry_timeout: Duration::from_secs(settings.retry_timeout_secs),
        ..Default::default()
    }
}

fn s3(rest: &str, settings: &LakeSettings, shown: &str) -> Result<Arc<dyn ObjectStore>> {
    use object_store::aws::AmazonS3Builder;

    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || bucket.contains('@') {
        return Err(Error::config(
            "[lake] url",
            format!("{shown:?} names no bucket"),
            "write s3://<bucket>/<prefix>; credentials go in [lake.s3] or the AWS variables, \
             never in the URL",
        ));
    }
    let S3Settings {
        endpoint,
        region,
        access_key_id,
        secret_access_key,
        session_token,
        path_style,
    } = &settings.s3;
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry(settings));
    if !endpoint.is_empty() {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    if !region.is_empty() {
        builder = builder.with_region(region);
    }
    if !access_key_id.is_empty() {
        builder = builder.with_access_key_id(access_key_id);
    }
    if !secret_access_key.is_empty() {
        builder = builder.with_secret_access_key(secret_access_key.expose());
    }
    if !session_token.is_empty() {
        builder = builder.with_token(session_token.expose());
    }
    if *path_style {
        builder = builder.with_virtual_hosted_style_request(false);
    }
    let store = builder.build().map_err(|e| {
        Error::config(
            "[lake.s3]",
            scrub(&e.to_string()),
            "set [lake.s3] endpoint/region/credentials or the AWS_* variables",
        )
    })?;
    Ok(prefixed(store, prefix))
}

fn hdfs(url: &str, shown: &str) -> Result<Arc<dyn ObjectStore>> {
    let parsed = url::Url::parse(url).map_err(|e| {
        Error::config(
            "[lake] url",
            format!("{shown:?}: {e}"),
            "write hdfs://namenode:8020/path",
        )
    })?;
    let authority = format!(
        "{}://{}{}",
        parsed.scheme(),
        parsed.host_str().unwrap_or_default(),
        parsed.port().map(|p| format!(":{p}")).unwrap_or_default()
    );
    let store = hdfs_native_object_store::HdfsObjectStoreBuilder::new()
        .with_url(authority)
        .build()
        .map_err(|e| Error::Lake {
            url: shown.into(),
            problem: e.to_string(),
            fix: "check the NameNode address in [lake] url and the Hadoop configuration \
                  (HADOOP_CONF_DIR)"
                .into(),
        })?;
    Ok(prefixed(store, parsed.path().trim_matches('/')))
}

fn prefixed<T: ObjectStore>(store: T, prefix: &str) -> Arc<dyn ObjectStore> {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
    }
}

/// A Hive partition folder name, `key=value`, with the characters Hive
/// escapes written as `%XX` so any value round-trips through engines.
pub fn partition_dir(key: &str, value: &str) -> String {
    let mut out = String::with_capacity(key.len() + value.len() + 1);
    out.push_str(key);
    out.push('=');
    for c in value.chars() {
        if c.is_control() || "\"#%'*/:=?\\\u{7f}{[]^".contains(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Bytes read from a local file at a time.
const FILE_CHUNK: u64 = 1 << 20;

/// Bytes `range` of a local file, a mebibyte at a time on a blocking
/// thread. object_store's own stream reads 8 KiB per blocking task: for a
/// bronze run over event files, handing those tasks between threads cost
/// more than the reading.
fn file_chunks(
    file: std::fs::File,
    range: std::ops::Range<u64>,
) -> futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>> {
    use futures::StreamExt;
    use std::io::{Read, Seek, SeekFrom};
    let read = |(mut file, at, end): (std::fs::File, u64, u64)| async move {
        if at >= end {
            return Ok(None);
        }
        tokio::task::spawn_blocking(move || {
            file.seek(SeekFrom::Start(at))?;
            let mut chunk = Vec::new();
            let n = (&mut file)
                .take((end - at).min(FILE_CHUNK))
                .read_to_end(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the file ended at byte {at}, before byte {end}"),
                ));
            }
            Ok(Some((
                bytes::Bytes::from(chunk),
                (file, at + n as u64, end),
            )))
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        .map_err(|e| object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        })
    };
    futures::stream::try_unfold((file, range.start, range.end), read).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn partition_values_are_escaped_like_hive() {
        assert_eq!(
            partition_dir("ingest_date", "2026-11-21"),
            "ingest_date=2026-11-21"
        );
        assert_eq!(partition_dir("k", "a/b=c%"), "k=a%2Fb%3Dc%25");
    }

    #[test]
    fn unknown_scheme_is_a_config_error_naming_the_forms() {
        let err = Lake::open(&LakeSettings {
            url: "ftp://user:hunter2@host/lake".into(),
            ..LakeSettings::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("[lake] url"), "{err}");
        assert!(err.contains("s3://bucket/prefix"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn uploads_go_in_parts_s3_takes_and_small_ones_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let on_disk = Lake::open(&LakeSettings {
            url: format!("file://{}", dir.path().display()),
            ..LakeSettings::default()
        })
        .unwrap();
        assert_eq!(on_disk.upload_part_bytes(), 1 << 20);
        let s3 = Lake::open(&LakeSettings {
            url: "s3://bucket/lake".into(),
            ..LakeSettings::default()
        })
        .unwrap();
        assert!(
            s3.upload_part_bytes() >= 5 << 20,
            "S3 refuses parts under 5 MiB"
        );
    }

    #[test]
    fn s3_url_without_bucket_is_refused() {
        for url in ["s3://", "s3:///prefix", "s3://key:secret@bucket/x"] {
            let err = Lake::open(&LakeSettings {
                url: url.into(),
                ..LakeSettings::default()
            })
            .unwrap_err()
            .to_string();
            assert!(err.contains("bucket"), "{url}: {err}");
            assert!(!err.contains("secret@"), "{url}: {err}");
        }
    }

    #[tokio::test]
    async fn a_local_range_is_read_whole_in_large_chunks_and_a_shrunk_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..(5u32 << 19)).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("events.ndjson"), &bytes).unwrap();
        let lake = Lake::open(&LakeSettings {
            url: format!("file://{}", dir.path().display()),
            ..LakeSettings::default()
        })
        .unwrap();
        let (start, end) = (100, bytes.len() as u64 - 7);
        let chunks: Vec<bytes::Bytes> = lake
            .read_range("events.ndjson", start..end)
            .await
            .unwrap()
            .map(|c| c.unwrap())
            .collect()
            .await;
        assert_eq!(chunks.concat(), bytes[start as usize..end as usize]);
        assert_eq!(chunks.len(), 3, "mebibyte chunks, not object_store's 8 KiB");

        let mut stream = lake
            .read_range("events.ndjson", 0..bytes.len() as u64)
            .await
            .unwrap();
        std::fs::write(dir.path().join("events.ndjson"), b"shrunk").unwrap();
        let err = loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => break e.to_string(),
                None => panic!("a file that shrank under the read was read to its old end"),
            }
        };
        assert!(err.contains("events.ndjson"), "{err}");
        assert!(err.contains("ended at byte"), "{err}");
    }
}
