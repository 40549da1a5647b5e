//! Cleaning up every live lab when SIGINT or SIGTERM arrives.
//!
//! The handlers are the probe's ([`stop_on_signals`]): they only raise one flag, which the
//! probe server and the lab command also watch, so a single Ctrl-C stops the measurement and
//! the cleanup together. A watcher thread polls that flag and, once it is up, cleans up every
//! registered lab. A build running on another thread at that moment finishes its current
//! object first (the registry is locked while an object is created) and then fails, because a
//! cleaned-up registry is closed. The process itself is left to its owner to end, so it can
//! also revert whatever else it changed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use nearnative_probe::stop::{stop_on_signals, SignalError as StopError};

use crate::registry::Registry;

/// The watcher thread's name.
pub const WATCHER_THREAD_NAME: &str = "nn-lab-signals";
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The registries to clean up, and whether the watcher already has: a lab registered after
/// that is closed at once, so a run that reaches `Lab::create` after Ctrl-C builds nothing.
static LIVE: Mutex<Live> = Mutex::new(Live {
    registries: Vec::new(),
    fired: false,
});

struct Live {
    registries: Vec<Weak<Mutex<Registry>>>,
    fired: bool,
}
static WATCHER: OnceLock<&'static AtomicBool> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("cannot install the SIGINT/SIGTERM handlers")]
    Install(#[source] StopError),
    #[error("cannot start thread {WATCHER_THREAD_NAME}")]
    Spawn(#[source] std::io::Error),
}

/// Adds a lab's registry to those the watcher cleans up, or closes it at once if the watcher
/// has already fired.
pub fn register(registry: &Arc<Mutex<Registry>>) {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    if live.fired {
        drop(live);
        clean_up(registry);
        return;
    }
    live.registries.retain(|weak| weak.strong_count() > 0);
    live.registries.push(Arc::downgrade(registry));
}

/// Installs the handlers and starts the watcher (once per process). Returns the flag the
/// handlers raise, for the caller's own loop to stop on.
pub fn clean_up_on_signals() -> Result<&'static AtomicBool, SignalError> {
    if let Some(flag) = WATCHER.get() {
        return Ok(flag);
    }
    let flag = stop_on_signals().map_err(SignalError::Install)?;
    std::thread::Builder::new()
        .name(WATCHER_THREAD_NAME.into())
        .spawn(move || watch(flag))
        .map_err(SignalError::Spawn)?;
    Ok(WATCHER.get_or_init(|| flag))
}

fn watch(flag: &AtomicBool) {
    while !flag.load(Ordering::Relaxed) {
        std::thread::sleep(POLL_INTERVAL);
    }
    clean_up_all();
}

/// Cleans up every registered lab still alive. Objects that cannot be removed stay in their
/// registry file, for the next run's sweep.
fn clean_up_all() {
    let registries: Vec<_> = {
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.fired = true;
        live.registries.iter().filter_map(Weak::upgrade).collect()
    };
    for registry in registries {
        clean_up(&registry);
    }
}

/// A failure here is not lost: the owner's own cleanup, which follows once its loop sees the
/// flag, removes every object again (idempotently) and reports what is still left.
fn clean_up(registry: &Mutex<Registry>) {
    let _ = registry.lock().unwrap_or_else(|e| e.into_inner()).cleanup();
}
