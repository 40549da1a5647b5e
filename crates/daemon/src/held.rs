//! What the state directory holds, read once per round: each plan record with its journal's
//! status, and whether any of the workload's threads is still alive. The records are the
//! truth the loop compares the policies with; it keeps no list of its own.

use nearnative_apply::journal::{Journal, JournalStatus};
use nearnative_apply::StateDir;
use nearnative_engine::{AppliedPlan, EngineError, APPLIED_SCHEMA_VERSION};
use nearnative_host::Root;
use nearnative_sys::durable;
use nearnative_sys::lock::{LockError, StateLock};

use crate::reconcile::Held;

/// One plan record and its journal.
#[derive(Debug, Clone)]
pub struct Record {
    pub applied: AppliedPlan,
    pub journal: Option<JournalStatus>,
    pub alive: bool,
}

impl Record {
    /// The record as the round's decision sees it; `unfinished` only when no apply holds the
    /// state lock (see [`read`]).
    pub fn held(&self, nobody_applying: bool) -> Held {
        Held {
            key: self.applied.plan.workload.clone(),
            target: self.applied.plan.target.to_string(),
            request: self.applied.request.clone(),
            origin: self.applied.origin.clone(),
            alive: self.alive,
            unfinished: self.unfinished() && nobody_applying,
        }
    }

    /// An apply left part-way (or whose rollback was incomplete).
    pub fn unfinished(&self) -> bool {
        matches!(
            self.journal,
            Some(JournalStatus::InProgress | JournalStatus::RollbackIncomplete)
        )
    }
}

/// Every plan record of `state`, in id order, with whether its workload still runs.
pub fn read(state: &StateDir, root: &Root) -> Result<Vec<Record>, EngineError> {
    let mut records = Vec::new();
    if !state.dir().is_dir() {
        return Ok(records);
    }
    state.check()?;
    for id in state.plan_ids()? {
        let Some(applied) =
            durable::load::<AppliedPlan>(&state.plan_path(&id), APPLIED_SCHEMA_VERSION)?
        else {
            continue;
        };
        let journal = Journal::load(&state.journal_path(&id))?.map(|j| j.status);
        let alive = applied.threads.iter().any(|t| t.is_alive(root));
        records.push(Record {
            applied,
            journal,
            alive,
        });
    }
    Ok(records)
}

/// True when no apply or revert holds the state lock right now, so an `in_progress` journal
/// read before is one whose apply died (an apply holds the lock from before its journal
/// exists until it is complete).
pub fn nobody_applying(state: &StateDir) -> Result<bool, EngineError> {
    match StateLock::acquire(state.dir()) {
        Ok(_lock) => Ok(true),
        Err(LockError::Busy { .. }) => Ok(false),
        Err(err) => Err(err.into()),
    }
}
