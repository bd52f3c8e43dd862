//! The flattening race of benches/flatten, the events race of
//! benches/events and the landing race of benches/landing at a tiny
//! scale, so the harnesses and their baselines
//! cannot rot: every system must write the same tables (the harnesses
//! refuse to time unequal work) and the tables must come out.

use std::path::Path;
use std::process::{Command, Output};

use crate::servers::venv_python;

/// `script` of the harness run with `args` on this build, its work in
/// `work`: its standard output, once it succeeded.
fn race(script: &str, args: &[&str], work: &Path) -> String {
    let out = bench(script, args, work);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    stdout.into_owned()
}

fn bench(script: &str, args: &[&str], work: &Path) -> Output {
    Command::new(venv_python())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg(script)
        .args(args)
        .args(["--binary", env!("CARGO_BIN_EXE_soundlake")])
        .arg("--work")
        .arg(work)
        .output()
        .unwrap()
}

#[test]
fn the_flattening_race_is_run_on_equal_work() {
    let work = tempfile::tempdir().unwrap();
    let stdout = race(
        "benches/flatten/bench.py",
        &[
            "--scales",
            "400",
            "--runs",
            "1",
            "--systems",
            "soundlake,duckdb-stream,duckdb-memory,chdb-stream,chdb-memory,polars-lazy,\
             polars-memory,dlt-normalize,spark-explicit,spark-inferred",
            "--trino",
        ],
        work.path(),
    );
    for row in [
        "| soundlake |",
        "| soundlake + gold |",
        "| gold on Trino |",
        "| similar by sound |",
        "| gold SQL models |",
        "| gold SQL on DuckDB |",
        "| duckdb-stream |",
        "| duckdb-memory |",
        "| chdb-stream |",
        "| chdb-memory |",
        "| polars-lazy |",
        "| polars-memory |",
        "| dlt-normalize |",
        "| spark-explicit |",
        "| spark-inferred |",
    ] {
        assert!(stdout.contains(row), "{row} missing from:\n{stdout}");
    }
    assert!(stdout.contains("output: 14 tables"), "{stdout}");
    // The search is exact: every neighbour listed is among the true 20.
    assert!(
        stdout.contains("recall 1.000 against exact search over every track"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Physical limit (`examples/parse_limit.rs`, median): reading the"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Where soundlake's bronze+silver time goes") && stdout.contains("parse "),
        "{stdout}"
    );
    assert!(
        stdout.contains("soundlake's bronze+silver, its last run: cores busy, a bar per"),
        "{stdout}"
    );

    // A baseline that writes different rows is refused, not timed.
    let variant = work.path().join("variant");
    std::fs::create_dir(&variant).unwrap();
    std::fs::write(
        variant.join("duckdb_flatten.py"),
        std::fs::read_to_string("benches/flatten/duckdb_flatten.py")
            .unwrap()
            .replace("FROM artists\"\"\"", "FROM artists LIMIT 1\"\"\""),
    )
    .unwrap();
    let baselines = variant.to_str().unwrap();
    let out = bench(
        "benches/flatten/bench.py",
        &[
            "--scales",
            "400",
            "--runs",
            "1",
            "--systems",
            "soundlake,duckdb-stream",
            "--baselines",
            baselines,
        ],
        work.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "unequal work was timed");
    assert!(
        stderr.contains("duckdb-stream did not produce soundlake's tables")
            && stderr.contains("artists:"),
        "{stderr}"
    );
}

#[test]
fn the_events_race_is_run_on_equal_work() {
    let work = tempfile::tempdir().unwrap();
    let stdout = race(
        "benches/events/bench.py",
        &[
            "--events", "3000", "--days", "2", "--runs", "1", "--tracks", "300", "--marts",
        ],
        work.path(),
    );
    for row in ["| soundlake-files |", "| soundlake-kafka |", "| duckdb |"] {
        assert!(stdout.contains(row), "{row} missing from:\n{stdout}");
    }
    assert!(stdout.contains("output: 3,000 events"), "{stdout}");
    // Bronze's and silver's peaks apart: the run's peak hides the smaller.
    assert!(
        stdout.contains("| bronze MB | silver MB | peak MB |"),
        "{stdout}"
    );
    // The incremental marts: the run after one more day rebuilds a day or
    // two (late deliveries), not all three, and matched a full refresh.
    assert!(stdout.contains("| full refresh | 3 |"), "{stdout}");
    assert!(
        stdout.contains("| one new day | 1 |") || stdout.contains("| one new day | 2 |"),
        "{stdout}"
    );
}

#[test]
fn the_landing_race_loads_every_document_with_both_loaders() {
    let work = tempfile::tempdir().unwrap();
    let stdout = race(
        "benches/landing/bench.py",
        &["--tracks", "200", "--runs", "1"],
        work.path(),
    );
    for row in ["| soundlake |", "| pymongo |"] {
        assert!(stdout.contains(row), "{row} missing from:\n{stdout}");
    }
    assert!(stdout.contains("### 200 tracks into FerretDB"), "{stdout}");
}
