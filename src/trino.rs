//! Trino over its HTTP client protocol: a statement is POSTed to
//! `/v1/statement` and its answer is read page by page from `nextUri`
//! until the query ends. Passwords go out by HTTP basic authentication,
//! which Trino accepts over HTTPS only; they never appear in a message.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result, SourceError, with_causes};
use crate::secret::{Secret, redact_url};

/// The Trino cluster soundlake registers gold tables with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrinoSettings {
    /// The coordinator, like `http://trino:8080`; `soundlake register
    /// --url` overrides it.
    pub url: String,
    /// The user queries run as (`X-Trino-User`).
    pub user: String,
    /// With a password, requests carry HTTP basic authentication; Trino
    /// takes it over `https://` only. From the environment:
    /// `SOUNDLAKE__TRINO__PASSWORD`.
    pub password: Secret,
    /// The catalog of Trino's Delta Lake connector over the lake.
    pub catalog: String,
    /// The schema gold tables are registered in.
    pub schema: String,
    /// How long one statement may take, queueing included.
    pub timeout_secs: u64,
}

impl Default for TrinoSettings {
    fn default() -> Self {
        TrinoSettings {
            url: String::new(),
            user: "soundlake".into(),
            password: Secret::default(),
            catalog: "delta".into(),
            schema: "gold".into(),
            timeout_secs: 300,
        }
    }
}

impl TrinoSettings {
    pub(crate) fn validate(&self) -> Result<()> {
        for (key, value, fix) in [
            (
                "user",
                &self.user,
                "give the user queries run as (default \"soundlake\")",
            ),
            (
                "catalog",
                &self.catalog,
                "name the Delta Lake catalog of your Trino (default \"delta\")",
            ),
            (
                "schema",
                &self.schema,
                "name the schema for gold tables (default \"gold\")",
            ),
        ] {
            if value.trim().is_empty() {
                return Err(Error::config(
                    format!("[trino] {key}"),
                    "the value is empty",
                    fix,
                ));
            }
        }
        if !(1..=86_400).contains(&self.timeout_secs) {
            return Err(Error::config(
                "[trino] timeout_secs",
                format!("{} s is out of range", self.timeout_secs),
                "give 1 to 86400 seconds",
            ));
        }
        Ok(())
    }
}

/// What went wrong talking to Trino.
#[derive(Debug, thiserror::Error)]
pub enum TrinoError {
    #[error(
        "Trino at {url} cannot be reached ({message}): start it, or correct [trino] url or --url"
    )]
    Unreachable { url: String, message: String },
    #[error(
        "Trino at {url} refused the credentials (HTTP {status}): check [trino] user and password"
    )]
    Refused { url: String, status: u16 },
    #[error("Trino at {url} answered HTTP {status}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    #[error("Trino failed `{statement}`: {name}: {message}")]
    Query {
        statement: String,
        name: String,
        /// Trino's error type: a `USER_ERROR` will fail again as it is.
        kind: String,
        message: String,
    },
    #[error(
        "Trino did not finish `{statement}` within {secs} s ([trino] timeout_secs); it was cancelled"
    )]
    Timeout { statement: String, secs: u64 },
}

impl TrinoError {
    /// Trino's name for a failed query's error, like `TABLE_NOT_FOUND`.
    pub fn error_name(&self) -> Option<&str> {
        match self {
            TrinoError::Query { name, .. } => Some(name),
            _ => None,
        }
    }
}

impl SourceError for TrinoError {
    fn is_permanent(&self) -> bool {
        match self {
            TrinoError::Refused { .. } => true,
            TrinoError::Query { kind, .. } => kind == "USER_ERROR",
            _ => false,
        }
    }

    fn come_back_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        None
    }
}

impl From<TrinoError> for Error {
    fn from(e: TrinoError) -> Self {
        Error::Source(Box::new(e))
    }
}

/// A column of an answer, with Trino's name for its type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// A finished query's columns and rows, values as Trino's JSON gives them.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
}

/// One page of a query's answer (`QueryResults` in Trino's protocol).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    next_uri: Option<String>,
    columns: Option<Vec<Column>>,
    data: Option<Vec<Vec<Value>>>,
    error: Option<QueryError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryError {
    message: String,
    error_name: String,
    error_type: String,
}

/// How long to wait before asking again when the coordinator is busy.
const BUSY_WAIT: Duration = Duration::from_millis(100);

/// A client of one Trino coordinator.
#[derive(Clone)]
pub struct Trino {
    http: reqwest::Client,
    url: String,
    settings: TrinoSettings,
}

impl Trino {
    pub fn new(settings: &TrinoSettings) -> Result<Trino> {
        let url = settings.url.trim().trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&url).ok();
        if !parsed
            .as_ref()
            .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        {
            return Err(Error::config(
                "[trino] url",
                format!(
                    "{:?} is not the URL of a Trino coordinator",
                    redact_url(&url)
                ),
                "give http://host:port (or https://), in [trino] url or with --url",
            ));
        }
        if !settings.password.is_empty() && url.starts_with("http://") {
            return Err(Error::config(
                "[trino] password",
                "Trino accepts a password over https:// only",
                "give an https:// URL, or leave the password out for a Trino without authentication",
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Server {
                what: "the Trino client".into(),
                message: e.to_string(),
            })?;
        Ok(Trino {
            http,
            url,
            settings: settings.clone(),
        })
    }

    /// The coordinator's URL, without any password, for messages.
    pub fn describe(&self) -> String {
        redact_url(&self.url)
    }

    /// Run one statement to its end and gather its answer. Past
    /// `[trino] timeout_secs` (queueing and busy answers included) the
    /// query is cancelled.
    pub async fn query(&self, statement: &str) -> Result<Answer> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(self.settings.timeout_secs);
        let timeout = || -> Error {
            TrinoError::Timeout {
                statement: shorten(statement),
                secs: self.settings.timeout_secs,
            }
            .into()
        };
        let mut answer = Answer::default();
        let first = self
            .request(reqwest::Method::POST, &format!("{}/v1/statement", self.url))
            .body(statement.to_string());
        let mut page = self.send(first, deadline).await?.ok_or_else(timeout)?;
        loop {
            if let Some(error) = page.error {
                return Err(TrinoError::Query {
                    statement: shorten(statement),
                    name: error.error_name,
                    kind: error.error_type,
                    message: error.message,
                }
                .into());
            }
            if let Some(columns) = page.columns.take() {
                answer.columns = columns;
            }
            answer.rows.extend(page.data.take().unwrap_or_default());
            let Some(next) = page.next_uri else {
                return Ok(answer);
            };
            let sent = if tokio::time::Instant::now() < deadline {
                self.send(self.request(reqwest::Method::GET, &next), deadline)
                    .await?
            } else {
                None
            };
            match sent {
                Some(next_page) => page = next_page,
                None => {
                    // Best effort: the query ends on the coordinator either way.
                    let _ = self.request(reqwest::Method::DELETE, &next).send().await;
                    return Err(timeout());
                }
            }
        }
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method, url)
            .header("X-Trino-User", &self.settings.user)
            .header("X-Trino-Source", "soundlake")
            // Timestamps without a zone mean UTC, as they do in soundlake.
            .header("X-Trino-Time-Zone", "UTC");
        if self.settings.password.is_empty() {
            request
        } else {
            request.basic_auth(&self.settings.user, Some(self.settings.password.expose()))
        }
    }

    /// Send a request, asking again while the coordinator says it is busy
    /// (HTTP 429, 502, 503, 504), and read the page it answers; `None`
    /// when it was still busy at `deadline`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Page>> {
        let url = self.describe();
        loop {
            let attempt = request
                .try_clone()
                .expect("Trino requests have text bodies");
            let response = attempt.send().await.map_err(|e| TrinoError::Unreachable {
                url: url.clone(),
                message: with_causes(&e.without_url()),
            })?;
            let status = response.status().as_u16();
            match status {
                200 => {
                    let page = response
                        .json::<Page>()
                        .await
                        .map_err(|e| TrinoError::Http {
                            url: url.clone(),
                            status,
                            body: format!("not a Trino answer: {}", with_causes(&e.without_url())),
                        })?;
                    return Ok(Some(page));
                }
                429 | 502 | 503 | 504 => {
                    if tokio::time::Instant::now() + BUSY_WAIT >= deadline {
                        return Ok(None);
                    }
                    tokio::time::sleep(BUSY_WAIT).await;
                }
                401 | 403 => return Err(TrinoError::Refused { url, status }.into()),
                _ => {
                    let body = response.text().await.unwrap_or_default();
                    return Err(TrinoError::Http {
                        url,
                        status,
                        body: shorten(&body),
                    }
                    .into());
                }
            }
        }
    }
}

/// A statement or body cut to a length that fits in one message line.
fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    const PASSWORD: &str = "hunter2-never-printed";

    /// A loopback server answering each request with the next of the
    /// answers (status and body) `answers` makes for its URL, the last one
    /// again once they run out; its URL.
    async fn canned(answers: impl FnOnce(&str) -> Vec<(u16, String)>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let answers = answers(&url);
        tokio::spawn(async move {
            let mut served = 0;
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                let mut socket = BufReader::new(socket);
                loop {
                    // The request: headers, then as much body as announced.
                    let mut length = 0;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if socket.read_line(&mut line).await.unwrap_or(0) == 0 {
                            break;
                        }
                        if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = n.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    if line != "\r\n" {
                        break;
                    }
                    let mut body = vec![0; length];
                    socket.read_exact(&mut body).await.unwrap();
                    let (status, text) = &answers[served.min(answers.len() - 1)];
                    served += 1;
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    socket
                        .get_mut()
                        .write_all(response.as_bytes())
                        .await
                        .unwrap();
                }
            }
        });
        url
    }

    fn client(url: &str) -> Trino {
        Trino::new(&TrinoSettings {
            url: url.into(),
            timeout_secs: 1,
            ..TrinoSettings::default()
        })
        .unwrap()
    }

    fn config_problem(settings: TrinoSettings) -> String {
        match Trino::new(&settings) {
            Err(e @ Error::Config { .. }) => e.to_string(),
            Err(e) => panic!("not a configuration error: {e}"),
            Ok(_) => panic!("accepted {settings:?}"),
        }
    }

    #[test]
    fn a_url_that_is_not_a_coordinator_is_refused_with_the_fix() {
        for url in ["", "trino:8080", "ftp://trino/", "http://"] {
            let problem = config_problem(TrinoSettings {
                url: url.into(),
                ..TrinoSettings::default()
            });
            assert!(
                problem.contains("[trino] url") && problem.contains("http://host:port"),
                "{problem}"
            );
        }
    }

    #[test]
    fn a_password_over_plain_http_is_refused_and_never_shown() {
        let settings = TrinoSettings {
            url: "http://trino:8080".into(),
            password: Secret::new(PASSWORD),
            ..TrinoSettings::default()
        };
        let problem = config_problem(settings.clone());
        assert!(problem.contains("https://"), "{problem}");
        assert!(!problem.contains(PASSWORD));
        assert!(!format!("{settings:?}").contains(PASSWORD));
    }

    #[test]
    fn empty_names_and_timeouts_out_of_range_are_configuration_errors() {
        let broken = [
            TrinoSettings {
                catalog: " ".into(),
                ..TrinoSettings::default()
            },
            TrinoSettings {
                schema: String::new(),
                ..TrinoSettings::default()
            },
            TrinoSettings {
                timeout_secs: 0,
                ..TrinoSettings::default()
            },
        ];
        for settings in broken {
            let problem = settings.validate().unwrap_err().to_string();
            assert!(problem.contains("[trino] "), "{problem}");
        }
        TrinoSettings::default().validate().unwrap();
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_with_the_url_but_not_the_password() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let trino = Trino::new(&TrinoSettings {
            url: format!("https://admin:{PASSWORD}@127.0.0.1:{port}"),
            password: Secret::new(PASSWORD),
            ..TrinoSettings::default()
        })
        .unwrap();
        let e = trino.query("SELECT 1").await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("cannot be reached") && text.contains(&format!(":{port}")),
            "{text}"
        );
        assert!(!text.contains(PASSWORD), "{text}");
        assert!(!e.is_permanent());
    }

    #[tokio::test]
    async fn pages_are_followed_and_busy_answers_waited_out() {
        let url = canned(|url| {
            let next = |n: u32| format!("\"nextUri\": \"{url}/v1/statement/q/{n}\"");
            vec![
            (200, format!("{{\"id\": \"q\", {}}}", next(1))),
            (503, String::new()),
            (
                200,
                format!(
                    "{{\"id\": \"q\", \"columns\": [{{\"name\": \"n\", \"type\": \"bigint\"}}], \
                     \"data\": [[1], [2]], {}}}",
                    next(2)
                ),
            ),
            (200, "{\"id\": \"q\", \"data\": [[3]]}".into()),
        ]})
        .await;
        let answer = client(&url).query("SELECT n FROM t").await.unwrap();
        assert_eq!(
            answer.columns,
            vec![Column {
                name: "n".into(),
                kind: "bigint".into()
            }]
        );
        assert_eq!(
            answer.rows,
            vec![vec![Value::from(1)], vec![2.into()], vec![3.into()]]
        );
    }

    #[tokio::test]
    async fn trino_errors_and_refusals_are_told_apart() {
        let failed = canned(|_| vec![(
            200,
            "{\"id\": \"q\", \"error\": {\"message\": \"line 1:15: Table 'delta.gold.x' does not exist\", \
             \"errorName\": \"TABLE_NOT_FOUND\", \"errorType\": \"USER_ERROR\"}}"
                .into(),
        )])
        .await;
        let e = client(&failed)
            .query("SELECT * FROM delta.gold.x")
            .await
            .unwrap_err();
        assert_eq!(
            e.source_error::<TrinoError>()
                .and_then(TrinoError::error_name),
            Some("TABLE_NOT_FOUND")
        );
        assert!(e.is_permanent(), "a user error fails again as it is");
        assert!(e.to_string().contains("does not exist"), "{e}");

        let refused = canned(|_| vec![(401, "Unauthorized".into())]).await;
        let e = client(&refused).query("SELECT 1").await.unwrap_err();
        assert!(
            e.is_permanent() && e.to_string().contains("[trino] user and password"),
            "{e}"
        );

        let html = canned(|_| vec![(200, "<html>a proxy's login page</html>".into())]).await;
        let e = client(&html).query("SELECT 1").await.unwrap_err();
        assert!(e.to_string().contains("not a Trino answer"), "{e}");

        let broken = canned(|_| vec![(500, "x".repeat(100_000))]).await;
        let e = client(&broken)
            .query("SELECT 1")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("HTTP 500") && e.len() < 500,
            "a huge body is cut: {} bytes",
            e.len()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_coordinator_busy_past_the_timeout_ends_the_query() {
        let url = canned(|_| vec![(503, String::new())]).await;
        let e = client(&url)
            .query("SELECT 1")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("within 1 s ([trino] timeout_secs)"), "{e}");
    }
}
