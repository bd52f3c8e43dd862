//! A directed acyclic graph of tasks by id: checked for cycles when built,
//! walked in dependency order, drawn as text, Mermaid or Graphviz DOT.

use std::collections::{BTreeMap, BTreeSet};

/// Tasks by id and the edges between them (upstream → downstream).
#[derive(Debug, Clone)]
pub struct Dag<T> {
    tasks: BTreeMap<String, T>,
    upstream: BTreeMap<String, BTreeSet<String>>,
    downstream: BTreeMap<String, BTreeSet<String>>,
}

/// How `soundlake dag` draws a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Mermaid,
    Dot,
}

impl<T> Dag<T> {
    /// Build the graph; `Err` holds a cycle as a path that returns to its
    /// start (`a`, `b`, `a`). Edges naming unknown tasks are a bug upstream.
    pub fn new(
        tasks: BTreeMap<String, T>,
        edges: Vec<(String, String)>,
    ) -> Result<Dag<T>, Vec<String>> {
        let mut upstream: BTreeMap<String, BTreeSet<String>> =
            tasks.keys().map(|k| (k.clone(), BTreeSet::new())).collect();
        let mut downstream = upstream.clone();
        for (from, to) in edges {
            assert!(
                tasks.contains_key(&from) && tasks.contains_key(&to),
                "edge {from} -> {to}"
            );
            upstream.get_mut(&to).expect("known").insert(from.clone());
            downstream.get_mut(&from).expect("known").insert(to);
        }
        let dag = Dag {
            tasks,
            upstream,
            downstream,
        };
        match dag.find_cycle() {
            Some(cycle) => Err(cycle),
            None => Ok(dag),
        }
    }

    /// A depth-first walk with its own stack, not the thread's: a long
    /// backfill chains tens of thousands of tasks.
    fn find_cycle(&self) -> Option<Vec<String>> {
        let mut done: BTreeSet<&str> = BTreeSet::new();
        for root in self.tasks.keys() {
            if done.contains(root.as_str()) {
                continue;
            }
            // The path from `root`, each task with the downstream tasks
            // still to visit; `open` holds the tasks on it.
            let mut path = vec![(root.as_str(), self.downstream[root].iter())];
            let mut open: BTreeSet<&str> = BTreeSet::from([root.as_str()]);
            while let Some((id, next)) = path.last_mut() {
                let id = *id;
                match next.next().map(String::as_str) {
                    Some(n) if open.contains(n) => {
                        let start = path
                            .iter()
                            .position(|(p, _)| *p == n)
                            .expect("open tasks are on the path");
                        let mut cycle: Vec<String> =
                            path[start..].iter().map(|(p, _)| p.to_string()).collect();
                        cycle.push(n.to_string());
                        return Some(cycle);
                    }
                    Some(n) => {
                        if !done.contains(n) {
                            open.insert(n);
                            path.push((n, self.downstream[n].iter()));
                        }
                    }
                    None => {
                        open.remove(id);
                        done.insert(id);
                        path.pop();
                    }
                }
            }
        }
        None
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Task ids, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.tasks.keys().map(String::as_str)
    }

    pub fn task(&self, id: &str) -> Option<&T> {
        self.tasks.get(id)
    }

    /// The direct upstream tasks of `id`, sorted.
    pub fn upstream(&self, id: &str) -> Vec<&str> {
        self.upstream[id].iter().map(String::as_str).collect()
    }

    /// The tasks that depend on `id` directly, sorted.
    pub fn downstream(&self, id: &str) -> Vec<&str> {
        self.downstream[id].iter().map(String::as_str).collect()
    }

    /// Every task `id` depends on, directly or not.
    pub fn ancestors(&self, id: &str) -> BTreeSet<String> {
        self.closure(id, &self.upstream)
    }

    /// Every task that depends on `id`, directly or not.
    pub fn descendants(&self, id: &str) -> BTreeSet<String> {
        self.closure(id, &self.downstream)
    }

    fn closure(&self, id: &str, edges: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![id.to_string()];
        while let Some(next) = todo.pop() {
            for n in &edges[&next] {
                if seen.insert(n.clone()) {
                    todo.push(n.clone());
                }
            }
        }
        seen
    }

    /// The tasks a `--select` expression names: ids or globs (`*`, `?`),
    /// separated by spaces or commas, each with an optional `+` before
    /// (and everything upstream) or after (and everything downstream).
    /// Empty selects every task.
    pub fn select(&self, expression: &str) -> Result<BTreeSet<String>, String> {
        let terms: Vec<&str> = expression
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .collect();
        if terms.is_empty() {
            return Ok(self.tasks.keys().cloned().collect());
        }
        let mut chosen = BTreeSet::new();
        for term in terms {
            let up = term.starts_with('+');
            let down = term.ends_with('+') && term.len() > 1;
            let pattern = term.trim_start_matches('+').trim_end_matches('+');
            let matched: Vec<&String> = self.tasks.keys().filter(|id| glob(pattern, id)).collect();
            if matched.is_empty() {
                return Err(format!("{term:?} matches no task"));
            }
            for id in matched {
                chosen.insert(id.clone());
                if up {
                    chosen.extend(self.ancestors(id));
                }
                if down {
                    chosen.extend(self.descendants(id));
                }
            }
        }
        Ok(chosen)
    }

    /// Tasks in waves: each wave's tasks depend only on earlier waves.
    pub fn waves(&self) -> Vec<Vec<&str>> {
        let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
        let mut remaining: Vec<&str> = self.ids().collect();
        while !remaining.is_empty() {
            remaining.retain(|id| {
                let ups: Option<Vec<usize>> = self.upstream[*id]
                    .iter()
                    .map(|u| depth.get(u.as_str()).copied())
                    .collect();
                match ups {
                    Some(ups) => {
                        depth.insert(id, ups.into_iter().map(|d| d + 1).max().unwrap_or(0));
                        false
                    }
                    None => true,
                }
            });
        }
        let mut waves: Vec<Vec<&str>> = Vec::new();
        for (id, d) in depth {
            if waves.len() <= d {
                waves.resize(d + 1, Vec::new());
            }
            waves[d].push(id);
        }
        waves
    }

    /// The graph drawn in `format`, named `name`.
    pub fn render(&self, name: &str, format: Format) -> String {
        let edges = || {
            self.downstream
                .iter()
                .flat_map(|(from, tos)| tos.iter().map(move |to| (from.as_str(), to.as_str())))
        };
        match format {
            Format::Text => {
                let mut out = format!("{name}: {} tasks\n", self.len());
                for (i, wave) in self.waves().iter().enumerate() {
                    for id in wave {
                        let ups = self.upstream(id);
                        if ups.is_empty() {
                            out.push_str(&format!("  [{}] {id}\n", i + 1));
                        } else {
                            out.push_str(&format!("  [{}] {id}  <- {}\n", i + 1, ups.join(", ")));
                        }
                    }
                }
                out
            }
            Format::Mermaid => {
                let node = |id: &str| id.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
                let mut out = format!("---\ntitle: {name}\n---\nflowchart LR\n");
                for id in self.ids() {
                    out.push_str(&format!("  {}[\"{id}\"]\n", node(id)));
                }
                for (from, to) in edges() {
                    out.push_str(&format!("  {} --> {}\n", node(from), node(to)));
                }
                out
            }
            Format::Dot => {
                let quote =
                    |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
                let mut out = format!("digraph {} {{\n  rankdir=LR;\n", quote(name));
                for id in self.ids() {
                    out.push_str(&format!("  {};\n", quote(id)));
                }
                for (from, to) in edges() {
                    out.push_str(&format!("  {} -> {};\n", quote(from), quote(to)));
                }
                out.push_str("}\n");
                out
            }
        }
    }
}

/// Whether `text` matches `pattern`, where `*` is any run of characters
/// and `?` any one.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(edges: &[(&str, &str)], nodes: &[&str]) -> Result<Dag<()>, Vec<String>> {
        Dag::new(
            nodes.iter().map(|n| (n.to_string(), ())).collect(),
            edges
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    #[test]
    fn waves_follow_dependencies() {
        let d = dag(
            &[("a", "b"), ("b", "c"), ("a", "c"), ("x", "c")],
            &["a", "b", "c", "x"],
        )
        .unwrap();
        assert_eq!(d.waves(), vec![vec!["a", "x"], vec!["b"], vec!["c"]]);
        assert_eq!(d.upstream("c"), vec!["a", "b", "x"]);
    }

    #[test]
    fn selections_take_globs_and_plus_for_up_and_downstream() {
        let d = dag(
            &[
                ("crawl", "bronze.a"),
                ("crawl", "bronze.b"),
                ("bronze.a", "silver.a"),
                ("bronze.b", "silver.b"),
            ],
            &["crawl", "bronze.a", "bronze.b", "silver.a", "silver.b"],
        )
        .unwrap();
        let ids = |s: &str| d.select(s).unwrap().into_iter().collect::<Vec<_>>();
        assert_eq!(ids("bronze.*"), ["bronze.a", "bronze.b"]);
        assert_eq!(ids("+silver.a"), ["bronze.a", "crawl", "silver.a"]);
        assert_eq!(
            ids("bronze.*+"),
            ["bronze.a", "bronze.b", "silver.a", "silver.b"]
        );
        assert_eq!(ids("crawl, silver.?"), ["crawl", "silver.a", "silver.b"]);
        assert_eq!(ids("").len(), 5);
        assert!(d.select("gold.*").unwrap_err().contains("matches no task"));
        assert!(glob("*", "") && glob("a*c", "abbbc") && !glob("a?c", "ac"));
    }

    #[test]
    fn cycles_come_back_as_a_path() {
        let err = dag(&[("a", "b"), ("b", "c"), ("c", "a")], &["a", "b", "c"]).unwrap_err();
        assert_eq!(err, ["a", "b", "c", "a"]);
        let err = dag(&[("s", "s")], &["s"]).unwrap_err();
        assert_eq!(err, ["s", "s"]);
    }

    #[test]
    fn drawings_name_every_task_and_edge() {
        let d = dag(&[("crawl", "bronze.tracks")], &["crawl", "bronze.tracks"]).unwrap();
        let mermaid = d.render("p", Format::Mermaid);
        assert!(mermaid.contains("crawl --> bronze_tracks"), "{mermaid}");
        assert!(
            mermaid.contains("bronze_tracks[\"bronze.tracks\"]"),
            "{mermaid}"
        );
        let dot = d.render("p", Format::Dot);
        assert!(dot.contains("\"crawl\" -> \"bronze.tracks\";"), "{dot}");
        let text = d.render("p", Format::Text);
        assert!(text.contains("[2] bronze.tracks  <- crawl"), "{text}");
    }

    #[test]
    fn a_thousand_tasks_build_and_order_quickly() {
        let nodes: Vec<String> = (0..1000).map(|i| format!("t{i:04}")).collect();
        let edges: Vec<(String, String)> = (1..1000)
            .map(|i| (nodes[(i - 1) / 2].clone(), nodes[i].clone()))
            .collect();
        let d = Dag::new(nodes.iter().map(|n| (n.clone(), ())).collect(), edges).unwrap();
        assert_eq!(
            d.waves().len(),
            10,
            "a binary tree of 1000 nodes is 10 deep"
        );
    }

    #[test]
    fn a_chain_of_fifty_thousand_tasks_builds_without_exhausting_the_stack() {
        // As a backfill of many intervals chains each task to the one of
        // the interval before.
        let nodes: Vec<String> = (0..50_000).map(|i| format!("t{i:05}")).collect();
        let edges = (1..nodes.len())
            .map(|i| (nodes[i - 1].clone(), nodes[i].clone()))
            .collect();
        let long = Dag::new(nodes.iter().map(|n| (n.clone(), ())).collect(), edges).unwrap();
        assert_eq!(long.len(), 50_000);
        assert_eq!(long.descendants("t49990").len(), 9);

        // And a cycle at the end of a long path is still found.
        let mut edges: Vec<(String, String)> = (1..nodes.len())
            .map(|i| (nodes[i - 1].clone(), nodes[i].clone()))
            .collect();
        edges.push((nodes[49_999].clone(), nodes[49_998].clone()));
        let cycle = Dag::new(nodes.iter().map(|n| (n.clone(), ())).collect(), edges).unwrap_err();
        assert_eq!(cycle, ["t49998", "t49999", "t49998"]);
    }
}
