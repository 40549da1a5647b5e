//! Stopping a foreground run cleanly on SIGINT, SIGTERM or SIGHUP, so it can still report what
//! it measured (a server its counts, a jitter run its figures so far) and undo what it changed:
//! a hang-up (the ssh session dropped) must not leave a lab applied.
//!
//! The handlers are signal-hook's: they only raise one process-wide flag, and, for a caller that
//! must act at once rather than at its next look at the flag, wake a named thread blocked on
//! signal-hook's self-pipe. signal-hook installs them with `SA_RESTART`; the waits our loops
//! block in are not restarted anyway (signal(7): `poll`, `clock_nanosleep`, and a socket read
//! under `SO_RCVTIMEO` return `EINTR`), and each loop also wakes at its own interval.

use std::io;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The signals that ask a run to stop.
pub const STOP_SIGNALS: [c_int; 3] = [SIGINT, SIGTERM, SIGHUP];

/// A handler, or the thread that waits for one, could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("cannot install the SIGINT/SIGTERM/SIGHUP handlers")]
    Install(#[source] io::Error),
    #[error("cannot start thread {name}")]
    Spawn {
        name: String,
        #[source]
        source: io::Error,
    },
}

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Whether the flag's handlers are installed: installing twice would raise it twice per signal,
/// harmless but wasteful, and every caller wants the same flag.
static INSTALLED: Mutex<bool> = Mutex::new(false);

/// Installs the handlers (once per process) and returns the flag they raise.
pub fn stop_on_signals() -> Result<&'static AtomicBool, SignalError> {
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if !*installed {
        for signal in STOP_SIGNALS {
            signal_hook::flag::register(signal, &STOP_REQUESTED).map_err(SignalError::Install)?;
        }
        *installed = true;
    }
    Ok(&STOP_REQUESTED)
}

/// Installs the handlers, then starts thread `name`, which runs `action` once, as soon as a
/// stop signal arrives (or at once if one already has). The thread blocks on signal-hook's
/// pipe; it does not poll.
pub fn on_stop_signal(
    name: &str,
    action: impl FnOnce() + Send + 'static,
) -> Result<&'static AtomicBool, SignalError> {
    let flag = stop_on_signals()?;
    let mut signals = Signals::new(STOP_SIGNALS).map_err(SignalError::Install)?;
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            // A signal that came between the flag's handlers and this thread's is seen here.
            if !flag.load(Ordering::Relaxed) {
                signals.forever().next();
            }
            action();
        })
        .map_err(|source| SignalError::Spawn {
            name: name.to_owned(),
            source,
        })?;
    Ok(flag)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use nix::sys::signal::{raise, Signal};

    use super::*;

    /// One test raises the signal: the flag is process-wide, so a second would see it up.
    #[test]
    fn a_hang_up_raises_the_flag_and_wakes_the_watcher_once() {
        let (tx, rx) = mpsc::channel();
        let flag = on_stop_signal("nn-signal-test", move || tx.send(()).unwrap()).unwrap();
        assert!(std::ptr::eq(flag, stop_on_signals().unwrap()));
        assert!(!flag.load(Ordering::Relaxed));
        raise(Signal::SIGHUP).unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(flag.load(Ordering::Relaxed));
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    }
}
