//! The UI's pages: runs, tables, charts and similar tracks. Each reads the
//! state store, the lake and the definitions afresh, so it shows what is
//! there now.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Ui;
use super::html::{self, escape};
use crate::error::Result;
use crate::recommend::Method;
use crate::sql::{Engine, LAYERS};

/// Runs listed on the runs page.
const RUNS_SHOWN: usize = 60;
/// Runs searched for a run's page and a table's builds.
const RUNS_SEARCHED: usize = 1000;
/// Builds of a table listed on its page.
const BUILDS_SHOWN: usize = 10;
/// Rows of a table shown on its page.
const SAMPLE_ROWS: usize = 50;

pub(super) async fn runs(ui: &Ui) -> Result<String> {
    let records = ui.store.runs(RUNS_SHOWN).await?;
    let mut body = String::from(
        "<h2>Next fires</h2><table><tr><th>pipeline</th><th>schedule</th><th>next fire</th></tr>",
    );
    for row in crate::orchestrator::schedules(&ui.project.pipelines, ui.clock.now()) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(row["pipeline"].as_str().unwrap_or_default()),
            escape(row["schedule"].as_str().unwrap_or_default()),
            escape(row["next_fire"].as_str().unwrap_or("never")),
        );
    }
    body.push_str("</table><h2>Recent runs</h2><table><tr><th>run</th><th>pipeline or task</th><th>status</th><th>tasks</th><th>started</th><th>seconds</th></tr>\n");
    let mut going = false;
    // A pipeline run's task attempts are recorded as runs of their own
    // (`<run>/<task>#<attempt>`); its page shows them.
    for r in records.iter().filter(|r| !r.id.contains('/')) {
        going |= r.status == "running";
        let tasks = progress(&r.report);
        let _ = writeln!(
            body,
            "<tr><td><a href=\"/ui/run?id={link}\">{id}</a></td><td>{task}</td><td class=\"{status}\">{status}</td>\
             <td class=\"n\">{tasks}</td><td>{started}</td><td class=\"n\">{seconds}</td></tr>",
            id = escape(&r.id),
            link = html::query_value(&r.id),
            task = escape(&r.task),
            status = escape(&r.status),
            started = html::when(r.started_at),
            seconds = seconds(r.started_at, r.finished_at),
        );
    }
    body.push_str("</table>");
    Ok(html::page("Runs", "Runs", &body, going))
}

/// How far a run got: its tasks, or for a backfill (tasks named
/// `<interval>/<task>`) how many of its intervals are done.
fn progress(report: &Value) -> String {
    let tasks: Vec<&Value> = report["tasks"].as_array().into_iter().flatten().collect();
    let mut intervals: BTreeMap<&str, bool> = BTreeMap::new();
    for t in &tasks {
        if let Some((interval, _)) = t["id"].as_str().and_then(|id| id.rsplit_once('/')) {
            let done = t["status"] == "succeeded";
            intervals
                .entry(interval)
                .and_modify(|all| *all &= done)
                .or_insert(done);
        }
    }
    if intervals.is_empty() {
        tasks.len().to_string()
    } else {
        let done = intervals.values().filter(|d| **d).count();
        format!(
            "<progress max=\"{}\" value=\"{done}\"></progress> {done} of {} intervals",
            intervals.len(),
            intervals.len()
        )
    }
}

fn seconds(from: DateTime<Utc>, to: Option<DateTime<Utc>>) -> String {
    to.map(|to| format!("{:.1}", (to - from).num_milliseconds() as f64 / 1000.0))
        .unwrap_or_default()
}

fn time(value: &Value) -> Option<DateTime<Utc>> {
    value.as_str()?.parse().ok()
}

pub(super) async fn run(ui: &Ui, id: &str) -> Result<Option<String>> {
    let records = ui.store.runs(RUNS_SEARCHED).await?;
    let Some(r) = records.into_iter().find(|r| r.id == id) else {
        return Ok(None);
    };
    let mut body = format!(
        "<p>{} · <span class=\"{status}\">{status}</span> · started {} · {} s</p>",
        escape(&r.task),
        html::when(r.started_at),
        seconds(r.started_at, r.finished_at),
        status = escape(&r.status),
    );
    let tasks: Vec<&Value> = r.report["tasks"].as_array().into_iter().flatten().collect();
    if !tasks.is_empty() {
        body.push_str("<h2>Timeline</h2>");
        body.push_str(&timeline(r.started_at, &tasks));
        body.push_str("<h2>Tasks</h2><table><tr><th>task</th><th>status</th><th>attempts</th><th>seconds</th><th>rows</th></tr>");
        for t in &tasks {
            let id = t["id"].as_str().unwrap_or_default();
            let status = t["status"].as_str().unwrap_or_default();
            let name = if t["error"].is_string() {
                format!("<a href=\"#error-{0}\">{0}</a>", escape(id))
            } else {
                escape(id)
            };
            let started = time(&t["started_at"]);
            let _ = write!(
                body,
                "<tr><td>{name}</td><td class=\"{status}\">{status}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                t["attempts"],
                started
                    .map(|s| seconds(s, time(&t["finished_at"])))
                    .unwrap_or_default(),
                t["report"]["rows"]
                    .as_u64()
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                status = escape(status),
            );
        }
        body.push_str("</table>");
        for t in tasks.iter().filter(|t| t["error"].is_string()) {
            let id = t["id"].as_str().unwrap_or_default();
            let _ = write!(
                body,
                "<h3 id=\"error-{0}\">{0}: error</h3><pre class=\"error\">{1}</pre>",
                escape(id),
                escape(t["error"].as_str().unwrap_or_default())
            );
        }
    } else if let Some(error) = r.report["error"].as_str() {
        let _ = write!(
            body,
            "<h2>Error</h2><pre class=\"error\">{}</pre>",
            escape(error)
        );
    }
    let _ = write!(
        body,
        "<details><summary>Report</summary><pre>{}</pre></details>",
        escape(&serde_json::to_string_pretty(&r.report).unwrap_or_default())
    );
    Ok(Some(html::page(
        &r.id,
        "Runs",
        &body,
        r.status == "running",
    )))
}

/// A Gantt chart of a run's tasks: one bar per task from its start to its
/// end, coloured by status, each linking to its error when it failed.
fn timeline(start: DateTime<Utc>, tasks: &[&Value]) -> String {
    let spans: Vec<(String, String, f64, f64, bool)> = tasks
        .iter()
        .filter_map(|t| {
            let from = time(&t["started_at"])?;
            let to = time(&t["finished_at"]).unwrap_or(from);
            let offset = |at: DateTime<Utc>| (at - start).num_milliseconds() as f64 / 1000.0;
            Some((
                t["id"].as_str()?.to_string(),
                t["status"].as_str().unwrap_or_default().to_string(),
                offset(from),
                offset(to).max(offset(from)),
                t["error"].is_string(),
            ))
        })
        .collect();
    let end = spans.iter().map(|s| s.3).fold(0.001_f64, f64::max);
    let (width, left, row) = (900.0, 260.0, 20.0);
    let height = row * spans.len() as f64 + 22.0;
    let mut out = format!(
        "<svg class=\"timeline\" role=\"img\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" \
         height=\"{height}\" font-size=\"12\">"
    );
    let scale = (width - left - 60.0) / end;
    for (i, (id, status, from, to, failed)) in spans.iter().enumerate() {
        let y = row * i as f64;
        let colour = match status.as_str() {
            "succeeded" => "#2da44e",
            "failed" => "#cf222e",
            "running" => "#bf8700",
            _ => "#8c959f",
        };
        let bar = format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{}\" fill=\"{colour}\"><title>{} {status}: {:.1} s</title></rect>",
            left + from * scale,
            y + 3.0,
            ((to - from) * scale).max(2.0),
            row - 6.0,
            escape(id),
            to - from
        );
        let bar = if *failed {
            format!("<a href=\"#error-{}\">{bar}</a>", escape(id))
        } else {
            bar
        };
        let _ = write!(
            out,
            "<g class=\"task\" data-task=\"{id}\" data-status=\"{status}\"><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{id}</text>{bar}</g>",
            left - 6.0,
            y + 14.0,
            id = escape(id),
            status = escape(status),
        );
    }
    let _ = write!(
        out,
        "<text x=\"{left}\" y=\"{:.1}\">0 s</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.1} s</text></svg>",
        height - 4.0,
        width - 60.0,
        height - 4.0,
        end
    );
    out
}

/// The tables each table reads and is read by, from the definitions, by
/// the task that writes them (`silver.tracks` for `silver.tracks__artists`).
pub(super) struct Lineage {
    /// What a table's task needs: the definitions' own upstream tasks.
    known: crate::gold::Known,
    upstream: BTreeMap<String, BTreeSet<String>>,
    downstream: BTreeMap<String, BTreeSet<String>>,
}

impl Lineage {
    pub(super) fn of(project: &crate::project::Project) -> Lineage {
        let known = crate::gold::known(&project.bronze, &project.silver);
        let mut upstream: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for b in &project.bronze {
            upstream
                .entry(format!("bronze.{}", b.name))
                .or_default()
                .insert(format!("landing: {}", b.source.describe()));
        }
        for s in &project.silver {
            upstream
                .entry(format!("silver.{}", s.name))
                .or_default()
                .insert(format!("bronze.{}", s.source));
        }
        for m in &project.gold {
            let reads = crate::gold::upstream_tasks(m, &known)
                .into_iter()
                .chain(crate::gold::referenced_tasks(m, &known))
                .collect();
            upstream.insert(format!("gold.{}", m.name), reads);
        }
        let mut downstream: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (table, reads) in &upstream {
            for read in reads {
                downstream
                    .entry(read.clone())
                    .or_default()
                    .insert(table.clone());
            }
        }
        Lineage {
            known,
            upstream,
            downstream,
        }
    }

    /// The task that writes a table: its silver family, or itself.
    fn written_by(&self, layer: &str, name: &str) -> String {
        let id = crate::definitions::TableId::new(layer, name);
        match crate::gold::silver_family(&self.known, &id) {
            Some(family) => format!("{}.{family}", crate::silver::LAYER),
            None => id.to_string(),
        }
    }
}

fn table_link(id: &str) -> String {
    match id.split_once('.') {
        Some((layer, name)) if LAYERS.contains(&layer) => {
            format!(
                "<a href=\"/ui/tables/{0}/{1}\">{0}.{1}</a>",
                escape(layer),
                escape(name)
            )
        }
        _ => escape(id),
    }
}

pub(super) async fn tables(ui: &Ui) -> Result<String> {
    let mut body = String::new();
    for layer in LAYERS {
        let _ = write!(
            body,
            "<h2>{layer}</h2><table><tr><th>table</th><th>rows</th><th>MB</th><th>version</th><th>committed</th><th>about</th></tr>"
        );
        for name in ui.lake.tables(layer).await? {
            let snapshot = ui.lake.table(layer, &name).snapshot().await?;
            let bytes: u64 = snapshot.files.iter().map(|f| f.bytes).sum();
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                table_link(&format!("{layer}.{name}")),
                snapshot.rows(),
                bytes as f64 / 1e6,
                snapshot.version,
                html::when(snapshot.committed_at),
                escape(&about(ui, layer, &name)),
            );
        }
        body.push_str("</table>");
    }
    Ok(html::page("Tables", "Tables", &body, false))
}

/// One line on what a table is, from its definition.
fn about(ui: &Ui, layer: &str, name: &str) -> String {
    let model = |name: &str| ui.project.gold.iter().find(|m| m.name == name);
    match layer {
        "gold" => match (
            model(name),
            name.strip_suffix("_quarantine").and_then(model),
        ) {
            (Some(m), _) => m.comment.clone(),
            (None, Some(m)) => format!("Rows of gold.{} its data tests set aside.", m.name),
            _ => String::new(),
        },
        "silver" => {
            let written_by = ui.lineage.written_by(layer, name);
            (ui.project.silver.iter())
                .find(|s| format!("silver.{}", s.name) == written_by)
                .map(|s| format!("Flattened from bronze.{}.", s.source))
                .unwrap_or_default()
        }
        _ => ui
            .project
            .bronze
            .iter()
            .find(|b| b.name == name)
            .map(|b| format!("Raw history of {}.", b.source.describe()))
            .unwrap_or_default(),
    }
}

pub(super) async fn table(ui: &Ui, layer: &str, name: &str) -> Result<Option<String>> {
    if !LAYERS.contains(&layer) || !ui.lake.tables(layer).await?.iter().any(|t| t == name) {
        return Ok(None);
    }
    let id = format!("{layer}.{name}");
    let table = ui.lake.table(layer, name);
    let snapshot = table.snapshot().await?;
    let model = ui
        .project
        .gold
        .iter()
        .find(|m| layer == "gold" && m.name == name);
    let mut body = format!("<p>{}</p>", escape(&about(ui, layer, name)));
    if let Some(m) = model {
        let _ = write!(
            body,
            "<p><strong>Grain:</strong> {}; key ({}).</p>",
            escape(&m.grain),
            escape(&m.key.join(", "))
        );
    }
    let bytes: u64 = snapshot.files.iter().map(|f| f.bytes).sum();
    let _ = write!(
        body,
        "<p><span id=\"rows\">{}</span> rows in {} files, {:.1} MB, version {}.</p>",
        snapshot.rows(),
        snapshot.files.len(),
        bytes as f64 / 1e6,
        snapshot.version
    );
    let lineage = &ui.lineage;
    let listed = |set: Option<&BTreeSet<String>>| {
        set.map(|s| {
            s.iter()
                .map(|t| table_link(t))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "none".into())
    };
    let key = lineage.written_by(layer, name);
    let _ = write!(
        body,
        "<p class=\"upstream\"><strong>Reads:</strong> {}</p><p class=\"downstream\"><strong>Read by:</strong> {}</p>",
        listed(lineage.upstream.get(&key)),
        listed(lineage.downstream.get(&key)),
    );
    let engine = Engine::open(&ui.lake).await?;
    let (schema, batches) = engine
        .collect("the table page", &format!("DESCRIBE {id}"))
        .await?;
    let comments: BTreeMap<&str, &str> = model
        .map(|m| {
            m.columns
                .iter()
                .map(|c| (c.name.as_str(), c.comment.as_str()))
                .collect()
        })
        .unwrap_or_default();
    body.push_str("<h2>Columns</h2>");
    body.push_str(&columns(&schema, &batches, &comments));
    if let Some(m) = model {
        body.push_str("<h2>Data tests</h2><ul>");
        for test in crate::gold::declared_tests(m, ui.clock.now()) {
            let action = format!("{:?}", test.on_failure).to_lowercase();
            let _ = write!(
                body,
                "<li>{} (on failure: {action})</li>",
                escape(&test.name)
            );
        }
        body.push_str("</ul>");
        if m.quarantines() {
            let quarantine = crate::gold::quarantine_table(&m.name);
            let rows = ui.lake.table(layer, &quarantine).snapshot().await?.rows();
            let _ = write!(
                body,
                "<p class=\"quarantine\">{rows} rows set aside: {}</p>",
                table_link(&format!("gold.{quarantine}"))
            );
        }
    }
    body.push_str(&builds(ui, &key).await?);
    body.push_str("<h2>Versions</h2><table><tr><th>version</th><th>committed</th><th>operation</th><th>rows added</th><th>rows removed</th><th>run</th></tr>");
    for c in table.history(Some(20)).await? {
        let count = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
        let _ = write!(
            body,
            "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            c.version,
            html::when(c.at),
            escape(&c.operation),
            count(c.rows_added),
            count(c.rows_removed),
            escape(c.run_id.as_deref().unwrap_or_default()),
        );
    }
    body.push_str("</table>");
    let (schema, batches) = engine
        .collect(
            "the table page",
            &format!("SELECT * FROM {id} LIMIT {SAMPLE_ROWS}"),
        )
        .await?;
    let _ = write!(body, "<h2>Rows (the first {SAMPLE_ROWS})</h2>");
    body.push_str(&html::rows(&schema, &batches, |_, _| None));
    Ok(Some(html::page(&id, "Tables", &body, false)))
}

/// The last runs of the task that writes `task` (`layer.name`, a silver
/// family by its parent): when, how each ended, what its data tests found
/// (gold) or how the shape drifted (silver), and the error of a failure.
async fn builds(ui: &Ui, task: &str) -> Result<String> {
    let mut rows = String::new();
    let mut shown = 0;
    for r in ui.store.runs(RUNS_SEARCHED).await? {
        let mut found: Vec<(String, Value)> = r.report["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["id"] == task)
            .map(|t| {
                (
                    t["status"].as_str().unwrap_or_default().to_string(),
                    t.clone(),
                )
            })
            .collect();
        if r.task == task {
            found.push((r.status.clone(), serde_json::json!({"report": r.report})));
        }
        for (status, t) in found {
            let report = &t["report"];
            let mut what = Vec::new();
            if let Some(n) = report["tests_passed"].as_u64() {
                what.push(format!("{n} tests passed"));
            }
            for warning in report["warnings"].as_array().into_iter().flatten() {
                what.push(format!("warning: {}", warning.as_str().unwrap_or_default()));
            }
            if let Some(n) = report["quarantined"].as_u64().filter(|n| *n > 0) {
                what.push(format!("{n} rows set aside"));
            }
            let drift = &report["drift"];
            for (kind, label) in [
                ("columns_added", "new column"),
                ("columns_widened", "widened"),
            ] {
                for column in drift[kind].as_array().into_iter().flatten() {
                    what.push(format!(
                        "drift: {label} {}",
                        column.as_str().unwrap_or_default()
                    ));
                }
            }
            if let Some(error) = t["error"].as_str() {
                what.push(error.lines().next().unwrap_or_default().to_string());
            }
            let _ = write!(
                rows,
                "<tr><td><a href=\"/ui/run?id={}\">{}</a></td><td>{}</td><td class=\"{status}\">{status}</td><td>{}</td></tr>",
                html::query_value(&r.id),
                escape(&r.id),
                html::when(r.started_at),
                escape(&what.join("; ")),
                status = escape(&status),
            );
            shown += 1;
        }
        if shown >= BUILDS_SHOWN {
            break;
        }
    }
    if shown == 0 {
        return Ok(String::new());
    }
    Ok(format!(
        "<h2>Recent builds</h2><table class=\"builds\"><tr><th>run</th><th>started</th><th>status</th>\
         <th>tests, drift, errors</th></tr>{rows}</table>"
    ))
}

/// `DESCRIBE`'s rows with each column's comment from its definition.
fn columns(schema: &SchemaRef, batches: &[RecordBatch], comments: &BTreeMap<&str, &str>) -> String {
    let at = |column: &str| schema.index_of(column).expect("DESCRIBE's columns");
    let (name, kind, nullable) = (at("column_name"), at("data_type"), at("is_nullable"));
    let mut out = String::from(
        "<table class=\"columns\"><tr><th>column</th><th>type</th><th>nullable</th><th>meaning</th></tr>",
    );
    for row in html::cells(batches) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&row[name]),
            escape(&row[kind]),
            escape(&row[nullable]),
            escape(
                comments
                    .get(row[name].as_str())
                    .copied()
                    .unwrap_or_default()
            ),
        );
    }
    out.push_str("</table>");
    out
}

/// A chart: its title, the SQL it shows, and how to draw the rows.
struct Chart {
    title: &'static str,
    sql: &'static str,
    draw: Draw,
}

enum Draw {
    /// Label column, value column, unit.
    Bars(&'static str),
    /// Rows, columns and value, as weekday × hour.
    WeekHours,
}

const CHARTS: &[Chart] = &[
    Chart {
        title: "Most played tracks",
        sql: "SELECT t.name AS label, e.plays AS value FROM gold.mart_track_engagement e \
              JOIN gold.dim_track t ON t.track_key = e.track_key ORDER BY e.plays DESC, t.name LIMIT 10",
        draw: Draw::Bars(" plays"),
    },
    Chart {
        title: "Most played artists",
        sql: "SELECT a.name AS label, e.plays AS value FROM gold.mart_artist_engagement e \
              JOIN gold.dim_artist a ON a.artist_key = e.artist_key ORDER BY e.plays DESC, a.name LIMIT 10",
        draw: Draw::Bars(" plays"),
    },
    Chart {
        title: "Top tracks of the latest week",
        sql: "SELECT t.name AS label, c.plays AS value FROM gold.mart_track_charts c \
              JOIN gold.dim_track t ON t.track_key = c.track_key \
              WHERE c.period = 'week' AND c.period_start = (SELECT max(period_start) \
              FROM gold.mart_track_charts WHERE period = 'week' AND chart_rank = 10) \
              ORDER BY c.chart_rank LIMIT 10",
        draw: Draw::Bars(" plays"),
    },
    Chart {
        title: "Top artists of the latest week",
        sql: "SELECT a.name AS label, c.plays AS value FROM gold.mart_artist_charts c \
              JOIN gold.dim_artist a ON a.artist_key = c.artist_key \
              WHERE c.period = 'week' AND c.period_start = (SELECT max(period_start) \
              FROM gold.mart_artist_charts WHERE period = 'week') \
              ORDER BY c.chart_rank LIMIT 10",
        draw: Draw::Bars(" plays"),
    },
    Chart {
        title: "Trending tracks (latest day)",
        sql: "SELECT t.name AS label, m.plays_7d AS value FROM gold.mart_trending_tracks m \
              JOIN gold.dim_track t ON t.track_key = m.track_key \
              WHERE m.as_of = (SELECT max(as_of) FROM gold.mart_trending_tracks) ORDER BY m.trend_rank LIMIT 10",
        draw: Draw::Bars(" plays in 7 days"),
    },
    Chart {
        title: "Listening by weekday and hour (UTC)",
        sql: "SELECT weekday, hour_utc, plays FROM gold.mart_listening_patterns ORDER BY weekday, hour_utc",
        draw: Draw::WeekHours,
    },
    Chart {
        title: "Skip rate by device",
        sql: "SELECT device AS label, round(CAST(sum(skips) AS DOUBLE) / sum(plays), 3) AS value \
              FROM gold.mart_device_geo GROUP BY device HAVING sum(plays) > 0 ORDER BY value DESC, device",
        draw: Draw::Bars(""),
    },
    Chart {
        title: "Completion rate by device",
        sql: "SELECT device AS label, round(CAST(count(*) FILTER (WHERE event_type = 'complete') \
              AS DOUBLE) / count(*) FILTER (WHERE event_type = 'play'), 3) AS value \
              FROM silver.events WHERE device IS NOT NULL GROUP BY device \
              HAVING count(*) FILTER (WHERE event_type = 'play') > 0 ORDER BY value DESC, device",
        draw: Draw::Bars(""),
    },
    Chart {
        title: "Completion rate by country (most plays)",
        sql: "SELECT country AS label, round(CAST(count(*) FILTER (WHERE event_type = 'complete') \
              AS DOUBLE) / count(*) FILTER (WHERE event_type = 'play'), 3) AS value \
              FROM silver.events WHERE country IS NOT NULL GROUP BY country \
              HAVING count(*) FILTER (WHERE event_type = 'play') > 0 \
              ORDER BY count(*) FILTER (WHERE event_type = 'play') DESC, country LIMIT 10",
        draw: Draw::Bars(""),
    },
    Chart {
        title: "Skip rate by country (most plays)",
        sql: "SELECT country AS label, round(CAST(sum(skips) AS DOUBLE) / sum(plays), 3) AS value \
              FROM gold.mart_device_geo GROUP BY country HAVING sum(plays) > 0 \
              ORDER BY sum(plays) DESC, country LIMIT 10",
        draw: Draw::Bars(""),
    },
    Chart {
        title: "Sessions per day",
        sql: "SELECT CAST(CAST(started_at AS DATE) AS VARCHAR) AS label, count(*) AS value \
              FROM gold.mart_sessions GROUP BY 1 ORDER BY 1",
        draw: Draw::Bars(" sessions"),
    },
    Chart {
        title: "Releases per year",
        sql: "SELECT CAST(release_year AS VARCHAR) AS label, count(*) AS value FROM gold.dim_album \
              WHERE release_year IS NOT NULL GROUP BY release_year ORDER BY release_year DESC LIMIT 15",
        draw: Draw::Bars(" albums"),
    },
    Chart {
        title: "Audio profile of the artist with the most tracks (average over its tracks)",
        sql: "WITH artist AS (SELECT artist_key FROM gold.bridge_track_artist GROUP BY artist_key \
              ORDER BY count(*) DESC, artist_key LIMIT 1), \
              f AS (SELECT f.* FROM gold.fact_audio_features f \
              JOIN gold.bridge_track_artist b ON b.track_key = f.track_key \
              JOIN artist ON artist.artist_key = b.artist_key) \
              SELECT 'danceability' AS label, round(avg(danceability), 3) AS value, 1 AS n FROM f \
              UNION ALL SELECT 'energy', round(avg(energy), 3), 2 FROM f \
              UNION ALL SELECT 'valence', round(avg(valence), 3), 3 FROM f \
              UNION ALL SELECT 'acousticness', round(avg(acousticness), 3), 4 FROM f \
              UNION ALL SELECT 'instrumentalness', round(avg(instrumentalness), 3), 5 FROM f \
              UNION ALL SELECT 'liveness', round(avg(liveness), 3), 6 FROM f \
              UNION ALL SELECT 'speechiness', round(avg(speechiness), 3), 7 FROM f ORDER BY n",
        draw: Draw::Bars(""),
    },
    Chart {
        title: "Track popularity",
        sql: "SELECT CAST(CAST(floor(popularity / 10) * 10 AS BIGINT) AS VARCHAR) || '+' AS label, \
              count(*) AS value FROM gold.dim_track WHERE popularity IS NOT NULL \
              GROUP BY floor(popularity / 10) ORDER BY floor(popularity / 10)",
        draw: Draw::Bars(" tracks"),
    },
];

pub(super) async fn charts(ui: &Ui) -> Result<String> {
    let engine = Engine::open(&ui.lake).await?;
    let mut body = String::from("<div class=\"charts\">");
    for chart in CHARTS {
        let drawn = match engine.collect(chart.title, chart.sql).await {
            Ok((_, batches)) => draw(&chart.draw, &batches),
            // A mart not built yet costs its chart, not the page.
            Err(e) => format!("<p>Not available yet: {}</p>", escape(&e.to_string())),
        };
        let _ = write!(
            body,
            "<figure data-title=\"{title}\"><figcaption>{title}</figcaption>{drawn}\
             <details><summary>SQL</summary><pre class=\"sql\">{sql}</pre></details></figure>",
            title = escape(chart.title),
            sql = escape(chart.sql),
        );
    }
    body.push_str("</div>");
    Ok(html::page("Charts", "Charts", &body, false))
}

fn draw(how: &Draw, batches: &[RecordBatch]) -> String {
    let cells = html::cells(batches);
    match how {
        Draw::Bars(unit) => {
            let items: Vec<(String, f64)> = cells
                .iter()
                .map(|row| (row[0].clone(), row[1].parse().unwrap_or(0.0)))
                .collect();
            html::bars(&items, unit)
        }
        Draw::WeekHours => {
            let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
            let mut values = vec![vec![0.0; 24]; 7];
            for row in &cells {
                let (Ok(day), Ok(hour)) = (row[0].parse::<usize>(), row[1].parse::<usize>()) else {
                    continue;
                };
                if (1..=7).contains(&day) && hour < 24 {
                    values[day - 1][hour] = row[2].parse().unwrap_or(0.0);
                }
            }
            let hours: Vec<String> = (0..24).map(|h| h.to_string()).collect();
            html::heatmap(&days.map(String::from), &hours, &values)
        }
    }
}

pub(super) async fn similar(ui: &Ui, asked: Option<&str>) -> Result<String> {
    let asked = asked.unwrap_or_default().trim();
    let mut body = format!(
        "<form method=\"get\" action=\"/ui/similar\"><input type=\"search\" name=\"q\" value=\"{}\" \
         placeholder=\"a title, Spotify id or URL\" autofocus> <button type=\"submit\">Find</button></form>",
        escape(asked)
    );
    if asked.is_empty() {
        return Ok(html::page("Similar tracks", "Similar tracks", &body, false));
    }
    let engine = Engine::open(&ui.lake).await?;
    let (track, found) = match crate::recommend::candidates(&engine, asked).await {
        Ok(found) => (crate::recommend::the_one(asked, found.clone()), found),
        Err(e) => (Err(e), Vec::new()),
    };
    match track {
        Err(e) => {
            let _ = write!(
                body,
                "<pre class=\"error\">{}</pre>",
                escape(&e.to_string())
            );
            // Each candidate is a link that asks for it.
            if found.len() > 1 {
                body.push_str("<ul class=\"candidates\">");
                for t in found.iter().take(crate::recommend::CANDIDATES) {
                    let _ = write!(
                        body,
                        "<li><a href=\"/ui/similar?q={}\">{}</a></li>",
                        html::query_value(&t.id),
                        escape(&t.to_string())
                    );
                }
                body.push_str("</ul>");
            }
        }
        Ok(track) => {
            let _ = write!(
                body,
                "<h2 class=\"track\">{}</h2>",
                escape(&track.to_string())
            );
            for (method, title) in [
                (Method::Sound, "By sound"),
                (Method::Listening, "By listening"),
            ] {
                let _ = write!(body, "<section class=\"by-{method:?}\"><h3>{title}</h3>");
                match crate::recommend::similar(&engine, &track, method, 20).await {
                    Ok((schema, batches)) if batches.iter().any(|b| b.num_rows() > 0) => {
                        body.push_str(&html::rows(&schema, &batches, |column, value| {
                            (column == "track_id").then(|| format!("/ui/similar?q={value}"))
                        }));
                    }
                    Ok(_) => {
                        let _ = write!(
                            body,
                            "<p>{}</p>",
                            escape(&crate::recommend::none_found(&track, method))
                        );
                    }
                    Err(e) => {
                        let _ = write!(body, "<p>{}</p>", escape(&e.to_string()));
                    }
                }
                body.push_str("</section>");
            }
        }
    }
    Ok(html::page("Similar tracks", "Similar tracks", &body, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backfill_shows_how_many_of_its_intervals_are_done() {
        let report = serde_json::json!({"tasks": [
            {"id": "2026-11-01T00:00:00Z/bronze.events", "status": "succeeded"},
            {"id": "2026-11-01T00:00:00Z/silver.events", "status": "succeeded"},
            {"id": "2026-11-02T00:00:00Z/bronze.events", "status": "succeeded"},
            {"id": "2026-11-02T00:00:00Z/silver.events", "status": "failed"},
            {"id": "2026-11-03T00:00:00Z/bronze.events", "status": "running"},
        ]});
        let shown = progress(&report);
        assert!(shown.ends_with("1 of 3 intervals"), "{shown}");
        assert!(shown.contains("max=\"3\" value=\"1\""), "{shown}");
        let run = serde_json::json!({"tasks": [{"id": "bronze.events"}, {"id": "silver.events"}]});
        assert_eq!(progress(&run), "2");
        assert_eq!(progress(&serde_json::json!({})), "0");
    }

    #[test]
    fn a_silver_familys_tables_share_its_lineage() {
        let project = crate::project::Project {
            bronze: Vec::new(),
            silver: Vec::new(),
            gold: Vec::new(),
            pipelines: Vec::new(),
        };
        let mut lineage = Lineage::of(&project);
        lineage
            .known
            .insert(crate::silver::LAYER, ["tracks".to_string()].into());
        assert_eq!(
            lineage.written_by("silver", "tracks__artists"),
            "silver.tracks"
        );
        assert_eq!(
            lineage.written_by("silver", "tracks_quarantine"),
            "silver.tracks"
        );
        assert_eq!(lineage.written_by("gold", "dim_track"), "gold.dim_track");
        assert_eq!(lineage.written_by("bronze", "a__b"), "bronze.a__b");
    }
}
