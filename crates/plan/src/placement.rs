//! Which node (or nodes) a workload's cores come from.
//!
//! One node is always tried first, ordered by distance to the memory node, then to the NIC's
//! node, then best fit (the node with the fewest free cores that still holds the request, so
//! roomier nodes stay whole for bigger workloads), then node id. Memory comes before the NIC
//! because every memory access of every thread pays for a remote node, while a remote NIC
//! costs only on its DMA and interrupt path.
//!
//! When no node holds the request, [`NumaSpill::Nearest`] fills the main node (memory node,
//! else NIC node, else the roomiest) and then the nodes nearest to it; the default refuses
//! (see [`NumaSpill`] for why).

use crate::availability::NodeAvailability;
use crate::host_index::HostIndex;
use crate::notes::{self, PlacementNote};
use crate::packing::{choose, take_most};
use crate::request::{AllocationRequest, NumaSpill};

/// What the request needs, in thread slots.
#[derive(Debug, Clone, Copy)]
pub struct Need {
    pub slots: usize,
    /// Threads of this workload that may share one core: 1 at `high`, 2 at `high-ht`.
    pub per_core: usize,
    /// Whether one more whole core is needed for I/O.
    pub io: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Cores (positions in the index) in the order threads are given to them.
    pub thread_cores: Vec<usize>,
    pub io_core: Option<usize>,
    /// Nodes used, the main one first.
    pub nodes: Vec<u32>,
    pub notes: Vec<PlacementNote>,
}

/// Why no placement was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotEnoughCores,
    /// Enough cores in total, but the request forbids spilling across nodes.
    NoSingleNode,
}

pub fn place(
    index: &HostIndex,
    available: &[NodeAvailability],
    request: &AllocationRequest,
    need: Need,
) -> Result<Placement, Refusal> {
    if let Some(placement) = single_node(index, available, request, need) {
        return Ok(placement);
    }
    match (spill(index, available, request, need), request.spill) {
        (Some(placement), NumaSpill::Nearest) => Ok(placement),
        (Some(_), NumaSpill::Refuse) => Err(Refusal::NoSingleNode),
        (None, _) => Err(Refusal::NotEnoughCores),
    }
}

fn single_node(
    index: &HostIndex,
    available: &[NodeAvailability],
    request: &AllocationRequest,
    need: Need,
) -> Option<Placement> {
    let away = |preferred: Option<u32>, node| preferred.map_or(0, |p| index.distance(p, node));
    let mut order: Vec<&NodeAvailability> = available.iter().filter(|a| a.budget > 0).collect();
    order.sort_by_key(|a| {
        (
            away(request.memory_node, a.node),
            away(request.nic_node, a.node),
            a.budget,
            a.node,
        )
    });
    order.into_iter().find_map(|node| {
        let thread_budget = node.budget.checked_sub(usize::from(need.io))?;
        let cores = choose(
            index,
            &node.eligible,
            need.slots,
            need.per_core,
            thread_budget,
        )?;
        let io_core = io_core(index, node, &cores, need)?;
        Some(Placement {
            notes: notes::node_choice(index, available, request, node.node, cores.len()),
            thread_cores: cores,
            io_core,
            nodes: vec![node.node],
        })
    })
}

/// `Some(None)` when I/O stays on housekeeping cores, `None` when no core is left for it.
fn io_core(
    index: &HostIndex,
    node: &NodeAvailability,
    thread_cores: &[usize],
    need: Need,
) -> Option<Option<usize>> {
    if !need.io {
        return Some(None);
    }
    let rest: Vec<usize> = node
        .eligible
        .iter()
        .copied()
        .filter(|c| !thread_cores.contains(c))
        .collect();
    choose(index, &rest, 1, 1, 1).map(|cores| cores.first().copied())
}

fn spill(
    index: &HostIndex,
    available: &[NodeAvailability],
    request: &AllocationRequest,
    need: Need,
) -> Option<Placement> {
    let main = main_node(available, request)?;
    let mut order: Vec<&NodeAvailability> = available
        .iter()
        .filter(|a| a.node != main.node && a.budget > 0)
        .collect();
    let nic_away = |node| request.nic_node.map_or(0, |n| index.distance(n, node));
    order.sort_by_key(|a| (index.distance(main.node, a.node), nic_away(a.node), a.node));
    order.insert(0, main);
    let mut remaining = need.slots;
    let mut thread_cores = Vec::new();
    let mut per_node = Vec::new();
    for node in order {
        if remaining == 0 {
            break;
        }
        let budget = node.budget - usize::from(need.io && node.node == main.node);
        let cores = choose(index, &node.eligible, remaining, need.per_core, budget)
            .unwrap_or_else(|| take_most(index, &node.eligible, remaining, need.per_core, budget));
        let slots: usize = cores
            .iter()
            .map(|&c| index.cores[c].slots(need.per_core))
            .sum();
        remaining = remaining.saturating_sub(slots);
        if !cores.is_empty() {
            per_node.push((node.node, cores.len()));
        }
        thread_cores.extend(cores);
    }
    if remaining > 0 {
        return None;
    }
    let io_core = io_core(index, main, &thread_cores, need)?;
    let mut nodes: Vec<u32> = per_node.iter().map(|&(node, _)| node).collect();
    if !nodes.contains(&main.node) {
        nodes.insert(0, main.node);
    }
    Some(Placement {
        notes: vec![notes::spill(main.node, &per_node)],
        thread_cores,
        io_core,
        nodes,
    })
}

/// The memory node if it has a free core, else the NIC's, else the roomiest node.
fn main_node<'a>(
    available: &'a [NodeAvailability],
    request: &AllocationRequest,
) -> Option<&'a NodeAvailability> {
    let with_room = |id: Option<u32>| {
        available
            .iter()
            .find(|a| Some(a.node) == id && a.budget > 0)
    };
    with_room(request.memory_node)
        .or_else(|| with_room(request.nic_node))
        .or_else(|| {
            available
                .iter()
                .filter(|a| a.budget > 0)
                .max_by_key(|a| (a.budget, std::cmp::Reverse(a.node)))
        })
}

/// How many exclusive cores a request needs, for messages: on cores of the usual size.
pub fn cores_needed(index: &HostIndex, need: Need) -> usize {
    let per_core = if index.smt { need.per_core } else { 1 };
    need.slots.div_ceil(per_core) + usize::from(need.io)
}
