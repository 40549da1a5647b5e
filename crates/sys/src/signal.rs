//! Stopping a foreground run cleanly on SIGINT, SIGTERM or SIGHUP, so it can still report what
//! it measured (a server its counts, a jitter run its figures so far) and undo what it changed:
//! a hang-up (the ssh session dropped) must not leave a lab applied.
//!
//! The handlers are signal-hook's: they only raise one process-wide flag, and, for a caller that
//! must act at once rather than at its next look at the flag, wake a named thread blocked on
//! signal-hook's self-pipe. A long-running service that gives each signal its own meaning (the
//! daemon: SIGHUP reloads, SIGTERM stops) takes every arrival instead, through
//! [`forward_signals`]. signal-hook installs them with `SA_RESTART`; the waits our loops
//! block in are not restarted anyway (signal(7): `poll`, `clock_nanosleep`, and a socket read
//! under `SO_RCVTIMEO` return `EINTR`), and each loop also wakes at its own interval.

use std::io;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread::JoinHandle;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};
use signal_hook::low_level::signal_name;

/// The signals that ask a run to stop.
pub const STOP_SIGNALS: [c_int; 3] = [SIGINT, SIGTERM, SIGHUP];

/// A handler, or the thread that waits for one, could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("cannot install the SIGINT/SIGTERM/SIGHUP handlers")]
    Install(#[source] io::Error),
    #[error("cannot install the handlers for {signals}")]
    InstallSome {
        signals: String,
        #[source]
        source: io::Error,
    },
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

/// The thread [`forward_signals`] started; dropping it stops and joins the thread. The handlers
/// stay installed (signal-hook never restores the default action), so a signal arriving later is
/// ignored rather than fatal.
#[derive(Debug)]
pub struct SignalForwarder {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl Drop for SignalForwarder {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            // A panic in the action already printed its message; there is nothing left to undo.
            let _ = thread.join();
        }
    }
}

/// Installs handlers for `signals`, then starts thread `name`, which calls `action` with each
/// signal as it arrives (two arrivals before the thread looks may count as one, as the kernel
/// itself merges them), until the returned forwarder is dropped. The thread blocks on
/// signal-hook's pipe; it does not poll.
pub fn forward_signals(
    name: &str,
    signals: &[c_int],
    mut action: impl FnMut(c_int) + Send + 'static,
) -> Result<SignalForwarder, SignalError> {
    let mut arrivals = Signals::new(signals).map_err(|source| SignalError::InstallSome {
        signals: signal_names(signals),
        source,
    })?;
    let handle = arrivals.handle();
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || arrivals.forever().for_each(&mut action))
        .map_err(|source| SignalError::Spawn {
            name: name.to_owned(),
            source,
        })?;
    Ok(SignalForwarder {
        handle,
        thread: Some(thread),
    })
}

/// "SIGHUP, SIGTERM", or the number of a signal without a name.
fn signal_names(signals: &[c_int]) -> String {
    let names: Vec<String> = signals
        .iter()
        .map(|&signal| {
            signal_name(signal).map_or_else(|| format!("signal {signal}"), str::to_owned)
        })
        .collect();
    names.join(", ")
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

    /// SIGUSR2, which nothing else in this binary sends, so the test owns it.
    #[test]
    fn a_forwarder_delivers_each_signal_until_dropped() {
        let (tx, rx) = mpsc::channel();
        let forwarder = forward_signals(
            "nn-forward-test",
            &[signal_hook::consts::SIGUSR2],
            move |signal| {
                // The receiver outlives the forwarder in this test.
                tx.send(signal).unwrap();
            },
        )
        .unwrap();
        raise(Signal::SIGUSR2).unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)),
            Ok(signal_hook::consts::SIGUSR2)
        );
        drop(forwarder);
        // The thread is joined: the action, and with it the sender, is gone.
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
    }

    #[test]
    fn signals_are_named_in_errors() {
        assert_eq!(signal_names(&[SIGHUP, SIGTERM]), "SIGHUP, SIGTERM");
        assert_eq!(signal_names(&[1000]), "signal 1000");
    }
}
