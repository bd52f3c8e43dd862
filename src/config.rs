//! Settings: built-in defaults, then `soundlake.toml` (or `--config FILE`),
//! then `SOUNDLAKE__<SECTION>__<KEY>` environment variables; the
//! `SPOTIFY_CLIENT_ID` / `SPOTIFY_CLIENT_SECRET` variables are read too.
//! Unknown keys anywhere are errors that name the key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spotify::SpotifySettings;

/// The file read when no `--config` is given; optional.
pub const DEFAULT_FILE: &str = "soundlake.toml";
const ENV_PREFIX: &str = "SOUNDLAKE";
const ENV_SEPARATOR: &str = "__";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub spotify: SpotifySettings,
    pub landing: LandingSettings,
    pub lake: LakeSettings,
    pub crawl: CrawlSettings,
    pub definitions: DefinitionSettings,
    pub daemon: DaemonSettings,
    pub ingest: IngestSettings,
    pub kafka: KafkaSettings,
}

/// How bronze takes in files (event files under a lake folder).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSettings {
    /// Commit after about this much input: the most work a crash redoes,
    /// and roughly the memory a run holds.
    pub commit_mib: u64,
    /// A last line without a line break is taken once its file has not
    /// changed for this long (until then a writer may still be adding to it).
    pub settle_secs: u64,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            commit_mib: 128,
            settle_secs: 600,
        }
    }
}

impl IngestSettings {
    fn validate(&self) -> Result<()> {
        if !(1..=4096).contains(&self.commit_mib) {
            return Err(Error::config(
                "[ingest] commit_mib",
                format!("{} MiB is out of range", self.commit_mib),
                "give 1 to 4096 (default 128)",
            ));
        }
        Ok(())
    }
}

/// How bronze tables fed by Kafka topics consume them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Bootstrap brokers, comma-separated `host:port`.
    pub brokers: String,
    /// Consumer group prefix: a table consumes as group `<group>.<table>`.
    pub group: String,
    /// Under the daemon, a micro-batch is published after this long (or at
    /// `[ingest] commit_mib` of input, whichever comes first).
    pub batch_secs: u64,
    /// How long to wait for brokers, metadata and a partition assignment
    /// before giving up with an error.
    pub timeout_secs: u64,
    /// librdkafka client properties passed through (SASL, TLS, timeouts),
    /// like `"security.protocol" = "SASL_SSL"`. From the environment,
    /// `SOUNDLAKE__KAFKA__CLIENT__SASL_PASSWORD` sets `sasl.password`.
    /// Values are kept out of logs and dumps.
    pub client: std::collections::BTreeMap<String, crate::secret::Secret>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: "localhost:9092".into(),
            group: "soundlake".into(),
            batch_secs: 10,
            timeout_secs: 60,
            client: Default::default(),
        }
    }
}

impl KafkaSettings {
    fn validate(&self) -> Result<()> {
        if self.brokers.split(',').any(|b| b.trim().is_empty()) {
            return Err(Error::config(
                "[kafka] brokers",
                format!("{:?} names no broker", self.brokers),
                "give host:port, or several separated by commas (default localhost:9092)",
            ));
        }
        if self.group.trim().is_empty() {
            return Err(Error::config(
                "[kafka] group",
                "the consumer group prefix is empty",
                "give a name (default \"soundlake\"); tables consume as <group>.<table>",
            ));
        }
        for (key, value, range) in [
            ("batch_secs", self.batch_secs, 1..=3600),
            ("timeout_secs", self.timeout_secs, 1..=3600),
        ] {
            if !range.contains(&value) {
                return Err(Error::config(
                    format!("[kafka] {key}"),
                    format!("{value} s is out of range"),
                    format!("give {} to {} seconds", range.start(), range.end()),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSettings {
    /// Where the status page and `/metrics` listen: loopback by default.
    pub listen: std::net::SocketAddr,
    /// How long the leader lock lasts without renewal: a standby takes over
    /// at most this long (and a quarter) after the leader dies.
    pub leader_lease_secs: u64,
    /// With `catch_up = "none"`, a fire this late still runs.
    pub misfire_grace_secs: u64,
    /// On SIGINT or SIGTERM, how long running tasks get to finish.
    pub grace_secs: u64,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9187)),
            leader_lease_secs: 60,
            misfire_grace_secs: 60,
            grace_secs: 60,
        }
    }
}

impl DaemonSettings {
    fn validate(&self) -> Result<()> {
        if self.leader_lease_secs < 4 {
            return Err(Error::config(
                "[daemon] leader_lease_secs",
                format!("{} s is too short to renew in time", self.leader_lease_secs),
                "give 4 seconds or more (default 60)",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefinitionSettings {
    /// The folder holding `bronze/`, `silver/`, `gold/` and `pipelines/`.
    pub dir: PathBuf,
}

impl Default for DefinitionSettings {
    fn default() -> Self {
        DefinitionSettings { dir: ".".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LandingSettings {
    /// `embedded://<dir>` for the built-in file store, or `mongodb://host:27017/db`.
    pub url: String,
}

impl Default for LandingSettings {
    fn default() -> Self {
        LandingSettings {
            url: "embedded://.soundlake/landing".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LakeSettings {
    /// `file://./lake`, `s3://bucket/prefix`, `hdfs://namenode:port/path` or `memory://`.
    pub url: String,
    /// Parquet compression: `zstd` or `snappy`.
    pub compression: Compression,
    /// A row group is closed at this many rows...
    pub row_group_rows: usize,
    /// ...or at this many MiB of encoded data, whichever comes first: what
    /// bounds a writer's memory, and the unit engines skip by statistics.
    pub row_group_mib: usize,
    /// A file is closed once it holds this many MiB; the next one starts.
    pub file_mib: usize,
    /// Attempts of a request that failed transiently (5xx, timeouts, resets)
    /// against S3 or HDFS, with exponential backoff.
    pub max_retries: usize,
    /// Give up retrying a request after this many seconds.
    pub retry_timeout_secs: u64,
    pub s3: S3Settings,
}

impl Default for LakeSettings {
    fn default() -> Self {
        LakeSettings {
            url: "file://./lake".into(),
            compression: Compression::Zstd,
            row_group_rows: 122_880,
            row_group_mib: 64,
            file_mib: 512,
            max_retries: 10,
            retry_timeout_secs: 180,
            s3: S3Settings::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    Zstd,
    Snappy,
}

/// S3 connection settings. Each empty value falls back to the standard AWS
/// variable (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and then to AWS defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    /// For MinIO and other S3 servers: `http://minio:9000`.
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: crate::secret::Secret,
    pub session_token: crate::secret::Secret,
    /// Path-style requests (`endpoint/bucket/key`), which MinIO needs;
    /// virtual-hosted style (`bucket.endpoint/key`) otherwise.
    pub path_style: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrawlSettings {
    /// Artist names to crawl, one per line.
    pub artists_file: PathBuf,
    /// How many names one crawl run takes on.
    pub names_per_run: u32,
    /// Stop a run after this many API requests (0: no limit); the next run
    /// resumes where it stopped.
    pub request_budget: u64,
    /// Stop a run after this many seconds (0: no limit).
    pub time_budget_secs: u64,
    /// Re-crawl an artist (its profile and any new albums) after this many days.
    pub refresh_after_days: u32,
    /// In Development Mode, fetch every track on its own for the fields album
    /// track listings lack (ISRC, popularity): one request per track.
    pub development_full_tracks: bool,
}

impl Default for CrawlSettings {
    fn default() -> Self {
        CrawlSettings {
            artists_file: "artists.txt".into(),
            names_per_run: 5,
            request_budget: 0,
            time_budget_secs: 0,
            refresh_after_days: 7,
            development_full_tracks: false,
        }
    }
}

impl Settings {
    /// Load settings from `file` (required) or, when `None`, from
    /// `soundlake.toml` in the working directory if it exists; then apply
    /// the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings> {
        Self::load_with_env(file, std::env::vars())
    }

    /// As [`Settings::load`], with the environment given explicitly (tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let (path, required) = match file {
            Some(path) => (path.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_FILE), false),
        };
        let place = if path.exists() || required {
            path.display().to_string()
        } else {
            "the environment".to_string()
        };
        if required && !path.is_file() {
            return Err(Error::config(
                path.display().to_string(),
                "the configuration file does not exist",
                "check the path given to --config, or leave --config out to use the defaults",
            ));
        }

        let mut builder = config::Config::builder();
        if path.is_file() {
            builder = builder.add_source(
                config::File::from(path.as_path())
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        if let Some(aliases) = spotify_credential_aliases(&env) {
            builder =
                builder.add_source(config::File::from_str(&aliases, config::FileFormat::Json));
        }
        let ours: std::collections::HashMap<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}{ENV_SEPARATOR}")))
            .cloned()
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_SEPARATOR)
                .separator(ENV_SEPARATOR)
                .try_parsing(true)
                .source(Some(ours)),
        );

        let built = builder.build().map_err(|e| {
            Error::config(
                &place,
                e.to_string(),
                "fix the TOML syntax at the position shown",
            )
        })?;
        let settings: Settings = built.try_deserialize().map_err(|e| {
            Error::config(
                &place,
                e.to_string(),
                "remove or rename the key (the README lists every key under 'Configuration'); \
                 environment overrides are SOUNDLAKE__<SECTION>__<KEY>",
            )
        })?;
        settings.spotify.validate()?;
        settings.daemon.validate()?;
        settings.ingest.validate()?;
        settings.kafka.validate()?;
        Ok(settings)
    }
}

/// `SPOTIFY_CLIENT_ID` / `SPOTIFY_CLIENT_SECRET` as a JSON source that sits
/// between the file and the `SOUNDLAKE__` variables.
fn spotify_credential_aliases(env: &[(String, String)]) -> Option<String> {
    let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut spotify = serde_json::Map::new();
    if let Some(id) = get("SPOTIFY_CLIENT_ID") {
        spotify.insert("client_id".into(), id.into());
    }
    if let Some(secret) = get("SPOTIFY_CLIENT_SECRET") {
        spotify.insert("client_secret".into(), secret.into());
    }
    (!spotify.is_empty()).then(|| serde_json::json!({ "spotify": spotify }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spotify::AppMode;

    fn write(dir: &tempfile::TempDir, body: &str) -> PathBuf {
        let path = dir.path().join("soundlake.toml");
        std::fs::write(&path, body).unwrap();
        path
    }

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn defaults_match_the_design() {
        let s = Settings::default();
        assert_eq!(s.spotify.api_url, "https://api.spotify.com/v1");
        assert_eq!(
            s.spotify.token_url,
            "https://accounts.spotify.com/api/token"
        );
        assert_eq!(s.spotify.mode, AppMode::Extended);
        assert_eq!(s.landing.url, "embedded://.soundlake/landing");
        assert_eq!(s.lake.url, "file://./lake");
        assert_eq!(s.crawl.artists_file, PathBuf::from("artists.txt"));
        assert_eq!(s.crawl.names_per_run, 5);
    }

    #[test]
    fn file_then_env_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "[spotify]\nmode = \"development\"\nrequests_per_window = 40\n[crawl]\nnames_per_run = 9\n",
        );
        let env = vec![
            (
                "SOUNDLAKE__CRAWL__NAMES_PER_RUN".to_string(),
                "12".to_string(),
            ),
            ("SPOTIFY_CLIENT_ID".to_string(), "abc".to_string()),
            ("SPOTIFY_CLIENT_SECRET".to_string(), "s3cr3t".to_string()),
        ];
        let s = Settings::load_with_env(Some(&path), env).unwrap();
        assert_eq!(s.spotify.mode, AppMode::Development);
        assert_eq!(s.spotify.requests_per_window, 40);
        assert_eq!(s.crawl.names_per_run, 12);
        assert_eq!(s.spotify.client_id, "abc");
        assert_eq!(s.spotify.client_secret.expose(), "s3cr3t");
    }

    #[test]
    fn kafka_client_properties_come_from_the_file_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "[kafka]\nbrokers = \"k1:9092,k2:9092\"\n[kafka.client]\n\"security.protocol\" = \"SASL_SSL\"\n",
        );
        let env = vec![
            (
                "SOUNDLAKE__KAFKA__CLIENT__SESSION_TIMEOUT_MS".to_string(),
                "2000".to_string(),
            ),
            (
                "SOUNDLAKE__KAFKA__CLIENT__SASL_PASSWORD".to_string(),
                "kafka-pw".to_string(),
            ),
        ];
        let s = Settings::load_with_env(Some(&path), env).unwrap();
        assert_eq!(s.kafka.brokers, "k1:9092,k2:9092");
        let client: Vec<(&str, &str)> = s
            .kafka
            .client
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        assert_eq!(
            client,
            [
                ("sasl_password", "kafka-pw"),
                ("security.protocol", "SASL_SSL"),
                ("session_timeout_ms", "2000"),
            ]
        );
        assert!(!format!("{s:?}").contains("kafka-pw"));
    }

    #[test]
    fn soundlake_env_wins_over_spotify_alias() {
        let env = vec![
            ("SPOTIFY_CLIENT_ID".to_string(), "alias".to_string()),
            (
                "SOUNDLAKE__SPOTIFY__CLIENT_ID".to_string(),
                "explicit".to_string(),
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "");
        let s = Settings::load_with_env(Some(&path), env).unwrap();
        assert_eq!(s.spotify.client_id, "explicit");
    }

    #[test]
    fn unknown_key_is_an_error_naming_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "[spotify]\napi_urll = \"x\"\n");
        let err = Settings::load_with_env(Some(&path), no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("api_urll"), "{err}");
        assert!(err.contains("soundlake.toml"), "{err}");
        assert!(err.contains("fix:"), "{err}");
    }

    #[test]
    fn unknown_section_and_unknown_env_key_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "[spotfy]\nmode = \"extended\"\n");
        let err = Settings::load_with_env(Some(&path), no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("spotfy"), "{err}");

        let path = write(&dir, "");
        let env = vec![("SOUNDLAKE__LAKE__URLL".to_string(), "x".to_string())];
        let err = Settings::load_with_env(Some(&path), env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("urll"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "[spotify]\nmode = \"turbo\"\n");
        let err = Settings::load_with_env(Some(&path), no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("turbo") && err.contains("mode"), "{err}");

        let path = write(&dir, "[spotify]\nrequests_per_window = 0\n");
        let err = Settings::load_with_env(Some(&path), no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("requests_per_window"), "{err}");

        let path = write(&dir, "[spotify]\napi_url = \"not a url\"\n");
        let err = Settings::load_with_env(Some(&path), no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("api_url"), "{err}");
    }

    #[test]
    fn malformed_missing_and_hostile_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "[spotify\nmode = ");
        let err = Settings::load_with_env(Some(&path), no_env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("soundlake.toml"), "{err}");

        let missing = dir.path().join("nope.toml");
        let err = Settings::load_with_env(Some(&missing), no_env())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nope.toml") && err.contains("does not exist"),
            "{err}"
        );

        // A huge value is accepted or refused cleanly, never a crash.
        let huge = format!("[crawl]\nartists_file = \"{}\"\n", "a".repeat(1 << 20));
        let path = write(&dir, &huge);
        let s = Settings::load_with_env(Some(&path), no_env()).unwrap();
        assert_eq!(s.crawl.artists_file.as_os_str().len(), 1 << 20);

        let path = write(&dir, "\u{0}\u{1}binary");
        assert!(Settings::load_with_env(Some(&path), no_env()).is_err());
    }

    #[test]
    fn secrets_do_not_leak_into_errors_or_dumps() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "[spotify]\nclient_secret = \"TOPSECRET-42\"\nbogus = 1\n",
        );
        let err = Settings::load_with_env(Some(&path), no_env())
            .unwrap_err()
            .to_string();
        assert!(!err.contains("TOPSECRET-42"), "{err}");

        let path = write(&dir, "[spotify]\nclient_secret = \"TOPSECRET-42\"\n");
        let s = Settings::load_with_env(Some(&path), no_env()).unwrap();
        assert!(!format!("{s:?}").contains("TOPSECRET-42"));
        assert!(!serde_json::to_string(&s).unwrap().contains("TOPSECRET-42"));
    }

    #[test]
    fn the_readme_configuration_block_is_the_defaults() {
        let readme = include_str!("../README.md");
        let section = &readme[readme.find("### Configuration").expect("section")..];
        let start = section.find("```toml\n").expect("toml block") + "```toml\n".len();
        let block = &section[start..start + section[start..].find("```").expect("end")];
        let dir = tempfile::tempdir().unwrap();
        let from_readme = Settings::load_with_env(Some(&write(&dir, block)), no_env()).unwrap();
        assert_eq!(
            serde_json::to_value(&from_readme).unwrap(),
            serde_json::to_value(Settings::default()).unwrap(),
            "every key the README shows, with its default"
        );
        fn keys(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
            if let serde_json::Value::Object(map) = v {
                for (k, v) in map {
                    keys(&format!("{prefix}{k}."), v, out);
                }
            } else {
                out.push(prefix.trim_end_matches('.').to_string());
            }
        }
        let (mut shown, mut all) = (Vec::new(), Vec::new());
        let table: toml::Value = toml::from_str(block).unwrap();
        keys("", &serde_json::to_value(table).unwrap(), &mut shown);
        keys(
            "",
            &serde_json::to_value(Settings::default()).unwrap(),
            &mut all,
        );
        shown.sort();
        all.sort();
        assert_eq!(shown, all, "the README shows every key");
    }
}
