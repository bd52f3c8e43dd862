//! The catalog endpoints. Every object comes back as the raw
//! `serde_json::Value` the API sent, so the landing store keeps all of it.

use std::sync::atomic::Ordering;

use serde_json::Value;

use super::ApiError;
use super::{AppMode, Endpoint, SpotifyClient};
use crate::error::{Error, Result};

/// Every album group, for `include_groups`.
pub const ALL_GROUPS: &str = "album,single,compilation,appears_on";
/// Album tracks pages hold up to 50 items in every mode.
pub const ALBUM_TRACKS_LIMIT: u32 = 50;
/// A paged listing longer than this is treated as a server loop.
const MAX_PAGES: usize = 10_000;

impl SpotifyClient {
    /// `GET /search?type=artist`: the whole response (`{"artists": paging}`).
    /// `limit` is capped to what the app mode allows.
    pub async fn search_artists(&self, query: &str, limit: u32, offset: u32) -> Result<Value> {
        loop {
            let mode = self.mode();
            let limit = limit.clamp(1, mode.page_limit());
            let url = self.url(
                &["search"],
                &[
                    ("q", query.to_string()),
                    ("type", "artist".into()),
                    ("limit", limit.to_string()),
                    ("offset", offset.to_string()),
                ],
            );
            match self.get(Endpoint::Search, url).await {
                Err(e) if self.limit_refused(&e, mode) => continue,
                Err(e) => return Err(e),
                Ok(body) => {
                    page_items(Endpoint::Search, body.get("artists"))?;
                    return Ok(body);
                }
            }
        }
    }

    /// `GET /artists/{id}`; `None` when the id is unknown (404).
    pub async fn artist(&self, id: &str) -> Result<Option<Value>> {
        self.one(Endpoint::Artist, &["artists", id]).await
    }

    /// Full artists for `ids`, positionally aligned, `None` for unknown ids:
    /// batches of 50 in Extended mode, one request each in Development mode.
    pub async fn artists(&self, ids: &[String]) -> Result<Vec<Option<Value>>> {
        self.several(Endpoint::SeveralArtists, Endpoint::Artist, "artists", ids)
            .await
    }

    /// Every album of an artist for `include_groups` (see [`ALL_GROUPS`]),
    /// following `next` at the largest page the mode allows.
    pub async fn artist_albums(&self, id: &str, include_groups: &str) -> Result<Vec<Value>> {
        loop {
            let mode = self.mode();
            let url = self.url(
                &["artists", id, "albums"],
                &[
                    ("include_groups", include_groups.to_string()),
                    ("limit", mode.page_limit().to_string()),
                    ("offset", "0".into()),
                ],
            );
            match self.pages(Endpoint::ArtistAlbums, url).await {
                Err(e) if self.limit_refused(&e, mode) => continue,
                other => return other,
            }
        }
    }

    /// `GET /albums/{id}`: the full album with its first tracks page.
    pub async fn album(&self, id: &str) -> Result<Option<Value>> {
        self.one(Endpoint::Album, &["albums", id]).await
    }

    /// Full albums for `ids`: batches of 20 in Extended mode.
    pub async fn albums(&self, ids: &[String]) -> Result<Vec<Option<Value>>> {
        self.several(Endpoint::SeveralAlbums, Endpoint::Album, "albums", ids)
            .await
    }

    /// The album's track listing from `offset` on, as the pages the API
    /// sent (50 tracks each), every page a paging object whose `items` are
    /// simplified tracks. A full album already embeds the first 50, so a
    /// crawl asks from offset 50 only for albums whose `tracks.total` is
    /// larger.
    pub async fn album_track_pages(&self, id: &str, offset: u32) -> Result<Vec<Value>> {
        let url = self.url(
            &["albums", id, "tracks"],
            &[
                ("limit", ALBUM_TRACKS_LIMIT.to_string()),
                ("offset", offset.to_string()),
            ],
        );
        self.raw_pages(Endpoint::AlbumTracks, url).await
    }

    /// `GET /tracks/{id}`.
    pub async fn track(&self, id: &str) -> Result<Option<Value>> {
        self.one(Endpoint::Track, &["tracks", id]).await
    }

    /// Full tracks for `ids`: batches of 50 in Extended mode.
    pub async fn tracks(&self, ids: &[String]) -> Result<Vec<Option<Value>>> {
        self.several(Endpoint::SeveralTracks, Endpoint::Track, "tracks", ids)
            .await
    }

    /// Audio features for `ids` in batches of 100, `None` for tracks without
    /// them. [`ApiError::Unavailable`] in Development Mode, and for apps the API
    /// refuses them to (a 403, remembered for the life of the client).
    pub async fn audio_features(&self, ids: &[String]) -> Result<Vec<Option<Value>>> {
        let endpoint = Endpoint::SeveralAudioFeatures;
        if self.mode() == AppMode::Development {
            return Err(Error::from(ApiError::Unavailable {
                endpoint,
                why: "Development Mode apps get no audio features".into(),
            }));
        }
        if self.inner.audio_features_refused.load(Ordering::Relaxed) {
            return Err(refused_audio_features());
        }
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(endpoint.batch_size().expect("batch endpoint")) {
            let url = self.url(&["audio-features"], &[("ids", chunk.join(","))]);
            match self.get(endpoint, url).await {
                Ok(body) => out.extend(batch_items(endpoint, &body, chunk.len())?),
                Err(e) if matches!(e.source_error(), Some(ApiError::Api { status: 403, .. })) => {
                    if !self
                        .inner
                        .audio_features_refused
                        .swap(true, Ordering::Relaxed)
                    {
                        tracing::warn!(
                            "The API refuses audio features to this app (403); skipping them"
                        );
                    }
                    return Err(refused_audio_features());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// A batch endpoint in Extended mode; one request per id in Development
    /// mode or after a 403 on the batch endpoint showed that mode.
    async fn several(
        &self,
        batch: Endpoint,
        single: Endpoint,
        path: &str,
        ids: &[String],
    ) -> Result<Vec<Option<Value>>> {
        let size = batch.batch_size().expect("batch endpoint");
        let mut out = Vec::with_capacity(ids.len());
        let mut rest = ids;
        while !rest.is_empty() && self.mode() == AppMode::Extended {
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            let url = self.url(&[path], &[("ids", chunk.join(","))]);
            match self.get(batch, url).await {
                Ok(body) => {
                    out.extend(batch_items(batch, &body, chunk.len())?);
                    rest = tail;
                }
                Err(e) if matches!(e.source_error(), Some(ApiError::Api { status: 403, .. })) => {
                    self.detected_development(&format!("403 on {batch}"));
                }
                Err(e) => return Err(e),
            }
        }
        for id in rest {
            out.push(self.one(single, &[path, id]).await?);
        }
        Ok(out)
    }

    /// A single object; `None` on 404.
    async fn one(&self, endpoint: Endpoint, segments: &[&str]) -> Result<Option<Value>> {
        match self.get(endpoint, self.url(segments, &[])).await {
            Ok(Value::Object(o)) => Ok(Some(Value::Object(o))),
            Ok(other) => Err(Error::from(ApiError::MalformedBody {
                endpoint,
                status: 200,
                problem: "expected a JSON object".into(),
                snippet: super::client::snippet(other.to_string().as_bytes()),
            })),
            Err(e) if matches!(e.source_error(), Some(ApiError::Api { status: 404, .. })) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Follow a paging object's `next` links from `first`, collecting the
    /// non-null items.
    async fn pages(&self, endpoint: Endpoint, first: url::Url) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        for body in self.raw_pages(endpoint, first).await? {
            let page = page_items(endpoint, Some(&body))?;
            items.extend(page.iter().filter(|v| !v.is_null()).cloned());
        }
        Ok(items)
    }

    /// Every page from `first` on, following `next` links, as sent.
    async fn raw_pages(&self, endpoint: Endpoint, first: url::Url) -> Result<Vec<Value>> {
        let mut bodies = Vec::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            if bodies.len() >= MAX_PAGES {
                return Err(malformed(
                    endpoint,
                    format!("more than {MAX_PAGES} pages: the next links loop"),
                ));
            }
            let body = self.get(endpoint, url).await?;
            let has_items = page_items(endpoint, Some(&body))?
                .iter()
                .any(|v| !v.is_null());
            next = match body.get("next") {
                None | Some(Value::Null) => None,
                Some(Value::String(link)) if has_items => Some(self.same_api(endpoint, link)?),
                // An empty page that still points onwards would loop forever.
                Some(Value::String(_)) => None,
                Some(other) => {
                    return Err(malformed(
                        endpoint,
                        format!("`next` is neither a URL nor null: {other}"),
                    ));
                }
            };
            bodies.push(body);
        }
        Ok(bodies)
    }

    /// Parse a `next` link, refusing any that leaves the configured API: the
    /// bearer token must never be sent to another host.
    fn same_api(&self, endpoint: Endpoint, link: &str) -> Result<url::Url> {
        let base = &self.inner.api_base;
        match url::Url::parse(link) {
            Ok(url) if url.origin() == base.origin() && url.path().starts_with(base.path()) => {
                Ok(url)
            }
            _ => Err(malformed(
                endpoint,
                format!("`next` points outside the configured api_url: {link:?}"),
            )),
        }
    }

    /// A 400 "Invalid limit" in Extended mode means the app is in
    /// Development Mode: switch, and let the caller retry with limit 10.
    fn limit_refused(&self, error: &Error, mode_used: AppMode) -> bool {
        let refused = mode_used == AppMode::Extended
            && matches!(error.source_error(), Some(ApiError::Api { status: 400, message, .. })
                if message.to_ascii_lowercase().contains("invalid limit"));
        if refused {
            self.detected_development("400 Invalid limit");
        }
        refused
    }

    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> url::Url {
        let mut url = self.inner.api_base.clone();
        url.path_segments_mut()
            .expect("http URLs have paths")
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }
}

fn refused_audio_features() -> Error {
    Error::from(ApiError::Unavailable {
        endpoint: Endpoint::SeveralAudioFeatures,
        why: "the API answered 403: apps approved after 2024-11-27 get no audio features".into(),
    })
}

fn malformed(endpoint: Endpoint, problem: String) -> Error {
    Error::from(ApiError::MalformedBody {
        endpoint,
        status: 200,
        problem,
        snippet: String::new(),
    })
}

/// The `items` array of a paging object.
fn page_items(endpoint: Endpoint, paging: Option<&Value>) -> Result<&Vec<Value>> {
    paging
        .and_then(|p| p.get("items"))
        .and_then(Value::as_array)
        .ok_or_else(|| malformed(endpoint, "no paging object with an `items` array".into()))
}

/// The objects of a batch response, checked against the request: one entry
/// per requested id, each an object or `null` (id gone).
fn batch_items(endpoint: Endpoint, body: &Value, requested: usize) -> Result<Vec<Option<Value>>> {
    let key = endpoint.batch_key().expect("batch endpoint");
    let items = body
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| malformed(endpoint, format!("no `{key}` array in the batch response")))?;
    if items.len() != requested {
        return Err(malformed(
            endpoint,
            format!(
                "{} entries for {requested} requested ids: results cannot be matched to ids",
                items.len()
            ),
        ));
    }
    items
        .iter()
        .map(|item| match item {
            Value::Null => Ok(None),
            Value::Object(_) => Ok(Some(item.clone())),
            other => Err(malformed(
                endpoint,
                format!("a batch entry is neither an object nor null: {other}"),
            )),
        })
        .collect()
}
