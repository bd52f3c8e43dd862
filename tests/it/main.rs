//! Integration tests: one binary, modules by subject. Each talks to real
//! servers over loopback: the simulator always, and in the server suite
//! (the `servers` feature, which `tests/run.sh` turns on) the real Kafka,
//! MinIO, HDFS and MongoDB-compatible servers and the Python readers that
//! `servers` starts. A module or `with_servers` block under that feature
//! holds the tests that need them.

#[cfg(feature = "servers")]
mod benches;
mod bronze;
mod cli;
mod client_errors;
#[cfg(feature = "servers")]
mod compose;
mod crash;
mod crawl;
mod demo;
mod events;
mod fixtures;
mod gold;
mod gold_inputs;
#[cfg(feature = "servers")]
mod gold_on_trino;
mod governor;
mod import;
mod init;
#[cfg(feature = "servers")]
mod kafka;
mod lake;
mod landing;
mod layering;
mod listening;
mod notify;
mod orchestrator;
mod rate_sharing;
#[cfg(feature = "servers")]
mod recommend;
mod retention;
#[cfg(feature = "servers")]
mod servers;
mod silver;
mod simulator;
mod support;
#[cfg(feature = "servers")]
mod trino;
#[cfg(feature = "servers")]
mod ui;
