//! The lake as DataFusion sees it: every table at exactly one version.
//!
//! A table folder holds the files of every version still kept, and of
//! writes in progress; a query must read one version. [`Snapshots`] is a
//! read-only object store that lists, for each table a query resolved, the
//! files of the version pinned for it (the newest commit, or the version a
//! write would commit while its data tests run). DataFusion's Parquet
//! listing tables run on top unchanged: partition columns, pruning and
//! projection come with them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use crate::lake::Located;

/// The pinned files of every resolved table, by table folder.
#[derive(Debug)]
pub struct Snapshots {
    lake: Arc<dyn ObjectStore>,
    tables: RwLock<BTreeMap<Path, Pinned>>,
}

#[derive(Debug, Clone)]
struct Pinned {
    files: Vec<Located>,
    committed_at: DateTime<Utc>,
}

impl Snapshots {
    pub fn new(lake: Arc<dyn ObjectStore>) -> Snapshots {
        Snapshots {
            lake,
            tables: RwLock::new(BTreeMap::new()),
        }
    }

    /// Pin `root` (a table folder) to these files; replaces an earlier pin.
    pub fn pin(&self, root: Path, files: Vec<Located>, committed_at: DateTime<Utc>) {
        self.tables
            .write()
            .expect("no panics while pinning")
            .insert(
                root,
                Pinned {
                    files,
                    committed_at,
                },
            );
    }

    /// Every pinned file under `prefix`, as object metadata.
    fn under(&self, prefix: Option<&Path>) -> Vec<ObjectMeta> {
        let tables = self.tables.read().expect("no panics while pinning");
        let mut found = Vec::new();
        for pinned in tables.values() {
            for file in &pinned.files {
                if prefix.is_none_or(|p| file.path.prefix_matches(p)) {
                    found.push(ObjectMeta {
                        location: file.path.clone(),
                        last_modified: pinned.committed_at,
                        size: file.size,
                        e_tag: None,
                        version: None,
                    });
                }
            }
        }
        found
    }

    fn is_pinned(&self, location: &Path) -> bool {
        let tables = self.tables.read().expect("no panics while pinning");
        tables
            .values()
            .flat_map(|t| t.files.iter())
            .any(|f| &f.path == location)
    }
}

impl fmt::Display for Snapshots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "soundlake snapshots of {}", self.lake)
    }
}

fn read_only(operation: &str) -> object_store::Error {
    object_store::Error::NotSupported {
        source: format!("{operation}: soundlake's SQL reads the lake, it does not write it").into(),
    }
}

fn not_pinned(location: &Path) -> object_store::Error {
    object_store::Error::NotFound {
        path: location.to_string(),
        source: "not a file of a table version this query reads".into(),
    }
}

#[async_trait]
impl ObjectStore for Snapshots {
    async fn put_opts(
        &self,
        _location: &Path,
        _payload: PutPayload,
        _opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        Err(read_only("put"))
    }

    async fn put_multipart_opts(
        &self,
        _location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(read_only("put"))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if !self.is_pinned(location) {
            return Err(not_pinned(location));
        }
        self.lake.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        locations.map(|_| Err(read_only("delete"))).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        stream::iter(self.under(prefix).into_iter().map(Ok)).boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let depth = prefix.map_or(0, |p| p.parts().count());
        let mut result = ListResult {
            common_prefixes: Vec::new(),
            objects: Vec::new(),
        };
        for meta in self.under(prefix) {
            let parts: Vec<_> = meta.location.parts().collect();
            if parts.len() == depth + 1 {
                result.objects.push(meta);
            } else {
                let folder: Path = parts[..=depth].iter().cloned().collect();
                if !result.common_prefixes.contains(&folder) {
                    result.common_prefixes.push(folder);
                }
            }
        }
        Ok(result)
    }

    async fn copy_opts(
        &self,
        _from: &Path,
        _to: &Path,
        _options: CopyOptions,
    ) -> object_store::Result<()> {
        Err(read_only("copy"))
    }
}
