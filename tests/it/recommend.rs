//! `soundlake recommend` on the demo's lake: its answers against an exact
//! computation in numpy (`tests/similar_check.py`), and its refusals.

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

fn soundlake(dir: &Path, args: &[&str]) -> Output {
    crate::support::soundlake(crate::support::shipped())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// The first column of a query's rows, as text.
fn column(dir: &Path, sql: &str) -> Vec<String> {
    crate::support::query(dir, sql)
        .iter()
        .map(|row| match row.values().next() {
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        })
        .collect()
}

/// `[[neighbour id, score], ...]` as `recommend` prints them.
fn neighbours(dir: &Path, track: &str, by: &str) -> Vec<Value> {
    let rows = crate::support::recommend(dir, track, by);
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            assert_eq!(row["rank"], json!(i + 1), "{rows:?}");
            json!([row["track_id"], row["score"]])
        })
        .collect()
}

#[test]
fn recommendations_equal_an_exact_computation_and_bad_names_get_the_fix() {
    let _machine = crate::support::machine();
    let dir = tempfile::tempdir().unwrap();
    let before = soundlake(dir.path(), &["recommend", "Hound Dog"]);
    let said = String::from_utf8_lossy(&before.stderr);
    assert!(
        !before.status.success() && said.contains("soundlake run spotify_catalog"),
        "{said}"
    );

    crate::support::demo_lake(dir.path());
    let by_sound = column(
        dir.path(),
        "SELECT t.track_id FROM gold.fact_audio_features f \
         JOIN gold.dim_track t ON t.track_key = f.track_key ORDER BY t.track_id LIMIT 8",
    );
    let by_listening = column(
        dir.path(),
        "SELECT track_id FROM gold.mart_track_engagement ORDER BY plays DESC, track_id LIMIT 8",
    );
    let mut answers = json!({"sound": {}, "listening": {}});
    for (by, asked) in [("sound", &by_sound), ("listening", &by_listening)] {
        assert_eq!(asked.len(), 8);
        for track in asked.iter() {
            answers[by][track] = Value::Array(neighbours(dir.path(), track, by));
        }
    }
    // Every track with features has 20 neighbours by sound; the most played
    // tracks have neighbours by listening, so the check below is not empty.
    assert!(
        answers["sound"]
            .as_object()
            .unwrap()
            .values()
            .all(|n| n.as_array().unwrap().len() == 20)
    );
    assert!(
        answers["listening"]
            .as_object()
            .unwrap()
            .values()
            .any(|n| !n.as_array().unwrap().is_empty())
    );
    let file = dir.path().join("answers.json");
    std::fs::write(&file, answers.to_string()).unwrap();
    let checked = crate::servers::python("tests/similar_check.py", [dir.path().join("lake"), file]);
    assert!(
        checked.contains("by sound: 8 tracks") && checked.contains("by listening: 8 tracks"),
        "{checked}"
    );

    // A URL and a URI name the same track as its id; so does its title
    // when no other track has it.
    let id = &by_sound[0];
    let by_id = neighbours(dir.path(), id, "sound");
    for named in [
        format!("https://open.spotify.com/track/{id}?si=x"),
        format!("spotify:track:{id}"),
    ] {
        assert_eq!(neighbours(dir.path(), &named, "sound"), by_id);
    }
    let unique = column(
        dir.path(),
        "SELECT name FROM gold.dim_track GROUP BY name HAVING count(*) = 1 ORDER BY name LIMIT 1",
    );
    let titled = soundlake(
        dir.path(),
        &["recommend", &unique[0].to_lowercase(), "-k", "3"],
    );
    let shown = String::from_utf8_lossy(&titled.stdout);
    let heading = format!("Tracks that sound like {} by ", unique[0]);
    assert!(shown.starts_with(&heading), "{shown}");
    assert_eq!(
        shown.lines().filter(|l| l.starts_with("| ")).count(),
        4,
        "a header and 3 rows: {shown}"
    );

    // A title several tracks share lists them, each with the id to give.
    let shared = column(
        dir.path(),
        "SELECT name FROM gold.dim_track GROUP BY name HAVING count(*) > 1 ORDER BY name LIMIT 1",
    );
    let ambiguous = soundlake(dir.path(), &["recommend", &shared[0]]);
    let said = String::from_utf8_lossy(&ambiguous.stderr);
    assert!(!ambiguous.status.success(), "{said}");
    assert!(
        said.contains("names more than one track") && said.contains("Spotify id or URL"),
        "{said}"
    );
    let ids = column(
        dir.path(),
        &format!(
            "SELECT track_id FROM gold.dim_track WHERE name = '{}' LIMIT 10",
            shared[0].replace('\'', "''")
        ),
    );
    assert!(ids.iter().all(|id| said.contains(id.as_str())), "{said}");

    // Unknown, hostile and huge names are answered, not run.
    let huge = "x".repeat(100_000);
    for name in [
        "no such song at all",
        "'; DROP TABLE gold.dim_track; --",
        &huge,
    ] {
        let out = soundlake(dir.path(), &["recommend", name]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{said}");
        assert!(said.contains("no track of the catalog is named"), "{said}");
        assert!(
            said.len() < 1000,
            "the message quotes all {} characters",
            name.len()
        );
    }
    assert_eq!(
        column(dir.path(), "SELECT count(*) > 0 FROM gold.dim_track"),
        ["true"]
    );
    let bad_k = soundlake(dir.path(), &["recommend", id, "-k", "0"]);
    assert!(!bad_k.status.success());
    assert!(!String::from_utf8_lossy(&bad_k.stderr).contains(soundlake::sim::CLIENT_SECRET));
}
