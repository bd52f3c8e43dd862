//! The rate governor: one per credential, shared by every caller in the
//! process (invariant 3 of the design).
//!
//! Spotify counts requests over a rolling 30-second window and publishes no
//! numbers, so the governor grants at most `budget` requests in any window
//! of `window` length. A 429 pauses *every* caller until `Retry-After` has
//! passed. What else it means depends on who drew it. A lone 429 that comes
//! while this process sent under half its budget in the window was drawn by
//! other traffic on the same quota (a process that died, another one with
//! the credential, another application): it says nothing about the pace
//! this process may keep, so the budget stays. Otherwise the process found
//! the limit: the budget drops to 90% of what was sent in the window when it
//! came, but not below [`MIN_ADAPTIVE_BUDGET`], and the governor learns a
//! ceiling, one request fewer than that window held. Below the ceiling the
//! budget climbs back one request per clean window, so a crawl soon runs at
//! the limit it found without hitting it again. After
//! [`CEILING_MEMORY_WINDOWS`] windows without a 429 the ceiling is
//! forgotten (the limit may have risen, or the traffic that shared it gone)
//! and the budget probes upwards one request per [`RECOVERY_WINDOWS`] clean
//! windows, up to the configured budget. A pause longer than `max_wait` is
//! not slept through: callers get [`ApiError::ComeBackAt`] so the crawl can
//! checkpoint, persist the time and stop.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{ApiError, WaitReason};
use crate::clock::SharedClock;
use crate::error::{Error, Result};

/// The adaptive budget never drops below this (or the configured budget, if
/// smaller).
pub const MIN_ADAPTIVE_BUDGET: u32 = 10;
/// A 429 within this many windows of the one before is never put down to
/// other traffic: two in a row mean the limit is lower than this process's
/// pace, however far under its budget that pace is.
const REPEAT_WINDOWS: i32 = 2;
/// Clean windows after which a budget above any learned ceiling grows by
/// one request.
pub const RECOVERY_WINDOWS: u32 = 10;
/// Windows without a 429 after which the learned ceiling is forgotten: an
/// hour of Spotify's 30 s windows.
pub const CEILING_MEMORY_WINDOWS: u32 = 120;
/// The first pause after a 429 that carries no `Retry-After`; doubles on
/// each consecutive one.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// The pause after `QUOTA_EXCEEDED` without `Retry-After`: quota buckets
/// refill over hours, so retrying in seconds only prolongs the lock-out.
pub const QUOTA_DEFAULT_WAIT: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GovernorSettings {
    pub budget: u32,
    pub window: Duration,
    pub max_wait: Duration,
}

#[derive(Debug)]
pub struct Governor {
    settings: GovernorSettings,
    clock: SharedClock,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    grants: VecDeque<DateTime<Utc>>,
    budget: u32,
    /// One request under the window that drew the last 429, and when that
    /// ceiling is forgotten.
    ceiling: Option<(u32, DateTime<Utc>)>,
    pause: Option<(DateTime<Utc>, WaitReason)>,
    consecutive_unadvised: u32,
    /// When the budget last grew back (or was cut).
    last_change: Option<DateTime<Utc>>,
    throttles: u64,
    /// The 429s put down to other traffic on the quota.
    foreign_throttles: u64,
    /// When the last 429 came.
    last_throttle: Option<DateTime<Utc>>,
    waited: Duration,
    /// When the caller waiting for a slot gets one, for progress displays.
    waiting_until: Option<DateTime<Utc>>,
}

impl Governor {
    pub fn new(settings: GovernorSettings, clock: SharedClock) -> Arc<Governor> {
        Arc::new(Governor {
            state: Mutex::new(State {
                grants: VecDeque::new(),
                budget: settings.budget.max(1),
                ceiling: None,
                pause: None,
                consecutive_unadvised: 0,
                last_change: None,
                throttles: 0,
                foreign_throttles: 0,
                last_throttle: None,
                waited: Duration::ZERO,
                waiting_until: None,
            }),
            settings,
            clock,
        })
    }

    /// The governor of `credential` in this process, created on first use.
    /// Every client built for the same credential shares it.
    pub fn for_credential(
        credential: &str,
        settings: GovernorSettings,
        clock: SharedClock,
    ) -> Arc<Governor> {
        static REGISTRY: OnceLock<Mutex<HashMap<String, Weak<Governor>>>> = OnceLock::new();
        let mut registry = REGISTRY
            .get_or_init(Default::default)
            .lock()
            .expect("governor registry lock");
        registry.retain(|_, g| g.strong_count() > 0);
        if let Some(existing) = registry.get(credential).and_then(Weak::upgrade) {
            return existing;
        }
        let governor = Governor::new(settings, clock);
        registry.insert(credential.to_string(), Arc::downgrade(&governor));
        governor
    }

    /// Wait for a request slot; the instant the slot was granted (the one
    /// the window budget counts). Fails with [`ApiError::ComeBackAt`] when a
    /// pause longer than `max_wait` is in force.
    pub async fn acquire(&self) -> Result<DateTime<Utc>> {
        loop {
            let wait = {
                let mut s = self.state.lock().expect("governor lock");
                let now = self.clock.now();
                match self.wait_needed(&mut s, now)? {
                    None => {
                        s.grants.push_back(now);
                        s.waiting_until = None;
                        return Ok(now);
                    }
                    Some(wait) => {
                        s.waited += wait;
                        s.waiting_until = chrono::Duration::from_std(wait).ok().map(|w| now + w);
                        wait
                    }
                }
            };
            self.clock.sleep(wait).await;
        }
    }

    fn wait_needed(&self, s: &mut State, now: DateTime<Utc>) -> Result<Option<Duration>> {
        if let Some((until, reason)) = s.pause {
            if until > now {
                let wait = (until - now).to_std().unwrap_or_default();
                if wait > self.settings.max_wait {
                    return Err(Error::from(ApiError::ComeBackAt { until, reason }));
                }
                return Ok(Some(wait));
            }
            s.pause = None;
        }
        let window = chrono::Duration::from_std(self.settings.window).expect("window fits");
        while s.grants.front().is_some_and(|t| *t <= now - window) {
            s.grants.pop_front();
        }
        self.recover(s, now, window);
        if (s.grants.len() as u32) < s.budget {
            return Ok(None);
        }
        let oldest = *s.grants.front().expect("budget is at least 1");
        Ok(Some((oldest + window - now).to_std().unwrap_or_default()))
    }

    fn recover(&self, s: &mut State, now: DateTime<Utc>, window: chrono::Duration) {
        let Some(mut changed) = s.last_change else {
            return;
        };
        if let Some((_, forget_at)) = s.ceiling
            && now >= forget_at
        {
            // Probing starts from here, not from the last step below it.
            s.ceiling = None;
            changed = changed.max(forget_at);
            s.last_change = Some(changed);
        }
        let limit = s
            .ceiling
            .map_or(self.settings.budget, |(c, _)| c.min(self.settings.budget));
        if s.budget >= limit {
            return;
        }
        let step = window
            * if s.ceiling.is_some() {
                1
            } else {
                RECOVERY_WINDOWS as i32
            };
        let steps = (now - changed).num_milliseconds() / step.num_milliseconds().max(1);
        let steps = u32::try_from(steps).unwrap_or(u32::MAX);
        if steps > 0 {
            s.budget = s.budget.saturating_add(steps).min(limit);
            s.last_change = Some(changed + step * steps.min(i32::MAX as u32) as i32);
        }
    }

    /// Record a 429. Pauses every caller until `retry_after` has passed (or
    /// a doubling default when the header is missing). Returns
    /// [`ApiError::ComeBackAt`] when the pause exceeds `max_wait`.
    pub fn throttled(&self, retry_after: Option<Duration>, reason: WaitReason) -> Result<()> {
        let mut s = self.state.lock().expect("governor lock");
        let now = self.clock.now();
        let already_paused = s.pause.is_some_and(|(until, _)| until > now);
        let wait = match (retry_after, reason) {
            (Some(wait), _) => {
                s.consecutive_unadvised = 0;
                wait
            }
            (None, WaitReason::QuotaExceeded) => QUOTA_DEFAULT_WAIT,
            (None, WaitReason::RateLimit) => {
                let wait = DEFAULT_PAUSE * 2u32.saturating_pow(s.consecutive_unadvised.min(16));
                s.consecutive_unadvised += 1;
                wait
            }
        };
        let until = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        if s.pause.is_none_or(|(current, _)| until > current) {
            s.pause = Some((until, reason));
        }
        s.throttles += 1;
        let window = chrono::Duration::from_std(self.settings.window).expect("window fits");
        let in_window = s.grants.len() as u32;
        let lone = s
            .last_throttle
            .is_none_or(|last| now - last > window * REPEAT_WINDOWS);
        s.last_throttle = Some(now);
        // One 429 storm counts once: replies to requests that were already
        // in flight carry no new information.
        let drawn_by_others = lone && in_window * 2 < s.budget;
        if !already_paused && drawn_by_others {
            s.foreign_throttles += 1;
            tracing::info!(
                sent_in_window = in_window,
                budget = s.budget,
                "429 drawn by other traffic on the quota; pausing, keeping the budget"
            );
        } else if !already_paused {
            let floor = MIN_ADAPTIVE_BUDGET.min(self.settings.budget).max(1);
            s.budget = (in_window.min(s.budget) * 9 / 10).max(floor);
            let forget_at = now + window * CEILING_MEMORY_WINDOWS as i32;
            s.ceiling = Some((in_window.saturating_sub(1).max(s.budget), forget_at));
            s.last_change = Some(now);
        }
        if wait > self.settings.max_wait {
            return Err(Error::from(ApiError::ComeBackAt { until, reason }));
        }
        Ok(())
    }

    /// Resume a pause saved by an earlier run (a persisted "come back at").
    pub fn pause_until(&self, until: DateTime<Utc>, reason: WaitReason) {
        let mut s = self.state.lock().expect("governor lock");
        if s.pause.is_none_or(|(current, _)| until > current) {
            s.pause = Some((until, reason));
        }
    }

    /// The pause in force, if any, to persist before stopping.
    pub fn paused_until(&self) -> Option<(DateTime<Utc>, WaitReason)> {
        let s = self.state.lock().expect("governor lock");
        s.pause.filter(|(until, _)| *until > self.clock.now())
    }

    /// Until when a caller is waiting for a request slot (the window is
    /// spent, or a 429 paused every caller), if one is.
    pub fn waiting_until(&self) -> Option<DateTime<Utc>> {
        let s = self.state.lock().expect("governor lock");
        s.waiting_until.filter(|until| *until > self.clock.now())
    }

    /// The current (adaptive) budget per window.
    pub fn budget(&self) -> u32 {
        self.state.lock().expect("governor lock").budget
    }

    /// 429s seen, and total time callers spent waiting for a slot.
    pub fn throttle_stats(&self) -> (u64, Duration) {
        let s = self.state.lock().expect("governor lock");
        (s.throttles, s.waited)
    }

    /// The 429s put down to other traffic on the same quota.
    pub fn foreign_throttles(&self) -> u64 {
        self.state.lock().expect("governor lock").foreign_throttles
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, VirtualClock};

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn settings(budget: u32) -> GovernorSettings {
        GovernorSettings {
            budget,
            window: Duration::from_secs(30),
            max_wait: Duration::from_secs(900),
        }
    }

    #[tokio::test]
    async fn long_retry_after_is_a_typed_come_back_at_for_every_caller() {
        let clock = VirtualClock::starting_at(start());
        let g = Governor::new(settings(10), clock.clone());
        let err = g
            .throttled(Some(Duration::from_secs(7200)), WaitReason::RateLimit)
            .unwrap_err();
        let Some(&ApiError::ComeBackAt { until, reason }) = err.source_error() else {
            panic!("expected ComeBackAt, got {err}");
        };
        assert_eq!(until, start() + chrono::Duration::seconds(7200));
        assert_eq!(reason, WaitReason::RateLimit);
        // Other callers are refused at once, without sleeping through it.
        assert!(matches!(
            g.acquire().await.map_err(|e| e.come_back_at()),
            Err(Some(_))
        ));
        assert_eq!(clock.now(), start());
        assert_eq!(g.paused_until().map(|p| p.0), Some(until));
    }

    #[tokio::test]
    async fn a_caller_waiting_for_a_slot_says_until_when() {
        let clock = VirtualClock::manual(start());
        let g = Governor::new(settings(1), clock.clone());
        g.acquire().await.unwrap();
        assert_eq!(g.waiting_until(), None, "a slot was free");
        let waiting = tokio::spawn({
            let g = g.clone();
            async move { g.acquire().await.unwrap() }
        });
        while clock.sleepers() == 0 {
            tokio::task::yield_now().await;
        }
        let window_end = start() + chrono::Duration::seconds(30);
        assert_eq!(g.waiting_until(), Some(window_end));
        clock.advance(Duration::from_secs(30));
        assert_eq!(waiting.await.unwrap(), window_end);
        assert_eq!(g.waiting_until(), None, "the wait is over");
    }

    #[tokio::test]
    async fn saved_pause_is_honoured_and_expires() {
        let clock = VirtualClock::starting_at(start());
        let g = Governor::new(settings(10), clock.clone());
        g.pause_until(
            start() + chrono::Duration::seconds(60),
            WaitReason::QuotaExceeded,
        );
        g.acquire().await.unwrap();
        assert_eq!(clock.now(), start() + chrono::Duration::seconds(60));
        assert_eq!(g.paused_until(), None);
    }

    #[tokio::test]
    async fn budget_drops_once_per_storm_and_recovers() {
        let clock = VirtualClock::starting_at(start());
        let g = Governor::new(settings(20), clock.clone());
        for _ in 0..20 {
            g.acquire().await.unwrap();
        }
        g.throttled(Some(Duration::from_secs(2)), WaitReason::RateLimit)
            .unwrap();
        g.throttled(Some(Duration::from_secs(2)), WaitReason::RateLimit)
            .unwrap();
        assert_eq!(g.budget(), 18);
        clock.advance(Duration::from_secs(30 * u64::from(RECOVERY_WINDOWS) + 1));
        g.acquire().await.unwrap();
        assert_eq!(g.budget(), 19, "back to the ceiling, not past it");
    }

    #[tokio::test]
    async fn the_limit_found_is_kept_then_probed_past_after_an_hour() {
        let clock = VirtualClock::starting_at(start());
        let window = |n: u64| Duration::from_secs(30 * n);
        let g = Governor::new(settings(80), clock.clone());
        // The server allows 60: the 61st request of the window is refused.
        for _ in 0..61 {
            g.acquire().await.unwrap();
        }
        g.throttled(Some(Duration::from_secs(1)), WaitReason::RateLimit)
            .unwrap();
        assert_eq!(g.budget(), 54);
        let budget_after = |n: u64| {
            clock.advance(window(n));
            let g = &g;
            async move {
                g.acquire().await.unwrap();
                g.budget()
            }
        };
        assert_eq!(
            budget_after(3).await,
            57,
            "one request back per clean window"
        );
        assert_eq!(budget_after(3).await, 60);
        assert_eq!(budget_after(100).await, 60, "never past the limit found");
        let remembered = u64::from(CEILING_MEMORY_WINDOWS) - 107;
        assert_eq!(budget_after(remembered).await, 60);
        assert_eq!(
            budget_after(u64::from(RECOVERY_WINDOWS)).await,
            60,
            "forgotten after an hour, then probing slowly"
        );
        assert_eq!(budget_after(1).await, 61);
    }

    #[tokio::test]
    async fn a_lone_429_the_process_did_not_draw_pauses_without_lowering_the_budget() {
        let clock = VirtualClock::starting_at(start());
        let g = Governor::new(settings(90), clock.clone());
        // A restarted crawl: its predecessor's requests still count at the
        // server, this process has sent three.
        for _ in 0..3 {
            g.acquire().await.unwrap();
        }
        g.throttled(Some(Duration::from_secs(5)), WaitReason::RateLimit)
            .unwrap();
        assert_eq!(g.budget(), 90, "the budget stays");
        assert_eq!(g.foreign_throttles(), 1);
        // After the pause, the whole budget in one window.
        for _ in 0..87 {
            g.acquire().await.unwrap();
        }
        assert_eq!(clock.now(), start() + chrono::Duration::seconds(5));
        g.acquire().await.unwrap();
        assert_eq!(
            clock.now(),
            start() + chrono::Duration::seconds(30),
            "the 91st waits for the window"
        );
    }

    #[tokio::test]
    async fn a_429_soon_after_another_is_the_process_own_even_far_under_budget() {
        let clock = VirtualClock::starting_at(start());
        let g = Governor::new(settings(180), clock.clone());
        // The server allows 40, the client was told 180.
        for _ in 0..41 {
            g.acquire().await.unwrap();
        }
        g.throttled(Some(Duration::from_secs(1)), WaitReason::RateLimit)
            .unwrap();
        assert_eq!(g.budget(), 180, "a lone 429 under half the budget");
        clock.advance(Duration::from_secs(30));
        for _ in 0..41 {
            g.acquire().await.unwrap();
        }
        g.throttled(Some(Duration::from_secs(1)), WaitReason::RateLimit)
            .unwrap();
        assert_eq!(g.budget(), 36, "the second one teaches the limit");
        assert_eq!(g.foreign_throttles(), 1);
        let small = Governor::new(settings(3), clock);
        small.throttled(None, WaitReason::RateLimit).unwrap();
        small.throttled(None, WaitReason::RateLimit).unwrap();
        assert_eq!(small.budget(), 3, "never above the configured budget");
    }

    #[tokio::test]
    async fn missing_retry_after_backs_off_exponentially() {
        let clock = VirtualClock::starting_at(start());
        let g = Governor::new(settings(5), clock.clone());
        g.throttled(None, WaitReason::RateLimit).unwrap();
        assert_eq!(
            g.paused_until().unwrap().0,
            start() + chrono::Duration::seconds(1)
        );
        g.throttled(None, WaitReason::RateLimit).unwrap();
        assert_eq!(
            g.paused_until().unwrap().0,
            start() + chrono::Duration::seconds(2)
        );
    }

    #[test]
    fn one_governor_per_credential() {
        let clock: SharedClock = VirtualClock::starting_at(start());
        let a = Governor::for_credential("unit-test-cred", settings(5), clock.clone());
        let b = Governor::for_credential("unit-test-cred", settings(5), clock.clone());
        let c = Governor::for_credential("unit-test-other", settings(5), clock);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
