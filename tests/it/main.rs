//! Integration tests: one binary, modules by subject. Every test talks to a
//! real HTTP server (the simulator) over loopback, on virtual time.

mod benches;
mod bronze;
mod cli;
mod client_errors;
mod compose;
mod crash;
mod crawl;
mod demo;
mod events;
mod fixtures;
mod gold;
mod gold_inputs;
mod governor;
mod import;
mod kafka;
mod lake;
mod landing;
mod listening;
mod orchestrator;
mod silver;
mod simulator;
mod support;
