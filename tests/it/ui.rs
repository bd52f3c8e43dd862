//! The web UI in a real browser: `soundlake ui` over the demo's lake, with
//! a failed run beside the demo's, driven by Debian's chromium through
//! Playwright (tests/ui/drive.mjs). What the pages show must equal what
//! `soundlake query` and `soundlake recommend` answer.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// `soundlake ui` in `dir` on a free loopback port (or `listen`), and the
/// URL it printed.
fn serve(dir: &Path, listen: Option<&str>, token: Option<&str>) -> (Child, String) {
    let listen = listen
        .map(str::to_string)
        .unwrap_or_else(|| format!("127.0.0.1:{}", crate::support::free_port()));
    let mut cmd = crate::support::soundlake(crate::support::shipped());
    if let Some(token) = token {
        cmd.env("SOUNDLAKE__DAEMON__UI_TOKEN", token);
    }
    let mut child = cmd
        .current_dir(dir)
        .args(["ui", "--listen", &listen])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("soundlake ui: ")
        .unwrap_or_else(|| panic!("soundlake ui printed {line:?}"))
        .trim_end_matches("/ui/")
        .to_string();
    (child, url)
}

#[test]
fn every_page_shows_what_the_commands_answer_in_a_real_browser() {
    let _machine = crate::support::machine();
    let dir = tempfile::tempdir().unwrap();
    crate::support::demo_lake(dir.path());
    // A run that fails: a data test the genres cannot pass.
    let broken = crate::support::copy_of_shipped(&["bronze", "silver", "gold", "pipelines"]);
    let contract = broken.path().join("gold/dim_genre.toml");
    let text = std::fs::read_to_string(&contract).unwrap();
    std::fs::write(
        &contract,
        text.replacen("key = ", "max_rows = 1\nkey = ", 1),
    )
    .unwrap();
    let failed = crate::support::soundlake(broken.path())
        .current_dir(dir.path())
        .args(["run", "spotify_catalog", "--select", "gold.dim_genre"])
        .output()
        .unwrap();
    assert!(!failed.status.success());

    let track = &crate::support::query(
        dir.path(),
        "SELECT t.track_id FROM gold.mart_track_engagement e \
         JOIN gold.dim_track t ON t.track_key = e.track_key ORDER BY e.plays DESC, t.track_id LIMIT 1",
    )[0]["track_id"];
    let track = track.as_str().unwrap().to_string();
    let shared = crate::support::query(
        dir.path(),
        "SELECT name FROM gold.dim_track GROUP BY name HAVING count(*) > 1 ORDER BY name LIMIT 1",
    );
    let shared = shared[0]["name"].as_str().unwrap().to_string();
    let (mut ui, url) = serve(dir.path(), None, None);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/drive.mjs"))
        .args([
            url.as_str(),
            shots.to_str().unwrap(),
            track.as_str(),
            shared.as_str(),
        ])
        .output()
        .unwrap();
    let _ = ui.kill();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(&stdout).unwrap();

    // From the failed run to its failed task's error, with the fix.
    assert!(
        seen["failed_run"]
            .as_str()
            .unwrap()
            .starts_with("spotify_catalog-"),
        "{seen}"
    );
    assert_eq!(seen["failed_task"], "gold.dim_genre");
    assert!(
        seen["error_url"]
            .as_str()
            .unwrap()
            .ends_with("#error-gold.dim_genre")
    );
    assert_eq!(seen["error_visible"], true);
    let error = seen["error"].as_str().unwrap();
    assert!(
        error.contains("at most 1 rows") && error.contains("not published"),
        "{error}"
    );
    assert!(
        error.contains("\n  fix: "),
        "the error shows its fix: {error}"
    );

    // gold.dim_track: its row count and columns as the engine has them,
    // and a click to a table it reads.
    let rows =
        &crate::support::query(dir.path(), "SELECT count(*) AS n FROM gold.dim_track")[0]["n"];
    assert_eq!(&seen["dim_track_rows"], rows);
    let columns: Vec<Value> = crate::support::query(dir.path(), "DESCRIBE gold.dim_track")
        .into_iter()
        .map(|c| c["column_name"].clone())
        .collect();
    assert_eq!(seen["dim_track_columns"].as_array().unwrap(), &columns);
    // Its builds, with what the data tests found.
    let builds = seen["dim_track_builds"].as_array().unwrap();
    assert!(
        builds
            .iter()
            .any(|b| b.as_str().unwrap().contains("tests passed")),
        "{builds:?}"
    );
    let upstream = seen["upstream_clicked"].as_str().unwrap();
    assert_eq!(seen["upstream_heading"], upstream);
    let (layer, name) = upstream.split_once('.').unwrap();
    assert!(
        seen["upstream_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/ui/tables/{layer}/{name}"))
    );

    // Every bar chart's bars are the rows of the SQL it shows.
    let charts = seen["charts"].as_array().unwrap();
    assert!(charts.len() >= 8, "{charts:?}");
    for chart in charts {
        let sql = chart["sql"].as_str().unwrap();
        let bars = chart["bars"].as_array().unwrap();
        if bars.is_empty() {
            assert!(
                chart["cells"].as_u64().unwrap() > 0,
                "{} drew nothing",
                chart["title"]
            );
            continue;
        }
        let pair = |label: &Value, value: &Value| (label.clone(), value.as_f64().unwrap());
        let answered: Vec<(Value, f64)> = crate::support::query(dir.path(), sql)
            .iter()
            .map(|row| pair(&row["label"], &row["value"]))
            .collect();
        let drawn: Vec<(Value, f64)> = bars.iter().map(|b| pair(&b[0], &b[1])).collect();
        assert_eq!(drawn, answered, "{}", chart["title"]);
    }

    // The track's neighbours, by sound and by listening, as recommend has them.
    assert!(seen["similar_track"].as_str().unwrap().contains(&track));
    for (by, shown) in [
        ("sound", &seen["by_sound"]),
        ("listening", &seen["by_listening"]),
    ] {
        let ids: Vec<Value> = crate::support::recommend(dir.path(), &track, by)
            .into_iter()
            .map(|n| n["track_id"].clone())
            .collect();
        assert_eq!(shown.as_array().unwrap(), &ids, "by {by}");
        assert!(!ids.is_empty(), "by {by}: nothing to compare");
    }

    // A shared title lists its tracks; the first leads to that track.
    let candidates = seen["candidates"].as_array().unwrap();
    assert!(candidates.len() > 1, "{candidates:?}");
    assert!(
        candidates
            .iter()
            .all(|c| c.as_str().unwrap().starts_with(&format!("{shared} by ")))
    );
    assert_eq!(seen["candidate_track"], candidates[0]);

    for html in seen["html"].as_array().unwrap() {
        assert!(
            !html
                .as_str()
                .unwrap()
                .contains(soundlake::sim::CLIENT_SECRET)
        );
    }
    for page in ["runs", "run", "tables", "table", "charts", "similar"] {
        assert!(
            shots.join(format!("{page}.png")).is_file(),
            "no screenshot of {page}"
        );
    }
}

#[test]
fn beyond_loopback_the_ui_needs_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let open = format!("0.0.0.0:{}", crate::support::free_port());
    let refused = crate::support::soundlake(crate::support::shipped())
        .current_dir(dir.path())
        .args(["ui", "--listen", &open])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && said.contains("[daemon] ui_token"),
        "{said}"
    );

    let token = "a-long-random-ui-token";
    let (mut ui, url) = serve(dir.path(), Some(&open), Some(token));
    let port = url.rsplit(':').next().unwrap();
    let get = |path: &str, cookie: Option<&str>| -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-i", &format!("http://127.0.0.1:{port}{path}")]);
        if let Some(cookie) = cookie {
            cmd.args(["-H", &format!("Cookie: {cookie}")]);
        }
        let text = String::from_utf8_lossy(&cmd.output().unwrap().stdout).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .unwrap_or("0")
            .parse()
            .unwrap();
        (status, text)
    };
    assert_eq!(get("/ui/tables", None).0, 401);
    assert_eq!(get("/ui/tables?token=wrong", None).0, 401);
    let (status, answer) = get(&format!("/ui/tables?token={token}"), None);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.to_lowercase().contains("set-cookie: soundlake_ui="));
    assert_eq!(
        get("/ui/charts", Some(&format!("soundlake_ui={token}"))).0,
        200
    );
    let _ = ui.kill();
}
