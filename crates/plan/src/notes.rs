//! The notes an allocation carries, each saying why the placement departs from what the user
//! would assume: another node than preferred, efficiency cores, CPU 0's core, an idle
//! sibling, a dedicated I/O core. Each is a [`PlacementNote`] with its numbers as fields;
//! `Display` gives the sentence.

use std::fmt;

use nearnative_host::CpuSet;
use serde::{Deserialize, Serialize};

use crate::availability::NodeAvailability;
use crate::host_index::HostIndex;
use crate::request::AllocationRequest;

/// Why the allocation is placed as it is. The JSON carries the variant as `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlacementNote {
    /// The memory node had too few free cores; placed on `chosen` instead.
    RemoteMemory {
        memory_node: u32,
        free_cores: usize,
        cores: usize,
        chosen: u32,
        /// `chosen` is the NIC's node.
        nic_node: bool,
        distance: u32,
    },
    /// The memory node and the NIC's node disagree; memory wins.
    MemoryOverNic { memory_node: u32, nic_node: u32 },
    /// The NIC's node had too few free cores; placed on `chosen` instead.
    AwayFromNic {
        nic_node: u32,
        free_cores: usize,
        cores: usize,
        chosen: u32,
        distance: u32,
    },
    /// The cores did not fit on one node, and the request allowed spilling.
    Spill { main: u32, per_node: Vec<NodeCores> },
    /// Threads on efficiency cores because performance cores ran out.
    Efficiency {
        threads: Vec<u32>,
        cpus: CpuSet,
        performance_cores: usize,
    },
    /// Pool CPUs on efficiency cores because performance cores ran out.
    EfficiencyPool {
        cpus: CpuSet,
        performance_cores: usize,
    },
    /// CPU 0's core is allocated.
    Cpu0,
    /// Level high-ht on a host without SMT.
    NoSmt { pool: bool },
    /// An odd thread count at high-ht leaves the last thread's sibling idle.
    IdleSibling { thread: u32, cpu: u32, idle: CpuSet },
    /// The I/O threads' dedicated core.
    Io { cpus: CpuSet, node: u32 },
    /// A note recorded as plain text, before notes were typed.
    Text { text: String },
}

/// How many cores one node gives a spilled allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCores {
    pub node: u32,
    pub cores: usize,
}

impl From<String> for PlacementNote {
    fn from(text: String) -> Self {
        PlacementNote::Text { text }
    }
}

impl fmt::Display for PlacementNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cores_word = |cores: usize| if cores == 1 { "core" } else { "cores" };
        match self {
            PlacementNote::RemoteMemory {
                memory_node,
                free_cores,
                cores,
                chosen,
                nic_node,
                distance,
            } => write!(
                f,
                "memory node {memory_node} has {free_cores} free cores for the {cores} {} \
                 needed; placed on node {chosen}{} (distance {distance}), so memory accesses \
                 are remote until the workload's memory moves to node {chosen}",
                cores_word(*cores),
                if *nic_node { ", the NIC's node" } else { "" },
            ),
            PlacementNote::MemoryOverNic {
                memory_node,
                nic_node,
            } => write!(
                f,
                "memory node {memory_node} wins over NIC node {nic_node}: every memory access \
                 of every thread stays local, while only the NIC's DMA and interrupts cross \
                 nodes"
            ),
            PlacementNote::AwayFromNic {
                nic_node,
                free_cores,
                cores,
                chosen,
                distance,
            } => write!(
                f,
                "NIC node {nic_node} has {free_cores} free cores for the {cores} {} needed; \
                 placed on node {chosen} (distance {distance} from the NIC)",
                cores_word(*cores),
            ),
            PlacementNote::Spill { main, per_node } => {
                let parts: Vec<String> = per_node
                    .iter()
                    .map(|n| format!("node {}: {}", n.node, n.cores))
                    .collect();
                write!(
                    f,
                    "the cores do not fit on one node; spilled by distance from node {main} \
                     ({}): threads off node {main} pay for remote memory and cross-node cache \
                     traffic",
                    parts.join(", ")
                )
            }
            PlacementNote::Efficiency {
                threads,
                cpus,
                performance_cores,
            } => {
                let list: Vec<String> = threads.iter().map(u32::to_string).collect();
                write!(
                    f,
                    "threads {} run on efficiency cores (CPUs {cpus}): only \
                     {performance_cores} free performance cores were left",
                    list.join(", ")
                )
            }
            PlacementNote::EfficiencyPool {
                cpus,
                performance_cores,
            } => write!(
                f,
                "pool CPUs {cpus} are on efficiency cores: only {performance_cores} free \
                 performance cores were left"
            ),
            PlacementNote::Cpu0 => f.write_str(
                "CPU 0's core is allocated, as the request allows: the boot CPU keeps some \
                 timers and interrupts that cannot move, so expect more jitter there",
            ),
            PlacementNote::NoSmt { pool: true } => f.write_str(
                "this host has no SMT, so a pool at level high-ht has one CPU per core, as at \
                 high",
            ),
            PlacementNote::NoSmt { pool: false } => f.write_str(
                "this host has no SMT, so level high-ht gives each thread a core of its own, as \
                 high does",
            ),
            PlacementNote::IdleSibling { thread, cpu, idle } => write!(
                f,
                "odd thread count at level high-ht: thread {thread} on CPU {cpu} has its \
                 sibling CPU {idle} kept idle"
            ),
            PlacementNote::Io { cpus, node } => write!(
                f,
                "I/O threads (iothreads, emulator, vhost) get core CPUs {cpus} on node {node} \
                 to themselves"
            ),
            PlacementNote::Text { text } => f.write_str(text),
        }
    }
}

/// Why the workload went to `chosen`, when a preference named another node or two
/// preferences disagreed.
pub fn node_choice(
    index: &HostIndex,
    available: &[NodeAvailability],
    request: &AllocationRequest,
    chosen: u32,
    cores: usize,
) -> Vec<PlacementNote> {
    let free_on = |node: u32| {
        available
            .iter()
            .find(|a| a.node == node)
            .map_or(0, |a| a.budget)
    };
    match (request.memory_node, request.nic_node) {
        (Some(memory), nic) if memory != chosen => vec![PlacementNote::RemoteMemory {
            memory_node: memory,
            free_cores: free_on(memory),
            cores,
            chosen,
            nic_node: nic == Some(chosen),
            distance: index.distance(memory, chosen),
        }],
        (Some(memory), Some(nic)) if nic != memory => vec![PlacementNote::MemoryOverNic {
            memory_node: memory,
            nic_node: nic,
        }],
        (None, Some(nic)) if nic != chosen => vec![PlacementNote::AwayFromNic {
            nic_node: nic,
            free_cores: free_on(nic),
            cores,
            chosen,
            distance: index.distance(nic, chosen),
        }],
        _ => Vec::new(),
    }
}

/// The cores did not fit on one node and the request allowed spilling.
pub fn spill(main: u32, per_node: &[(u32, usize)]) -> PlacementNote {
    PlacementNote::Spill {
        main,
        per_node: per_node
            .iter()
            .map(|&(node, cores)| NodeCores { node, cores })
            .collect(),
    }
}

/// Threads that landed on efficiency cores because performance cores ran out.
pub fn efficiency(threads: &[u32], cpus: &CpuSet, performance_cores: usize) -> PlacementNote {
    PlacementNote::Efficiency {
        threads: threads.to_vec(),
        cpus: cpus.clone(),
        performance_cores,
    }
}

/// Pool CPUs that landed on efficiency cores because performance cores ran out.
pub fn efficiency_pool(cpus: &CpuSet, performance_cores: usize) -> PlacementNote {
    PlacementNote::EfficiencyPool {
        cpus: cpus.clone(),
        performance_cores,
    }
}

pub fn cpu0() -> PlacementNote {
    PlacementNote::Cpu0
}

pub fn no_smt(pool: bool) -> PlacementNote {
    PlacementNote::NoSmt { pool }
}

pub fn idle_sibling(thread: u32, cpu: u32, idle: &CpuSet) -> PlacementNote {
    PlacementNote::IdleSibling {
        thread,
        cpu,
        idle: idle.clone(),
    }
}

pub fn io(cpus: &CpuSet, node: u32) -> PlacementNote {
    PlacementNote::Io {
        cpus: cpus.clone(),
        node,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_notes_round_trip_and_read_as_sentences() {
        let cases = [
            (
                spill(0, &[(0, 2), (1, 1)]),
                "the cores do not fit on one node; spilled by distance from node 0 (node 0: 2, \
                 node 1: 1): threads off node 0 pay for remote memory and cross-node cache \
                 traffic",
            ),
            (
                efficiency(&[2, 3], &CpuSet::from_ids([12, 13]), 1),
                "threads 2, 3 run on efficiency cores (CPUs 12-13): only 1 free performance \
                 cores were left",
            ),
            (
                PlacementNote::RemoteMemory {
                    memory_node: 1,
                    free_cores: 0,
                    cores: 1,
                    chosen: 0,
                    nic_node: true,
                    distance: 21,
                },
                "memory node 1 has 0 free cores for the 1 core needed; placed on node 0, the \
                 NIC's node (distance 21), so memory accesses are remote until the workload's \
                 memory moves to node 0",
            ),
        ];
        for (note, text) in cases {
            assert_eq!(note.to_string(), text);
            let json = serde_json::to_value(&note).unwrap();
            assert!(json["kind"].is_string(), "{json}");
            assert_eq!(serde_json::from_value::<PlacementNote>(json).unwrap(), note);
        }
    }

    #[derive(Deserialize)]
    struct Notes {
        #[serde(deserialize_with = "crate::decisions::deserialize_notes")]
        notes: Vec<PlacementNote>,
    }

    #[test]
    fn plain_text_notes_of_old_records_still_load() {
        let old = cpu0().to_string();
        let json = serde_json::json!({"notes": [old, {"kind": "cpu0"}]});
        let notes: Notes = serde_json::from_value(json).unwrap();
        assert_eq!(notes.notes, [PlacementNote::Text { text: old }, cpu0()]);
    }
}
