//! The web UI, read-only: runs with their timelines and errors, every
//! table with its columns, versions, tests and lineage, charts over the
//! marts, and similar tracks. `soundlake ui` serves it over a lake; the
//! daemon serves it beside its status page. Pages are HTML rendered here,
//! charts inline SVG: nothing is fetched from elsewhere, so it works
//! offline.
//!
//! On loopback it needs no login. Bound anywhere else it asks for
//! `[daemon] ui_token`: given once as `?token=`, it is kept in a cookie.

mod html;
mod pages;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::landing::SharedStore;
use crate::project::Project;
use crate::secret::Secret;

const COOKIE: &str = "soundlake_ui";

/// What the pages read.
pub struct Ui {
    store: SharedStore,
    lake: Lake,
    clock: SharedClock,
    project: Project,
    /// What each table reads and is read by, from `project`.
    lineage: pages::Lineage,
    /// Asked of every request when set.
    token: Option<Secret>,
}

impl Ui {
    /// The UI over a deployment, served on `listen`: a token is required,
    /// and must be set, unless `listen` is loopback.
    pub fn new(
        (store, lake, clock): (SharedStore, Lake, SharedClock),
        project: Project,
        listen: SocketAddr,
        token: &Secret,
    ) -> Result<Ui> {
        let token = if listen.ip().is_loopback() {
            None
        } else if token.is_empty() {
            return Err(Error::config(
                "[daemon] ui_token",
                format!("the UI would listen on {listen}, beyond this machine, with no token"),
                "set [daemon] ui_token (or SOUNDLAKE__DAEMON__UI_TOKEN) to a long random \
                 string, or listen on 127.0.0.1",
            ));
        } else {
            Some(token.clone())
        };
        Ok(Ui {
            store,
            lake,
            clock,
            lineage: pages::Lineage::of(&project),
            project,
            token,
        })
    }

    /// The UI's routes, under `/ui`.
    pub fn router(self) -> Router {
        let ui = Arc::new(self);
        Router::new()
            .route("/ui", get(|| async { Redirect::to("/ui/runs") }))
            .route("/ui/", get(|| async { Redirect::to("/ui/runs") }))
            .route("/ui/runs", get(runs))
            .route("/ui/run", get(run))
            .route("/ui/tables", get(tables))
            .route("/ui/tables/{layer}/{name}", get(table))
            .route("/ui/charts", get(charts))
            .route("/ui/similar", get(similar))
            .layer(middleware::from_fn_with_state(ui.clone(), guard))
            .with_state(ui)
    }
}

/// Serve `ui` alone on `listen` until SIGINT or SIGTERM (`soundlake ui`).
pub async fn serve(ui: Ui, listen: SocketAddr) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Error::Server {
            what: format!("UI on {listen}"),
            message: format!("{e}; pass --listen with a free address"),
        })?;
    let bound = listener.local_addr().map_err(|e| Error::Server {
        what: "UI".into(),
        message: e.to_string(),
    })?;
    let app = ui
        .router()
        .route("/", get(|| async { Redirect::to("/ui/runs") }));
    let mut stop = crate::orchestrator::stop_on_signals()?;
    println!("soundlake ui: http://{bound}/ui/");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
        .map_err(|e| Error::Server {
            what: "UI".into(),
            message: e.to_string(),
        })
}

/// Refuse a request without the token, when one is asked; take it from
/// `?token=` into a cookie.
async fn guard(State(ui): State<Arc<Ui>>, request: Request, next: Next) -> Response {
    let Some(token) = &ui.token else {
        return next.run(request).await;
    };
    let from_query = request.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .map(str::to_string)
    });
    let from_cookie = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_string)
        });
    let matches = |given: &Option<String>| {
        given
            .as_deref()
            .is_some_and(|g| same(g.as_bytes(), token.expose().as_bytes()))
    };
    if matches(&from_cookie) {
        return next.run(request).await;
    }
    if matches(&from_query) {
        let mut response = next.run(request).await;
        let cookie = format!(
            "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/ui",
            token.expose()
        );
        if let Ok(value) = cookie.parse() {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        return response;
    }
    (
        StatusCode::UNAUTHORIZED,
        Html(html::page(
            "Token needed",
            "",
            "<p>This UI is served beyond loopback: open it once with <code>?token=</code> and \
             the value of <code>[daemon] ui_token</code>.</p>",
            false,
        )),
    )
        .into_response()
}

/// Equal bytes, compared in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

type Page = std::result::Result<Html<String>, (StatusCode, Html<String>)>;

/// A page, or the error that kept it from being drawn, as a page.
fn answer(result: Result<Option<String>>) -> Page {
    match result {
        Ok(Some(page)) => Ok(Html(page)),
        Ok(None) => Err((
            StatusCode::NOT_FOUND,
            Html(html::page(
                "Not found",
                "",
                "<p>Nothing here: follow a link from the menu.</p>",
                false,
            )),
        )),
        Err(e) => Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            Html(html::page(
                "Cannot show this page",
                "",
                &format!(
                    "<pre class=\"error\">{}</pre>",
                    html::escape(&e.to_string())
                ),
                false,
            )),
        )),
    }
}

async fn runs(State(ui): State<Arc<Ui>>) -> Page {
    answer(pages::runs(&ui).await.map(Some))
}

#[derive(serde::Deserialize)]
struct RunAsked {
    id: String,
}

async fn run(State(ui): State<Arc<Ui>>, Query(asked): Query<RunAsked>) -> Page {
    answer(pages::run(&ui, &asked.id).await)
}

async fn tables(State(ui): State<Arc<Ui>>) -> Page {
    answer(pages::tables(&ui).await.map(Some))
}

async fn table(State(ui): State<Arc<Ui>>, Path((layer, name)): Path<(String, String)>) -> Page {
    answer(pages::table(&ui, &layer, &name).await)
}

async fn charts(State(ui): State<Arc<Ui>>) -> Page {
    answer(pages::charts(&ui).await.map(Some))
}

#[derive(serde::Deserialize)]
struct Asked {
    q: Option<String>,
}

async fn similar(State(ui): State<Arc<Ui>>, Query(asked): Query<Asked>) -> Page {
    answer(pages::similar(&ui, asked.q.as_deref()).await.map(Some))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd") && !same(b"abc", b"ab") && !same(b"", b"a"));
    }
}
