//! `soundlake init` as a newcomer runs it, outside any checkout.

use std::path::Path;
use std::process::Command;

/// `soundlake` in `dir` with nothing but its own defaults: no definitions
/// folder set, so it reads the folder it runs in.
fn soundlake_in(dir: &Path) -> Command {
    let mut cmd = crate::support::soundlake(crate::support::shipped());
    cmd.env_remove("SOUNDLAKE__DEFINITIONS__DIR")
        .current_dir(dir);
    cmd
}

fn files_under(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.count())
}

#[test]
fn init_writes_a_project_that_validates_and_never_overwrites() {
    let parent = tempfile::tempdir().unwrap();
    let project = parent.path().join("music");
    let printed = crate::support::succeed(soundlake_in(parent.path()).args(["init", "music"]));
    let shipped = crate::support::shipped();
    let expected = ["bronze", "silver", "gold", "pipelines"]
        .iter()
        .map(|f| files_under(&shipped.join(f)))
        .sum::<usize>()
        + 2;
    assert!(
        printed.contains(&format!("wrote {expected} files")),
        "{printed}"
    );
    assert!(printed.contains("soundlake demo"), "{printed}");
    for folder in ["bronze", "silver", "gold", "pipelines"] {
        assert_eq!(
            files_under(&project.join(folder)),
            files_under(&shipped.join(folder)),
            "{folder}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(project.join("artists.txt")).unwrap(),
        std::fs::read_to_string(shipped.join("artists.txt")).unwrap()
    );
    // The written soundlake.toml is read (it is in the folder) and valid,
    // and the definitions are the shipped ones.
    let here = crate::support::succeed(soundlake_in(&project).arg("validate"));
    let there = crate::support::succeed(crate::support::soundlake(shipped).arg("validate"));
    assert_eq!(here, there);

    // A second init changes nothing and names what is in the way.
    std::fs::write(project.join("artists.txt"), "Nina Simone\n").unwrap();
    let out = soundlake_in(&project).arg("init").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("exist already"), "{stderr}");
    assert!(stderr.contains("soundlake.toml"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(project.join("artists.txt")).unwrap(),
        "Nina Simone\n"
    );
}

#[test]
fn the_demo_in_an_empty_folder_says_to_run_init_first() {
    let empty = tempfile::tempdir().unwrap();
    let out = soundlake_in(empty.path()).arg("demo").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no soundlake project here"), "{stderr}");
    assert!(stderr.contains("run `soundlake init`"), "{stderr}");
    assert_eq!(files_under(empty.path()), 0, "nothing written");
}
