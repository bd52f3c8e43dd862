//! Settings: built-in defaults, then `soundlake.toml` (or `--config FILE`),
//! then `SOUNDLAKE__<SECTION>__<KEY>` environment variables; the
//! `SPOTIFY_CLIENT_ID` / `SPOTIFY_CLIENT_SECRET` variables are read too.
//! Unknown keys anywhere are errors that name the key. Each section's type
//! lives with the module it configures; this gathers them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bronze::IngestSettings;
use crate::crawl::CrawlSettings;
use crate::definitions::DefinitionSettings;
use crate::error::{Error, Result};
use crate::kafka::KafkaSettings;
use crate::lake::LakeSettings;
use crate::landing::LandingSettings;
use crate::orchestrator::DaemonSettings;
use crate::spotify::SpotifySettings;
use crate::trino::TrinoSettings;

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
    pub trino: TrinoSettings,
    pub gold: crate::gold::GoldSettings,
    pub retention: crate::retention::RetentionSettings,
    /// `[[notify]]`: where notifications go, and which.
    pub notify: Vec<crate::notify::NotifySettings>,
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
        settings.trino.validate()?;
        settings.gold.validate()?;
        crate::notify::validate(&settings.notify)?;
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
