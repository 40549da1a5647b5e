//! The lab's latency-sensitive configuration as a registry object: the engine's apply of the
//! lab process's own threads (`pid:<pid>`), journaled in a state directory. Reverting it
//! through the same engine (and state directory) puts every knob back and gives the cores
//! back, whether the lab itself does so, its cleanup on a signal or a panic, or the sweep of a
//! run that was killed outright.

use std::path::Path;

use nearnative_engine::{Engine, EngineError, RevertWhich, Reverted};

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

/// Reverts the apply of process `pid` recorded in `state_dir`; nothing to do is success.
pub fn revert(state_dir: &Path, pid: u32) -> Result<Reverted, EngineError> {
    Engine::live(state_dir).revert(&RevertWhich::Target(target(pid)))
}
