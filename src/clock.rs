//! Injectable time. Rate windows, token expiry, backoff, cron and watermarks
//! read a [`Clock`], so tests run on virtual time and never sleep for real.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Wall-clock now.
    fn now(&self) -> DateTime<Utc>;
    /// Wait for `duration` of this clock's time.
    fn sleep(&self, duration: Duration) -> Sleep<'_>;
}

pub type SharedClock = Arc<dyn Clock>;

/// The real clock: system time and tokio timers.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep(&self, duration: Duration) -> Sleep<'_> {
        Box::pin(tokio::time::sleep(duration))
    }
}

pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A virtual clock for tests. `sleep` returns at once after moving time
/// forward to the sleeper's deadline (never backwards), so any number of
/// concurrent sleepers see time advance as they would on a real clock,
/// without the test waiting. Tests can also [`VirtualClock::advance`] it.
#[derive(Debug)]
pub struct VirtualClock {
    now: Mutex<DateTime<Utc>>,
}

impl VirtualClock {
    pub fn starting_at(start: DateTime<Utc>) -> Arc<Self> {
        Arc::new(VirtualClock {
            now: Mutex::new(start),
        })
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().expect("clock lock");
        *now += chrono::Duration::from_std(by).expect("duration fits");
    }

    fn advance_to(&self, deadline: DateTime<Utc>) {
        let mut now = self.now.lock().expect("clock lock");
        if deadline > *now {
            *now = deadline;
        }
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock lock")
    }

    fn sleep(&self, duration: Duration) -> Sleep<'_> {
        let deadline = self.now() + chrono::Duration::from_std(duration).expect("duration fits");
        Box::pin(async move {
            self.advance_to(deadline);
            // Let other tasks observe the new time before this one goes on.
            tokio::task::yield_now().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn virtual_sleep_moves_time_forward_only() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = VirtualClock::starting_at(start);
        clock.sleep(Duration::from_secs(10)).await;
        assert_eq!(clock.now(), start + chrono::Duration::seconds(10));
        // A deadline already in the past does not move time back.
        clock.advance_to(start);
        assert_eq!(clock.now(), start + chrono::Duration::seconds(10));
    }
}
