//! Kill -9 and rerun: `soundlake crawl` as a real process, killed with
//! SIGKILL at several points of a crawl and run again, must leave exactly
//! the documents of an uninterrupted crawl, each once, in the embedded
//! store and on two MongoDB-compatible servers (SecantusDB, FerretDB).

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use soundlake::sim::SimOptions;

use crate::crawl::{Setup, all_at_once, snapshot};
use crate::support::names;

/// `soundlake crawl` of the names in `names_file` against the simulator at
/// `base`, into `landing_url`, with no rate budget of its own to speak of.
pub fn crawl_command(base: &str, landing_url: &str, names_file: &Path, names: usize) -> Command {
    let mut cmd = crate::support::soundlake(crate::support::shipped());
    cmd.arg("crawl")
        .env("SOUNDLAKE__LANDING__URL", landing_url)
        .env("SOUNDLAKE__SPOTIFY__API_URL", format!("{base}/v1"))
        .env("SOUNDLAKE__SPOTIFY__TOKEN_URL", format!("{base}/api/token"))
        .env("SPOTIFY_CLIENT_ID", soundlake::sim::CLIENT_ID)
        .env("SPOTIFY_CLIENT_SECRET", soundlake::sim::CLIENT_SECRET)
        // The simulator's limit is off; the child's own governor must not
        // make it wait in real time either.
        .env("SOUNDLAKE__SPOTIFY__REQUESTS_PER_WINDOW", "1000000")
        .env("SOUNDLAKE__CRAWL__ARTISTS_FILE", names_file)
        .env("SOUNDLAKE__CRAWL__NAMES_PER_RUN", names.to_string());
    cmd
}

/// Crawl `count` names, killed six times and rerun.
async fn kill_and_rerun(landing_url: &str, count: usize, after_kills: impl AsyncFnOnce()) {
    let names = names(count);
    let s = Setup::start(SimOptions {
        names: names.clone(),
        rate_limit: 0,
        ..SimOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let names_file = dir.path().join("artists.txt");
    std::fs::write(&names_file, names.join("\n")).unwrap();

    // The reference: one uninterrupted crawl of the same simulator.
    let reference = s
        .crawler(s.h.settings(), all_at_once(count))
        .run(&names, "reference")
        .await
        .unwrap();
    let expected = snapshot(&s.store, &s.h.sim.base_url()).await;
    let total = reference.requests_total + 1;

    // Kill points spread over the crawl (2%, 12%, 32%, 52%, 72% and 82%
    // of its requests): in the searches, the discographies, the album and
    // track batches and the audio features.
    let mut answered = total;
    for percent in [2, 10, 20, 20, 20, 10] {
        let kill_at = answered + total * percent / 100;
        let mut child = tokio::process::Command::from(crawl_command(
            &s.h.sim.base_url(),
            landing_url,
            &names_file,
            count,
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        tokio::select! {
            _ = s.h.sim.answered(kill_at) => child.start_kill().unwrap(),
            status = child.wait() => panic!("the crawl ended before its kill point: {status:?}"),
        }
        let status = child.wait().await.unwrap();
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status}");
        answered = s.h.sim.request_log().len() as u64;
    }
    after_kills().await;

    let out = crawl_command(&s.h.sim.base_url(), landing_url, &names_file, count)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the rerun failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("completed"), "{text}");
    let again = crawl_command(&s.h.sim.base_url(), landing_url, &names_file, count)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing due"));

    let clock: soundlake::clock::SharedClock = s.h.clock.clone();
    let store = soundlake::landing::open(landing_url, clock).await.unwrap();
    let landed = snapshot(&store, &s.h.sim.base_url()).await;
    assert_eq!(landed.len(), expected.len(), "documents lost or added");
    assert!(
        landed == expected,
        "the documents differ from an uninterrupted crawl"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_crawls_converge_in_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("landing.db");
    let url = format!("embedded://{}", file.display());
    kill_and_rerun(&url, 30, async || {
        let conn = rusqlite::Connection::open(&file).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "the file survived six SIGKILLs intact");
    })
    .await;
}

/// The tests that need the real servers or Python readers `tests/run.sh`
/// installs.
#[cfg(feature = "servers")]
mod with_servers {
    use super::*;
    use crate::servers::MongoServer;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_crawls_converge_in_mongodb() {
        let server = MongoServer::start();
        kill_and_rerun(&server.url("crash"), 30, async || {}).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_crawls_converge_in_ferretdb() {
        // Fewer names: FerretDB on SQLite is slow at the crawl's writes
        // (eight names take about a minute here; thirty did not finish in
        // nine).
        let server = MongoServer::ferretdb();
        kill_and_rerun(&server.url("crash"), 8, async || {}).await;
    }
}
