//! The executor: runs a plan's steps through the journal.
//!
//! For each step, in order: read the knob now; if it already holds the target, skip it (and
//! say so); else append the step with that fresh prior value to the journal, store the journal
//! durably, and only then write the knob. If the journal cannot be stored nothing more is
//! written; if a knob write fails, everything done so far is rolled back newest first and the
//! error names the knob, its file and the reason. A refusal of a best-effort knob (a managed
//! IRQ) is recorded as unchangeable and the apply goes on. A step whose thread has exited is
//! recorded as vanished and the apply goes on too: on a live host, bystander threads end all
//! the time between plan and apply. Whether a vanished thread matters (the workload's own
//! vCPU) is for the caller, which knows the target, to decide from [`ApplyReport::vanished`].

use std::path::PathBuf;

use nearnative_knob::{Backend, Described, KnobError, Step};

use crate::durable::DurableError;
use crate::fault::FaultPoint;
use crate::journal::{Journal, JournalStatus, Unchangeable};
use crate::lock::{LockError, StateLock};
use crate::restore::{failure_lines, restore, Restored};
use crate::state::{JournalId, StateDir, StateError};

/// What an apply did.
#[derive(Debug, serde::Serialize)]
pub struct ApplyReport {
    pub id: JournalId,
    pub journal: PathBuf,
    /// Written, in order.
    pub changed: Vec<Described>,
    /// Already at the target value: not written, not journaled.
    pub skipped: Vec<Described>,
    /// Knobs whose value read just before the write differed from the plan's `from`: the
    /// host moved since it was inspected. The fresh value is what the journal keeps.
    pub drifted: Vec<Described>,
    /// Refused by the kernel and best effort: left as they were.
    pub unchangeable: Vec<Unchangeable>,
    /// Knobs of threads that exited (or whose tid was reused) before their step: nothing to
    /// write, nothing to restore.
    pub vanished: Vec<Described>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("apply changes the live host and must run as root")]
    NotRoot,
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{path}: a journal with id {id} already exists; revert it first or pick another id")]
    AlreadyExists { id: JournalId, path: PathBuf },
    #[error("cannot write the journal, so nothing more was changed; {rollback}")]
    Journal {
        #[source]
        source: DurableError,
        rollback: Box<Rollback>,
    },
    /// A knob could not be read or written; `source` names it.
    #[error("{source}; {rollback}")]
    Step {
        #[source]
        source: KnobError,
        rollback: Box<Rollback>,
    },
    /// A test's injected crash: the executor stopped dead, as if killed.
    #[cfg(feature = "fault-injection")]
    #[error("injected crash at {crash:?}")]
    Crashed { crash: crate::fault::Crash },
}

/// How the rollback after a failed apply went.
#[derive(Debug)]
pub struct Rollback {
    pub outcome: Restored,
    /// Where the journal of what is left lives, when something is.
    pub journal_kept: Option<PathBuf>,
}

impl std::fmt::Display for Rollback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let restored = self.outcome.restored.len();
        match &self.journal_kept {
            None => write!(f, "rolled back {restored} earlier change(s); the host is as it was"),
            Some(path) => write!(
                f,
                "rolled back {restored} change(s) but not these (journal kept at {}; run revert):{}",
                path.display(),
                failure_lines(&self.outcome.failed)
            ),
        }
    }
}

/// Applies `steps` in order through the journal `id` in `state`, taking the state lock.
pub fn apply(
    steps: &[Step],
    backend: &dyn Backend,
    state: &StateDir,
    id: &JournalId,
) -> Result<ApplyReport, ApplyError> {
    check_privilege(backend)?;
    state.ensure()?;
    let lock = StateLock::acquire(state.dir())?;
    apply_locked(steps, backend, state, id, &lock)
}

/// [`apply`] for a caller that already holds the state lock, so that what it does around the
/// apply (planning against the ledger, recording the allocation) is serialised with it.
pub fn apply_locked(
    steps: &[Step],
    backend: &dyn Backend,
    state: &StateDir,
    id: &JournalId,
    _held: &StateLock,
) -> Result<ApplyReport, ApplyError> {
    check_privilege(backend)?;
    Executor::start(backend, state, id, FaultPoint::default())?.run(steps)
}

/// [`apply`], stopping dead at `crash` as a killed process would. Tests only.
#[cfg(feature = "fault-injection")]
pub fn apply_with_crash(
    steps: &[Step],
    backend: &dyn Backend,
    state: &StateDir,
    id: &JournalId,
    crash: crate::fault::Crash,
) -> Result<ApplyReport, ApplyError> {
    check_privilege(backend)?;
    state.ensure()?;
    let lock = StateLock::acquire(state.dir())?;
    apply_locked_with_crash(steps, backend, state, id, &lock, crash)
}

/// [`apply_locked`], stopping dead at `crash`. Tests only.
#[cfg(feature = "fault-injection")]
pub fn apply_locked_with_crash(
    steps: &[Step],
    backend: &dyn Backend,
    state: &StateDir,
    id: &JournalId,
    _held: &StateLock,
    crash: crate::fault::Crash,
) -> Result<ApplyReport, ApplyError> {
    check_privilege(backend)?;
    Executor::start(backend, state, id, FaultPoint::armed(crash))?.run(steps)
}

/// True when this process may write the live host.
pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn check_privilege(backend: &dyn Backend) -> Result<(), ApplyError> {
    match backend.is_live() && !is_root() {
        true => Err(ApplyError::NotRoot),
        false => Ok(()),
    }
}

struct Executor<'a> {
    backend: &'a dyn Backend,
    journal: Journal,
    path: PathBuf,
    fault: FaultPoint,
    report: ApplyReport,
}

impl<'a> Executor<'a> {
    /// Stores the empty journal (the caller holds the lock): if that fails, nothing has been
    /// touched.
    fn start(
        backend: &'a dyn Backend,
        state: &StateDir,
        id: &JournalId,
        mut fault: FaultPoint,
    ) -> Result<Self, ApplyError> {
        let path = state.journal_path(id);
        if path.exists() {
            return Err(ApplyError::AlreadyExists {
                id: id.clone(),
                path,
            });
        }
        let journal = Journal::new(id.clone());
        journal.store(&path).map_err(|source| ApplyError::Journal {
            source,
            rollback: Box::new(Rollback {
                outcome: Restored::default(),
                journal_kept: None,
            }),
        })?;
        fault.journal_written(false)?;
        Ok(Executor {
            backend,
            journal,
            report: ApplyReport {
                id: id.clone(),
                journal: path.clone(),
                changed: Vec::new(),
                skipped: Vec::new(),
                drifted: Vec::new(),
                unchangeable: Vec::new(),
                vanished: Vec::new(),
            },
            path,
            fault,
        })
    }

    fn run(mut self, steps: &[Step]) -> Result<ApplyReport, ApplyError> {
        for step in steps {
            self.apply_step(step)?;
        }
        self.journal.status = JournalStatus::Applied;
        if let Err(source) = self.journal.store(&self.path) {
            let rollback = self.roll_back();
            return Err(ApplyError::Journal { source, rollback });
        }
        self.fault.journal_written(false)?;
        Ok(self.report)
    }

    fn apply_step(&mut self, step: &Step) -> Result<(), ApplyError> {
        let knob = step.describe();
        let current = match step.with_current(self.backend) {
            Ok(current) => current,
            Err(err) if err.is_gone() => {
                self.report.vanished.push(knob);
                return Ok(());
            }
            Err(source) => return Err(self.fail(source)),
        };
        if !current.same_prior(step) {
            self.report.drifted.push(knob.clone());
        }
        if current.is_noop() {
            self.report.skipped.push(knob);
            return Ok(());
        }
        self.journal.changes.push(current.clone());
        if let Err(source) = self.journal.store(&self.path) {
            self.journal.changes.pop();
            let rollback = self.roll_back();
            return Err(ApplyError::Journal { source, rollback });
        }
        self.fault.journal_written(true)?;
        match current.write_target(self.backend) {
            Ok(()) => self.report.changed.push(knob),
            Err(err) if err.is_refused() && current.best_effort() => {
                // Nothing changed, so there is nothing to restore.
                self.journal.changes.pop();
                let refusal = Unchangeable {
                    knob,
                    reason: err.to_string(),
                };
                self.journal.unchangeable.push(refusal.clone());
                self.report.unchangeable.push(refusal);
            }
            Err(err) if err.is_gone() => {
                // The thread exited between the read and the write: nothing to restore. The
                // stored journal may still list it; revert counts a gone knob as done.
                self.journal.changes.pop();
                self.report.vanished.push(knob);
            }
            Err(source) => return Err(self.fail(source)),
        }
        self.fault.knob_written()
    }

    fn fail(&mut self, source: KnobError) -> ApplyError {
        let rollback = self.roll_back();
        ApplyError::Step { source, rollback }
    }

    /// Restores every journaled change, newest first (the failed one too: a write that failed
    /// may still have changed something). The journal goes when all is restored; otherwise it
    /// keeps what is left for `revert`.
    fn roll_back(&mut self) -> Box<Rollback> {
        let outcome = restore(&self.journal.changes, self.backend);
        if outcome.is_complete() && Journal::remove(&self.path).is_ok() {
            return Box::new(Rollback {
                outcome,
                journal_kept: None,
            });
        }
        self.journal.changes = outcome.failed.iter().map(|(s, _)| s.clone()).collect();
        self.journal.status = JournalStatus::RollbackIncomplete;
        // If even this store fails, the journal on disk still lists a superset of what is
        // left, which revert handles (restored knobs are skipped as already at their prior).
        let _ = self.journal.store(&self.path);
        Box::new(Rollback {
            outcome,
            journal_kept: Some(self.path.clone()),
        })
    }
}
