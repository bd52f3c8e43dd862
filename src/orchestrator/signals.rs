//! The signals a long-running command obeys: SIGINT and SIGTERM stop it
//! (no new task starts; running tasks get their grace period), SIGHUP makes
//! the daemon reload its definitions.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::error::{Error, Result};

fn listen(kind: SignalKind) -> Result<tokio::signal::unix::Signal> {
    signal(kind).map_err(|source| Error::System {
        what: "installing a signal handler",
        source,
    })
}

/// A flag that turns true on the first SIGINT or SIGTERM. The handlers are
/// installed before this returns, so a supervisor may signal at once.
pub fn stop_on_signals() -> Result<watch::Receiver<bool>> {
    let mut interrupt = listen(SignalKind::interrupt())?;
    let mut terminate = listen(SignalKind::terminate())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::warn!(
            "stopping: no new tasks start; running tasks get the grace period to finish"
        );
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// A message on every SIGHUP (several before one is handled count once).
pub fn reload_on_hangup() -> Result<mpsc::Receiver<()>> {
    let mut hangup = listen(SignalKind::hangup())?;
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the definitions");
            let _ = tx.try_send(());
        }
    });
    Ok(rx)
}
