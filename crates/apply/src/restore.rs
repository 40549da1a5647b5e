//! Putting journaled changes back, newest first: shared by an apply's rollback and by
//! `revert`. A knob already at its prior value is left alone (so restoring twice is harmless);
//! a task that exited or a kernel object that vanished has nothing left to restore.

use nearnative_knob::{Backend, Described, KnobError, Step};

/// What restoring a list of changes came to.
#[derive(Debug, Default)]
pub struct Restored {
    /// Written back to the prior value.
    pub restored: Vec<Described>,
    /// Already at the prior value (never changed, or restored before).
    pub already: Vec<Described>,
    /// The task exited or the object is gone: nothing to restore.
    pub vanished: Vec<Described>,
    /// Could not be restored, in journal order: what a journal keeps for the next revert.
    pub failed: Vec<(Step, KnobError)>,
}

impl Restored {
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Restores `changes` (in the order they were made) from the last to the first.
pub fn restore(changes: &[Step], backend: &dyn Backend) -> Restored {
    let mut outcome = Restored::default();
    for step in changes.iter().rev() {
        let knob = step.describe();
        let result = step.holds_prior(backend).and_then(|holds| match holds {
            true => Ok(false),
            false => step.write_prior(backend).map(|()| true),
        });
        match result {
            Ok(true) => outcome.restored.push(knob),
            Ok(false) => outcome.already.push(knob),
            Err(KnobError::Gone { .. } | KnobError::Missing { .. }) => outcome.vanished.push(knob),
            Err(err) => outcome.failed.push((step.clone(), err)),
        }
    }
    outcome.failed.reverse();
    outcome
}

/// One line per failure, for error messages.
pub fn failure_lines(failed: &[(Step, KnobError)]) -> String {
    failed.iter().map(|(_, err)| format!("\n  {err}")).collect()
}
