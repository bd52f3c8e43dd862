//! The simulator's HTTP side: routes, gates (rate limit, quota, auth,
//! faults, app mode) and the request log.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::catalog::{Catalog, Entity, Group, View, paging};
use super::{CLIENT_ID, CLIENT_SECRET, Canned, LoggedRequest, SimOptions};
use crate::clock::SharedClock;
use crate::rng::Rng;
use crate::spotify::{AppMode, Endpoint};

type Params = Query<HashMap<String, String>>;

pub(super) struct SimState {
    pub options: SimOptions,
    pub catalog: Catalog,
    api: String,
    clock: SharedClock,
    rng: Mutex<Rng>,
    window: Mutex<VecDeque<DateTime<Utc>>>,
    quota_used: Mutex<(DateTime<Utc>, u64)>,
    tokens: Mutex<HashMap<String, DateTime<Utc>>>,
    canned: Mutex<Vec<Canned>>,
    pub log: Mutex<Vec<LoggedRequest>>,
    /// How many requests have been answered, for tests that act on progress.
    pub answered: tokio::sync::watch::Sender<u64>,
}

impl SimState {
    pub fn new(options: SimOptions, clock: SharedClock, base: String) -> Self {
        let catalog = Catalog::generate(options.seed, &options.names);
        let now = clock.now();
        SimState {
            rng: Mutex::new(Rng::derived(options.seed, "faults")),
            canned: Mutex::new(options.canned.clone()),
            options,
            catalog,
            api: format!("{base}/v1"),
            clock,
            window: Mutex::new(VecDeque::new()),
            quota_used: Mutex::new((now, 0)),
            tokens: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            answered: tokio::sync::watch::Sender::new(0),
        }
    }

    fn view<'a>(&'a self, q: &'a HashMap<String, String>) -> View<'a> {
        View {
            mode: self.options.mode,
            market: q.get("market").map(String::as_str),
            api: &self.api,
        }
    }

    fn roll(&self, p: f64) -> bool {
        p > 0.0 && self.rng.lock().expect("rng lock").chance(p)
    }
}

pub(super) fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/api/token", post(token))
        .route("/v1/search", get(search))
        .route("/v1/artists", get(several_artists))
        .route("/v1/artists/{id}", get(artist))
        .route("/v1/artists/{id}/albums", get(artist_albums))
        .route("/v1/albums", get(several_albums))
        .route("/v1/albums/{id}", get(album))
        .route("/v1/albums/{id}/tracks", get(album_tracks))
        .route("/v1/tracks", get(several_tracks))
        .route("/v1/tracks/{id}", get(track))
        .route("/v1/audio-features", get(several_audio_features))
        .route("/v1/audio-features/{id}", get(audio_features))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), record))
        .route("/sim/log", get(log))
        .with_state(state)
}

/// Serve canned answers first, and log every answer with its endpoint.
async fn record(
    State(s): State<Arc<SimState>>,
    matched: MatchedPath,
    request: Request,
    next: Next,
) -> Response {
    let endpoint = Endpoint::ALL.into_iter().find(|e| {
        let route = matched.as_str();
        route == e.route() || route.strip_prefix("/v1") == Some(e.route())
    });
    let path = request.uri().path().to_string();
    let at = s.clock.now();
    let response = match take_canned(&s, &path) {
        Some(c) => canned_response(c),
        None => next.run(request).await,
    };
    s.log.lock().expect("log lock").push(LoggedRequest {
        at,
        endpoint,
        path,
        status: response.status().as_u16(),
    });
    s.answered.send_modify(|n| *n += 1);
    response
}

fn take_canned(s: &SimState, path: &str) -> Option<Canned> {
    let mut canned = s.canned.lock().expect("canned lock");
    let i = canned
        .iter()
        .position(|c| c.path == path && c.times != Some(0))?;
    let c = &mut canned[i];
    if let Some(t) = c.times.as_mut() {
        *t -= 1;
    }
    Some(c.clone())
}

fn canned_response(c: Canned) -> Response {
    let mut response = (
        StatusCode::from_u16(c.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        c.body,
    )
        .into_response();
    for (k, v) in c.headers {
        if let (Ok(name), Ok(value)) = (header::HeaderName::try_from(k), HeaderValue::try_from(v)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

async fn log(State(s): State<Arc<SimState>>) -> Json<Vec<LoggedRequest>> {
    Json(s.log.lock().expect("log lock").clone())
}

fn api_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"status": status.as_u16(), "message": message}})),
    )
        .into_response()
}

async fn token(State(s): State<Arc<SimState>>, headers: HeaderMap, body: String) -> Response {
    let expected =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let authorised = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        == Some(expected.as_str());
    if !authorised {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_client", "error_description": "Invalid client"})),
        )
            .into_response();
    }
    if !body
        .split('&')
        .any(|p| p == "grant_type=client_credentials")
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type",
                        "error_description": "grant_type parameter is missing"})),
        )
            .into_response();
    }
    let mut rng = s.rng.lock().expect("rng lock");
    let value: String = (0..64)
        .map(|_| char::from(b'a' + rng.below(26) as u8))
        .collect();
    drop(rng);
    let expires = s.clock.now() + chrono::Duration::from_std(s.options.token_ttl).expect("ttl");
    s.tokens
        .lock()
        .expect("tokens lock")
        .insert(value.clone(), expires);
    Json(json!({
        "access_token": value,
        "token_type": "Bearer",
        "expires_in": s.options.token_ttl.as_secs(),
    }))
    .into_response()
}

/// Everything between a request and its endpoint's answer: rate limit,
/// quota, bearer token, injected faults, and the app mode's refusals.
async fn gate(
    s: &SimState,
    endpoint: Endpoint,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<(), Response> {
    let now = s.clock.now();
    if s.options.rate_limit > 0 {
        let window = chrono::Duration::from_std(s.options.window).expect("window");
        let mut w = s.window.lock().expect("window lock");
        while w.front().is_some_and(|t| *t <= now - window) {
            w.pop_front();
        }
        if w.len() >= s.options.rate_limit as usize {
            let wait = (*w.front().expect("full window") + window - now).num_milliseconds();
            let secs = (wait.max(1) as u64).div_ceil(1000);
            // Spotify's 429 bodies are not always JSON: this one is plain text.
            return Err((
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.to_string())],
                "Too many requests",
            )
                .into_response());
        }
        w.push_back(now);
    }
    if let Some(quota) = s.options.quota {
        let period = chrono::Duration::from_std(s.options.quota_period).expect("period");
        let mut used = s.quota_used.lock().expect("quota lock");
        if now >= used.0 + period {
            *used = (now, 0);
        }
        if used.1 >= quota {
            let secs = (used.0 + period - now).num_seconds().max(1);
            return Err((
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.to_string())],
                Json(
                    json!({"error": {"status": 429, "message": "Too many requests",
                                      "reason": "QUOTA_EXCEEDED"}}),
                ),
            )
                .into_response());
        }
        used.1 += 1;
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(bearer) = bearer else {
        return Err(api_error(StatusCode::UNAUTHORIZED, "No token provided"));
    };
    {
        let mut tokens = s.tokens.lock().expect("tokens lock");
        match tokens.get(bearer) {
            None => return Err(api_error(StatusCode::UNAUTHORIZED, "Invalid access token")),
            Some(expires) if *expires <= now || s.roll(s.options.faults.expire_token) => {
                tokens.remove(bearer);
                return Err(api_error(
                    StatusCode::UNAUTHORIZED,
                    "The access token expired",
                ));
            }
            Some(_) => {}
        }
    }
    let faults = &s.options.faults;
    if s.roll(faults.slow) {
        tokio::time::sleep(faults.slow_by).await;
    }
    if s.roll(faults.server_errors) {
        let status = [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
        ][s.rng.lock().expect("rng lock").below(3) as usize];
        return Err(api_error(status, "Server error"));
    }
    if s.roll(faults.malformed) {
        let body = [
            r#"{"artists": [{"id": "4Z8W4fKeB5YxbusRsdQVPb", "name": "Radio"#,
            "<html><head><title>502 Bad Gateway</title></head><body>upstream error</body></html>",
            "",
            r#"{"error": {"status": 500, "message": "Internal error"}}"#,
        ][s.rng.lock().expect("rng lock").below(4) as usize];
        return Err((StatusCode::OK, body).into_response());
    }
    let mode = s.options.mode;
    if mode == AppMode::Development
        && (endpoint.batch_size().is_some() || endpoint.is_audio_features())
    {
        return Err(api_error(StatusCode::FORBIDDEN, "Forbidden"));
    }
    if let Some(max) = endpoint.batch_size() {
        let ids = q
            .get("ids")
            .map(|v| v.split(',').filter(|id| !id.is_empty()).count())
            .unwrap_or(0);
        if ids == 0 {
            return Err(api_error(
                StatusCode::BAD_REQUEST,
                "invalid request: missing ids",
            ));
        }
        if ids > max {
            return Err(api_error(StatusCode::BAD_REQUEST, "Too many ids requested"));
        }
    }
    Ok(())
}

/// `limit` and `offset` of a paged request, checked against the maximum.
#[allow(clippy::result_large_err)]
fn page_params(
    q: &HashMap<String, String>,
    default: usize,
    max: usize,
) -> Result<(usize, usize), Response> {
    let limit = match q.get("limit") {
        None => default,
        Some(v) => match v.parse::<usize>() {
            Ok(l) if (1..=max).contains(&l) => l,
            _ => return Err(api_error(StatusCode::BAD_REQUEST, "Invalid limit")),
        },
    };
    let offset = match q.get("offset") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| api_error(StatusCode::BAD_REQUEST, "Invalid offset"))?,
    };
    Ok((limit, offset))
}

fn valid_id(id: &str) -> bool {
    id.len() == 22 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The entity `id` names, or the error Spotify answers.
#[allow(clippy::result_large_err)]
fn find(s: &SimState, id: &str, kind: fn(Entity) -> Option<usize>) -> Result<usize, Response> {
    if !valid_id(id) {
        return Err(api_error(StatusCode::BAD_REQUEST, "Invalid base62 id"));
    }
    s.catalog
        .lookup(id)
        .and_then(kind)
        .ok_or_else(|| api_error(StatusCode::NOT_FOUND, "Resource not found"))
}

/// One kind of catalog object: its single and batch endpoints and how it renders.
struct Resource {
    single: Endpoint,
    batch: Endpoint,
    kind: fn(Entity) -> Option<usize>,
    render: fn(&Catalog, usize, View) -> Option<Value>,
    missing: &'static str,
}

const ARTISTS: Resource = Resource {
    single: Endpoint::Artist,
    batch: Endpoint::SeveralArtists,
    kind: |e| {
        if let Entity::Artist(i) = e {
            Some(i)
        } else {
            None
        }
    },
    render: |c, i, v| Some(c.artist_full(i, v)),
    missing: "Resource not found",
};
const ALBUMS: Resource = Resource {
    single: Endpoint::Album,
    batch: Endpoint::SeveralAlbums,
    kind: |e| {
        if let Entity::Album(i) = e {
            Some(i)
        } else {
            None
        }
    },
    render: |c, i, v| Some(c.album_full(i, v)),
    missing: "Resource not found",
};
const TRACKS: Resource = Resource {
    single: Endpoint::Track,
    batch: Endpoint::SeveralTracks,
    kind: |e| {
        if let Entity::Track(i) = e {
            Some(i)
        } else {
            None
        }
    },
    render: |c, i, v| Some(c.track_full(i, v)),
    missing: "Resource not found",
};
const AUDIO_FEATURES: Resource = Resource {
    single: Endpoint::AudioFeatures,
    batch: Endpoint::SeveralAudioFeatures,
    kind: TRACKS.kind,
    render: |c, i, v| c.audio_features(i, v),
    missing: "analysis not found",
};

/// A single-object endpoint: gate, find, render.
async fn single(
    s: &SimState,
    r: &Resource,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    id: &str,
) -> Response {
    if let Err(answer) = gate(s, r.single, headers, q).await {
        return answer;
    }
    match find(s, id, r.kind).map(|i| (r.render)(&s.catalog, i, s.view(q))) {
        Ok(Some(body)) => Json(body).into_response(),
        Ok(None) => api_error(StatusCode::NOT_FOUND, r.missing),
        Err(answer) => answer,
    }
}

/// A `?ids=` endpoint: gate, then one entry per id, `null` where unknown.
async fn several(
    s: &SimState,
    r: &Resource,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Response {
    if let Err(answer) = gate(s, r.batch, headers, q).await {
        return answer;
    }
    let ids = q.get("ids").cloned().unwrap_or_default();
    if let Some(bad) = ids.split(',').find(|id| !valid_id(id)) {
        return api_error(
            StatusCode::BAD_REQUEST,
            &format!("Invalid base62 id: {bad}"),
        );
    }
    let view = s.view(q);
    let items: Vec<Value> = ids
        .split(',')
        .map(|id| {
            s.catalog
                .lookup(id)
                .and_then(r.kind)
                .and_then(|i| (r.render)(&s.catalog, i, view))
                .unwrap_or(Value::Null)
        })
        .collect();
    let key = r.batch.batch_key().expect("batch endpoint");
    Json(json!({ key: items })).into_response()
}

async fn artist(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    single(&s, &ARTISTS, &headers, &q, &id).await
}
async fn album(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    single(&s, &ALBUMS, &headers, &q, &id).await
}
async fn track(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    single(&s, &TRACKS, &headers, &q, &id).await
}
async fn audio_features(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    single(&s, &AUDIO_FEATURES, &headers, &q, &id).await
}
async fn several_artists(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    several(&s, &ARTISTS, &headers, &q).await
}
async fn several_albums(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    several(&s, &ALBUMS, &headers, &q).await
}
async fn several_tracks(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    several(&s, &TRACKS, &headers, &q).await
}
async fn several_audio_features(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    several(&s, &AUDIO_FEATURES, &headers, &q).await
}

async fn search(State(s): State<Arc<SimState>>, headers: HeaderMap, Query(q): Params) -> Response {
    if let Err(r) = gate(&s, Endpoint::Search, &headers, &q).await {
        return r;
    }
    let mode = s.options.mode;
    let default = if mode == AppMode::Development { 5 } else { 20 };
    let (limit, offset) = match page_params(&q, default, mode.page_limit() as usize) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if offset > 1000 {
        return api_error(StatusCode::BAD_REQUEST, "Invalid offset");
    }
    let Some(query) = q.get("q").filter(|v| !v.trim().is_empty()) else {
        return api_error(StatusCode::BAD_REQUEST, "No search query");
    };
    let types = q.get("type").cloned().unwrap_or_default();
    if !types.split(',').any(|t| t == "artist") {
        return api_error(
            StatusCode::BAD_REQUEST,
            "Unsupported type: the simulator searches artists",
        );
    }
    let query = query.trim();
    let stripped = query
        .strip_prefix("artist:")
        .unwrap_or(query)
        .trim_matches('"');
    let hits = s.catalog.search_artists(stripped);
    let view = s.view(&q);
    let items = hits
        .iter()
        .skip(offset)
        .take(limit)
        .map(|&i| s.catalog.artist_full(i, view))
        .collect();
    let base = format!("{}/search", s.api);
    let keep = [("query", query.to_string()), ("type", "artist".to_string())];
    Json(json!({"artists": paging(&base, &keep, items, offset, limit, hits.len())})).into_response()
}

async fn artist_albums(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    if let Err(r) = gate(&s, Endpoint::ArtistAlbums, &headers, &q).await {
        return r;
    }
    let mode = s.options.mode;
    let default = if mode == AppMode::Development { 5 } else { 20 };
    let (limit, offset) = match page_params(&q, default, mode.page_limit() as usize) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let artist = match find(&s, &id, ARTISTS.kind) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let groups = q
        .get("include_groups")
        .cloned()
        .unwrap_or_else(|| crate::spotify::ALL_GROUPS.to_string());
    let wanted: Vec<&str> = groups.split(',').map(str::trim).collect();
    let list: Vec<&(usize, Group)> = s.catalog.discography[artist]
        .iter()
        .filter(|(_, g)| wanted.contains(&g.as_str()))
        .collect();
    let view = s.view(&q);
    let items = list
        .iter()
        .skip(offset)
        .take(limit)
        .map(|(al, g)| s.catalog.album_simplified(*al, view, Some(*g)))
        .collect();
    let base = format!("{}/artists/{id}/albums", s.api);
    let keep = [("include_groups", groups.clone())];
    Json(paging(&base, &keep, items, offset, limit, list.len())).into_response()
}

async fn album_tracks(
    State(s): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    if let Err(r) = gate(&s, Endpoint::AlbumTracks, &headers, &q).await {
        return r;
    }
    let (limit, offset) = match page_params(&q, 20, 50) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let album = match find(&s, &id, ALBUMS.kind) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let href = format!("{}/albums/{id}/tracks", s.api);
    Json(
        s.catalog
            .album_tracks_page(album, s.view(&q), &href, offset, limit),
    )
    .into_response()
}
