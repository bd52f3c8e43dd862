//! `soundlake demo` as a newcomer runs it: in an empty folder, on the
//! embedded defaults, offline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use soundlake::sim::Catalog;

#[test]
fn the_demo_builds_every_layer_and_its_counts_match_the_simulated_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["Elvis Presley", "Chuck Berry", "Little Richard"];
    std::fs::write(dir.path().join("names.txt"), names.join("\n")).unwrap();
    let out = crate::support::soundlake(crate::support::shipped())
        .env("SOUNDLAKE__CRAWL__ARTISTS_FILE", "names.txt")
        .current_dir(dir.path())
        .arg("demo")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for stage in [
        "[1/5] crawl",
        "[2/5] bronze",
        "[3/5] silver",
        "[4/5] gold: done",
        "[5/5] 30000 listening events of 14 days: done",
    ] {
        assert!(
            stderr.contains(stage),
            "progress lacks {stage:?}:\n{stderr}"
        );
    }
    let counts: BTreeMap<String, u64> = stdout
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let (table, rows, unit) = (words.next()?, words.next()?, words.next()?);
            if unit != "rows" {
                return None;
            }
            Some((table.to_string(), rows.parse().ok()?))
        })
        .collect();

    // What the simulator serves for these names: their albums (own and
    // appearances), the tracks on them, and the features of those.
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let catalog = Catalog::generate(soundlake::sim::SimOptions::default().seed, &names);
    let listed: Vec<usize> = (0..catalog.artists.len())
        .filter(|&i| catalog.artists[i].listed)
        .collect();
    let albums: BTreeSet<usize> = listed
        .iter()
        .flat_map(|&i| catalog.discography[i].iter().map(|(a, _)| *a))
        .collect();
    let tracks: BTreeSet<usize> = albums
        .iter()
        .flat_map(|&a| catalog.albums[a].tracks.clone())
        .collect();
    let features = tracks
        .iter()
        .filter(|&&t| catalog.tracks[t].features.is_some())
        .count();
    let expected = [
        ("silver.artists", listed.len()),
        ("gold.dim_album", albums.len()),
        ("gold.dim_track", tracks.len()),
        ("gold.fact_audio_features", features),
        ("gold.fact_track_popularity", tracks.len()),
        ("gold.fact_artist_popularity", listed.len()),
    ];
    assert_eq!(listed.len(), names.len());
    for (table, n) in expected {
        assert_eq!(
            counts.get(table).copied(),
            Some(n as u64),
            "{table} in:\n{stdout}"
        );
    }
    assert!(counts["gold.dim_artist"] >= listed.len() as u64);
    // The listening pipeline ran over the same catalog: every event once
    // (the generator also delivers some twice and some late).
    assert_eq!(counts.get("silver.events"), Some(&30_000), "{stdout}");
    for mart in [
        "gold.mart_track_charts",
        "gold.mart_sessions",
        "gold.mart_user_genre_affinity",
    ] {
        assert!(
            counts.get(mart).is_some_and(|&n| n > 0),
            "{mart} in:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("The most played tracks of the fortnight"),
        "{stdout}"
    );
    assert!(
        stdout.contains("The artists with the most tracks"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| name") && names.iter().any(|n| stdout.contains(&format!("| {n} "))),
        "{stdout}"
    );
    assert!(Path::new(&dir.path().join("lake/gold/dim_track")).is_dir());
    assert!(
        !stdout.contains(soundlake::sim::CLIENT_SECRET)
            && !stderr.contains(soundlake::sim::CLIENT_SECRET)
    );
}
