//! `pipelines/*.toml`: one pipeline per file. A pipeline has a schedule and
//! task groups; a group whose kind is a layer (`bronze`, `silver`) expands
//! into one task per table definition of that layer, with dependencies
//! inferred from what each table reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::dag::{Dag, glob};
use super::schedule::{Interval, Schedule};
use crate::definitions::{TableId, read_toml, toml_files};
use crate::error::{Error, Result};

/// What to run after downtime, when fire times were missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Skip what was missed; wait for the next fire time.
    None,
    /// Run once for the most recent missed fire time.
    Latest,
    /// Run once for every missed fire time, oldest first.
    All,
}

/// The task kinds pipelines may use, registered by whoever runs them: the
/// orchestrator learns each kind's shape (one task, or one per table of a
/// layer, and what each table reads) and its parameters, not what it does.
#[derive(Debug, Clone, Default)]
pub struct Kinds {
    /// Kinds that are one task per group (the crawl).
    pub single: BTreeSet<String>,
    /// Layer kinds: layer → table → upstream task ids (`silver.tracks` →
    /// `bronze.tracks`).
    pub layers: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// The parameters a kind takes, with their TOML type (`integer`, …).
    pub params: BTreeMap<String, Vec<(&'static str, &'static str)>>,
    /// Layers whose tasks rebuild their table whole from what it reads
    /// (rather than one interval of it): a backfill runs them once, after
    /// its last interval.
    pub rebuilt_whole: BTreeSet<String>,
    /// Layer kinds: layer → table → tasks whose tables the table's task
    /// checks its own against before publishing (a gold model's
    /// `references` tests), beside those it reads. The task starts
    /// alongside them and waits for them only before it publishes.
    pub checked: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

/// A task of an expanded pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// `crawl`, `bronze.tracks`, …
    pub id: String,
    pub kind: String,
    /// The table, for layer tasks.
    pub table: Option<TableId>,
    pub params: BTreeMap<String, toml::Value>,
    pub retries: u32,
    pub retry_backoff_secs: u64,
    pub timeout_secs: Option<u64>,
    /// For a backfill's tasks: the schedule interval the task re-derives.
    pub interval: Option<Interval>,
    /// Whether the task rebuilds its table whole (see [`Kinds::rebuilt_whole`]).
    pub rebuilds_whole: bool,
}

impl Task {
    /// Whether the task works on a layer's table (rather than fetching).
    pub fn is_layer(&self) -> bool {
        self.table.is_some()
    }

    /// An integer parameter, if the pipeline gives it (validation checked
    /// its type); one out of `T`'s range (a negative count) reads as 0.
    pub fn integer_param<T: TryFrom<i64> + Default>(&self, name: &str) -> Option<T> {
        let value = self.params.get(name)?.as_integer()?;
        Some(T::try_from(value).unwrap_or_default())
    }
}

/// An edge of a pipeline's DAG: (upstream, downstream) task ids.
pub type Edge = (String, String);

/// A pipeline, expanded and checked.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub schedule: Schedule,
    pub catch_up: CatchUp,
    pub max_concurrent_tasks: usize,
    pub dag: Dag<Task>,
    /// Edges of `dag` that hold back only the downstream task's publishing:
    /// it starts once the upstream task has started, and waits for that
    /// one to succeed before it publishes (see [`Kinds::checked`]).
    pub gated: BTreeSet<Edge>,
    pub file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    schedule: String,
    #[serde(default = "utc")]
    timezone: String,
    #[serde(default = "latest")]
    catch_up: CatchUp,
    #[serde(default = "four")]
    max_concurrent_tasks: usize,
    tasks: BTreeMap<String, Group>,
}

fn utc() -> String {
    "UTC".into()
}

fn latest() -> CatchUp {
    CatchUp::Latest
}

fn four() -> usize {
    4
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    /// Defaults to the group's name (`[tasks.bronze]` is a bronze group).
    kind: Option<String>,
    /// Groups or task ids this group's tasks run after.
    #[serde(default)]
    after: Vec<String>,
    /// For a layer group: the tables to run (default: all); `*` and `?`
    /// match like globs.
    tables: Option<Vec<String>>,
    /// For a layer group: tables (or globs) to leave out.
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    retries: u32,
    #[serde(default = "default_backoff")]
    retry_backoff_secs: u64,
    timeout_secs: Option<u64>,
    #[serde(default)]
    params: BTreeMap<String, toml::Value>,
}

fn default_backoff() -> u64 {
    30
}

/// Every `*.toml` of `dir`, expanded against `kinds`. All problems of all
/// files are reported at once.
pub fn load(dir: &Path, kinds: &Kinds) -> Result<Vec<Pipeline>> {
    let mut pipelines = Vec::new();
    let mut problems = Vec::new();
    for path in toml_files(dir, "pipelines")? {
        match parse(&path, kinds) {
            Ok(p) => pipelines.push(p),
            Err(list) => {
                problems.extend(list.into_iter().map(|p| format!("{}: {p}", path.display())))
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::config(
            dir.display().to_string(),
            problems.join("\n  "),
            "fix each file named above; keys: schedule, timezone, catch_up (none, latest, all), \
             max_concurrent_tasks, and [tasks.<name>] with kind, after, tables, exclude, retries, \
             retry_backoff_secs, timeout_secs, params",
        ));
    }
    Ok(pipelines)
}

fn parse(path: &Path, kinds: &Kinds) -> std::result::Result<Pipeline, Vec<String>> {
    let (name, file): (String, File) = read_toml(path).map_err(|e| vec![e])?;
    let mut problems = Vec::new();
    let schedule = Schedule::parse(&file.schedule, &file.timezone)
        .map_err(|e| problems.push(e))
        .ok();
    if file.max_concurrent_tasks == 0 {
        problems.push("max_concurrent_tasks must be at least 1".into());
    }
    if file.tasks.is_empty() {
        problems.push("a pipeline needs at least one [tasks.<name>]".into());
    }

    let (tasks, members) = expand(&file, kinds, &mut problems);
    let (edges, gated) = dependencies(&file, kinds, &tasks, &members, &mut problems);
    let dag = match Dag::new(
        tasks.into_iter().map(|t| (t.id.clone(), t)).collect(),
        edges,
    ) {
        Ok(dag) => Some(dag),
        Err(cycle) => {
            problems.push(format!("the tasks form a cycle: {}", cycle.join(" -> ")));
            None
        }
    };
    match (schedule, dag) {
        (Some(schedule), Some(dag)) if problems.is_empty() => Ok(Pipeline {
            name,
            schedule,
            catch_up: file.catch_up,
            max_concurrent_tasks: file.max_concurrent_tasks,
            dag,
            gated,
            file: path.to_path_buf(),
        }),
        _ => Err(problems),
    }
}

/// Every group expanded into its tasks, and each group's task ids.
fn expand<'f>(
    file: &'f File,
    kinds: &Kinds,
    problems: &mut Vec<String>,
) -> (Vec<Task>, BTreeMap<&'f str, Vec<String>>) {
    let mut tasks: Vec<Task> = Vec::new();
    let mut members: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let known_kinds: Vec<&str> = kinds
        .single
        .iter()
        .chain(kinds.layers.keys())
        .map(String::as_str)
        .collect();
    for (group_name, group) in &file.tasks {
        let kind = group.kind.clone().unwrap_or_else(|| group_name.clone());
        let where_ = format!("[tasks.{group_name}]");
        let known = kinds
            .params
            .get(&kind)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (key, value) in &group.params {
            match known.iter().find(|(k, _)| k == key) {
                None => problems.push(format!(
                    "{where_}: a {kind} task takes no parameter {key:?}{}",
                    if known.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (it takes: {})",
                            known.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
                        )
                    }
                )),
                Some((_, ty)) if value.type_str() != *ty => problems.push(format!(
                    "{where_}: parameter {key} must be a {ty}, not a {}",
                    value.type_str()
                )),
                Some(_) => {}
            }
        }
        let task = |id: String, table: Option<TableId>| Task {
            id,
            kind: kind.clone(),
            table,
            params: group.params.clone(),
            retries: group.retries,
            retry_backoff_secs: group.retry_backoff_secs,
            timeout_secs: group.timeout_secs,
            interval: None,
            rebuilds_whole: kinds.rebuilt_whole.contains(&kind),
        };
        let ids: Vec<String> = if kinds.single.contains(&kind) {
            if group.tables.is_some() || !group.exclude.is_empty() {
                problems.push(format!("{where_}: a {kind} task has no tables"));
            }
            vec![group_name.clone()]
        } else if let Some(layer) = kinds.layers.get(&kind) {
            if group_name != &kind {
                problems.push(format!(
                    "{where_}: a {kind} group must be named [tasks.{kind}] (its tasks are {kind}.<table>)"
                ));
            }
            let patterns = group.tables.clone().unwrap_or_else(|| vec!["*".into()]);
            for p in patterns.iter().chain(&group.exclude) {
                if !layer.keys().any(|t| glob(p, t)) {
                    problems.push(format!(
                        "{where_}: there is no {kind} table {p:?} (there are: {})",
                        layer.keys().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            layer
                .keys()
                .filter(|t| patterns.iter().any(|p| glob(p, t)))
                .filter(|t| !group.exclude.iter().any(|p| glob(p, t)))
                .map(|t| format!("{kind}.{t}"))
                .collect()
        } else {
            problems.push(format!(
                "{where_}: unknown task kind {kind:?} (known: {})",
                known_kinds.join(", ")
            ));
            continue;
        };
        for id in &ids {
            let table = id.split_once('.').map(|(_, t)| TableId::new(&kind, t));
            tasks.push(task(id.clone(), table));
        }
        members.insert(group_name.as_str(), ids);
    }

    (tasks, members)
}

/// The edges between tasks: declared (`after` a group or a task id), then
/// inferred from what each layer table reads and checks against, where
/// that task is in the pipeline; and of those, the edges that gate only
/// publishing (checked against, and neither read nor declared).
fn dependencies(
    file: &File,
    kinds: &Kinds,
    tasks: &[Task],
    members: &BTreeMap<&str, Vec<String>>,
    problems: &mut Vec<String>,
) -> (Vec<Edge>, BTreeSet<Edge>) {
    let mut edges: Vec<Edge> = Vec::new();
    for (group_name, group) in &file.tasks {
        let Some(ids) = members.get(group_name.as_str()) else {
            continue;
        };
        for upstream in &group.after {
            let targets: Vec<String> = match members.get(upstream.as_str()) {
                Some(group_ids) => group_ids.clone(),
                None if tasks.iter().any(|t| &t.id == upstream) => vec![upstream.clone()],
                None => {
                    problems.push(format!(
                        "[tasks.{group_name}]: after names {upstream:?}, which is neither a task \
                         group nor a task of this pipeline"
                    ));
                    continue;
                }
            };
            for id in ids {
                for target in &targets {
                    edges.push((target.clone(), id.clone()));
                }
            }
        }
    }
    // The tasks of this pipeline that `map` lists for a layer task's table.
    let listed = |map: &BTreeMap<String, BTreeMap<String, Vec<String>>>, task: &Task| {
        let table = task.table.as_ref()?;
        let upstream = map.get(&table.layer)?.get(&table.name)?;
        Some(
            upstream
                .iter()
                .filter(|up| tasks.iter().any(|t| &t.id == *up))
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    for task in tasks {
        for upstream in listed(&kinds.layers, task).unwrap_or_default() {
            edges.push((upstream, task.id.clone()));
        }
    }
    let mut gated = BTreeSet::new();
    for task in tasks {
        for upstream in listed(&kinds.checked, task).unwrap_or_default() {
            let edge = (upstream, task.id.clone());
            if !edges.contains(&edge) {
                gated.insert(edge);
            }
        }
    }
    edges.extend(gated.iter().cloned());
    (edges, gated)
}

/// Each pipeline's schedule and next fire after `now`, for `soundlake list`.
pub fn schedules(
    pipelines: &[Pipeline],
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<serde_json::Value> {
    pipelines
        .iter()
        .map(|p| {
            let next = p.schedule.next_after(now);
            serde_json::json!({
                "pipeline": p.name,
                "schedule": p.schedule.expression(),
                "timezone": p.schedule.zone().name(),
                "catch_up": format!("{:?}", p.catch_up).to_lowercase(),
                "tasks": p.dag.len(),
                "next_fire": next,
                "next_fire_local": next.map(|t| t.with_timezone(&p.schedule.zone()).to_rfc3339()),
            })
        })
        .collect()
}

/// [`schedules`] as a table.
pub fn render_schedules(rows: &[serde_json::Value]) -> String {
    let mut out = format!(
        "{:<24} {:<20} {:<16} {:>5}  next fire\n",
        "pipeline", "schedule", "timezone", "tasks"
    );
    for r in rows {
        out += &format!(
            "{:<24} {:<20} {:<16} {:>5}  {}\n",
            r["pipeline"].as_str().unwrap_or_default(),
            r["schedule"].as_str().unwrap_or_default(),
            r["timezone"].as_str().unwrap_or_default(),
            r["tasks"],
            r["next_fire_local"].as_str().unwrap_or("never"),
        );
    }
    out
}

/// What `run --dry-run` shows: the selected tasks wave by wave.
pub fn render_selection(pipeline: &Pipeline, selected: &BTreeSet<String>) -> String {
    let mut out = format!(
        "{}: would run {} of {} tasks\n",
        pipeline.name,
        selected.len(),
        pipeline.dag.len()
    );
    for (i, wave) in pipeline.dag.waves().iter().enumerate() {
        for id in wave.iter().filter(|id| selected.contains(**id)) {
            out += &format!("  [{}] {id}\n", i + 1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::tests::dir_with;

    /// A crawl kind and two layers, as the composition root registers them.
    fn kinds() -> Kinds {
        let mut layers = BTreeMap::new();
        layers.insert(
            "bronze".to_string(),
            ["albums", "tracks"]
                .iter()
                .map(|t| (t.to_string(), vec![]))
                .collect(),
        );
        layers.insert(
            "silver".to_string(),
            [("tracks", "bronze.tracks"), ("albums", "bronze.albums")]
                .iter()
                .map(|(t, up)| (t.to_string(), vec![up.to_string()]))
                .collect(),
        );
        Kinds {
            single: ["crawl".to_string()].into(),
            layers,
            params: [("crawl".to_string(), vec![("names_per_run", "integer")])].into(),
            ..Kinds::default()
        }
    }

    const CATALOG: &str = r#"
schedule = "0 3 * * *"
timezone = "Europe/Berlin"
catch_up = "all"

[tasks.crawl]
retries = 2
timeout_secs = 3600
params = { names_per_run = 10 }

[tasks.bronze]
after = ["crawl"]

[tasks.silver]
"#;

    #[test]
    fn layer_groups_expand_with_inferred_dependencies() {
        let dir = dir_with(&[("catalog.toml", CATALOG)]);
        let p = load(dir.path(), &kinds()).unwrap().remove(0);
        assert_eq!(p.name, "catalog");
        assert_eq!(p.catch_up, CatchUp::All);
        let ids: Vec<&str> = p.dag.ids().collect();
        assert_eq!(
            ids,
            [
                "bronze.albums",
                "bronze.tracks",
                "crawl",
                "silver.albums",
                "silver.tracks"
            ]
        );
        assert_eq!(p.dag.upstream("bronze.tracks"), vec!["crawl"]);
        assert_eq!(p.dag.upstream("silver.tracks"), vec!["bronze.tracks"]);
        let crawl = p.dag.task("crawl").unwrap();
        assert_eq!((crawl.retries, crawl.timeout_secs), (2, Some(3600)));
    }

    #[test]
    fn groups_pick_tables_by_name_and_glob() {
        let dir = dir_with(&[(
            "p.toml",
            "schedule = \"0 3 * * *\"\n[tasks.bronze]\ntables = [\"*\"]\nexclude = [\"al*\"]\n[tasks.silver]\ntables = [\"a?bums\"]\n",
        )]);
        let p = load(dir.path(), &kinds()).unwrap().remove(0);
        let ids: Vec<&str> = p.dag.ids().collect();
        assert_eq!(ids, ["bronze.tracks", "silver.albums"]);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let dir = dir_with(&[
            ("a.toml", "schedule = \"0 3 * *\"\n[tasks.crawl]\n"),
            (
                "b.toml",
                "schedule = \"0 3 * * *\"\nschedul = 1\n[tasks.crawl]\n",
            ),
            (
                "c.toml",
                "schedule = \"0 3 * * *\"\n[tasks.fetch]\nkind = \"download\"\n",
            ),
            (
                "d.toml",
                "schedule = \"0 3 * * *\"\n[tasks.bronze]\ntables = [\"songs\"]\n",
            ),
            (
                "e.toml",
                "schedule = \"0 3 * * *\"\n[tasks.a]\nkind = \"crawl\"\nafter = [\"b\"]\n[tasks.b]\nkind = \"crawl\"\nafter = [\"a\"]\n",
            ),
            (
                "f.toml",
                "schedule = \"0 3 * * *\"\n[tasks.crawl]\nafter = [\"nothing\"]\nparams = { names = 3 }\n",
            ),
            (
                "g.toml",
                "schedule = \"0 3 * * *\"\ntimezone = \"Moon/Base\"\n[tasks.crawl]\n",
            ),
        ]);
        let err = load(dir.path(), &kinds()).unwrap_err().to_string();
        for needle in [
            "a.toml: schedule \"0 3 * *\" has 4 fields",
            "b.toml: line 2, column 1: unknown field `schedul`",
            "c.toml: [tasks.fetch]: unknown task kind \"download\" (known: crawl, bronze, silver)",
            "d.toml: [tasks.bronze]: there is no bronze table \"songs\" (there are: albums, tracks)",
            "e.toml: the tasks form a cycle: a -> b -> a",
            "f.toml: [tasks.crawl]: after names \"nothing\"",
            "f.toml: [tasks.crawl]: a crawl task takes no parameter \"names\" (it takes: names_per_run)",
            "g.toml: time zone \"Moon/Base\"",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in {err}");
        }
    }
}
