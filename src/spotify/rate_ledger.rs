//! A credential's rate state, the part every process using the credential
//! shares: the request slots taken in the current window, the pause a 429
//! imposed, and the budget and ceiling learned from 429s. Spotify counts
//! requests per application, whatever process sends them, so with a state
//! store the ledger lives there (`rate/<credential fingerprint>`) and a
//! process that starts or restarts picks up the window where the others
//! left it; without one it lives in the process. Its rules are plain
//! functions of the ledger and the clock; [`super::Governor`] decides when
//! to read and write it.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::WaitReason;
use crate::error::Result;
use crate::landing::SharedStore;

/// The adaptive budget never drops below this (or the configured budget, if
/// smaller).
pub const MIN_ADAPTIVE_BUDGET: u32 = 10;
/// A 429 within this many windows of the one before is never put down to
/// other traffic: two in a row mean the limit is lower than the pace kept,
/// however far under its budget that pace is.
const REPEAT_WINDOWS: i32 = 2;
/// Clean windows after which a budget with no ceiling above it grows by one
/// request.
pub const RECOVERY_WINDOWS: u32 = 10;
/// Windows without a 429 after which the learned ceiling is forgotten: an
/// hour of Spotify's 30 s windows.
pub const CEILING_MEMORY_WINDOWS: u32 = 120;
/// The first pause after a 429 that carries no `Retry-After`; doubles on
/// each consecutive one.
const DEFAULT_PAUSE: TimeDelta = TimeDelta::seconds(1);
/// The pause after `QUOTA_EXCEEDED` without `Retry-After`: quota buckets
/// refill over hours, so retrying in seconds only prolongs the lock-out.
pub const QUOTA_DEFAULT_WAIT: TimeDelta = TimeDelta::hours(1);
/// The state key prefix of the ledgers.
pub const LEDGER_PREFIX: &str = "rate/";

/// Why a caller waited for a request slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitCause {
    /// The window's budget was spent, by this process or its neighbours.
    Window,
    /// A 429 the credential's own pace drew.
    RateLimit,
    /// A 429 drawn by traffic outside the ledger (another application on
    /// the quota, a process we do not know about).
    OtherTraffic,
    /// `QUOTA_EXCEEDED`.
    Quota,
}

impl WaitCause {
    /// The label metrics use.
    pub fn name(self) -> &'static str {
        match self {
            WaitCause::Window => "window",
            WaitCause::RateLimit => "rate_limit",
            WaitCause::OtherTraffic => "other_traffic",
            WaitCause::Quota => "quota",
        }
    }

    /// In words, for reports.
    pub fn describe(self) -> &'static str {
        match self {
            WaitCause::Window => "for the window",
            WaitCause::RateLimit => "on 429s",
            WaitCause::OtherTraffic => "on 429s other traffic drew",
            WaitCause::Quota => "on the quota",
        }
    }
}

/// Slots taken by one process at one time; they count against the window
/// until `until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Taken {
    /// When they were taken (absent in ledgers written before it was kept).
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
    pub until: DateTime<Utc>,
    pub n: u32,
    pub by: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct Ceiling {
    /// One request under the window that drew the 429.
    pub limit: u32,
    pub forget_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct Pause {
    pub until: DateTime<Utc>,
    pub reason: WaitReason,
    pub cause: WaitCause,
}

/// The rules of the window, applied with one process's settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rules {
    /// The configured budget per window.
    pub budget: u32,
    pub window: TimeDelta,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Ledger {
    /// Slots still counting against the window, oldest first.
    #[serde(default)]
    pub taken: Vec<Taken>,
    /// The budget per window learned from 429s; `None` while the configured
    /// one holds.
    #[serde(default)]
    pub budget: Option<u32>,
    #[serde(default)]
    pub ceiling: Option<Ceiling>,
    /// When the budget last grew back (or was cut).
    #[serde(default)]
    pub last_change: Option<DateTime<Utc>>,
    #[serde(default)]
    pub pause: Option<Pause>,
    #[serde(default)]
    pub last_throttle: Option<DateTime<Utc>>,
    #[serde(default)]
    pub consecutive_unadvised: u32,
    /// Slots taken over the credential's life.
    #[serde(default)]
    pub requests_total: u64,
    /// Time paused over the credential's life, by cause.
    #[serde(default)]
    pub paused_secs: BTreeMap<WaitCause, f64>,
}

/// What a request for slots got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Grant {
    /// `n` slots, counting until `until`.
    Slots { n: u32, until: DateTime<Utc> },
    /// None before `until`.
    Wait {
        until: DateTime<Utc>,
        cause: WaitCause,
        reason: Option<WaitReason>,
    },
}

/// What a 429 was put down to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Throttle {
    pub until: DateTime<Utc>,
    pub cause: WaitCause,
    /// A new pause, not a reply to a request already in flight when the
    /// pause began.
    pub fresh: bool,
}

impl Ledger {
    /// The budget in force for a process with `rules`.
    pub fn budget(&self, rules: Rules) -> u32 {
        budget_in_force(self.budget, rules.budget)
    }

    /// Slots counting against the window at `now`.
    pub fn in_window(&self) -> u32 {
        self.taken.iter().map(|t| t.n).sum()
    }

    /// Slots taken in the window that ends at `now` and sent, as far as the
    /// ledger can tell: slots held past the window are left out (the server
    /// forgot them), and so is the last take of every other process while
    /// it may still be spending it (a process gives back what it did not
    /// send of a take before it takes again; the process asking gave its
    /// own back already).
    fn sent_in_window(&self, window: TimeDelta, now: DateTime<Utc>, by: &str) -> u32 {
        let mut seen: Vec<&str> = vec![by];
        let mut sent = 0;
        for t in self.taken.iter().rev() {
            let last_of_other = !seen.contains(&t.by.as_str());
            if last_of_other {
                seen.push(&t.by);
            }
            let Some(from) = t.from else {
                sent += t.n;
                continue;
            };
            let hold = t.until - from - window;
            let spending = last_of_other && now < from + hold / 2;
            if from > now - window && !spending {
                sent += t.n;
            }
        }
        sent
    }

    /// Give back the `unused` slots `by` took to count until `until`.
    pub fn give_back(&mut self, by: &str, until: DateTime<Utc>, unused: u32) {
        if let Some(at) = self
            .taken
            .iter()
            .position(|t| t.by == by && t.until == until)
        {
            let t = &mut self.taken[at];
            t.n = t.n.saturating_sub(unused);
            if t.n == 0 {
                self.taken.remove(at);
            }
        }
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        self.taken.retain(|t| t.until > now);
        if self.pause.is_some_and(|p| p.until <= now) {
            self.pause = None;
        }
    }

    /// Take up to `want` slots for `by`, counting for `hold` past the
    /// window (the time the taker may spend sending them), or say how long
    /// to wait.
    pub fn take(
        &mut self,
        rules: Rules,
        now: DateTime<Utc>,
        want: u32,
        hold: TimeDelta,
        by: &str,
    ) -> Grant {
        self.prune(now);
        if let Some(p) = self.pause {
            return Grant::Wait {
                until: p.until,
                cause: p.cause,
                reason: Some(p.reason),
            };
        }
        self.recover(rules, now);
        let budget = self.budget(rules);
        let used = self.in_window();
        if used >= budget {
            let until = self.taken.iter().map(|t| t.until).min().unwrap_or(now);
            return Grant::Wait {
                until,
                cause: WaitCause::Window,
                reason: None,
            };
        }
        let n = want.max(1).min(budget - used);
        let until = now + rules.window + hold;
        self.taken.push(Taken {
            from: Some(now),
            until,
            n,
            by: by.to_string(),
        });
        self.requests_total += u64::from(n);
        Grant::Slots { n, until }
    }

    /// Below a learned ceiling the budget halves its distance to it every
    /// clean window; once the ceiling is forgotten it probes upwards one
    /// request per [`RECOVERY_WINDOWS`] clean windows.
    fn recover(&mut self, rules: Rules, now: DateTime<Utc>) {
        let Some(mut changed) = self.last_change else {
            return;
        };
        if let Some(c) = self.ceiling
            && now >= c.forget_at
        {
            // Probing starts from here, not from the last step below it.
            self.ceiling = None;
            changed = changed.max(c.forget_at);
            self.last_change = Some(changed);
        }
        let limit = self
            .ceiling
            .map_or(rules.budget, |c| c.limit.min(rules.budget));
        let mut budget = self.budget(rules);
        if budget >= limit {
            return;
        }
        let step = rules.window
            * if self.ceiling.is_some() {
                1
            } else {
                RECOVERY_WINDOWS as i32
            };
        let steps = (now - changed).num_milliseconds() / step.num_milliseconds().max(1);
        if steps <= 0 {
            return;
        }
        for _ in 0..steps.min(64) {
            let gap = limit - budget;
            budget += if self.ceiling.is_some() {
                gap.div_ceil(2)
            } else {
                1
            };
            if budget >= limit {
                break;
            }
        }
        self.budget = Some(budget.min(limit));
        self.last_change = Some(changed + step * steps.min(i64::from(i32::MAX)) as i32);
    }

    /// Record a 429 that `by` drew at `now`. A lone 429 while the window
    /// held under half the budget was drawn by other traffic on the quota:
    /// it pauses, and teaches nothing. Otherwise the credential found the
    /// limit: the budget drops to 90% of what the window held, as far as
    /// the ledger knows it was sent, and the ceiling is one request under
    /// that. A quota 429 says nothing about the window.
    pub fn throttled(
        &mut self,
        rules: Rules,
        now: DateTime<Utc>,
        retry_after: Option<TimeDelta>,
        reason: WaitReason,
        by: &str,
    ) -> Throttle {
        self.prune(now);
        let already = self.pause;
        let wait = match (retry_after, reason) {
            (Some(wait), _) => {
                self.consecutive_unadvised = 0;
                wait
            }
            (None, WaitReason::QuotaExceeded) => QUOTA_DEFAULT_WAIT,
            (None, WaitReason::RateLimit) => {
                let doubling = 2i32.saturating_pow(self.consecutive_unadvised.min(16));
                self.consecutive_unadvised += 1;
                DEFAULT_PAUSE * doubling
            }
        };
        let until = now
            .checked_add_signed(wait)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let in_window = self.in_window();
        let budget = self.budget(rules);
        let lone = self
            .last_throttle
            .is_none_or(|last| now - last > rules.window * REPEAT_WINDOWS);
        self.last_throttle = Some(now);
        let cause = match already {
            // Replies to requests already in flight carry no news.
            Some(p) => p.cause,
            None if reason == WaitReason::QuotaExceeded => WaitCause::Quota,
            None if lone && in_window * 2 < budget => WaitCause::OtherTraffic,
            None => {
                let sent = self.sent_in_window(rules.window, now, by);
                let floor = MIN_ADAPTIVE_BUDGET.min(rules.budget).max(1);
                let cut = (sent.min(budget) * 9 / 10).max(floor);
                self.budget = Some(cut);
                self.ceiling = Some(Ceiling {
                    limit: sent.saturating_sub(1).max(cut),
                    forget_at: now + rules.window * CEILING_MEMORY_WINDOWS as i32,
                });
                self.last_change = Some(now);
                WaitCause::RateLimit
            }
        };
        let from = already.map_or(now, |p| p.until.max(now));
        if until > from {
            *self.paused_secs.entry(cause).or_default() += (until - from).as_seconds_f64();
            self.pause = Some(Pause {
                until,
                reason,
                cause,
            });
        }
        Throttle {
            until: self.pause.map_or(until, |p| p.until),
            cause,
            fresh: already.is_none(),
        }
    }

    /// The pause in force at `now`, if any.
    pub fn pause_in_force(&mut self, now: DateTime<Utc>) -> Option<Pause> {
        self.prune(now);
        self.pause
    }
}

/// The budget per window in force: the learned one, never above the
/// configured one, and at least one request.
fn budget_in_force(learned: Option<u32>, configured: u32) -> u32 {
    learned.unwrap_or(configured).min(configured).max(1)
}

/// The state key of the ledger of `credential` (a fingerprint: the key
/// names no client id).
pub fn ledger_key(credential: &str) -> String {
    let digest = Sha256::digest(credential.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{LEDGER_PREFIX}{hex}")
}

/// The ledger stored under `key` and its version (0 when there is none: a
/// fresh ledger). One that cannot be read (edited by hand, written by
/// another version of soundlake) counts as fresh, with a warning, rather
/// than blocking every crawl of the credential: the next write replaces it.
pub(super) async fn load(store: &SharedStore, key: &str) -> Result<(u64, Ledger)> {
    let Some((version, value)) = store.get_versioned(key).await? else {
        return Ok((0, Ledger::default()));
    };
    match serde_json::from_value::<Ledger>(value) {
        Ok(ledger) => Ok((version, ledger)),
        Err(e) => {
            tracing::warn!(
                key,
                error = %e,
                "the rate ledger in the state store is unreadable; starting a fresh one"
            );
            Ok((version, Ledger::default()))
        }
    }
}

/// Write `ledger` as the successor of version `read`; `false` when another
/// process wrote first.
pub(super) async fn swap(
    store: &SharedStore,
    key: &str,
    read: u64,
    ledger: &Ledger,
) -> Result<bool> {
    store.put_versioned(key, read + 1, &to_value(ledger)).await
}

fn to_value(ledger: &Ledger) -> Value {
    serde_json::to_value(ledger).expect("a ledger is plain data")
}

/// One credential's shared rate state as metrics show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CredentialRate {
    /// The ledger's fingerprint (not the client id).
    pub credential: String,
    /// Slots counting against the current window, all processes together.
    pub in_window: u32,
    /// The budget learned from 429s, if one was.
    pub learned_budget: Option<u32>,
    pub requests_total: u64,
    pub paused_secs: BTreeMap<WaitCause, f64>,
    pub paused_until: Option<DateTime<Utc>>,
}

impl CredentialRate {
    /// The budget per window in force for a process configured with
    /// `configured`.
    pub fn budget(&self, configured: u32) -> u32 {
        budget_in_force(self.learned_budget, configured)
    }
}

/// Every credential's shared rate state in `store`, at `now`.
pub async fn credential_rates(
    store: &SharedStore,
    now: DateTime<Utc>,
) -> Result<Vec<CredentialRate>> {
    let mut out = Vec::new();
    for (key, _, value) in store.versioned_with_prefix(LEDGER_PREFIX).await? {
        let Ok(mut ledger) = serde_json::from_value::<Ledger>(value) else {
            continue;
        };
        ledger.prune(now);
        out.push(CredentialRate {
            credential: key[LEDGER_PREFIX.len()..].to_string(),
            in_window: ledger.in_window(),
            learned_budget: ledger.budget,
            requests_total: ledger.requests_total,
            paused_secs: ledger.paused_secs,
            paused_until: ledger.pause.map(|p| p.until),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    const RULES: Rules = Rules {
        budget: 10,
        window: TimeDelta::seconds(30),
    };

    #[test]
    fn every_taker_counts_and_unsent_slots_come_back() {
        let (now, hold) = (start(), TimeDelta::seconds(1));
        let mut ledger = Ledger::default();
        let until = now + RULES.window + hold;
        assert_eq!(
            ledger.take(RULES, now, 4, hold, "a"),
            Grant::Slots { n: 4, until }
        );
        assert_eq!(
            ledger.take(RULES, now, 4, hold, "b"),
            Grant::Slots { n: 4, until }
        );
        assert_eq!(
            ledger.take(RULES, now, 4, hold, "c"),
            Grant::Slots { n: 2, until },
            "what is left of the budget"
        );
        assert_eq!(
            ledger.take(RULES, now, 4, hold, "c"),
            Grant::Wait {
                until,
                cause: WaitCause::Window,
                reason: None
            }
        );
        ledger.give_back("a", until, 3);
        ledger.give_back("a", now, 3);
        assert_eq!(ledger.in_window(), 7, "only a's own entry, once");
        assert_eq!(
            ledger.take(RULES, now, 4, hold, "c"),
            Grant::Slots { n: 3, until }
        );
        assert_eq!(ledger.requests_total, 13);
        assert_eq!(
            ledger.take(RULES, until, 4, hold, "a"),
            Grant::Slots {
                n: 4,
                until: until + RULES.window + hold
            },
            "the window moved on"
        );
    }

    /// The limit learned from a 429 counts what reached the server: not the
    /// slots held past the window, nor the last take of another process
    /// still spending it.
    #[test]
    fn a_429_learns_the_limit_from_the_slots_sent_in_the_window() {
        let rules = Rules {
            budget: 100,
            window: TimeDelta::seconds(30),
        };
        let hold = TimeDelta::seconds(1);
        let at = |ms: i64| start() + TimeDelta::milliseconds(ms);
        let mut ledger = Ledger::default();
        // Out of the window by now, still held by the ledger.
        ledger.take(rules, at(0), 30, hold, "a");
        // a's last take, spent by now.
        ledger.take(rules, at(29_900), 10, hold, "a");
        // Taken before b took again: sent.
        ledger.take(rules, at(30_350), 10, hold, "b");
        ledger.take(rules, at(30_400), 30, hold, "c");
        // b's last take, still being spent.
        ledger.take(rules, at(30_450), 20, hold, "b");
        assert_eq!(ledger.in_window(), 100);
        let throttle = ledger.throttled(rules, at(30_500), None, WaitReason::RateLimit, "c");
        assert_eq!(throttle.cause, WaitCause::RateLimit);
        assert_eq!(ledger.budget, Some(45), "90% of the 50 sent");
        assert_eq!(ledger.ceiling.map(|c| c.limit), Some(49));
    }

    #[test]
    fn a_ledger_round_trips_through_json() {
        let mut ledger = Ledger::default();
        ledger.take(RULES, start(), 3, TimeDelta::seconds(1), "a");
        ledger.throttled(RULES, start(), None, WaitReason::RateLimit, "a");
        let json = to_value(&ledger);
        assert_eq!(serde_json::from_value::<Ledger>(json).unwrap(), ledger);
    }

    #[test]
    fn the_key_names_no_credential() {
        let key = ledger_key("https://accounts.spotify.com/api/token\u{0}my-client-id");
        assert!(key.starts_with(LEDGER_PREFIX) && !key.contains("my-client-id"));
        assert_eq!(key.len(), LEDGER_PREFIX.len() + 16);
    }
}
