//! The Spotify Web API: the production client (auth, rate governor,
//! retries, app-mode detection, endpoints) and the shared vocabulary the
//! simulator in [`crate::sim`] speaks too.

mod auth;
mod client;
mod endpoints;
mod error;
mod governor;
mod rate_ledger;
mod settings;

pub use client::{ClientStats, MAX_BODY_BYTES, SpotifyClient};
pub use endpoints::{ALBUM_TRACKS_LIMIT, ALL_GROUPS};
pub use error::{ApiError, WaitReason};
pub use governor::{Governor, GovernorSettings, GovernorStats, RateScope};
pub use rate_ledger::{CredentialRate, WaitCause, credential_rates, ledger_key};
pub use settings::SpotifySettings;

use serde::{Deserialize, Serialize};

/// The Spotify id of a `kind` ("artist", "track", …) written as the id, a
/// `spotify:<kind>:` URI or an `open.spotify.com/<kind>/` URL (with or
/// without an `intl-xx/` part and a query); `None` if it is none of these.
pub fn id_in(kind: &str, given: &str) -> Option<String> {
    let text = given.trim();
    let id = text
        .strip_prefix(&format!("spotify:{kind}:"))
        .or_else(|| {
            let (_, after) = text.split_once("open.spotify.com/")?;
            let after = after.strip_prefix("intl-").map_or(after, |rest| {
                rest.split_once('/').map_or(rest, |(_, path)| path)
            });
            after.strip_prefix(&format!("{kind}/"))
        })
        .map_or(text, |id| id.split(['?', '/', '#']).next().unwrap_or(id));
    (id.len() == 22 && id.chars().all(|c| c.is_ascii_alphanumeric())).then(|| id.to_string())
}

/// How the Spotify app behind the credentials is treated by the API.
/// See `reference/spotify-api.md` §0 and §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AppMode {
    /// Batch reads, limits up to 50, every field.
    #[default]
    Extended,
    /// No batch reads, search and artist-albums limit 10, fields removed in
    /// February 2026, no audio features.
    Development,
}

impl AppMode {
    /// The largest `limit` accepted by `/search` and `/artists/{id}/albums`.
    pub fn page_limit(self) -> u32 {
        match self {
            AppMode::Extended => 50,
            AppMode::Development => 10,
        }
    }
}

impl std::fmt::Display for AppMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AppMode::Extended => "extended",
            AppMode::Development => "development",
        })
    }
}

impl std::str::FromStr for AppMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "extended" => Ok(AppMode::Extended),
            "development" => Ok(AppMode::Development),
            other => Err(format!(
                "unknown app mode {other:?}: use \"extended\" or \"development\""
            )),
        }
    }
}

/// Every Spotify endpoint soundlake calls. Used for request accounting on
/// both sides (client statistics, simulator request log) and in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Token,
    Search,
    Artist,
    SeveralArtists,
    ArtistAlbums,
    Album,
    SeveralAlbums,
    AlbumTracks,
    Track,
    SeveralTracks,
    AudioFeatures,
    SeveralAudioFeatures,
}

impl Endpoint {
    pub const ALL: [Endpoint; 12] = [
        Endpoint::Token,
        Endpoint::Search,
        Endpoint::Artist,
        Endpoint::SeveralArtists,
        Endpoint::ArtistAlbums,
        Endpoint::Album,
        Endpoint::SeveralAlbums,
        Endpoint::AlbumTracks,
        Endpoint::Track,
        Endpoint::SeveralTracks,
        Endpoint::AudioFeatures,
        Endpoint::SeveralAudioFeatures,
    ];

    /// The route, as the Web API reference writes it (relative to `/v1`,
    /// except the token endpoint).
    pub fn route(self) -> &'static str {
        match self {
            Endpoint::Token => "/api/token",
            Endpoint::Search => "/search",
            Endpoint::Artist => "/artists/{id}",
            Endpoint::SeveralArtists => "/artists",
            Endpoint::ArtistAlbums => "/artists/{id}/albums",
            Endpoint::Album => "/albums/{id}",
            Endpoint::SeveralAlbums => "/albums",
            Endpoint::AlbumTracks => "/albums/{id}/tracks",
            Endpoint::Track => "/tracks/{id}",
            Endpoint::SeveralTracks => "/tracks",
            Endpoint::AudioFeatures => "/audio-features/{id}",
            Endpoint::SeveralAudioFeatures => "/audio-features",
        }
    }

    /// The batch size in Extended Quota mode for `?ids=` endpoints; `None`
    /// for the others. Development Mode has no batch reads at all.
    pub fn batch_size(self) -> Option<usize> {
        match self {
            Endpoint::SeveralArtists => Some(50),
            Endpoint::SeveralAlbums => Some(20),
            Endpoint::SeveralTracks => Some(50),
            Endpoint::SeveralAudioFeatures => Some(100),
            _ => None,
        }
    }

    /// The key under which a batch response lists its objects.
    pub fn batch_key(self) -> Option<&'static str> {
        match self {
            Endpoint::SeveralArtists => Some("artists"),
            Endpoint::SeveralAlbums => Some("albums"),
            Endpoint::SeveralTracks => Some("tracks"),
            Endpoint::SeveralAudioFeatures => Some("audio_features"),
            _ => None,
        }
    }

    /// `/audio-features` is refused to Development Mode apps and to
    /// Extended apps approved after 2024-11-27, independently of batching.
    pub fn is_audio_features(self) -> bool {
        matches!(
            self,
            Endpoint::AudioFeatures | Endpoint::SeveralAudioFeatures
        )
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Token => write!(f, "POST {}", self.route()),
            _ => write!(f, "GET {}", self.route()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_track_is_named_by_id_uri_or_url_and_anything_else_is_a_title() {
        let id = "6rqhFgbbKwnb9MLmUQDhG6";
        for given in [
            id.to_string(),
            format!("spotify:track:{id}"),
            format!("https://open.spotify.com/track/{id}?si=abc"),
        ] {
            assert_eq!(super::id_in("track", &given).as_deref(), Some(id));
        }
        for title in ["Karma Police", "spotify:artist:6rqhFgbbKwnb9MLmUQDhG6", ""] {
            assert_eq!(super::id_in("track", title), None, "{title}");
        }
    }
}
