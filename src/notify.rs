//! Notifications: what an operator wants to hear about (a failed run, a
//! blocked publish, schema drift, a paused crawl, a leadership change, a
//! finished backfill), sent to the `[[notify]]` targets that want it: a
//! webhook receiving a JSON body (Slack-compatible incoming webhooks take it
//! as it is) or a command receiving it on standard input. Sending never
//! blocks the work: each notice is delivered in the background, with a
//! timeout and retries, and a target that stays unreachable is logged.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result, with_causes};

/// What happened, as targets choose it in `events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A pipeline run ended failed.
    RunFailed,
    /// A gold model's data test failed: its publish was blocked.
    DataTestsFailed,
    /// A silver table's columns changed (added or widened).
    SchemaDrift,
    /// Rows were set aside in a quarantine table.
    Quarantined,
    /// The crawl stopped until a time Spotify named.
    CrawlPaused,
    /// This daemon took or lost leadership (the scheduling).
    Leadership,
    /// A backfill finished its range.
    BackfillFinished,
}

impl Event {
    pub const ALL: [Event; 7] = [
        Event::RunFailed,
        Event::DataTestsFailed,
        Event::SchemaDrift,
        Event::Quarantined,
        Event::CrawlPaused,
        Event::Leadership,
        Event::BackfillFinished,
    ];
}

/// One `[[notify]]` entry: where to send, and which events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// A webhook: each notice is POSTed to it as JSON. Its path and query
    /// (where Slack and others keep the secret) never appear in logs.
    #[serde(default)]
    pub url: crate::secret::Secret,
    /// A command (program and arguments) run once per notice, with the JSON
    /// on its standard input.
    #[serde(default)]
    pub command: Vec<String>,
    /// The events this target wants (default: all of them).
    #[serde(default = "all_events")]
    pub events: Vec<Event>,
    /// How long one attempt may take.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Attempts after the first, 1 s apart and doubling.
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn all_events() -> Vec<Event> {
    Event::ALL.to_vec()
}

fn default_timeout_secs() -> u64 {
    10
}

fn default_retries() -> u32 {
    3
}

impl NotifySettings {
    /// The target as logs may name it: a webhook's scheme and host only.
    pub fn describe(&self) -> String {
        if self.url.is_empty() {
            return format!(
                "command {}",
                self.command.first().map_or("", String::as_str)
            );
        }
        match url::Url::parse(self.url.expose()) {
            Ok(url) => format!(
                "{}://{}{}/…",
                url.scheme(),
                url.host_str().unwrap_or_default(),
                url.port().map(|p| format!(":{p}")).unwrap_or_default()
            ),
            Err(_) => "a webhook".into(),
        }
    }

    fn validate(&self, place: &str) -> Result<()> {
        let fix = "give url = \"https://…\" (a webhook) or command = [\"program\", \"arg\"]";
        match (self.url.is_empty(), self.command.is_empty()) {
            (true, true) => Err(Error::config(place, "the entry has no target", fix)),
            (false, false) => Err(Error::config(
                place,
                "the entry has both a url and a command",
                "split it into two [[notify]] entries",
            )),
            (false, true) => match url::Url::parse(self.url.expose()) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
                _ => Err(Error::config(
                    place,
                    "url is not an http:// or https:// URL",
                    fix,
                )),
            },
            (true, false) => {
                if self.command[0].trim().is_empty() {
                    return Err(Error::config(place, "the command's program is empty", fix));
                }
                Ok(())
            }
        }?;
        if self.events.is_empty() {
            return Err(Error::config(
                place,
                "events is empty: the entry would never be used",
                format!(
                    "name some of {} (or leave events out for all)",
                    serde_json::to_string(&Event::ALL).expect("events serialize")
                ),
            ));
        }
        if !(1..=300).contains(&self.timeout_secs) || self.retries > 10 {
            return Err(Error::config(
                place,
                "timeout_secs must be 1 to 300 and retries 0 to 10",
                "use the defaults (10 s, 3 retries) unless a target needs otherwise",
            ));
        }
        Ok(())
    }
}

/// Check every `[[notify]]` entry, naming the one at fault.
pub fn validate(targets: &[NotifySettings]) -> Result<()> {
    for (i, target) in targets.iter().enumerate() {
        target.validate(&format!("[[notify]] entry {}", i + 1))?;
    }
    Ok(())
}

/// What is sent: a sentence for people (`text`, which Slack shows) and the
/// facts for programs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Notice {
    pub text: String,
    pub event: Event,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    pub at: DateTime<Utc>,
}

impl Notice {
    pub fn new(event: Event, text: impl Into<String>, at: DateTime<Utc>) -> Notice {
        Notice {
            text: text.into(),
            event,
            pipeline: None,
            run_id: None,
            task: None,
            at,
        }
    }

    pub fn run(mut self, pipeline: &str, run_id: &str) -> Notice {
        self.pipeline = Some(pipeline.into());
        self.run_id = Some(run_id.into());
        self
    }

    pub fn task(mut self, task: &str) -> Notice {
        self.task = Some(task.into());
        self
    }
}

/// Sends notices to the configured targets in the background.
#[derive(Clone, Default)]
pub struct Notifier {
    targets: Arc<Vec<NotifySettings>>,
    /// Made on the first webhook notice: building an HTTPS client loads the
    /// system's root certificates, which every command would pay for.
    http: Arc<std::sync::OnceLock<reqwest::Client>>,
}

/// The deliveries in flight in this process, whichever notifier started
/// them: like a log's buffer, they belong to the process, which drains
/// them with [`flush`] before it exits.
static IN_FLIGHT: Mutex<Option<tokio::task::JoinSet<()>>> = Mutex::new(None);

/// Wait up to `within` for the deliveries in flight: a command that is
/// about to exit calls this so its last notices are not lost.
pub async fn flush(within: Duration) {
    let pending = IN_FLIGHT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(mut pending) = pending {
        let _ = tokio::time::timeout(within, async {
            while pending.join_next().await.is_some() {}
        })
        .await;
    }
}

impl Notifier {
    pub fn new(targets: &[NotifySettings]) -> Result<Notifier> {
        validate(targets)?;
        Ok(Notifier {
            targets: Arc::new(targets.to_vec()),
            ..Notifier::default()
        })
    }

    /// Deliver `notice` to every target that wants its event, without
    /// waiting. Needs a Tokio runtime.
    pub fn send(&self, notice: Notice) {
        let mut in_flight = IN_FLIGHT.lock().unwrap_or_else(PoisonError::into_inner);
        let in_flight = in_flight.get_or_insert_with(tokio::task::JoinSet::new);
        // Finished deliveries are let go of as new ones start.
        while in_flight.try_join_next().is_some() {}
        for target in self
            .targets
            .iter()
            .filter(|t| t.events.contains(&notice.event))
        {
            // A webhook's client; a command needs none.
            let http = (!target.url.is_empty())
                .then(|| self.http.get_or_init(reqwest::Client::new).clone());
            let (target, notice) = (target.clone(), notice.clone());
            in_flight.spawn(deliver(target, http, notice));
        }
    }
}

/// The first wait between attempts; it doubles.
const FIRST_RETRY: Duration = Duration::from_secs(1);

async fn deliver(target: NotifySettings, http: Option<reqwest::Client>, notice: Notice) {
    let body = serde_json::to_vec(&notice).expect("notices serialize");
    let timeout = Duration::from_secs(target.timeout_secs);
    let mut wait = FIRST_RETRY;
    for attempt in 0..=target.retries {
        let sent = match &http {
            Some(http) => post(http, target.url.expose(), &body, timeout).await,
            None => run_command(&target.command, &body, timeout).await,
        };
        match sent {
            Ok(()) => return,
            Err(problem) if attempt == target.retries => {
                tracing::warn!(
                    target_name = %target.describe(),
                    event = ?notice.event,
                    problem,
                    "a notification could not be delivered"
                );
            }
            Err(_) => {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    body: &[u8],
    timeout: Duration,
) -> std::result::Result<(), String> {
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .timeout(timeout)
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| with_causes(&e.without_url()))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", response.status()))
    }
}

async fn run_command(
    command: &[String],
    body: &[u8],
    timeout: Duration,
) -> std::result::Result<(), String> {
    let mut child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", command[0]))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let finished = tokio::time::timeout(timeout, async {
        // A command that does not read its input still gets to finish.
        let _ = stdin.write_all(body).await;
        drop(stdin);
        child.wait().await
    })
    .await;
    match finished {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("{} exited with {status}", command[0])),
        Ok(Err(e)) => Err(format!("{}: {e}", command[0])),
        Err(_) => Err(format!("{} ran past {} s", command[0], timeout.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests that flush: deliveries in flight are the process's, so
    /// one test's flush must not take another's.
    static FLUSHING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    fn webhook(url: &str) -> NotifySettings {
        NotifySettings {
            url: crate::secret::Secret::new(url),
            command: Vec::new(),
            events: all_events(),
            timeout_secs: 1,
            retries: 2,
        }
    }

    fn problem(targets: &[NotifySettings]) -> String {
        validate(targets).unwrap_err().to_string()
    }

    #[test]
    fn an_entry_needs_exactly_one_target_events_and_sane_limits() {
        let command = NotifySettings {
            url: Default::default(),
            command: vec!["true".into()],
            ..webhook("")
        };
        validate(&[
            webhook("https://hooks.example.com/services/T/B/x"),
            command.clone(),
        ])
        .unwrap();
        let none = webhook("");
        assert!(problem(&[none]).contains("no target"));
        let both = NotifySettings {
            command: vec!["true".into()],
            ..webhook("https://hooks.example.com/x")
        };
        assert!(problem(&[both]).contains("both a url and a command"));
        let ftp = webhook("ftp://hooks.example.com/x");
        let text = problem(&[command.clone(), ftp]);
        assert!(
            text.contains("[[notify]] entry 2") && text.contains("http://"),
            "{text}"
        );
        let deaf = NotifySettings {
            events: Vec::new(),
            ..command.clone()
        };
        assert!(problem(&[deaf]).contains("run_failed"));
        let slow = NotifySettings {
            timeout_secs: 0,
            ..command
        };
        assert!(problem(&[slow]).contains("timeout_secs"));
    }

    #[test]
    fn the_url_is_described_without_its_secret_path_or_credentials() {
        let described =
            webhook("https://user:pw@hooks.slack.com:8443/services/T0/B0/XYZsecret?token=t")
                .describe();
        assert_eq!(described, "https://hooks.slack.com:8443/…");
        assert!(!format!("{:?}", webhook("https://h/secret")).contains("secret"));
    }

    /// A loopback receiver that answers `statuses` in turn (then 200) and
    /// counts the requests.
    async fn receiver(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook/secret", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        tokio::spawn(async move {
            for n in 0.. {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = vec![0; 65536];
                let read = socket.read(&mut request).await.unwrap();
                let text = String::from_utf8_lossy(&request[..read]).into_owned();
                kept.lock().unwrap().push(text);
                let status = statuses.get(n).copied().unwrap_or(200);
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                socket.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        (url, bodies)
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_webhook_is_retried_and_a_notice_for_another_event_is_not_sent() {
        let _alone = FLUSHING.lock().await;
        let (url, requests) = receiver(vec![500, 503]).await;
        let notifier = Notifier::new(&[NotifySettings {
            events: vec![Event::RunFailed],
            ..webhook(&url)
        }])
        .unwrap();
        let at = DateTime::<Utc>::UNIX_EPOCH;
        notifier.send(Notice::new(Event::Leadership, "not wanted", at));
        notifier.send(Notice::new(Event::RunFailed, "pipeline p: t failed", at).run("p", "r1"));
        flush(Duration::from_secs(60)).await;
        let requests = requests.lock().unwrap();
        assert_eq!(requests.len(), 3, "two failures, then delivered");
        let body = requests[2].split("\r\n\r\n").nth(1).unwrap();
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["text"], "pipeline p: t failed");
        assert_eq!(body["event"], "run_failed");
        assert_eq!(body["pipeline"], "p");
    }

    #[tokio::test]
    async fn a_command_gets_the_notice_on_its_standard_input() {
        let _alone = FLUSHING.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("got.json");
        let notifier = Notifier::new(&[NotifySettings {
            command: vec!["sh".into(), "-c".into(), format!("cat > {}", out.display())],
            ..webhook("")
        }])
        .unwrap();
        notifier.send(Notice::new(
            Event::BackfillFinished,
            "backfill of p succeeded",
            DateTime::<Utc>::UNIX_EPOCH,
        ));
        flush(Duration::from_secs(30)).await;
        let got: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(got["event"], "backfill_finished");
        assert_eq!(got["text"], "backfill of p succeeded");
    }
}
