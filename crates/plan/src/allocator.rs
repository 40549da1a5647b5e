//! The allocator: topology, ledger and request in; an [`Allocation`] or an
//! [`AdmissionError`] out. Pure: nothing here reads the host or the clock.
//!
//! [`Allocator`] indexes a topology once; [`Admission`] is a ledger checked against it (as
//! kubelet's `validateState` does), kept with the per-core bookkeeping that lets many
//! workloads be admitted one after another without re-walking the whole ledger each time.

use std::borrow::Cow;

use nearnative_host::topology::Topology;
use nearnative_host::CpuSet;

use crate::allocation::{Allocation, Slot};
use crate::availability::{availability, protected_cores, NodeAvailability};
use crate::error::{AdmissionError, NodeCounts, NodeList, NodeRole, Shortage};
use crate::host_index::HostIndex;
use crate::ledger::{Ledger, LedgerError};
use crate::notes::{self, PlacementNote};
use crate::placement::{cores_needed, place, Need, Placement, Refusal};
use crate::request::{AllocationRequest, IoPlacement, Level, WorkloadKey};

/// A topology indexed for allocation.
pub struct Allocator<'t> {
    topology: &'t Topology,
    index: HostIndex,
}

/// A ledger known to match the topology, ready to admit workloads. A borrowed ledger is
/// copied only when a workload is admitted.
pub struct Admission<'a> {
    index: &'a HostIndex,
    ledger: Cow<'a, Ledger>,
    /// Every CPU some workload holds.
    held: CpuSet,
    /// Per core of the index: some workload holds it.
    core_taken: Vec<bool>,
}

/// Checks `ledger` against `topology` and allocates for `request` without recording it.
pub fn allocate(
    topology: &Topology,
    ledger: &Ledger,
    request: &AllocationRequest,
) -> Result<Allocation, AdmissionError> {
    Allocator::new(topology).allocate(ledger, request)
}

impl<'t> Allocator<'t> {
    pub fn new(topology: &'t Topology) -> Self {
        Allocator {
            topology,
            index: HostIndex::new(topology),
        }
    }

    /// Checks `ledger` against the topology and opens it for admitting workloads.
    pub fn admission(&self, ledger: Ledger) -> Result<Admission<'_>, LedgerError> {
        self.open(Cow::Owned(ledger))
    }

    fn open<'a>(&'a self, ledger: Cow<'a, Ledger>) -> Result<Admission<'a>, LedgerError> {
        ledger.validate(self.topology)?;
        let mut admission = Admission {
            index: &self.index,
            held: ledger.held(),
            core_taken: vec![false; self.index.cores.len()],
            ledger,
        };
        for core in cores_of(&self.index, &admission.held) {
            admission.core_taken[core] = true;
        }
        Ok(admission)
    }

    /// Checks `ledger` and allocates for `request` without recording it.
    pub fn allocate(
        &self,
        ledger: &Ledger,
        request: &AllocationRequest,
    ) -> Result<Allocation, AdmissionError> {
        self.open(Cow::Borrowed(ledger))
            .map_err(AdmissionError::Ledger)?
            .plan(request)
    }
}

impl Admission<'_> {
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn into_ledger(self) -> Ledger {
        self.ledger.into_owned()
    }

    /// Allocates for `request` and records it, replacing the workload's previous allocation.
    /// On refusal the ledger is unchanged.
    pub fn admit(&mut self, request: &AllocationRequest) -> Result<&Allocation, AdmissionError> {
        let allocation = self.plan(request)?;
        let key = allocation.workload().clone();
        self.release(&key);
        for core in cores_of(self.index, &allocation.held()) {
            self.core_taken[core] = true;
        }
        self.held = self.held.union(&allocation.held());
        Ok(self.ledger.to_mut().upsert(allocation))
    }

    /// Gives a workload's cores back.
    pub fn release(&mut self, workload: &WorkloadKey) -> Option<Allocation> {
        self.ledger.get(workload)?;
        let previous = self.ledger.to_mut().release(workload)?;
        for core in cores_of(self.index, &previous.held()) {
            self.core_taken[core] = false;
        }
        self.held = self.held.difference(&previous.held());
        Some(previous)
    }

    /// The allocation `request` would get, without recording it. An identical request already
    /// in the ledger gets its cores back (so applying a plan again moves nothing); a changed
    /// one is placed afresh as if its old cores were free.
    pub fn plan(&self, request: &AllocationRequest) -> Result<Allocation, AdmissionError> {
        check_request(self.index, request)?;
        let previous = self.ledger.get(&request.workload);
        if let Some(previous) = previous.filter(|p| p.request == *request) {
            let mut again = previous.clone();
            again.housekeeping = self.index.online.difference(&self.held);
            return Ok(again);
        }
        let own_cores = previous.map_or_else(Vec::new, |p| cores_of(self.index, &p.held()));
        let held_by_others = match previous {
            Some(p) => self.held.difference(&p.held()),
            None => self.held.clone(),
        };
        let protected = protected_cores(self.index, request, &held_by_others)?;
        let outside = |core: usize| {
            let cpus = &self.index.cores[core].cpus;
            request.within.as_ref().is_some_and(|w| !cpus.is_subset(w))
        };
        let held = |core: usize| self.core_taken[core] && !own_cores.contains(&core);
        let need = need(request);
        let placement = match &request.exact {
            // The host keeps its cores whatever the scope: exact cores are checked against
            // the whole host's availability, and against the scope's CPUs on their own.
            Some(cpus) => {
                let available = availability(self.index, held, &protected);
                exact_placement(self.index, &available, request, need, cpus)?
            }
            None => {
                let taken = |core: usize| held(core) || outside(core);
                let available = availability(self.index, taken, &protected);
                place(self.index, &available, request, need)
                    .map_err(|refusal| self.refusal(refusal, request, &available, need))?
            }
        };
        Ok(build(self.index, request, need, placement, &held_by_others))
    }

    fn refusal(
        &self,
        refusal: Refusal,
        request: &AllocationRequest,
        available: &[NodeAvailability],
        need: Need,
    ) -> AdmissionError {
        let shortage = Shortage {
            workload: request.workload.clone(),
            level: request.level,
            threads: request.threads,
            pool: request.cores.is_some(),
            cores: cores_needed(self.index, need),
            dedicated_io: need.io,
            free: NodeCounts(available.iter().map(|a| (a.node, a.budget)).collect()),
            kept: NodeCounts(available.iter().map(|a| (a.node, a.kept)).collect()),
            smt: self.index.smt,
        };
        match refusal {
            Refusal::NotEnoughCores => AdmissionError::NotEnoughCores(shortage),
            Refusal::NoSingleNode => AdmissionError::NoSingleNode(shortage),
        }
    }
}

fn check_request(index: &HostIndex, request: &AllocationRequest) -> Result<(), AdmissionError> {
    if request.threads == 0 {
        return Err(AdmissionError::NoThreads {
            workload: request.workload.clone(),
        });
    }
    if let Some(cores) = request.cores {
        check_pool(request, cores)?;
    }
    let preferences = [
        (NodeRole::Memory, request.memory_node),
        (NodeRole::Nic, request.nic_node),
    ];
    for (role, node) in preferences {
        if let Some(node) = node.filter(|n| !index.all_nodes.contains(n)) {
            return Err(AdmissionError::UnknownNode {
                workload: request.workload.clone(),
                role,
                node,
                known: NodeList(index.all_nodes.clone()),
            });
        }
    }
    Ok(())
}

/// A pool has at least one core, and at most one per thread: a core no thread can use would
/// be taken from the host for nothing.
fn check_pool(request: &AllocationRequest, cores: u32) -> Result<(), AdmissionError> {
    let workload = request.workload.clone();
    match cores {
        0 => Err(AdmissionError::EmptyPool { workload }),
        // Exact cores were admitted before the workload's threads existed (a container's).
        cores if cores > request.threads && request.exact.is_none() => {
            Err(AdmissionError::PoolLargerThanThreads {
                workload,
                cores,
                threads: request.threads,
            })
        }
        _ => Ok(()),
    }
}

/// Exactly the whole cores of `cpus`, when they are free for this request, as many as it
/// needs, and inside its scope; otherwise the refusal names the first reason.
fn exact_placement(
    index: &HostIndex,
    available: &[NodeAvailability],
    request: &AllocationRequest,
    need: Need,
    cpus: &CpuSet,
) -> Result<Placement, AdmissionError> {
    let refuse = |reason: String| AdmissionError::ExactCpus {
        workload: request.workload.clone(),
        cpus: cpus.clone(),
        reason,
    };
    if let Some(cpu) = cpus.iter().find(|&cpu| index.core_of(cpu).is_none()) {
        return Err(refuse(format!(
            "CPU {cpu} is not an online CPU with a known core"
        )));
    }
    let cores = cores_of(index, cpus);
    let whole = cores
        .iter()
        .fold(CpuSet::new(), |all, &c| all.union(&index.cores[c].cpus));
    if whole != *cpus {
        let missing = whole.difference(cpus);
        return Err(refuse(format!(
            "not whole cores: CPUs {missing} share their cores"
        )));
    }
    if need.io {
        return Err(refuse(
            "a dedicated I/O core cannot be given with exact CPUs".to_owned(),
        ));
    }
    let wanted = cores_needed(index, need);
    if cores.len() != wanted {
        return Err(refuse(format!(
            "{} core(s), but the request needs {wanted}",
            cores.len()
        )));
    }
    if let Some(within) = request.within.as_ref().filter(|w| !cpus.is_subset(w)) {
        return Err(refuse(format!("outside the scope's CPUs {within}")));
    }
    let mut nodes = Vec::new();
    for node in available {
        let here: Vec<usize> = cores
            .iter()
            .copied()
            .filter(|&c| index.cores[c].node == node.node)
            .collect();
        if here.is_empty() {
            continue;
        }
        if let Some(&core) = here.iter().find(|c| !node.eligible.contains(c)) {
            let core_cpus = &index.cores[core].cpus;
            return Err(refuse(format!(
                "the core of CPUs {core_cpus} is held by another workload or kept for the host"
            )));
        }
        if here.len() > node.budget {
            return Err(refuse(format!(
                "node {} would be left without a core for the host",
                node.node
            )));
        }
        nodes.push(node.node);
    }
    Ok(Placement {
        thread_cores: cores,
        io_core: None,
        nodes,
        notes: Vec::new(),
    })
}

/// What placement looks for. A pool of N cores is N cores whatever the level: one slot each,
/// so placement (with every admission, NUMA and packing rule) picks exactly N whole cores.
fn need(request: &AllocationRequest) -> Need {
    let (slots, per_core) = match request.cores {
        Some(cores) => (cores as usize, 1),
        None => (request.threads as usize, threads_per_core(request.level)),
    };
    Need {
        slots,
        per_core,
        io: request.io == IoPlacement::Dedicated,
    }
}

/// Threads of one workload that may share a core at `level`; in a pool, the CPUs each core
/// gives it.
fn threads_per_core(level: Level) -> usize {
    match level {
        Level::High => 1,
        Level::HighHt => 2,
    }
}

/// Positions of the cores holding any of `cpus`, in order, without repeats.
fn cores_of(index: &HostIndex, cpus: &CpuSet) -> Vec<usize> {
    let mut cores: Vec<usize> = cpus.iter().filter_map(|cpu| index.core_of(cpu)).collect();
    cores.dedup();
    cores.sort_unstable();
    cores.dedup();
    cores
}

/// Gives threads to the placed cores in order (two per core at high-ht, the lowest CPU
/// first), or in a pool makes each core's CPUs at the level its slots, and writes the notes.
fn build(
    index: &HostIndex,
    request: &AllocationRequest,
    need: Need,
    placement: Placement,
    held_by_others: &CpuSet,
) -> Allocation {
    let (wanted, per_core) = match request.cores {
        Some(_) => (usize::MAX, threads_per_core(request.level)),
        None => (need.slots, need.per_core),
    };
    let mut slots = Vec::with_capacity(need.slots);
    let mut exclusive = CpuSet::new();
    for &position in &placement.thread_cores {
        let core = &index.cores[position];
        exclusive = exclusive.union(&core.cpus);
        for &cpu in core.cpu_list.iter().take(core.slots(per_core)) {
            if slots.len() < wanted {
                slots.push(Slot {
                    thread: slots.len() as u32,
                    cpu,
                });
            }
        }
    }
    let threads: CpuSet = slots.iter().map(|s| s.cpu).collect();
    let io_cpus = placement
        .io_core
        .map_or_else(CpuSet::new, |c| index.cores[c].cpus.clone());
    let held = exclusive.union(&io_cpus);
    let mut allocation = Allocation {
        request: request.clone(),
        reserved_idle: exclusive.difference(&threads),
        exclusive_cpus: exclusive,
        housekeeping: index.online.difference(&held_by_others.union(&held)),
        io_cpus,
        nodes: placement.nodes,
        notes: placement.notes,
        slots,
    };
    allocation.notes.extend(core_notes(
        index,
        &placement.thread_cores,
        placement.io_core,
        &allocation,
    ));
    allocation
}

/// Notes about the cores themselves: efficiency cores, CPU 0, SMT, the I/O core.
fn core_notes(
    index: &HostIndex,
    thread_cores: &[usize],
    io_core: Option<usize>,
    allocation: &Allocation,
) -> Vec<PlacementNote> {
    let mut notes = Vec::new();
    let on_efficiency: Vec<&Slot> = allocation
        .slots
        .iter()
        .filter(|s| {
            index
                .core_of(s.cpu)
                .is_some_and(|c| index.cores[c].efficiency)
        })
        .collect();
    let request = &allocation.request;
    let pool = request.cores.is_some();
    if !on_efficiency.is_empty() {
        let threads: Vec<u32> = on_efficiency.iter().map(|s| s.thread).collect();
        let cpus: CpuSet = on_efficiency.iter().map(|s| s.cpu).collect();
        let performance = thread_cores
            .iter()
            .filter(|&&c| !index.cores[c].efficiency)
            .count();
        notes.push(match pool {
            true => notes::efficiency_pool(&cpus, performance),
            false => notes::efficiency(&threads, &cpus, performance),
        });
    }
    let all_cores = thread_cores.iter().chain(io_core.as_ref());
    if all_cores.into_iter().any(|&c| index.cores[c].has_cpu0) {
        notes.push(notes::cpu0());
    }
    if request.level == Level::HighHt && !index.smt {
        notes.push(notes::no_smt(pool));
    }
    if request.level == Level::HighHt && request.threads % 2 == 1 && !pool {
        if let (Some(last), Some(&core)) = (allocation.slots.last(), thread_cores.last()) {
            let idle = index.cores[core]
                .cpus
                .intersection(&allocation.reserved_idle);
            if !idle.is_empty() {
                notes.push(notes::idle_sibling(last.thread, last.cpu, &idle));
            }
        }
    }
    if let Some(core) = io_core {
        notes.push(notes::io(&allocation.io_cpus, index.cores[core].node));
    }
    notes
}
