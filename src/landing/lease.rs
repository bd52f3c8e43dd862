//! Locks held by runs of this program. A lock's holder names the run, the
//! host and the process (`<run>@<host>:<pid>`), so a run that finds the
//! lock held by a process of its own host that no longer exists (killed,
//! crashed) takes it over at once instead of waiting for the lease to end.

use chrono::{DateTime, TimeDelta, Utc};

use super::SharedStore;
use crate::error::{Error, Result};

/// The holder name for `run_id` in this process.
pub fn holder(run_id: &str) -> String {
    format!("{run_id}@{}:{}", hostname(), std::process::id())
}

/// Take or renew `name` for `holder` until `now + lease`; `false` when a
/// live holder has it.
pub async fn acquire(
    store: &SharedStore,
    name: &str,
    holder: &str,
    now: DateTime<Utc>,
    lease: TimeDelta,
) -> Result<bool> {
    if store.try_lock(name, holder, now, now + lease).await? {
        return Ok(true);
    }
    match store.lock_holder(name).await? {
        Some(current) if died_here(&current) => {
            tracing::warn!(lock = name, holder = %current, "taking over a lock whose process is gone");
            store.unlock(name, &current).await?;
            store.try_lock(name, holder, now, now + lease).await
        }
        _ => Ok(false),
    }
}

/// Take or renew `name` for `holder`, or fail with who to wait for: what a
/// job that writes one table at a time calls before and during its work.
pub async fn hold(
    store: &SharedStore,
    name: &str,
    holder: &str,
    now: DateTime<Utc>,
    lease: TimeDelta,
) -> Result<()> {
    if acquire(store, name, holder, now, lease).await? {
        return Ok(());
    }
    Err(Error::Store {
        store: store.describe(),
        problem: format!("another run is writing {name} (it holds the lock)"),
        fix: format!(
            "wait for it to finish; if it died on another host, its lock lapses {} minutes \
             after it last renewed it",
            lease.num_minutes()
        ),
    })
}

/// Hold `name` for run `run_id` while `work` runs, then release it; the
/// work's error wins over a failure to release. The work gets the holder
/// name (see [`holder`]), to renew the lock with on long work.
pub async fn while_held<T>(
    store: &SharedStore,
    name: &str,
    run_id: &str,
    now: DateTime<Utc>,
    lease: TimeDelta,
    work: impl AsyncFnOnce(&str) -> Result<T>,
) -> Result<T> {
    let holder = holder(run_id);
    hold(store, name, &holder, now, lease).await?;
    let result = work(&holder).await;
    let unlocked = store.unlock(name, &holder).await;
    let value = result?;
    unlocked?;
    Ok(value)
}

/// Whether `holder` names a process of this host that has exited. Only
/// where `/proc` exists; elsewhere the lease decides.
fn died_here(holder: &str) -> bool {
    let Some((_, place)) = holder.rsplit_once('@') else {
        return false;
    };
    let Some((host, pid)) = place.rsplit_once(':') else {
        return false;
    };
    let proc = std::path::Path::new("/proc");
    host == hostname()
        && proc.join("self").exists()
        && pid
            .parse::<u32>()
            .is_ok_and(|pid| !proc.join(pid.to_string()).exists())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exited_processes_of_this_host_are_dead() {
        let me = holder("run-1");
        assert!(!died_here(&me), "this process is alive");
        let gone = format!("run-2@{}:{}", hostname(), u32::MAX - 7);
        assert!(died_here(&gone));
        assert!(!died_here(&format!(
            "run-3@elsewhere.example:{}",
            u32::MAX - 7
        )));
        assert!(!died_here("not a holder"));
    }
}
