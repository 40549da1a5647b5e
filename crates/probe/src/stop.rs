//! Stopping a foreground measurement cleanly on SIGINT, SIGTERM or SIGHUP, so it can still
//! report what it measured (a server its counts, a jitter run its figures so far) and undo
//! what it changed: a hang-up (the ssh session dropped) must not leave a lab applied.
//!
//! The handlers only set a flag. They are installed without `SA_RESTART`, so a blocked
//! `recvfrom` or `poll` returns `EINTR` at once and the loop sees the flag.

use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use nix::errno::Errno;

/// A signal handler could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the {signal} handler")]
pub struct SignalError {
    signal: String,
    #[source]
    source: Errno,
}

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    STOP_REQUESTED.store(true, Ordering::Relaxed);
}

/// Installs the handlers and returns the flag they raise.
pub fn stop_on_signals() -> Result<&'static AtomicBool, SignalError> {
    let action = SigAction::new(
        SigHandler::Handler(request_stop),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe, and it
        // replaces no handler that other code relies on (the binary installs none).
        unsafe { sigaction(signal, &action) }.map_err(|source| SignalError {
            signal: signal.to_string(),
            source,
        })?;
    }
    Ok(&STOP_REQUESTED)
}
