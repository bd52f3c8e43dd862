//! Injectable time. Rate windows, token expiry, backoff, cron and watermarks
//! read a [`Clock`], so tests run on virtual time and never sleep for real.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Wall-clock now.
    fn now(&self) -> DateTime<Utc>;
    /// Wait for `duration` of this clock's time.
    fn sleep(&self, duration: Duration) -> Sleep<'_>;
    /// Wait until this clock reads `deadline` (at once if it is past).
    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep<'_> {
        self.sleep((deadline - self.now()).to_std().unwrap_or_default())
    }
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

/// A virtual clock for tests, in one of two modes:
///
/// - auto-advancing ([`VirtualClock::starting_at`]): `sleep` returns at once
///   after moving time forward to the sleeper's deadline (never backwards),
///   so concurrent sleepers see time pass as on a real clock while the test
///   waits for nothing;
/// - manual ([`VirtualClock::manual`]): sleepers block until the test moves
///   time past their deadline with [`VirtualClock::advance`], so a test can
///   look at who is waiting.
#[derive(Debug)]
pub struct VirtualClock {
    time: tokio::sync::watch::Sender<DateTime<Utc>>,
    auto_advance: bool,
    sleepers: AtomicUsize,
}

impl VirtualClock {
    pub fn starting_at(start: DateTime<Utc>) -> Arc<Self> {
        Self::build(start, true)
    }

    pub fn manual(start: DateTime<Utc>) -> Arc<Self> {
        Self::build(start, false)
    }

    fn build(start: DateTime<Utc>, auto_advance: bool) -> Arc<Self> {
        Arc::new(VirtualClock {
            time: tokio::sync::watch::Sender::new(start),
            auto_advance,
            sleepers: AtomicUsize::new(0),
        })
    }

    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).expect("duration fits");
        self.time.send_modify(|now| *now += by);
    }

    /// Callers blocked in `sleep` (manual mode).
    pub fn sleepers(&self) -> usize {
        self.sleepers.load(Ordering::SeqCst)
    }

    fn advance_to(&self, deadline: DateTime<Utc>) {
        self.time.send_if_modified(|now| {
            let later = deadline > *now;
            if later {
                *now = deadline;
            }
            later
        });
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.time.borrow()
    }

    fn sleep(&self, duration: Duration) -> Sleep<'_> {
        self.sleep_until(self.now() + chrono::Duration::from_std(duration).expect("duration fits"))
    }

    /// Exact: the deadline does not move with time that passes before the
    /// future is first polled.
    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep<'_> {
        Box::pin(async move {
            if self.auto_advance {
                self.advance_to(deadline);
                // Let other tasks observe the new time before this one goes on.
                tokio::task::yield_now().await;
                return;
            }
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            let mut time = self.time.subscribe();
            let _ = time.wait_for(|now| *now >= deadline).await;
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
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

    #[tokio::test]
    async fn manual_sleepers_wait_for_the_test_to_advance_time() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = VirtualClock::manual(start);
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep(Duration::from_secs(5)).await })
        };
        while clock.sleepers() == 0 {
            tokio::task::yield_now().await;
        }
        clock.advance(Duration::from_secs(4));
        tokio::task::yield_now().await;
        assert_eq!(clock.sleepers(), 1, "still before the deadline");
        clock.advance(Duration::from_secs(1));
        sleeper.await.unwrap();
        assert_eq!(clock.sleepers(), 0);
    }
}
