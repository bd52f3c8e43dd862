//! Listening events: what the apps report when someone plays, pauses,
//! skips, likes or finishes a track, and a generator of realistic ones over
//! the crawled catalog.

mod generate;

use serde::Serialize;

pub use generate::{
    Destination, EventOptions, Format, GeneratedEvents, generate, render_generated,
};

/// The folder of the lake new event files land in.
pub const LANDING_FOLDER: &str = "landing/events";

/// One listening event, in the order its fields are written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub event_id: String,
    pub user_id: String,
    pub track_id: String,
    /// `play`, `pause`, `skip`, `like` or `complete`.
    pub event_type: &'static str,
    /// UTC, RFC 3339 with milliseconds.
    pub event_ts: String,
    pub session_id: String,
    pub device: &'static str,
    pub country: &'static str,
    pub city: &'static str,
    /// Fields beyond the required ones, as apps add them.
    pub app_version: &'static str,
    pub shuffle: bool,
}

/// The CSV header: the fields of [`Event`] in order.
pub const CSV_HEADER: &str = "event_id,user_id,track_id,event_type,event_ts,session_id,device,country,city,app_version,shuffle";

impl Event {
    /// One CSV line (no field holds a comma, quote or line break).
    pub fn csv(&self) -> String {
        [
            self.event_id.as_str(),
            &self.user_id,
            &self.track_id,
            self.event_type,
            &self.event_ts,
            &self.session_id,
            self.device,
            self.country,
            self.city,
            self.app_version,
            if self.shuffle { "true" } else { "false" },
        ]
        .join(",")
    }
}
