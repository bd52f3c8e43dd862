//! Where a process's time goes: the time spent in each stage of moving
//! data (reading the landing store, parsing documents, flattening them into
//! columns, encoding Parquet, writing files, committing to Delta), summed
//! over every thread of the process. `soundlake run --json` reports it, so
//! a claim about what a run spends its time on is one command away.
//!
//! Stages overlap in time (both cores parse while a third thread encodes),
//! so their sum may exceed the wall time; each is busy time, not a share
//! of the clock.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde_json::{Map, Value};

/// A stage of a run that the process times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading pages of documents from the landing store (bronze), one
    /// page ahead of the rows being encoded.
    LandingRead,
    /// Parsing JSON documents (silver) and judging event lines and
    /// messages (bronze: parsing, checking and hashing each).
    Parse,
    /// Turning parsed documents into columns (silver), besides parsing.
    Flatten,
    /// Encoding and compressing rows into Parquet pages.
    Encode,
    /// Closing files: their last pages and the wait for their upload.
    Write,
    /// Committing versions to the Delta log.
    Commit,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::LandingRead,
        Stage::Parse,
        Stage::Flatten,
        Stage::Encode,
        Stage::Write,
        Stage::Commit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::LandingRead => "landing_read",
            Stage::Parse => "parse",
            Stage::Flatten => "flatten",
            Stage::Encode => "encode",
            Stage::Write => "write",
            Stage::Commit => "commit",
        }
    }

    /// Count `spent` to this stage.
    pub fn add(self, spent: Duration) {
        let nanos = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
        BUSY[self as usize].fetch_add(nanos, Ordering::Relaxed);
    }

    /// Run `work`, counting its time to this stage.
    pub fn time<T>(self, work: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = work();
        self.add(started.elapsed());
        out
    }

    /// `work` on each of `items` on every core, the results in order,
    /// counting the time to this stage a slice of items at a time: read
    /// around each item, the clock took a fortieth of bronze's CPU samples
    /// under `perf`.
    pub fn par_map<'a, T: Sync, U: Send>(
        self,
        items: &'a [T],
        work: impl Fn(&'a T) -> U + Sync,
    ) -> Vec<U> {
        items
            .par_chunks(TIMED_SLICE)
            .flat_map_iter(|slice| self.time(|| slice.iter().map(&work).collect::<Vec<U>>()))
            .collect()
    }

    /// Await `work`, counting the time until it is ready to this stage.
    pub async fn time_async<T>(self, work: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = work.await;
        self.add(started.elapsed());
        out
    }
}

/// Items timed together by [`Stage::par_map`].
const TIMED_SLICE: usize = 256;

static BUSY: [AtomicU64; Stage::ALL.len()] = [const { AtomicU64::new(0) }; Stage::ALL.len()];

/// Seconds spent in each stage so far by this process, by stage name.
pub fn busy_seconds() -> Map<String, Value> {
    Stage::ALL
        .iter()
        .map(|stage| {
            let nanos = BUSY[*stage as usize].load(Ordering::Relaxed);
            let seconds = (nanos as f64 / 1e3).round() / 1e6;
            (stage.name().to_string(), Value::from(seconds))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stage_counts_what_was_timed_to_it() {
        let before = busy_seconds();
        Stage::Commit.add(Duration::from_millis(1500));
        let parsed = Stage::Parse.time(|| 7);
        let after = busy_seconds();
        assert_eq!(parsed, 7);
        let gained = |name: &str| after[name].as_f64().unwrap() - before[name].as_f64().unwrap();
        assert!(gained("commit") >= 1.5, "{after:?}");
        assert_eq!(
            after.keys().collect::<Vec<_>>(),
            [
                "landing_read",
                "parse",
                "flatten",
                "encode",
                "write",
                "commit"
            ]
        );
    }
}
