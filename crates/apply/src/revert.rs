//! `revert`: under the state lock, walk a journal backwards and put each knob back. Every
//! journal is loaded (and its checksum checked) before anything is written, so a corrupt one
//! stops the revert with nothing changed. A fully restored journal is deleted, which makes a
//! second revert a no-op that says so; a partly restored one keeps what is left. One journal
//! reverted under newer ones first hands over the knobs they share (see [`crate::handover`]).

use nearnative_knob::{Backend, Described, KnobError};

use crate::apply::is_root;
use crate::handover::{hand_over, HandedOver, StoreFault};
use crate::journal::{Journal, JournalStatus};
use crate::restore::{failure_lines, restore};
use crate::state::{JournalId, StateDir, StateError};
use crate::validate::{validate_steps, HostBounds, InvalidStep};
use nearnative_sys::durable::DurableError;
use nearnative_sys::lock::{LockError, StateLock};

/// Which journals to revert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevertTarget {
    One(JournalId),
    /// Every journal, newest first: later applies were made on top of earlier ones.
    All,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct RevertReport {
    pub journals: Vec<JournalReverted>,
}

impl RevertReport {
    /// True when there was no journal to revert.
    pub fn nothing_to_revert(&self) -> bool {
        self.journals.is_empty()
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct JournalReverted {
    pub id: JournalId,
    pub restored: Vec<Described>,
    pub already: Vec<Described>,
    /// Tasks that exited and objects that vanished since the apply.
    pub vanished: Vec<Described>,
    /// Left as they are: a newer journal changed them too, and now restores them.
    #[serde(default)]
    pub handed_over: Vec<HandedOver>,
}

#[derive(Debug, thiserror::Error)]
pub enum RevertError {
    #[error("revert changes the live host and must run as root")]
    NotRoot,
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{0}; nothing was reverted")]
    Journal(#[source] DurableError),
    #[error("{}: {source}; nearnative could not have written this journal, so nothing was reverted", .path.display())]
    Invalid {
        path: std::path::PathBuf,
        #[source]
        source: InvalidStep,
    },
    /// A test's injected crash: the revert stopped dead, as if killed.
    #[cfg(feature = "fault-injection")]
    #[error("injected crash at {crash:?}")]
    Crashed {
        crash: crate::handover::HandoverCrash,
    },
    #[error("revert incomplete; journal {id} keeps {} change(s) to retry:{}", .failures.len(), failure_lines(.failures))]
    Incomplete {
        id: JournalId,
        failures: Vec<(nearnative_knob::Step, KnobError)>,
        report: Box<RevertReport>,
    },
}

/// Reverts `target`'s journals, taking the state lock.
pub fn revert(
    state: &StateDir,
    target: &RevertTarget,
    backend: &dyn Backend,
) -> Result<RevertReport, RevertError> {
    check_privilege(backend)?;
    if !state.dir().is_dir() {
        return Ok(RevertReport::default());
    }
    let lock = StateLock::acquire(state.dir())?;
    revert_locked(state, target, backend, &lock)
}

/// [`revert`] for a caller that already holds the state lock (and releases the workload's
/// ledger entry under the same lock).
pub fn revert_locked(
    state: &StateDir,
    target: &RevertTarget,
    backend: &dyn Backend,
    _held: &StateLock,
) -> Result<RevertReport, RevertError> {
    revert_journals(state, target, backend, StoreFault::default())
}

/// [`revert`], stopping dead at `crash` during a hand-over. Tests only.
#[cfg(feature = "fault-injection")]
pub fn revert_with_crash(
    state: &StateDir,
    target: &RevertTarget,
    backend: &dyn Backend,
    crash: crate::handover::HandoverCrash,
) -> Result<RevertReport, RevertError> {
    let _lock = StateLock::acquire(state.dir())?;
    revert_journals(state, target, backend, StoreFault::armed(crash))
}

fn revert_journals(
    state: &StateDir,
    target: &RevertTarget,
    backend: &dyn Backend,
    mut fault: StoreFault,
) -> Result<RevertReport, RevertError> {
    check_privilege(backend)?;
    let mut report = RevertReport::default();
    let ids = match target {
        RevertTarget::One(id) => vec![id.clone()],
        RevertTarget::All => state.journal_ids()?,
    };
    let mut journals = Vec::new();
    for id in ids {
        let path = state.journal_path(&id);
        if let Some(journal) = Journal::load(&path).map_err(RevertError::Journal)? {
            journals.push((path, journal));
        }
    }
    let bounds = HostBounds::read(backend.root());
    for (path, journal) in &journals {
        validate_steps(&journal.changes, &bounds).map_err(|source| RevertError::Invalid {
            path: path.clone(),
            source,
        })?;
    }
    journals.sort_by_key(|(_, j)| std::cmp::Reverse(j.started_unix_ms));
    for (path, journal) in journals {
        // Under `All`, every newer journal is reverted before this one: nothing to hand over.
        let (mut journal, handed_over) = match target {
            RevertTarget::One(_) => hand_over(state, &path, journal, &mut fault)?,
            RevertTarget::All => (journal, Vec::new()),
        };
        let outcome = restore(&journal.changes, backend);
        report.journals.push(JournalReverted {
            id: journal.id.clone(),
            restored: outcome.restored,
            already: outcome.already,
            vanished: outcome.vanished,
            handed_over,
        });
        if outcome.failed.is_empty() {
            Journal::remove(&path).map_err(RevertError::Journal)?;
            continue;
        }
        journal.changes = outcome.failed.iter().map(|(s, _)| s.clone()).collect();
        journal.status = JournalStatus::RevertIncomplete;
        journal.store(&path).map_err(RevertError::Journal)?;
        return Err(RevertError::Incomplete {
            id: journal.id,
            failures: outcome.failed,
            report: Box::new(report),
        });
    }
    Ok(report)
}

fn check_privilege(backend: &dyn Backend) -> Result<(), RevertError> {
    match backend.is_live() && !is_root() {
        true => Err(RevertError::NotRoot),
        false => Ok(()),
    }
}
