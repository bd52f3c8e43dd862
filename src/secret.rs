//! Keeping credentials out of logs, errors and dumps.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value that must never be printed: client secrets, tokens, passwords.
/// `Debug`, `Display` and `Serialize` all show a placeholder; only
/// [`Secret::expose`] gives the value, at the one place it is sent.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

const REDACTED: &str = "***";

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { REDACTED })
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if self.0.is_empty() { "" } else { REDACTED })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// The URL with any password (and token-like query values) replaced by `***`,
/// for messages. Strings that do not parse as URLs are returned unchanged, as
/// they cannot carry userinfo.
pub fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return raw.to_string();
    };
    if url.password().is_some() {
        let _ = url.set_password(Some(REDACTED));
    }
    let sensitive = |key: &str| {
        let key = key.to_ascii_lowercase();
        [
            "secret",
            "token",
            "password",
            "key",
            "signature",
            "credential",
        ]
        .iter()
        .any(|s| key.contains(s))
    };
    if url.query_pairs().any(|(k, _)| sensitive(&k)) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if sensitive(&k) {
                    REDACTED.to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_formats_its_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn redact_url_hides_passwords_and_token_queries() {
        assert_eq!(
            redact_url("mongodb://admin:pa55word@db:27017/soundlake"),
            "mongodb://admin:***@db:27017/soundlake"
        );
        let r = redact_url("s3://bucket/prefix?access_key_id=AKIA&region=eu&secret_access_key=xyz");
        assert!(!r.contains("AKIA") && !r.contains("xyz"), "{r}");
        assert!(r.contains("region=eu"), "{r}");
        assert_eq!(redact_url("file://./lake"), "file://./lake");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
