//! Admission before a workload exists: would the cores a request asks for be there now?
//! libvirt asks this at a domain's `prepare`, before QEMU (and so any thread to plan) exists,
//! so a domain the host cannot serve is refused before it starts, as vSphere refuses to power
//! on a latency-sensitive VM it has no cores for.
//!
//! The allocation request is the one [`crate::plan`] makes for the same request once the
//! threads exist ([`allocation_request`]), so what is admitted here is what the apply gets.

use nearnative_host::{CpuSet, Host};

use crate::allocation::Allocation;
use crate::allocator::allocate;
use crate::changes;
use crate::ledger::Ledger;
use crate::plan::{allocation_request, check_priority, fits_scope, ScopeCpus};
use crate::plan_error::PlanError;
use crate::plan_request::PlanRequest;
use crate::request::WorkloadKey;
use crate::scope::cpus_of;

/// The allocation `request` would get for `threads` exclusive threads, against `ledger` on
/// `host`, or the planner's refusal ("vm:NAME asks for 2 exclusive cores; 1 is free on node
/// 0 ..."). Records nothing. The workload key is the target as named (`vm:NAME`); the scope's
/// CPUs are its cgroup's `cpuset.cpus` (the whole host when the scope is `/` or its cgroup
/// has no cpuset), since no target cgroup exists yet to narrow them.
pub fn admit(
    host: &Host,
    request: &PlanRequest,
    threads: u32,
    ledger: &Ledger,
) -> Result<Allocation, PlanError> {
    check_priority(request)?;
    let nic = changes::bypass::named_nic(host, request.nic.as_deref())?;
    let path = request.scope.as_deref().unwrap_or("/");
    let cpus = scope_cpus(host, path);
    let scope = ScopeCpus { path, cpus: &cpus };
    let key = WorkloadKey(request.target.to_string());
    let nic_node = nic.and_then(|n| n.numa_node);
    let wanted = allocation_request(host, request, key, threads, nic_node, &scope);
    let allocation = allocate(&host.topology, ledger, &wanted).map_err(PlanError::Admission)?;
    fits_scope(&allocation, &scope)?;
    Ok(allocation)
}

/// The CPUs the scope at `path` may give out, as far as its cgroup says.
fn scope_cpus(host: &Host, path: &str) -> CpuSet {
    let online = &host.topology.online;
    let cpuset = host
        .isolation
        .cgroups
        .cpusets
        .iter()
        .find(|c| c.path == path);
    match (path, cpuset) {
        ("/", _) | (_, None) => online.clone(),
        (_, Some(cpuset)) => cpus_of(cpuset, online),
    }
}
