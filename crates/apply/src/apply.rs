//! The executor: runs a plan's steps through the journal.
//!
//! Steps run in waves of independent steps (see [`crate::waves`]; a step that is not a
//! thread's is a wave of its own). For each wave: read every knob now; skip those that already
//! hold their target (and say so); append the others with their fresh prior values to the
//! journal as one record, fsync it, and only then write those knobs in order. The journal is
//! only ever appended to, so a wave costs its own steps and one fsync, whatever came before.
//! If the journal cannot be stored nothing more is
//! written; if a knob write fails, everything done so far is rolled back newest first and the
//! error names the knob, its file and the reason. A refusal of a best-effort knob (a managed
//! IRQ) is recorded as unchangeable and the apply goes on. A step whose thread has exited is
//! recorded as vanished and the apply goes on too: on a live host, bystander threads end all
//! the time between plan and apply. Whether a vanished thread matters (the workload's own
//! vCPU) is for the caller, which knows the target, to decide from [`ApplyReport::vanished`].

use std::path::PathBuf;

use nearnative_knob::{Backend, Described, KnobError, Step};

use crate::boot::boot_id;
use crate::fault::FaultPoint;
use crate::journal::{Journal, JournalStatus, Unchangeable};
use crate::journal_log::{LogWriter, Record};
use crate::restore::{failure_lines, restore, Restored};
use crate::state::{JournalId, StateDir, StateError};
use crate::threads::Threads;
use crate::waves::waves;
use nearnative_sys::durable::DurableError;
use nearnative_sys::lock::{LockError, StateLock};

/// What an apply did.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
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
    #[error("{path}: there is no journal with id {id} to add to; nothing was changed")]
    NoJournal { id: JournalId, path: PathBuf },
    #[error("{path}: journal {id} is {status:?}, not applied; revert it before adding to it")]
    NotApplied {
        id: JournalId,
        path: PathBuf,
        status: JournalStatus,
    },
    #[error("{0}; nothing was changed")]
    Unreadable(#[source] DurableError),
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

/// Adds `steps` to the journal `id` of a workload already applied (a thread born since, a
/// knob the plan now covers), as [`apply_locked`] makes them: each wave's priors are durable
/// before its knobs are written. The journal is first rewritten whole with the status
/// `in_progress`, which also drops a torn tail (an append after it would read as corruption)
/// and migrates a schema-1 journal; it ends `applied` again. A crash part-way leaves it
/// `in_progress`, listing every knob that may have changed, for revert. If a step fails, the
/// steps added are rolled back and the journal keeps what it held before, still applied.
pub fn extend_locked(
    steps: &[Step],
    backend: &dyn Backend,
    state: &StateDir,
    id: &JournalId,
    _held: &StateLock,
) -> Result<ApplyReport, ApplyError> {
    check_privilege(backend)?;
    Executor::resume(backend, state, id, FaultPoint::default())?.run(steps)
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
    threads: Threads<'a>,
    /// What has been journaled, as `revert` would read it back.
    journal: Journal,
    log: LogWriter,
    path: PathBuf,
    /// How many steps the log's `changes` records hold, retracted ones included.
    logged: usize,
    /// How many changes the journal held before this run (0 for an apply): a rollback
    /// restores only those after.
    base: usize,
    fault: FaultPoint,
    report: ApplyReport,
}

/// A step of the current wave, its prior value read, waiting for its knob write.
struct Pending {
    knob: Described,
    current: Step,
}

impl<'a> Executor<'a> {
    /// Creates the journal with its header (the caller holds the lock): if that fails,
    /// nothing has been touched.
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
        let mut journal = Journal::after_all_in(state, id.clone());
        journal.boot_id = boot_id(backend.root());
        let log = LogWriter::create(&path, &journal).map_err(|source| ApplyError::Journal {
            source,
            rollback: Box::new(Rollback {
                outcome: Restored::default(),
                journal_kept: None,
            }),
        })?;
        fault.journal_written()?;
        Ok(Executor::over(backend, journal, log, path, fault))
    }

    /// Opens the applied journal `id` to add to it, rewritten whole as `in_progress`.
    fn resume(
        backend: &'a dyn Backend,
        state: &StateDir,
        id: &JournalId,
        fault: FaultPoint,
    ) -> Result<Self, ApplyError> {
        let path = state.journal_path(id);
        let journal = Journal::load(&path).map_err(ApplyError::Unreadable)?;
        let Some(mut journal) = journal else {
            return Err(ApplyError::NoJournal {
                id: id.clone(),
                path,
            });
        };
        if journal.status != JournalStatus::Applied {
            return Err(ApplyError::NotApplied {
                id: id.clone(),
                path,
                status: journal.status,
            });
        }
        journal.status = JournalStatus::InProgress;
        let opened = journal
            .store(&path)
            .and_then(|()| LogWriter::append_to(&path));
        let log = opened.map_err(|source| ApplyError::Journal {
            source,
            rollback: Box::new(Rollback {
                outcome: Restored::default(),
                journal_kept: Some(path.clone()),
            }),
        })?;
        Ok(Executor::over(backend, journal, log, path, fault))
    }

    /// An executor appending to `log`, which holds `journal` as one `changes` record.
    fn over(
        backend: &'a dyn Backend,
        journal: Journal,
        log: LogWriter,
        path: PathBuf,
        fault: FaultPoint,
    ) -> Self {
        let base = journal.changes.len();
        Executor {
            backend,
            threads: Threads::new(backend),
            report: ApplyReport {
                id: journal.id.clone(),
                journal: path.clone(),
                changed: Vec::new(),
                skipped: Vec::new(),
                drifted: Vec::new(),
                unchangeable: Vec::new(),
                vanished: Vec::new(),
            },
            journal,
            log,
            path,
            logged: base,
            base,
            fault,
        }
    }

    fn run(mut self, steps: &[Step]) -> Result<ApplyReport, ApplyError> {
        for wave in waves(steps) {
            self.apply_wave(&wave)?;
        }
        self.journal.status = JournalStatus::Applied;
        let status = Record::Status {
            status: JournalStatus::Applied,
        };
        if let Err(source) = self.log.append_durable(&status) {
            let rollback = self.roll_back();
            return Err(ApplyError::Journal { source, rollback });
        }
        self.fault.journal_written()?;
        Ok(self.report)
    }

    /// Reads every step's prior value, journals the ones to change in one durable record,
    /// then writes them in order.
    fn apply_wave(&mut self, wave: &[&Step]) -> Result<(), ApplyError> {
        let mut pending = Vec::with_capacity(wave.len());
        self.threads.forget_lists();
        for step in wave {
            if let Some(p) = self.read_prior(step)? {
                pending.push(p);
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        let currents: Vec<Step> = pending.iter().map(|p| p.current.clone()).collect();
        let appended = Record::changes(&currents)
            .map_err(|e| DurableError::Write {
                path: self.path.clone(),
                source: e.into(),
            })
            .and_then(|record| self.log.append_durable(&record));
        if let Err(source) = appended {
            let rollback = self.roll_back();
            return Err(ApplyError::Journal { source, rollback });
        }
        let first = self.journal.changes.len();
        let first_logged = self.logged;
        self.journal.changes.extend(currents);
        self.logged += pending.len();
        let mut never_made = Vec::new();
        for (i, p) in pending.into_iter().enumerate() {
            self.fault.knob_write_next()?;
            match self.threads.write_target(&p.current) {
                Ok(()) => self.report.changed.push(p.knob),
                Err(err) if err.is_refused() && p.current.best_effort() => {
                    let refusal = Unchangeable {
                        knob: p.knob,
                        reason: err.to_string(),
                    };
                    self.retract(first_logged + i, Some(refusal.clone()));
                    self.report.unchangeable.push(refusal);
                    never_made.push(first + i);
                }
                Err(err) if err.is_gone() => {
                    // The thread exited between the read and the write: nothing to restore.
                    self.retract(first_logged + i, None);
                    self.report.vanished.push(p.knob);
                    never_made.push(first + i);
                }
                Err(source) => {
                    self.forget(&never_made);
                    return Err(self.fail(source));
                }
            }
            self.fault.knob_written()?;
        }
        self.forget(&never_made);
        Ok(())
    }

    /// The step with its prior value read now, or `None` when there is nothing to write.
    fn read_prior(&mut self, step: &Step) -> Result<Option<Pending>, ApplyError> {
        let knob = step.describe();
        let current = match self.threads.with_current(step) {
            Ok(current) => current,
            Err(err) if err.is_gone() => {
                self.report.vanished.push(knob);
                return Ok(None);
            }
            Err(source) => return Err(self.fail(source)),
        };
        if !current.same_prior(step) {
            self.report.drifted.push(knob.clone());
        }
        if current.is_noop() {
            self.report.skipped.push(knob);
            return Ok(None);
        }
        Ok(Some(Pending { knob, current }))
    }

    /// Notes in the log that the change at log position `change` was never made. Not waited
    /// for: if it is lost, the journal lists a knob at its prior value, which revert skips.
    fn retract(&mut self, change: usize, refusal: Option<Unchangeable>) {
        let _ = self.log.append(&Record::Retracted { change });
        if let Some(unchangeable) = refusal {
            self.journal.unchangeable.push(unchangeable.clone());
            let _ = self.log.append(&Record::Unchangeable { unchangeable });
        }
    }

    /// Drops the changes at these positions (ascending) from the journal kept in memory.
    fn forget(&mut self, positions: &[usize]) {
        for &position in positions.iter().rev() {
            self.journal.changes.remove(position);
        }
    }

    fn fail(&mut self, source: KnobError) -> ApplyError {
        let rollback = self.roll_back();
        ApplyError::Step { source, rollback }
    }

    /// Restores every change this run journaled, newest first (the failed one too: a write
    /// that failed may still have changed something). An apply's journal goes when all is
    /// restored; otherwise it is rewritten with what is left for `revert`, after what it held
    /// before this run.
    fn roll_back(&mut self) -> Box<Rollback> {
        let made = self.journal.changes.split_off(self.base);
        let outcome = restore(&made, self.backend);
        let complete = outcome.is_complete();
        if complete && self.base == 0 && Journal::remove(&self.path).is_ok() {
            return Box::new(Rollback {
                outcome,
                journal_kept: None,
            });
        }
        let left = outcome.failed.iter().map(|(s, _)| s.clone());
        self.journal.changes.extend(left);
        self.journal.status = match complete && self.base > 0 {
            true => JournalStatus::Applied,
            false => JournalStatus::RollbackIncomplete,
        };
        // If even this store fails, the journal on disk still lists a superset of what is
        // left, which revert handles (restored knobs are skipped as already at their prior).
        let _ = self.journal.store(&self.path);
        Box::new(Rollback {
            journal_kept: (!complete || self.base == 0).then(|| self.path.clone()),
            outcome,
        })
    }
}
