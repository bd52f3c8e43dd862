//! soundlake: a medallion ELT pipeline for the Spotify Web API.
//!
//! Layers, low to high: [`clock`], [`secret`], [`error`], [`config`], [`stages`] and
//! [`json_tape`] are shared ground, [`definitions`] the reading of table
//! definition folders; [`spotify`] is the API client and [`sim`] its
//! simulator; [`kafka`] the Kafka client and [`trino`] the Trino client; [`landing`] is the landing and
//! state store; [`cli`] is the
//! command line on top.

pub mod artist_names;
pub mod bronze;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crawl;
pub mod definitions;
pub mod demo;
pub mod error;
pub mod events;
pub mod gold;
pub mod import;
pub mod init;
pub mod json_tape;
pub mod kafka;
pub mod lake;
pub mod landing;
pub mod notify;
pub mod orchestrator;
pub mod progress;
pub mod project;
pub mod recommend;
pub mod retention;
pub mod rng;
pub mod secret;
pub mod silver;
pub mod sim;
pub mod spotify;
pub mod sql;
pub mod stages;
pub mod tasks;
pub mod trino;
pub mod ui;

pub use error::{Error, Result};
