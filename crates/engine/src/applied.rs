//! `plans/<id>.json`: the plan an apply carried out, with the request that made it and the
//! workload's threads at the time. `revert TARGET` finds a journal through it, `verify`
//! re-reads its knobs, `status` lists it. It is stored before the first knob is written and
//! removed only once the journal is reverted.

use nearnative_apply::state::StateError;
use nearnative_apply::{JournalId, StateDir};
use nearnative_host::CpuSet;
use nearnative_knob::Step;
use nearnative_plan::{Plan, PlanRequest};
use nearnative_sys::durable::{self, DurableError};
use serde::{Deserialize, Serialize};

use crate::threads::TargetThread;

/// Version 1: `{request, plan, threads, applied_unix_ms}`. The plan has since gained typed
/// notes and topics and `protected_irqs`, read compatibly from records without them (see
/// docs/plan.md), and the record `origin` and `boot_id`, absent when unknown: the version
/// stays 1.
pub const APPLIED_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedPlan {
    pub request: PlanRequest,
    pub plan: Plan,
    /// The workload's exclusive and I/O threads when it was applied.
    pub threads: Vec<TargetThread>,
    pub applied_unix_ms: u64,
    /// Who asked for it: `cli`, `policy:FILE:LINE`, `libvirt:NAME`; absent for a plain
    /// apply and in records made before origins were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The kernel's boot id when it was applied (see [`nearnative_apply::boot`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

impl AppliedPlan {
    /// The id of its journal and of this record: the plan's id.
    pub fn id(&self) -> Result<JournalId, StateError> {
        JournalId::try_from(self.plan.id.as_str())
    }

    /// True when `target` names this workload: as given to apply (`vm-pid:4000`) or by its
    /// ledger key (`vm:web1`).
    pub fn answers_to(&self, target: &str) -> bool {
        self.plan.target.to_string() == target || self.plan.workload.0 == target
    }

    /// True when `thread` is one of this workload's exclusive or I/O threads.
    pub fn holds(&self, thread: &TargetThread) -> bool {
        self.threads
            .iter()
            .any(|t| (t.pid, t.tid, t.start_time) == (thread.pid, thread.tid, thread.start_time))
    }

    /// An exclusive thread neither pinned by a step (its own affinity, or libvirt's pin of
    /// the cgroup it is in) nor already on the exclusive CPUs: the plan left it alone (its
    /// cgroup unreadable, say). `affinity_now` and `cpuset_now` are each thread's affinity
    /// and cpuset cgroup on the host the plan was made from.
    pub(crate) fn unpinned_thread(
        &self,
        affinity_now: impl Fn(&TargetThread) -> Option<CpuSet>,
        cpuset_now: impl Fn(&TargetThread) -> Option<String>,
    ) -> Option<&TargetThread> {
        let exclusive_cpus = self.plan.allocation.held();
        let stepped = |thread: &TargetThread| {
            let cgroup = cpuset_now(thread);
            self.plan.changes.iter().any(|change| match &change.step {
                Step::ThreadAffinity(c) => (c.knob.pid, c.knob.tid) == (thread.pid, thread.tid),
                Step::LibvirtPin(c) => {
                    cgroup.as_deref() == Some(c.knob.cgroup.path.as_str())
                        && c.to.is_subset(&exclusive_cpus)
                }
                _ => false,
            })
        };
        let already = |thread: &TargetThread| {
            affinity_now(thread)
                .is_some_and(|cpus| !cpus.is_empty() && cpus.is_subset(&exclusive_cpus))
        };
        let mut exclusive = self.threads.iter().filter(|t| t.exclusive);
        exclusive.find(|t| !stepped(t) && !already(t))
    }

    pub(crate) fn store(&self, state: &StateDir, id: &JournalId) -> Result<(), DurableError> {
        durable::store(&state.plan_path(id), APPLIED_SCHEMA_VERSION, self)
    }

    pub(crate) fn remove(state: &StateDir, id: &JournalId) -> Result<(), DurableError> {
        durable::remove(&state.plan_path(id))
    }
}

/// Every applied plan in the state directory, in id order.
pub(crate) fn load_all(
    state: &StateDir,
) -> Result<Vec<(JournalId, AppliedPlan)>, crate::EngineError> {
    let mut plans = Vec::new();
    for id in state.plan_ids()? {
        if let Some(plan) = durable::load(&state.plan_path(&id), APPLIED_SCHEMA_VERSION)? {
            plans.push((id, plan));
        }
    }
    Ok(plans)
}

/// The applied plan that `target` names, or why there is none.
pub(crate) fn find(
    state: &StateDir,
    target: &str,
) -> Result<(JournalId, AppliedPlan), crate::EngineError> {
    let plans = load_all(state)?;
    let names: Vec<String> = plans
        .iter()
        .map(|(_, p)| p.plan.workload.0.clone())
        .collect();
    plans
        .into_iter()
        .find(|(_, p)| p.answers_to(target))
        .ok_or_else(|| crate::EngineError::NotApplied {
            target: target.to_owned(),
            applied: match names.is_empty() {
                true => "none".to_owned(),
                false => names.join(", "),
            },
        })
}
