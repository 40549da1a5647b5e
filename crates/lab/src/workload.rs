//! The lab's latency-sensitive configuration as a registry object: the engine's apply of the
//! lab process's own threads (`pid:<pid>`), journaled in a state directory. Reverting it
//! through the same engine (and state directory) puts every knob back and gives the cores
//! back, whether the lab itself does so, its cleanup on a signal or a panic, or the sweep of a
//! run that was killed outright.

use std::path::Path;
use std::time::{Duration, Instant};

use nearnative_engine::{Engine, EngineError, RevertWhich, Reverted};
use nearnative_sys::lock::LockError;

/// How long a revert waits for another nearnative apply or revert to release the state lock:
/// the lab's own apply must not stay in place just because someone else was busy a moment.
pub const BUSY_WAIT: Duration = Duration::from_secs(10);
const BUSY_POLL: Duration = Duration::from_millis(100);

/// The engine's name for the apply of process `pid`.
pub fn target(pid: u32) -> String {
    format!("pid:{pid}")
}

/// Whether `state_dir` records an apply for process `pid` (a plan, or an allocation without
/// one). An unreadable state counts as not applied: the engine says why on apply.
pub fn is_applied(state_dir: &Path, pid: u32) -> bool {
    let name = target(pid);
    Engine::live(state_dir).status().is_ok_and(|status| {
        status
            .workloads
            .iter()
            .any(|w| w.workload.0 == name || w.target.as_deref() == Some(&name))
    })
}

/// Reverts the apply of process `pid` recorded in `state_dir`; nothing to do is success. A
/// state lock held by another run is retried for up to [`BUSY_WAIT`].
pub fn revert(state_dir: &Path, pid: u32) -> Result<Reverted, EngineError> {
    retry_while_busy(BUSY_WAIT, || {
        Engine::live(state_dir).revert(&RevertWhich::Target(target(pid)))
    })
}

fn retry_while_busy<T>(
    wait: Duration,
    mut attempt: impl FnMut() -> Result<T, EngineError>,
) -> Result<T, EngineError> {
    let deadline = Instant::now() + wait;
    loop {
        match attempt() {
            Err(EngineError::Lock(LockError::Busy { .. })) if Instant::now() < deadline => {
                std::thread::sleep(BUSY_POLL);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy() -> EngineError {
        EngineError::Lock(LockError::Busy {
            path: "/tmp/state/lock".into(),
            holder: "4242".into(),
        })
    }

    #[test]
    fn a_busy_lock_is_retried_until_it_frees_and_then_given_up() {
        let mut calls = 0;
        let got = retry_while_busy(Duration::from_secs(5), || {
            calls += 1;
            match calls {
                1 | 2 => Err(busy()),
                _ => Ok(calls),
            }
        });
        assert_eq!(got.unwrap(), 3);
        let started = Instant::now();
        let err = retry_while_busy(Duration::from_millis(250), || Err::<(), _>(busy()));
        assert!(matches!(
            err,
            Err(EngineError::Lock(LockError::Busy { .. }))
        ));
        assert!(started.elapsed() >= Duration::from_millis(250));
    }
}
