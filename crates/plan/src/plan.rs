//! The [`Plan`] and its entry point [`plan`]: (host, request, ledger) → allocation, an ordered
//! list of typed knob changes, and advisories.
//!
//! Pure: the planner reads only the values it is given. It never calls a knob's `read` or
//! `write` (that is the executor's business), never touches a file, a clock or a random
//! source, and keeps every collection in a fixed order, so the same inputs give the same plan
//! byte for byte.

use nearnative_host::{CpuSet, Host, Mechanism};
use nearnative_knob::Step;
use serde::{Deserialize, Serialize};

use crate::advisories::{self, Topic};
use crate::allocation::Allocation;
use crate::allocator::allocate;
use crate::changes::{self, Changes, Context};
use crate::decisions::{deserialize_notes, Note, ProtectedIrq};
use crate::error::AdmissionError;
use crate::ledger::Ledger;
use crate::plan_error::PlanError;
use crate::plan_request::PlanRequest;
use crate::pool::{self, Pool};
use crate::request::{AllocationRequest, WorkloadKey};
use crate::scope::{self, Scope};
use crate::target::{self, Target};
use crate::workload_id::WorkloadId;

/// One knob change with the mechanism it serves and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedChange {
    #[serde(flatten)]
    pub step: Step,
    pub mechanism: Mechanism,
    /// One line.
    pub reason: String,
}

/// What cannot be changed live, as exact text to paste where `topic` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advisory {
    pub mechanism: Mechanism,
    /// Where the text goes.
    pub topic: Topic,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub workload: WorkloadKey,
    pub target: Target,
    /// Names the journal, the plan record and the cgroups the plan creates
    /// (`nearnative-<id>-hk`).
    pub id: WorkloadId,
    pub scope: Scope,
    pub allocation: Allocation,
    /// With `--cores N`: the threads that share the pool and its CPUs (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<Pool>,
    /// In execution order: each knob's object exists before it is written, and revert (the
    /// reverse order) empties a cgroup before removing it.
    pub changes: Vec<PlannedChange>,
    pub advisories: Vec<Advisory>,
    /// Why knobs that could have been changed were left alone. A plan recorded before notes
    /// were typed holds them as [`Note::Text`].
    #[serde(deserialize_with = "deserialize_notes")]
    pub notes: Vec<Note>,
    /// The IRQs of the interfaces that carried a default route when the plan was made, less
    /// the one `--nic` named: never steered, so verify excuses them on the exclusive CPUs
    /// whatever the routes are by then. `None` in a plan recorded before they were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_irqs: Option<Vec<ProtectedIrq>>,
}

impl Plan {
    /// The steps for the executor, in order.
    pub fn steps(&self) -> Vec<Step> {
        self.changes.iter().map(|c| c.step.clone()).collect()
    }
}

/// Plans `request` on `host`, giving only cores no other workload in `ledger` holds.
pub fn plan(host: &Host, request: &PlanRequest, ledger: &Ledger) -> Result<Plan, PlanError> {
    plan_with(host, request, ledger, |wanted| {
        allocate(&host.topology, ledger, wanted).map_err(PlanError::Admission)
    })
}

/// Plans an applied workload again on the allocation it `holds` (its entry in `ledger`),
/// for the threads it has now: the steps that bring the host back to the plan (a knob changed
/// since, a thread born since). Re-planning an unchanged host gives no steps. When the
/// workload no longer fits its allocation (a vCPU was added or removed), the error says why,
/// and it has to be reverted and planned afresh.
pub fn replan(
    host: &Host,
    request: &PlanRequest,
    ledger: &Ledger,
    holds: &Allocation,
) -> Result<Plan, PlanError> {
    plan_with(host, request, ledger, |wanted| {
        ledger
            .validate(&host.topology)
            .map_err(|e| PlanError::Admission(AdmissionError::Ledger(e)))?;
        let mut kept = holds.clone();
        kept.request.within.clone_from(&wanted.within);
        // Exact cores are the workload's whatever its thread count: a container's threads
        // come and go, and its pool was admitted before any of them existed.
        if wanted.exact.is_some() {
            kept.request.threads = wanted.threads;
        }
        if kept.request != *wanted {
            return Err(PlanError::AllocationNoLongerFits {
                workload: wanted.workload.clone(),
                reason: misfit(&holds.request, wanted),
            });
        }
        let outside = wanted
            .within
            .as_ref()
            .filter(|w| !holds.held().is_subset(w));
        if let Some(within) = outside {
            return Err(PlanError::AllocationNoLongerFits {
                workload: wanted.workload.clone(),
                reason: format!("its scope's CPUs are {within} now"),
            });
        }
        kept.request = holds.request.clone();
        // As the allocator does for a request it already holds: the CPUs no workload holds.
        kept.housekeeping = host.topology.online.difference(&ledger.held());
        Ok(kept)
    })
}

/// Why an allocation made for `held` does not serve `wanted`.
fn misfit(held: &AllocationRequest, wanted: &AllocationRequest) -> String {
    match held.threads == wanted.threads {
        false => format!(
            "it has {} exclusive thread(s) now, its allocation was made for {}",
            wanted.threads, held.threads
        ),
        true => "its request differs from the one its allocation was made for".to_owned(),
    }
}

/// The plan, with `allocate` deciding the allocation for the request it is given.
fn plan_with(
    host: &Host,
    request: &PlanRequest,
    ledger: &Ledger,
    allocate: impl FnOnce(&AllocationRequest) -> Result<Allocation, PlanError>,
) -> Result<Plan, PlanError> {
    check_priority(request)?;
    let target = target::resolve(
        host,
        &request.target,
        request.vcpus.as_ref(),
        request.threads.as_deref(),
    )?;
    let nic = changes::bypass::named_nic(host, request.nic.as_deref())?;
    let scope = scope::resolve(host, request.scope.as_deref(), &target)?;
    let threads = u32::try_from(target.exclusive.len()).unwrap_or(u32::MAX);
    let nic_node = nic.and_then(|n| n.numa_node);
    let within = ScopeCpus {
        path: &scope.path,
        cpus: &scope.cpus,
    };
    let wanted = allocation_request(
        host,
        request,
        target.key.clone(),
        threads,
        nic_node,
        &within,
    );
    let allocation = allocate(&wanted)?;
    let housekeeping = fits_scope(&allocation, &within)?;
    let held = allocation.held();
    let id = WorkloadId::of(&target.key);
    let context = Context {
        host,
        request,
        target: &target,
        allocation: &allocation,
        scope: &scope,
        exclusive: held,
        housekeeping,
        id: id.clone(),
        nic,
        others: target::ledger_pids(host, ledger, &target.key),
    };
    let mut changes = Changes::default();
    changes::exclusivity::plan(&context, &mut changes)?;
    changes::irqs::plan(&context, &mut changes);
    changes::sched::plan(&context, &mut changes);
    changes::bypass::plan(&context, &mut changes);
    changes::memory::plan(&context, &mut changes);
    let advisories = advisories::all(&context, &ledger.held_except(Some(&target.key)));
    Ok(Plan {
        workload: target.key.clone(),
        target: request.target.clone(),
        id,
        scope: scope.clone(),
        pool: pool::pool(&context),
        allocation: allocation.clone(),
        changes: changes.changes,
        advisories,
        notes: changes.notes,
        protected_irqs: Some(changes::irqs::protected(&context)),
    })
}

/// A real-time priority outside 1..=99 is refused before anything is resolved.
pub(crate) fn check_priority(request: &PlanRequest) -> Result<(), PlanError> {
    match request.rt.filter(|p| !(1..=99).contains(p)) {
        Some(priority) => Err(PlanError::BadPriority { priority }),
        None => Ok(()),
    }
}

/// What `request` asks the allocator for: `threads` exclusive threads of workload `key`,
/// near `nic_node`, inside `scope`'s CPUs. Planning and admission (`crate::admit`) both ask
/// through it, so an admitted workload is planned on the same terms.
pub(crate) fn allocation_request(
    host: &Host,
    request: &PlanRequest,
    key: WorkloadKey,
    threads: u32,
    nic_node: Option<u32>,
    scope: &ScopeCpus,
) -> AllocationRequest {
    let mut wanted = AllocationRequest::new(key, threads, request.level);
    wanted.cores = request.cores;
    wanted.io = request.io;
    wanted.nic_node = nic_node;
    wanted.allow_cpu0 = request.allow_cpu0;
    wanted.housekeeping = request.housekeeping.clone();
    wanted.spill = request.spill;
    wanted.exact.clone_from(&request.exact);
    // Under cgroup v2 the target's cgroup may hold fewer CPUs than the whole host.
    let narrowed = *scope.cpus != host.topology.online;
    wanted.within = (scope.path != "/" || narrowed).then(|| scope.cpus.clone());
    wanted
}

/// What allocation needs of a scope: its path and the CPUs it may give out.
pub(crate) struct ScopeCpus<'s> {
    pub path: &'s str,
    pub cpus: &'s CpuSet,
}

/// The housekeeping CPUs `allocation` leaves in `scope`, or why it does not fit there.
pub(crate) fn fits_scope(allocation: &Allocation, scope: &ScopeCpus) -> Result<CpuSet, PlanError> {
    let held = allocation.held();
    if !held.is_subset(scope.cpus) {
        return Err(PlanError::AllocationOutsideScope {
            scope: scope.path.to_owned(),
            scope_cpus: scope.cpus.clone(),
            needed: held,
        });
    }
    let housekeeping = allocation.housekeeping.intersection(scope.cpus);
    if housekeeping.is_empty() {
        return Err(PlanError::NoHousekeeping {
            scope: scope.path.to_owned(),
            cpus: scope.cpus.clone(),
        });
    }
    Ok(housekeeping)
}

/// The CPUs of `set`, or `fallback` when taking the exclusive CPUs out leaves none.
pub(crate) fn without(set: &CpuSet, exclusive: &CpuSet, fallback: &CpuSet) -> CpuSet {
    let rest = set.difference(exclusive);
    match rest.is_empty() {
        true => fallback.clone(),
        false => rest,
    }
}
