//! Which of a node's eligible cores one workload gets, packed for cache locality and
//! deterministic: performance cores before efficiency cores (CPU 0's core last); within a
//! kind, the smallest L3 (else die, else package) group that holds the whole request, so big
//! groups stay whole for big workloads, and inside it the run of cores with the closest ids.
//! When no group holds it, the largest groups first, so the workload spans as few caches as
//! possible.

use std::collections::BTreeMap;

use crate::host_index::{HostIndex, Locality};

/// Cores for `need` thread slots (at `per_core` threads per core), at most `budget` of them,
/// in the order threads are given to them. `None` when even the cores with the most slots do
/// not reach `need` within `budget`.
pub fn choose(
    index: &HostIndex,
    eligible: &[usize],
    need: usize,
    per_core: usize,
    budget: usize,
) -> Option<Vec<usize>> {
    let order = packed(index, eligible, need, per_core);
    if let Some(prefix) = prefix_for(index, &order, need, per_core, budget) {
        return Some(prefix);
    }
    // Cores with an offline sibling have fewer slots; when the packed order wastes the budget
    // on them, the roomiest cores (packed order among equals) are the only way to fit.
    prefix_for(
        index,
        &roomiest(index, order, per_core),
        need,
        per_core,
        budget,
    )
}

/// As many slots as `budget` cores can give, from the roomiest cores, for a node that cannot
/// hold the whole request on its own.
pub fn take_most(
    index: &HostIndex,
    eligible: &[usize],
    need: usize,
    per_core: usize,
    budget: usize,
) -> Vec<usize> {
    let mut order = roomiest(index, packed(index, eligible, need, per_core), per_core);
    order.truncate(budget);
    order
}

fn roomiest(index: &HostIndex, mut order: Vec<usize>, per_core: usize) -> Vec<usize> {
    order.sort_by_key(|&c| std::cmp::Reverse(index.cores[c].slots(per_core)));
    order
}

fn prefix_for(
    index: &HostIndex,
    order: &[usize],
    need: usize,
    per_core: usize,
    budget: usize,
) -> Option<Vec<usize>> {
    let mut slots = 0;
    for (taken, &core) in order.iter().take(budget).enumerate() {
        slots += index.cores[core].slots(per_core);
        if slots >= need {
            return Some(order[..=taken].to_vec());
        }
    }
    None
}

/// Every eligible core, best first for a request of `need` slots: performance cores, then
/// efficiency cores, then CPU 0's core (when the request allows it at all), whose boot-CPU
/// duties make it the worst exclusive core and the best one to leave to the host.
fn packed(index: &HostIndex, eligible: &[usize], need: usize, per_core: usize) -> Vec<usize> {
    let tier = |c: usize| {
        let core = &index.cores[c];
        usize::from(core.efficiency) + 2 * usize::from(core.has_cpu0)
    };
    let mut order = Vec::with_capacity(eligible.len());
    let mut remaining = need;
    for rank in 0..4 {
        let members: Vec<usize> = eligible
            .iter()
            .copied()
            .filter(|&c| tier(c) == rank)
            .collect();
        order.extend(by_group(index, &members, remaining.max(1), per_core));
        remaining = remaining.saturating_sub(slots(index, &members, per_core));
    }
    order
}

fn slots(index: &HostIndex, cores: &[usize], per_core: usize) -> usize {
    cores.iter().map(|&c| index.cores[c].slots(per_core)).sum()
}

/// `cores` (in core-id order) ordered by locality group for a request of `need` slots.
fn by_group(index: &HostIndex, cores: &[usize], need: usize, per_core: usize) -> Vec<usize> {
    let mut groups: BTreeMap<Locality, Vec<usize>> = BTreeMap::new();
    for &core in cores {
        groups
            .entry(index.cores[core].locality)
            .or_default()
            .push(core);
    }
    let mut groups: Vec<(usize, Locality, Vec<usize>)> = groups
        .into_iter()
        .map(|(locality, members)| (slots(index, &members, per_core), locality, members))
        .collect();
    let best_fit = groups
        .iter()
        .enumerate()
        .filter(|(_, (capacity, _, _))| *capacity >= need)
        .min_by_key(|(_, (capacity, locality, _))| (*capacity, *locality))
        .map(|(position, _)| position);
    let first = best_fit.map(|position| {
        let (_, _, members) = groups.remove(position);
        tightest_first(index, members, need, per_core)
    });
    groups.sort_by_key(|(capacity, locality, _)| (std::cmp::Reverse(*capacity), *locality));
    first
        .into_iter()
        .flatten()
        .chain(groups.into_iter().flat_map(|(_, _, members)| members))
        .collect()
}

/// `members` (in core-id order, holding `need` slots) with the run of cores spanning the
/// fewest core ids moved to the front; the earliest such run on a tie.
fn tightest_first(
    index: &HostIndex,
    members: Vec<usize>,
    need: usize,
    per_core: usize,
) -> Vec<usize> {
    let id = |position: usize| index.cores[members[position]].id;
    let mut best: Option<(u32, usize, usize)> = None;
    let mut end = 0;
    let mut slots = 0;
    for start in 0..members.len() {
        while slots < need && end < members.len() {
            slots += index.cores[members[end]].slots(per_core);
            end += 1;
        }
        if slots < need {
            break;
        }
        let span = id(end - 1) - id(start);
        if best.map_or(true, |(best_span, _, _)| span < best_span) {
            best = Some((span, start, end));
        }
        slots -= index.cores[members[start]].slots(per_core);
    }
    let Some((_, start, end)) = best else {
        return members;
    };
    let mut order = members[start..end].to_vec();
    order.extend_from_slice(&members[..start]);
    order.extend_from_slice(&members[end..]);
    order
}

#[cfg(test)]
mod tests {
    use nearnative_testkit::Shape;

    use super::*;

    #[test]
    fn a_core_with_an_offline_sibling_is_skipped_when_the_budget_needs_full_cores() {
        // Core c is CPUs c and c+5; CPU 7 is offline, so core 2 has one thread. The tightest
        // run 1,2,3 cannot hold 4 high-ht threads in 2 cores; cores 1 and 3 can.
        let topology = Shape {
            offline: vec![7],
            ..Shape::server(1, 1, 5, 2)
        }
        .build();
        let index = HostIndex::new(&topology);
        assert_eq!(choose(&index, &[1, 2, 3], 4, 2, 2), Some(vec![1, 3]));
        assert_eq!(choose(&index, &[1, 2, 3], 5, 2, 2), None);
        assert_eq!(choose(&index, &[1, 2, 3], 3, 2, 2), Some(vec![1, 2]));
    }
}
