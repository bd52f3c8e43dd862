//! The orchestrator's commands over definition folders: validate, list and
//! dag, as a user runs them.

use std::path::Path;

use serde_json::Value;

fn soundlake(definitions: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_soundlake"));
    cmd.env_clear()
        .env("SOUNDLAKE__DEFINITIONS__DIR", definitions)
        .stdin(std::process::Stdio::null());
    cmd
}

fn shipped() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of the shipped definitions to break.
fn copy_of_shipped() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for folder in ["bronze", "silver", "pipelines"] {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        for entry in std::fs::read_dir(shipped().join(folder)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(
                entry.path(),
                dir.path().join(folder).join(entry.file_name()),
            )
            .unwrap();
        }
    }
    dir
}

fn output(cmd: &mut std::process::Command) -> (Option<i32>, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn the_shipped_definitions_validate_list_and_draw() {
    let (code, out, err) = output(soundlake(shipped()).arg("validate"));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("5 bronze tables, 5 silver tables, 1 pipelines (11 tasks)"),
        "{out}"
    );

    let (code, out, err) = output(soundlake(shipped()).args(["list", "--json"]));
    assert_eq!(code, Some(0), "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["pipeline"], "spotify_catalog");
    assert_eq!(rows[0]["schedule"], "0 3 * * *");
    let next = rows[0]["next_fire"].as_str().unwrap();
    assert!(next.ends_with("T03:00:00Z"), "{next}");

    let (code, out, _) = output(soundlake(shipped()).args(["dag", "spotify_catalog"]));
    assert_eq!(code, Some(0));
    assert!(out.contains("[1] crawl\n"), "{out}");
    assert!(out.contains("[3] silver.tracks  <- bronze.tracks"), "{out}");
    let (_, dot, _) =
        output(soundlake(shipped()).args(["dag", "spotify_catalog", "--format", "dot"]));
    assert!(
        dot.contains("\"bronze.tracks\" -> \"silver.tracks\";"),
        "{dot}"
    );
    assert_eq!(dot.matches(" -> ").count(), 10, "{dot}");
    let (_, mermaid, _) =
        output(soundlake(shipped()).args(["dag", "spotify_catalog", "--format", "mermaid"]));
    assert!(mermaid.contains("crawl --> bronze_tracks"), "{mermaid}");
}

#[test]
fn validate_reports_every_folder_s_problems_at_once() {
    let dir = copy_of_shipped();
    let root = dir.path();
    std::fs::write(root.join("silver/extra.toml"), "source = \"songs\"\n").unwrap();
    std::fs::write(
        root.join("pipelines/broken.toml"),
        "schedule = \"61 * * * *\"\n[tasks.a]\nkind = \"crawl\"\nafter = [\"b\"]\n[tasks.b]\nkind = \"crawl\"\nafter = [\"a\"]\n[tasks.gold]\n",
    )
    .unwrap();
    let (code, _, err) = output(soundlake(root).arg("validate"));
    assert_eq!(code, Some(2), "{err}");
    for needle in [
        "extra.toml: source \"songs\" is not a bronze table",
        "broken.toml: schedule \"61 * * * *\" is not a cron expression",
        "broken.toml: [tasks.gold]: unknown task kind \"gold\"",
        "broken.toml: the tasks form a cycle: a -> b -> a",
        "run `soundlake validate` again",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }

    let (code, _, err) = output(soundlake(shipped()).args(["dag", "nightly"]));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("no pipeline \"nightly\"") && err.contains("spotify_catalog"),
        "{err}"
    );
}
