//! The daemon's small HTTP server: a status page (`/`), the same as JSON
//! (`/status.json`), Prometheus metrics (`/metrics`) and a health check
//! (`/healthz`). It shows what the daemon knows and nothing secret: names,
//! schedules, times and run outcomes.

use std::fmt::Write;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Json};
use axum::routing::get;
use tokio::sync::watch;

use super::daemon::Status;
use super::runner::RunStatus;
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::landing::SharedStore;
use crate::spotify::{CredentialRate, credential_rates};

/// Where `/metrics` reads the rate ledgers of the credentials, live: a
/// crawl runs while the daemon sleeps.
#[derive(Clone)]
pub struct RateSource {
    pub store: SharedStore,
    pub clock: SharedClock,
    /// The configured budget per window (`[spotify] requests_per_window`).
    pub budget: u32,
}

#[derive(Clone)]
struct Served {
    status: watch::Receiver<Status>,
    rates: RateSource,
}

/// Serve the status of `status` on `addr`, with the routes of `beside`
/// (the web UI), until `stop` turns true; the bound address is returned
/// (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    status: watch::Receiver<Status>,
    rates: RateSource,
    beside: Router,
    mut stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Server {
            what: format!("daemon status page on {addr}"),
            message: format!("{e}; set [daemon] listen to a free address"),
        })?;
    let bound = listener.local_addr().map_err(|e| Error::Server {
        what: "daemon status page".into(),
        message: e.to_string(),
    })?;
    let app = Router::new()
        .route("/", get(page))
        .route("/status.json", get(json))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(Served { status, rates })
        .merge(beside);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the status page stopped");
        }
    });
    Ok((bound, task))
}

async fn json(State(served): State<Served>) -> Json<Status> {
    Json(served.status.borrow().clone())
}

async fn page(State(served): State<Served>) -> Html<String> {
    Html(render_page(&served.status.borrow()))
}

async fn metrics(State(served): State<Served>) -> impl IntoResponse {
    let RateSource {
        store,
        clock,
        budget,
    } = &served.rates;
    // A store that cannot answer costs the rate families, not the page.
    let rates = credential_rates(store, clock.now())
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "metrics: cannot read the rate ledgers");
            Vec::new()
        });
    let status = served.status.borrow().clone();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render_metrics(&status, &rates, *budget),
    )
}

/// `text` safe inside HTML text and attribute values.
pub fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// How the pages show a time: to the second, in UTC.
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%SZ";

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format(TIME_FORMAT).to_string())
        .unwrap_or_else(|| "-".into())
}

/// The status page: the daemon, then a row per pipeline.
pub fn render_page(s: &Status) -> String {
    let mut out = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>soundlake daemon</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>\n",
    );
    let role = if s.leader {
        "leader: schedules the pipelines"
    } else {
        "standby: another daemon leads"
    };
    let _ = writeln!(
        out,
        "<h1>soundlake daemon</h1>\n<p>{} &middot; {role}{} &middot; up since {} &middot; \
         definitions loaded {} ({} reloads)</p>",
        escape_html(&s.holder),
        if s.stopping { " &middot; stopping" } else { "" },
        time(Some(s.started_at)),
        time(Some(s.definitions_loaded_at)),
        s.reloads
    );
    if let Some(e) = &s.reload_error {
        let _ = writeln!(
            out,
            "<p><strong>last reload refused:</strong></p><pre>{}</pre>",
            escape_html(e)
        );
    }
    out.push_str(
        "<table><tr><th>pipeline</th><th>schedule</th><th>catch-up</th><th>tasks</th>\
         <th>next fire</th><th>last fire</th><th>running</th><th>last run</th></tr>\n",
    );
    for p in &s.pipelines {
        let last_run = p
            .last_run
            .as_ref()
            .map(|r| format!("{} {} ({})", r.status, time(Some(r.finished_at)), r.run_id))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{} {}</td><td>{:?}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            escape_html(&p.name),
            escape_html(&p.schedule),
            escape_html(&p.timezone),
            p.catch_up,
            p.tasks,
            time(p.next_fire),
            time(p.last_fire),
            escape_html(p.running.as_deref().unwrap_or("-")),
            escape_html(&last_run),
        );
    }
    out.push_str("</table>\n<p><a href=\"/ui/\">web UI</a> &middot; <a href=\"/metrics\">metrics</a> &middot; <a href=\"/status.json\">JSON</a></p></body></html>\n");
    out
}

/// A sample's Prometheus labels, `{name="value",...}`, each value with
/// backslash, quote and newline escaped.
fn labels(pairs: &[(&str, &str)]) -> String {
    let escaped: Vec<String> = pairs
        .iter()
        .map(|(name, value)| {
            let value = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{name}=\"{value}\"")
        })
        .collect();
    format!("{{{}}}", escaped.join(","))
}

/// The metrics in the Prometheus text format: the daemon's, and the shared
/// rate state of each credential (`budget` is the configured one).
pub fn render_metrics(s: &Status, rates: &[CredentialRate], budget: u32) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let seconds = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis() as f64 / 1000.0;
    let of = |p: &str| labels(&[("pipeline", p)]);
    family(
        "soundlake_daemon_leader",
        "gauge",
        "1 when this daemon holds the leader lock and schedules.",
        vec![(String::new(), f64::from(u8::from(s.leader)))],
    );
    family(
        "soundlake_daemon_start_time_seconds",
        "gauge",
        "When the daemon started, in Unix seconds.",
        vec![(String::new(), seconds(s.started_at))],
    );
    family(
        "soundlake_daemon_reloads_total",
        "counter",
        "Definition reloads applied.",
        vec![(String::new(), s.reloads as f64)],
    );
    family(
        "soundlake_daemon_reload_errors_total",
        "counter",
        "Definition reloads refused because the definitions had problems.",
        vec![(String::new(), s.reload_errors as f64)],
    );
    family(
        "soundlake_pipeline_next_fire_timestamp_seconds",
        "gauge",
        "The pipeline's next fire time, in Unix seconds.",
        s.pipelines
            .iter()
            .filter_map(|p| p.next_fire.map(|t| (of(&p.name), seconds(t))))
            .collect(),
    );
    family(
        "soundlake_pipeline_running",
        "gauge",
        "1 while a run of the pipeline is in flight.",
        s.pipelines
            .iter()
            .map(|p| (of(&p.name), f64::from(u8::from(p.running.is_some()))))
            .collect(),
    );
    family(
        "soundlake_pipeline_last_run_success",
        "gauge",
        "1 when the pipeline's last finished run succeeded.",
        s.pipelines
            .iter()
            .filter_map(|p| {
                let r = p.last_run.as_ref()?;
                Some((
                    of(&p.name),
                    f64::from(u8::from(r.status == RunStatus::Succeeded)),
                ))
            })
            .collect(),
    );
    family(
        "soundlake_pipeline_last_run_finished_timestamp_seconds",
        "gauge",
        "When the pipeline's last run finished, in Unix seconds.",
        s.pipelines
            .iter()
            .filter_map(|p| Some((of(&p.name), seconds(p.last_run.as_ref()?.finished_at))))
            .collect(),
    );
    family(
        "soundlake_pipeline_last_run_duration_seconds",
        "gauge",
        "How long the pipeline's last run took.",
        s.pipelines
            .iter()
            .filter_map(|p| {
                let r = p.last_run.as_ref()?;
                Some((
                    of(&p.name),
                    (r.finished_at - r.started_at).num_milliseconds() as f64 / 1000.0,
                ))
            })
            .collect(),
    );
    family(
        "soundlake_pipeline_runs_total",
        "counter",
        "Runs finished since the daemon started, by outcome.",
        s.pipelines
            .iter()
            .flat_map(|p| {
                p.runs.iter().map(|(status, n)| {
                    (
                        labels(&[("pipeline", &p.name), ("status", status.as_str())]),
                        *n as f64,
                    )
                })
            })
            .collect(),
    );
    let cred = |r: &CredentialRate| labels(&[("credential", &r.credential)]);
    family(
        "soundlake_rate_requests_total",
        "counter",
        "Request slots taken with the credential, by every process sharing its rate ledger.",
        rates
            .iter()
            .map(|r| (cred(r), r.requests_total as f64))
            .collect(),
    );
    family(
        "soundlake_rate_window_used_ratio",
        "gauge",
        "Share of the rate budget (learned, or configured) taken in the current window.",
        rates
            .iter()
            .map(|r| {
                (
                    cred(r),
                    f64::from(r.in_window) / f64::from(r.budget(budget)),
                )
            })
            .collect(),
    );
    family(
        "soundlake_rate_learned_budget",
        "gauge",
        "The budget per window learned from 429s, when one was.",
        rates
            .iter()
            .filter_map(|r| Some((cred(r), f64::from(r.learned_budget?))))
            .collect(),
    );
    family(
        "soundlake_rate_paused_seconds_total",
        "counter",
        "Time every caller of the credential was paused by 429s, by cause.",
        rates
            .iter()
            .flat_map(|r| {
                r.paused_secs.iter().map(|(cause, secs)| {
                    (
                        labels(&[("credential", &r.credential), ("cause", cause.name())]),
                        *secs,
                    )
                })
            })
            .collect(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrator::{CatchUp, LastRun, PipelineStatus};

    fn status() -> Status {
        let t = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        Status {
            holder: "daemon-1@host:7".into(),
            started_at: t,
            now: t,
            leader: true,
            wakes_at: Some(t),
            definitions_loaded_at: t,
            reloads: 2,
            reload_errors: 1,
            reload_error: Some("pipelines/x.toml: <script>".into()),
            stopping: false,
            pipelines: vec![PipelineStatus {
                name: "odd\"name".into(),
                schedule: "0 3 * * *".into(),
                timezone: "UTC".into(),
                catch_up: CatchUp::Latest,
                tasks: 3,
                next_fire: Some(t + chrono::TimeDelta::hours(1)),
                last_fire: Some(t),
                running: None,
                last_run: Some(LastRun {
                    run_id: "scheduled-x".into(),
                    fire: t,
                    status: RunStatus::Failed,
                    started_at: t,
                    finished_at: t + chrono::TimeDelta::milliseconds(2500),
                }),
                runs: [(RunStatus::Failed, 1), (RunStatus::Succeeded, 4)].into(),
            }],
        }
    }

    #[test]
    fn metrics_are_prometheus_text_with_escaped_labels() {
        let rate = CredentialRate {
            credential: "0123abcd".into(),
            in_window: 45,
            learned_budget: Some(60),
            requests_total: 1234,
            paused_secs: [(crate::spotify::WaitCause::OtherTraffic, 5.0)].into(),
            paused_until: None,
        };
        let m = render_metrics(&status(), &[rate], 90);
        for line in [
            "soundlake_rate_requests_total{credential=\"0123abcd\"} 1234",
            "soundlake_rate_window_used_ratio{credential=\"0123abcd\"} 0.75",
            "soundlake_rate_learned_budget{credential=\"0123abcd\"} 60",
            "soundlake_rate_paused_seconds_total{credential=\"0123abcd\",cause=\"other_traffic\"} 5",
            "# TYPE soundlake_daemon_leader gauge",
            "soundlake_daemon_leader 1",
            "soundlake_daemon_reload_errors_total 1",
            "soundlake_pipeline_next_fire_timestamp_seconds{pipeline=\"odd\\\"name\"} 1800003600",
            "soundlake_pipeline_last_run_success{pipeline=\"odd\\\"name\"} 0",
            "soundlake_pipeline_last_run_duration_seconds{pipeline=\"odd\\\"name\"} 2.5",
            "soundlake_pipeline_runs_total{pipeline=\"odd\\\"name\",status=\"succeeded\"} 4",
        ] {
            assert!(m.lines().any(|l| l == line), "{line:?} in\n{m}");
        }
        // Every sample line belongs to a family declared above it.
        let mut declared = std::collections::BTreeSet::new();
        for l in m.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_string());
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap();
                assert!(declared.contains(name), "{l}");
            }
        }
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        let page = render_page(&status());
        assert!(page.contains("&lt;script&gt;") && !page.contains("<script>"));
        assert!(page.contains("odd&quot;name"));
        assert!(page.contains("failed 2027-01-15"));
    }
}
