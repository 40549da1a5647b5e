//! The one-sentence notes an allocation carries, each saying why the placement departs from
//! what the user would assume: another node than preferred, efficiency cores, CPU 0's core,
//! an idle sibling, a dedicated I/O core.

use nearnative_host::CpuSet;

use crate::availability::NodeAvailability;
use crate::host_index::HostIndex;
use crate::request::AllocationRequest;

/// Why the workload went to `chosen`, when a preference named another node or two
/// preferences disagreed.
pub fn node_choice(
    index: &HostIndex,
    available: &[NodeAvailability],
    request: &AllocationRequest,
    chosen: u32,
    cores: usize,
) -> Vec<String> {
    let free_on = |node: u32| {
        available
            .iter()
            .find(|a| a.node == node)
            .map_or(0, |a| a.budget)
    };
    let cores_word = if cores == 1 { "core" } else { "cores" };
    match (request.memory_node, request.nic_node) {
        (Some(memory), nic) if memory != chosen => {
            let nic_too = if nic == Some(chosen) {
                ", the NIC's node"
            } else {
                ""
            };
            vec![format!(
                "memory node {memory} has {} free cores for the {cores} {cores_word} needed; \
                 placed on node {chosen}{nic_too} (distance {}), so memory accesses are remote \
                 until the workload's memory moves to node {chosen}",
                free_on(memory),
                index.distance(memory, chosen),
            )]
        }
        (Some(memory), Some(nic)) if nic != memory => vec![format!(
            "memory node {memory} wins over NIC node {nic}: every memory access of every \
             thread stays local, while only the NIC's DMA and interrupts cross nodes"
        )],
        (None, Some(nic)) if nic != chosen => vec![format!(
            "NIC node {nic} has {} free cores for the {cores} {cores_word} needed; placed on \
             node {chosen} (distance {} from the NIC)",
            free_on(nic),
            index.distance(nic, chosen),
        )],
        _ => Vec::new(),
    }
}

/// The cores did not fit on one node and the request allowed spilling.
pub fn spill(main: u32, per_node: &[(u32, usize)]) -> String {
    let parts: Vec<String> = per_node
        .iter()
        .map(|(node, cores)| format!("node {node}: {cores}"))
        .collect();
    format!(
        "the cores do not fit on one node; spilled by distance from node {main} ({}): threads \
         off node {main} pay for remote memory and cross-node cache traffic",
        parts.join(", ")
    )
}

/// Threads that landed on efficiency cores because performance cores ran out.
pub fn efficiency(threads: &[u32], cpus: &CpuSet, performance_cores: usize) -> String {
    let list: Vec<String> = threads.iter().map(u32::to_string).collect();
    format!(
        "threads {} run on efficiency cores (CPUs {cpus}): only {performance_cores} free \
         performance cores were left",
        list.join(", ")
    )
}

/// Pool CPUs that landed on efficiency cores because performance cores ran out.
pub fn efficiency_pool(cpus: &CpuSet, performance_cores: usize) -> String {
    format!(
        "pool CPUs {cpus} are on efficiency cores: only {performance_cores} free performance \
         cores were left"
    )
}

pub fn cpu0() -> String {
    "CPU 0's core is allocated, as the request allows: the boot CPU keeps some timers and \
     interrupts that cannot move, so expect more jitter there"
        .to_owned()
}

pub fn no_smt(pool: bool) -> String {
    match pool {
        true => "this host has no SMT, so a pool at level high-ht has one CPU per core, as at high",
        false => {
            "this host has no SMT, so level high-ht gives each thread a core of its own, as high \
             does"
        }
    }
    .to_owned()
}

pub fn idle_sibling(thread: u32, cpu: u32, idle: &CpuSet) -> String {
    format!(
        "odd thread count at level high-ht: thread {thread} on CPU {cpu} has its sibling \
         CPU {idle} kept idle"
    )
}

pub fn io(cpus: &CpuSet, node: u32) -> String {
    format!("I/O threads (iothreads, emulator, vhost) get core CPUs {cpus} on node {node} to themselves")
}
