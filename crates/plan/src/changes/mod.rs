//! The knob changes of a plan, one module per family. Each adds [`PlannedChange`]s to
//! [`Changes`] in execution order; a change whose target equals what the host shows is
//! omitted, so re-planning an applied workload gives no steps.

pub mod bypass;
mod cpuset_v2;
pub mod exclusivity;
pub mod irqs;
pub mod libvirt;
pub mod memory;
pub mod sched;

use std::collections::BTreeSet;

use nearnative_host::nic::Nic;
use nearnative_host::{CpuSet, Host, Mechanism};
use nearnative_knob::Step;

use crate::allocation::Allocation;
use crate::decisions::Note;
use crate::plan::PlannedChange;
use crate::plan_request::PlanRequest;
use crate::scope::Scope;
use crate::target::ResolvedTarget;
use crate::workload_id::WorkloadId;

/// Everything the change builders read.
pub struct Context<'a> {
    pub host: &'a Host,
    pub request: &'a PlanRequest,
    pub target: &'a ResolvedTarget<'a>,
    pub allocation: &'a Allocation,
    pub scope: &'a Scope,
    /// Every CPU the workload holds (thread cores and the I/O core).
    pub exclusive: CpuSet,
    /// The CPUs left for everything else, within the scope.
    pub housekeeping: CpuSet,
    pub id: WorkloadId,
    /// The NIC `--nic` names.
    pub nic: Option<&'a Nic>,
    /// Processes of other workloads in the ledger: never moved or re-pinned.
    pub others: BTreeSet<u32>,
}

/// The changes built so far, and why some knobs were left alone.
#[derive(Debug, Default)]
pub struct Changes {
    pub changes: Vec<PlannedChange>,
    pub notes: Vec<Note>,
}

impl Changes {
    /// Adds a change unless it changes nothing.
    pub fn push(&mut self, step: impl Into<Step>, mechanism: Mechanism, reason: impl Into<String>) {
        let step = step.into();
        if !step.is_noop() {
            self.changes.push(PlannedChange {
                step,
                mechanism,
                reason: reason.into(),
            });
        }
    }

    pub fn note(&mut self, note: Note) {
        self.notes.push(note);
    }
}
