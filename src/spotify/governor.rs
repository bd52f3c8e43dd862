//! The rate governor: one per credential in a process, shared by every
//! caller in it (invariant 3 of the design), over the credential's
//! [ledger](super::rate_ledger), which every process using the credential
//! shares when it lives in the state store.
//!
//! Spotify counts requests over a rolling 30-second window and publishes no
//! numbers, so the ledger grants at most `budget` requests in any window of
//! `window` length, whichever process sends them. With the ledger in the
//! store a process takes slots a few at a time and spends them from memory.
//! The slots count for a *hold* longer than the window; the process sends
//! them within the first half of the hold, counted from before it read the
//! ledger, so a request that takes less than the other half to reach the
//! server is forgotten by the ledger after the server forgets it. The hold
//! is a thirtieth of the window, or four times the time a visit to the
//! store takes when the store is slower (a busy disk, a distant MongoDB). A
//! visit takes a thirtieth of the budget, so what another process may hold
//! unsent when a 429 comes is small. Slots that come back from a visit too
//! late to send, and slots not sent in time, are given back on the next
//! visit. A 429 pauses every caller of every
//! process until `Retry-After` has passed; how it teaches the budget is
//! [`Ledger::throttled`]. A pause longer than `max_wait` is not slept
//! through: callers get [`ApiError::ComeBackAt`] so the crawl can
//! checkpoint and stop, and the next run finds the pause in the ledger.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::rate_ledger::{self, Grant, Ledger, Rules, WaitCause};
use super::{ApiError, WaitReason};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::landing::SharedStore;

/// With the ledger in the store, slots count for at least this fraction of
/// the window past it.
const VISITS_PER_WINDOW: u32 = 30;
/// With the ledger in the store, slots count past the window for at least
/// this many times the time a visit to the store takes.
const HOLD_PER_VISIT_TIME: i32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GovernorSettings {
    pub budget: u32,
    pub window: Duration,
    pub max_wait: Duration,
}

/// Where a credential's ledger lives.
#[derive(Debug, Clone)]
pub enum RateScope {
    /// In this process: nothing else's requests are known.
    Process,
    /// In the state store, shared by every process that uses it.
    Store(SharedStore),
}

#[derive(Debug)]
enum Home {
    Process(Mutex<Ledger>),
    Store { store: SharedStore, key: String },
}

#[derive(Debug)]
pub struct Governor {
    settings: GovernorSettings,
    clock: SharedClock,
    home: Home,
    /// This governor's name in the ledger.
    owner: String,
    /// One visit to the ledger at a time per process.
    visit: tokio::sync::Mutex<()>,
    local: Mutex<Local>,
}

/// Slots taken and not sent yet.
#[derive(Debug, Clone, Copy)]
struct Tickets {
    left: u32,
    usable_until: DateTime<Utc>,
    /// The `until` of their ledger entry, to give them back by.
    entry_until: DateTime<Utc>,
}

#[derive(Debug)]
struct Local {
    tickets: Option<Tickets>,
    /// The budget the ledger last showed.
    budget: u32,
    throttles: u64,
    foreign_throttles: u64,
    waited: BTreeMap<WaitCause, Duration>,
    /// How far each cause's wait is counted already: callers waiting at
    /// once wait the same time.
    counted_until: BTreeMap<WaitCause, DateTime<Utc>>,
    waiting_until: Option<DateTime<Utc>>,
    /// How long a visit to the ledger in the store takes: the slowest
    /// recent one, forgotten by an eighth per visit.
    visit_time: TimeDelta,
}

/// What a governor saw, for run reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GovernorStats {
    /// 429s seen.
    pub throttles: u64,
    /// Of those, the ones drawn by other traffic on the quota.
    pub foreign_throttles: u64,
    /// Time callers spent waiting for a slot, by cause (wall time: callers
    /// waiting at once count once).
    pub waited: BTreeMap<WaitCause, Duration>,
}

impl GovernorStats {
    /// What happened after `earlier`, a snapshot of the same governor.
    pub fn since(&self, earlier: &GovernorStats) -> GovernorStats {
        GovernorStats {
            throttles: self.throttles - earlier.throttles,
            foreign_throttles: self.foreign_throttles - earlier.foreign_throttles,
            waited: self
                .waited
                .iter()
                .map(|(cause, total)| {
                    let before = earlier.waited.get(cause).copied().unwrap_or_default();
                    (*cause, total.saturating_sub(before))
                })
                .filter(|(_, waited)| !waited.is_zero())
                .collect(),
        }
    }
}

enum Visit {
    Granted(DateTime<Utc>),
    /// Slots came back from the store too late to send; visit again.
    TooLate,
    Wait {
        until: DateTime<Utc>,
        cause: WaitCause,
        reason: Option<WaitReason>,
    },
}

impl Governor {
    pub fn new(settings: GovernorSettings, clock: SharedClock, scope: RateScope) -> Arc<Governor> {
        Self::with_key(&rate_ledger::ledger_key(""), settings, clock, scope)
    }

    fn with_key(
        key: &str,
        settings: GovernorSettings,
        clock: SharedClock,
        scope: RateScope,
    ) -> Arc<Governor> {
        static GOVERNORS: AtomicU64 = AtomicU64::new(0);
        let n = GOVERNORS.fetch_add(1, Ordering::Relaxed);
        let home = match scope {
            RateScope::Process => Home::Process(Mutex::new(Ledger::default())),
            RateScope::Store(store) => Home::Store {
                store,
                key: key.to_string(),
            },
        };
        Arc::new(Governor {
            home,
            owner: crate::landing::lease::holder(&format!("governor-{n}")),
            visit: tokio::sync::Mutex::new(()),
            local: Mutex::new(Local {
                tickets: None,
                budget: settings.budget.max(1),
                throttles: 0,
                foreign_throttles: 0,
                waited: BTreeMap::new(),
                counted_until: BTreeMap::new(),
                waiting_until: None,
                visit_time: TimeDelta::zero(),
            }),
            settings,
            clock,
        })
    }

    /// The governor of `credential` over `scope` in this process, created
    /// on first use. Every client built for the same credential shares it.
    pub fn for_credential(
        credential: &str,
        settings: GovernorSettings,
        clock: SharedClock,
        scope: RateScope,
    ) -> Arc<Governor> {
        static REGISTRY: OnceLock<Mutex<HashMap<String, Weak<Governor>>>> = OnceLock::new();
        let scoped = match &scope {
            RateScope::Process => format!("{credential}\u{0}process"),
            RateScope::Store(store) => format!("{credential}\u{0}{}", store.describe()),
        };
        let mut registry = REGISTRY
            .get_or_init(Default::default)
            .lock()
            .expect("governor registry lock");
        registry.retain(|_, g| g.strong_count() > 0);
        if let Some(existing) = registry.get(&scoped).and_then(Weak::upgrade) {
            return existing;
        }
        let key = rate_ledger::ledger_key(credential);
        let governor = Governor::with_key(&key, settings, clock, scope);
        registry.insert(scoped, Arc::downgrade(&governor));
        governor
    }

    pub fn settings(&self) -> GovernorSettings {
        self.settings
    }

    fn rules(&self) -> Rules {
        Rules {
            budget: self.settings.budget.max(1),
            window: TimeDelta::from_std(self.settings.window).expect("window fits"),
        }
    }

    fn local(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local.lock().expect("governor lock")
    }

    /// Wait for a request slot; the instant the slot was granted (the one
    /// the window budget counts). Fails with [`ApiError::ComeBackAt`] when a
    /// pause longer than `max_wait` is in force.
    pub async fn acquire(&self) -> Result<DateTime<Utc>> {
        loop {
            let now = self.clock.now();
            if self.take_ticket(now) {
                return Ok(now);
            }
            match self.visit().await? {
                Visit::Granted(at) => return Ok(at),
                Visit::TooLate => {}
                Visit::Wait {
                    until,
                    cause,
                    reason,
                } => {
                    let now = self.clock.now();
                    if let Some(reason) = reason
                        && self.beyond_max_wait(now, until)
                    {
                        return Err(Error::from(ApiError::ComeBackAt { until, reason }));
                    }
                    self.note_wait(now, until, cause);
                    self.clock.sleep_until(until).await;
                }
            }
        }
    }

    /// Spend one of the slots taken earlier, if one is left and usable.
    fn take_ticket(&self, now: DateTime<Utc>) -> bool {
        let mut local = self.local();
        match &mut local.tickets {
            Some(t) if t.left > 0 && now <= t.usable_until => {
                t.left -= 1;
                local.waiting_until = None;
                true
            }
            _ => false,
        }
    }

    /// Take slots from the ledger (giving back what is left of the last
    /// ones), or learn how long to wait.
    async fn visit(&self) -> Result<Visit> {
        let _visit = self.visit.lock().await;
        let now = self.clock.now();
        // Another caller may have taken slots while this one waited its turn.
        if self.take_ticket(now) {
            return Ok(Visit::Granted(now));
        }
        let rules = self.rules();
        let (stale, visit_time) = {
            let local = self.local();
            (local.tickets, local.visit_time)
        };
        // Only a ledger in the store takes time to visit and slots to hold.
        let in_store = matches!(self.home, Home::Store { .. });
        let hold = if in_store {
            hold(rules.window, visit_time)
        } else {
            TimeDelta::zero()
        };
        let (grant, budget) = self
            .with_ledger(|ledger| {
                let want = if in_store {
                    ledger.budget(rules).div_ceil(VISITS_PER_WINDOW)
                } else {
                    1
                };
                let gave_back = self.give_back(ledger, stale);
                let grant = ledger.take(rules, now, want, hold, &self.owner);
                let changed = gave_back || matches!(grant, Grant::Slots { .. });
                (grant, changed)
            })
            .await?;
        let back = self.clock.now();
        let mut local = self.local();
        local.budget = budget;
        if in_store {
            local.visit_time = (back - now).max(local.visit_time * 7 / 8);
        }
        Ok(match grant {
            Grant::Slots { n, until } => {
                // Sent within the first half of the hold, a request reaches
                // the server before its slot leaves the ledger if it takes
                // less than the other half to get there.
                let usable_until = now + hold / 2;
                if in_store && back > usable_until {
                    local.tickets = Some(Tickets {
                        left: n,
                        usable_until,
                        entry_until: until,
                    });
                    return Ok(Visit::TooLate);
                }
                local.tickets = Some(Tickets {
                    left: n - 1,
                    usable_until,
                    entry_until: until,
                });
                local.waiting_until = None;
                Visit::Granted(now)
            }
            Grant::Wait {
                until,
                cause,
                reason,
            } => {
                local.tickets = None;
                Visit::Wait {
                    until,
                    cause,
                    reason,
                }
            }
        })
    }

    /// Run `change` on the ledger and keep what it did when it says it
    /// changed something; with the ledger in the store, read, change and
    /// swap until no other process wrote in between. Returns what `change`
    /// returned and the budget in force after it.
    async fn with_ledger<T>(
        &self,
        mut change: impl FnMut(&mut Ledger) -> (T, bool),
    ) -> Result<(T, u32)> {
        let rules = self.rules();
        match &self.home {
            Home::Process(ledger) => {
                let mut ledger = ledger.lock().expect("ledger lock");
                let (out, _) = change(&mut ledger);
                Ok((out, ledger.budget(rules)))
            }
            Home::Store { store, key } => loop {
                let (version, mut ledger) = rate_ledger::load(store, key).await?;
                let (out, changed) = change(&mut ledger);
                if !changed || rate_ledger::swap(store, key, version, &ledger).await? {
                    return Ok((out, ledger.budget(rules)));
                }
            },
        }
    }

    fn note_wait(&self, now: DateTime<Utc>, until: DateTime<Utc>, cause: WaitCause) {
        let mut local = self.local();
        local.waiting_until = Some(until);
        let from = local.counted_until.get(&cause).map_or(now, |c| now.max(*c));
        if until > from {
            *local.waited.entry(cause).or_default() += (until - from).to_std().unwrap_or_default();
            local.counted_until.insert(cause, until);
        }
    }

    /// Record a 429. Pauses every caller of the credential until
    /// `retry_after` has passed (or a doubling default when the header is
    /// missing), giving back the slots this process had not sent. Returns
    /// [`ApiError::ComeBackAt`] when the pause exceeds `max_wait`.
    pub async fn throttled(&self, retry_after: Option<Duration>, reason: WaitReason) -> Result<()> {
        let _visit = self.visit.lock().await;
        let now = self.clock.now();
        let rules = self.rules();
        let retry_after = retry_after.map(|d| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX));
        let unsent = self.local().tickets.take();
        let (throttle, budget) = self
            .with_ledger(|ledger| {
                self.give_back(ledger, unsent);
                (
                    ledger.throttled(rules, now, retry_after, reason, &self.owner),
                    true,
                )
            })
            .await?;
        {
            let mut local = self.local();
            local.budget = budget;
            local.throttles += 1;
            if throttle.fresh && throttle.cause == WaitCause::OtherTraffic {
                local.foreign_throttles += 1;
                tracing::info!(
                    budget,
                    "429 drawn by other traffic on the quota; pausing, keeping the budget"
                );
            }
        }
        let until = throttle.until;
        if self.beyond_max_wait(now, until) {
            return Err(Error::from(ApiError::ComeBackAt { until, reason }));
        }
        Ok(())
    }

    /// Give back to `ledger` the slots of `tickets` not sent yet; whether
    /// there were any.
    fn give_back(&self, ledger: &mut Ledger, tickets: Option<Tickets>) -> bool {
        let Some(t) = tickets.filter(|t| t.left > 0) else {
            return false;
        };
        ledger.give_back(&self.owner, t.entry_until, t.left);
        true
    }

    /// Whether a wait from `now` until `until` is longer than callers sleep
    /// through.
    fn beyond_max_wait(&self, now: DateTime<Utc>, until: DateTime<Utc>) -> bool {
        (until - now).to_std().unwrap_or_default() > self.settings.max_wait
    }

    /// The pause in force for the credential, if any (a 429's, perhaps
    /// drawn by another process or an earlier run).
    pub async fn pause_in_force(&self) -> Result<Option<(DateTime<Utc>, WaitReason)>> {
        let now = self.clock.now();
        let (pause, _) = self
            .with_ledger(|ledger| (ledger.pause_in_force(now), false))
            .await?;
        Ok(pause.map(|p| (p.until, p.reason)))
    }

    /// The pause in force for the credential when it is longer than
    /// callers sleep through: a run has nothing to do until it ends.
    pub async fn long_pause(&self) -> Result<Option<(DateTime<Utc>, WaitReason)>> {
        let now = self.clock.now();
        Ok(self
            .pause_in_force()
            .await?
            .filter(|(until, _)| self.beyond_max_wait(now, *until)))
    }

    /// Until when a caller is waiting for a request slot (the window is
    /// spent, or a 429 paused every caller), if one is.
    pub fn waiting_until(&self) -> Option<DateTime<Utc>> {
        let now = self.clock.now();
        self.local().waiting_until.filter(|until| *until > now)
    }

    /// The budget per window the ledger last showed (learned, or configured).
    pub fn budget(&self) -> u32 {
        self.local().budget
    }

    pub fn stats(&self) -> GovernorStats {
        let local = self.local();
        GovernorStats {
            throttles: local.throttles,
            foreign_throttles: local.foreign_throttles,
            waited: local.waited.clone(),
        }
    }
}

/// How long past the window slots taken from the store count: a thirtieth
/// of the window, or [`HOLD_PER_VISIT_TIME`] times a visit to the store
/// when that is longer, and never more than a quarter of the window.
fn hold(window: TimeDelta, visit_time: TimeDelta) -> TimeDelta {
    (window / VISITS_PER_WINDOW as i32)
        .max(visit_time * HOLD_PER_VISIT_TIME)
        .min(window / 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, VirtualClock};
    use crate::spotify::rate_ledger::{CEILING_MEMORY_WINDOWS, RECOVERY_WINDOWS};

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
        let g = Governor::new(settings(10), clock.clone(), RateScope::Process);
        let err = g
            .throttled(Some(Duration::from_secs(7200)), WaitReason::RateLimit)
            .await
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
        assert_eq!(g.pause_in_force().await.unwrap().map(|p| p.0), Some(until));
    }

    #[tokio::test]
    async fn a_caller_waiting_for_a_slot_says_until_when() {
        let clock = VirtualClock::manual(start());
        let g = Governor::new(settings(1), clock.clone(), RateScope::Process);
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
    async fn a_quota_pause_is_waited_out_and_teaches_nothing_about_the_window() {
        let clock = VirtualClock::starting_at(start());
        let g = Governor::new(settings(10), clock.clone(), RateScope::Process);
        for _ in 0..10 {
            g.acquire().await.unwrap();
        }
        g.throttled(Some(Duration::from_secs(60)), WaitReason::QuotaExceeded)
            .await
            .unwrap();
        let until = start() + chrono::Duration::seconds(60);
        assert_eq!(
            g.pause_in_force().await.unwrap(),
            Some((until, WaitReason::QuotaExceeded))
        );
        g.acquire().await.unwrap();
        assert_eq!(clock.now(), until);
        assert_eq!(g.pause_in_force().await.unwrap(), None);
        assert_eq!(g.budget(), 10, "the budget stays");
        assert_eq!(
            g.stats().waited,
            BTreeMap::from([(WaitCause::Quota, Duration::from_secs(60))])
        );
    }

    #[tokio::test]
    async fn budget_drops_once_per_storm_and_recovers() {
        let clock = VirtualClock::starting_at(start());
        let g = Governor::new(settings(20), clock.clone(), RateScope::Process);
        for _ in 0..20 {
            g.acquire().await.unwrap();
        }
        g.throttled(Some(Duration::from_secs(2)), WaitReason::RateLimit)
            .await
            .unwrap();
        g.throttled(Some(Duration::from_secs(2)), WaitReason::RateLimit)
            .await
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
        let g = Governor::new(settings(80), clock.clone(), RateScope::Process);
        // The server allows 60: the 61st request of the window is refused.
        for _ in 0..61 {
            g.acquire().await.unwrap();
        }
        g.throttled(Some(Duration::from_secs(1)), WaitReason::RateLimit)
            .await
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
            budget_after(1).await,
            57,
            "half the way back per clean window"
        );
        assert_eq!(budget_after(1).await, 59);
        assert_eq!(budget_after(1).await, 60);
        assert_eq!(budget_after(100).await, 60, "never past the limit found");
        let remembered = u64::from(CEILING_MEMORY_WINDOWS) - 104;
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
        let g = Governor::new(settings(90), clock.clone(), RateScope::Process);
        // A restarted crawl: its predecessor's requests still count at the
        // server, this process has sent three.
        for _ in 0..3 {
            g.acquire().await.unwrap();
        }
        g.throttled(Some(Duration::from_secs(5)), WaitReason::RateLimit)
            .await
            .unwrap();
        assert_eq!(g.budget(), 90, "the budget stays");
        assert_eq!(g.stats().foreign_throttles, 1);
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
        let g = Governor::new(settings(180), clock.clone(), RateScope::Process);
        // The server allows 40, the client was told 180.
        for _ in 0..41 {
            g.acquire().await.unwrap();
        }
        g.throttled(Some(Duration::from_secs(1)), WaitReason::RateLimit)
            .await
            .unwrap();
        assert_eq!(g.budget(), 180, "a lone 429 under half the budget");
        clock.advance(Duration::from_secs(30));
        for _ in 0..41 {
            g.acquire().await.unwrap();
        }
        g.throttled(Some(Duration::from_secs(1)), WaitReason::RateLimit)
            .await
            .unwrap();
        assert_eq!(g.budget(), 36, "the second one teaches the limit");
        assert_eq!(g.stats().foreign_throttles, 1);
        let small = Governor::new(settings(3), clock, RateScope::Process);
        small.throttled(None, WaitReason::RateLimit).await.unwrap();
        small.throttled(None, WaitReason::RateLimit).await.unwrap();
        assert_eq!(small.budget(), 3, "never above the configured budget");
    }

    #[tokio::test]
    async fn missing_retry_after_backs_off_exponentially() {
        let clock = VirtualClock::starting_at(start());
        let g = Governor::new(settings(5), clock.clone(), RateScope::Process);
        g.throttled(None, WaitReason::RateLimit).await.unwrap();
        assert_eq!(
            g.pause_in_force().await.unwrap().unwrap().0,
            start() + chrono::Duration::seconds(1)
        );
        g.throttled(None, WaitReason::RateLimit).await.unwrap();
        assert_eq!(
            g.pause_in_force().await.unwrap().unwrap().0,
            start() + chrono::Duration::seconds(2)
        );
    }

    /// The virtual clock, moved on by `per_read` every time it is read: a
    /// process whose every step, visits to the store among them, is slow.
    #[derive(Debug)]
    struct SlowReads {
        clock: Arc<VirtualClock>,
        per_read: Duration,
    }

    impl Clock for SlowReads {
        fn now(&self) -> DateTime<Utc> {
            self.clock.advance(self.per_read);
            self.clock.now()
        }

        fn sleep(&self, duration: Duration) -> crate::clock::Sleep<'_> {
            self.clock.sleep(duration)
        }
    }

    /// A visit slower than half the hold hands out no slot (the request
    /// would reach the server late enough to outlive its slot in the
    /// ledger); the hold grows to the visits' time and the slots after it
    /// are sent in time.
    #[tokio::test]
    async fn slots_from_a_slow_store_are_sent_before_the_ledger_forgets_them() {
        let dir = tempfile::tempdir().unwrap();
        let virtual_clock = VirtualClock::starting_at(start());
        let url = format!("embedded://{}/state.db", dir.path().display());
        let store = crate::landing::open(&url, virtual_clock.clone())
            .await
            .unwrap();
        let settings = GovernorSettings {
            budget: 100,
            window: Duration::from_secs(3),
            max_wait: Duration::from_secs(900),
        };
        // A thirtieth of the window is 100 ms: reads 120 ms apart make the
        // first visit come back after the whole of it.
        let per_read = Duration::from_millis(120);
        let clock = Arc::new(SlowReads {
            clock: virtual_clock.clone(),
            per_read,
        });
        let g = Governor::new(settings, clock, RateScope::Store(store.clone()));
        let window = TimeDelta::from_std(settings.window).unwrap();
        for request in 0..20 {
            g.acquire().await.unwrap();
            let sent = virtual_clock.now();
            let (_, ledger) = rate_ledger::load(&store, &rate_ledger::ledger_key(""))
                .await
                .unwrap();
            let counted_until = ledger.taken.iter().map(|t| t.until).max().unwrap();
            assert!(
                counted_until > sent + window,
                "request {request}: sent {sent}, counted until {counted_until}"
            );
        }
        let visit_time = g.local().visit_time;
        assert!(
            visit_time >= TimeDelta::from_std(per_read).unwrap(),
            "visits take {visit_time}"
        );
    }

    #[test]
    fn the_hold_grows_with_the_time_a_visit_takes() {
        let window = TimeDelta::seconds(30);
        assert_eq!(hold(window, TimeDelta::zero()), TimeDelta::seconds(1));
        let slow = TimeDelta::milliseconds(500);
        assert_eq!(hold(window, slow), TimeDelta::seconds(2));
        // A store slower than a sixteenth of the window: a quarter at most.
        let very_slow = TimeDelta::seconds(4);
        assert_eq!(hold(window, very_slow), TimeDelta::milliseconds(7500));
    }

    #[test]
    fn one_governor_per_credential() {
        let clock: SharedClock = VirtualClock::starting_at(start());
        let governor = |credential| {
            Governor::for_credential(credential, settings(5), clock.clone(), RateScope::Process)
        };
        let (a, b, c) = (
            governor("unit-test-cred"),
            governor("unit-test-cred"),
            governor("unit-test-other"),
        );
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
