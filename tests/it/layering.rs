//! The crate's layers, bottom to top, and a check that every `crate::`
//! path in `src/` points at the same layer or a lower one, so the layering
//! the README's "Development" section draws stays true.

use std::path::Path;

/// Each top-level module of `src/` in its layer, lowest first.
const LAYERS: [(&str, &[&str]); 7] = [
    (
        "foundation",
        &[
            "error",
            "clock",
            "secret",
            "rng",
            "artist_names",
            "definitions",
            "progress",
            "stages",
            "json_tape",
        ],
    ),
    ("storage", &["landing", "lake"]),
    (
        "sources",
        &["spotify", "sim", "kafka", "trino", "notify", "import"],
    ),
    ("engine", &["sql"]),
    (
        "layers",
        &[
            "crawl",
            "bronze",
            "silver",
            "gold",
            "events",
            "retention",
            "recommend",
        ],
    ),
    ("orchestration", &["orchestrator"]),
    // The settings that name every module, and the wiring that runs each
    // task kind from them.
    (
        "composition",
        &[
            "config", "tasks", "project", "init", "demo", "ui", "cli", "lib", "main",
        ],
    ),
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
        .unwrap_or_else(|| panic!("src/{module} is in no layer: add it to LAYERS"))
}

/// `(file, line, from, to)` for every `crate::<module>` path under `dir`,
/// a folder within `src`.
fn crate_paths(src: &Path, dir: &Path, out: &mut Vec<(String, usize, String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            crate_paths(src, &path, out);
            continue;
        }
        let relative = path.strip_prefix(src).unwrap();
        let from = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for (at, _) in code.match_indices("crate::") {
                let to: String = code[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !to.is_empty() && to != from {
                    out.push((relative.display().to_string(), n + 1, from.clone(), to));
                }
            }
        }
    }
}

/// Every path in the crate rooted at `src` that reaches up a layer, and
/// how many paths were looked at.
fn upward_paths(src: &Path) -> (Vec<String>, usize) {
    let mut paths = Vec::new();
    crate_paths(src, src, &mut paths);
    let upward: Vec<String> = paths
        .iter()
        .filter(|(_, _, from, to)| layer_of(to) > layer_of(from))
        .map(|(file, line, from, to)| {
            format!(
                "src/{file}:{line}: {from} ({}) uses {to} ({})",
                LAYERS[layer_of(from)].0,
                LAYERS[layer_of(to)].0
            )
        })
        .collect();
    (upward, paths.len())
}

#[test]
fn every_module_imports_only_its_own_layer_or_lower_ones() {
    let (upward, seen) = upward_paths(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")));
    assert!(seen > 100, "the scan found the crate's paths: {seen}");
    assert!(
        upward.is_empty(),
        "imports from a higher layer:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_check_names_an_upward_import_and_skips_comments() {
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("lake")).unwrap();
    std::fs::write(
        src.path().join("lake/table.rs"),
        "use crate::error::Result;\n\
         // crate::cli is only named in this comment\n\
         fn f() { crate::orchestrator::run(); }\n",
    )
    .unwrap();
    let (upward, seen) = upward_paths(src.path());
    assert_eq!(seen, 2);
    assert_eq!(
        upward,
        ["src/lake/table.rs:3: lake (storage) uses orchestrator (orchestration)"]
    );
}
