//! Cleaning up every live lab when SIGINT, SIGTERM or SIGHUP arrives.
//!
//! The handlers are the shared ones of [`nearnative_sys::signal`]: they raise one flag, which
//! the probe server and the lab command also watch, so a single Ctrl-C stops the measurement
//! and the cleanup together, and they wake a watcher thread, which cleans up every registered
//! lab at once, even while the main thread is stuck in a measurement. A build running on
//! another thread at that moment finishes its current object first (the registry is locked
//! while an object is created) and then fails, because a cleaned-up registry is closed. The
//! process itself is left to its owner to end, so it can also revert whatever else it changed.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use nearnative_sys::signal::{on_stop_signal, SignalError};

use crate::registry::Registry;

/// The watcher thread's name.
pub const WATCHER_THREAD_NAME: &str = "nn-lab-signals";

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
    let flag = on_stop_signal(WATCHER_THREAD_NAME, clean_up_all)?;
    Ok(WATCHER.get_or_init(|| flag))
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
