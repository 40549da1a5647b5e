//! Putting what was read in order: dropping groups that add nothing (a die equal to its
//! package, a one-CPU cluster), numbering every object depth-first, and filling each CPU's
//! record. Pure: no I/O.

use std::collections::HashMap;

use super::caches::RawCache;
use super::hybrid::Kinds;
use super::sysfs::{RawCpus, RawGroup};
use super::{Cache, Core, Cpu, Group, NumaNode, Package, Topology};
use crate::CpuSet;

pub fn assemble(
    raw: RawCpus,
    caches: Vec<RawCache>,
    numa_nodes: Vec<NumaNode>,
    kinds: Option<Kinds>,
) -> Topology {
    let packages = numbered(raw.packages);
    let package_sets: Vec<&CpuSet> = packages.iter().map(|p| &p.cpus).collect();
    let dies = numbered(meaningful(raw.dies, &package_sets));
    let mut wider: Vec<&CpuSet> = package_sets.clone();
    wider.extend(dies.iter().map(|d| &d.cpus));
    wider.extend(raw.cores.iter().map(|c| &c.cpus));
    let clusters = numbered(meaningful(raw.clusters, &wider));
    let groups: Vec<&CpuSet> = [&packages, &dies, &clusters]
        .into_iter()
        .flatten()
        .map(|g| &g.cpus)
        .collect();
    let caches = numbered_caches(caches, &groups);
    let mut containers = groups.clone();
    containers.extend(
        caches
            .iter()
            .filter(|c| c.cache_type.holds_data())
            .map(|c| &c.cpus),
    );
    let cores = ordered_cores(raw.cores, &packages, &containers, kinds.as_ref());
    let index = Index::new(&packages, &dies, &clusters, &cores, &caches, &numa_nodes);
    let cpus = raw
        .known
        .iter()
        .map(|id| index.cpu(id, raw.online.contains(id), &cores, kinds.as_ref()))
        .collect();
    Topology {
        cpus,
        offline: raw.known.difference(&raw.online),
        online: raw.online,
        packages: packages
            .into_iter()
            .map(|g| Package {
                id: g.id,
                os_id: g.os_id,
                cpus: g.cpus,
            })
            .collect(),
        dies,
        clusters,
        cores,
        caches,
        numa_nodes,
        hybrid: kinds.map(|k| k.source),
    }
}

/// Groups sorted by their lowest CPU and numbered from 0.
fn numbered(mut groups: Vec<RawGroup>) -> Vec<Group> {
    groups.sort_by_key(|g| g.cpus.first());
    groups
        .into_iter()
        .zip(0..)
        .map(|(g, id)| Group {
            id,
            os_id: g.os_id,
            cpus: g.cpus,
        })
        .collect()
}

/// Groups of more than one CPU that are not the same as a wider (or narrower) object.
fn meaningful(groups: Vec<RawGroup>, others: &[&CpuSet]) -> Vec<RawGroup> {
    groups
        .into_iter()
        .filter(|g| g.cpus.len() > 1 && !others.contains(&&g.cpus))
        .collect()
}

/// Caches by level, each level numbered depth-first under the packages, dies, clusters and
/// wider caches that hold it.
fn numbered_caches(caches: Vec<RawCache>, groups: &[&CpuSet]) -> Vec<Cache> {
    let wider: Vec<CpuSet> = caches.iter().map(|c| c.cpus.clone()).collect();
    let mut containers: Vec<&CpuSet> = groups.to_vec();
    containers.extend(&wider);
    let mut keyed: Vec<_> = caches
        .into_iter()
        .map(|c| {
            (
                (
                    c.level,
                    depth_first_key(&c.cpus, &containers),
                    c.cache_type as u8,
                ),
                c,
            )
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut next_id: HashMap<u8, u32> = HashMap::new();
    keyed
        .into_iter()
        .map(|(_, c)| {
            let id = next_id.entry(c.level).or_insert(0);
            let cache = Cache {
                id: *id,
                level: c.level,
                cache_type: c.cache_type,
                size_kib: c.size_kib,
                cpus: c.cpus,
            };
            *id += 1;
            cache
        })
        .collect()
}

/// Sorts like a depth-first walk of the tree: the lowest CPU of each strictly wider object
/// holding `cpus`, widest first, then the lowest CPU of `cpus` itself.
fn depth_first_key(cpus: &CpuSet, containers: &[&CpuSet]) -> Vec<Option<u32>> {
    let Some(first) = cpus.first() else {
        return Vec::new();
    };
    let mut wider: Vec<&CpuSet> = containers
        .iter()
        .copied()
        .filter(|set| set.len() > cpus.len() && set.contains(first))
        .collect();
    wider.sort_by_key(|set| std::cmp::Reverse(set.len()));
    wider.dedup();
    let mut key: Vec<Option<u32>> = wider.iter().map(|set| set.first()).collect();
    key.push(Some(first));
    key
}

/// Cores numbered depth-first, like hwloc's logical index.
fn ordered_cores(
    cores: Vec<RawGroup>,
    packages: &[Group],
    containers: &[&CpuSet],
    kinds: Option<&Kinds>,
) -> Vec<Core> {
    let mut keyed: Vec<_> = cores
        .into_iter()
        .map(|core| (depth_first_key(&core.cpus, containers), core))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let package_of = |cpu| packages.iter().find(|p| p.cpus.contains(cpu)).map(|p| p.id);
    keyed
        .into_iter()
        .zip(0..)
        .map(|((_, core), id)| {
            let first = core.cpus.first();
            Core {
                id,
                os_id: core.os_id,
                package: first.and_then(package_of),
                kind: first.and_then(|cpu| kinds.and_then(|k| k.of_cpu.get(&cpu).copied())),
                cpus: core.cpus,
            }
        })
        .collect()
}

/// Which object each CPU belongs to, by level.
struct Index {
    package: HashMap<u32, u32>,
    die: HashMap<u32, u32>,
    cluster: HashMap<u32, u32>,
    core: HashMap<u32, u32>,
    l2: HashMap<u32, u32>,
    l3: HashMap<u32, u32>,
    node: HashMap<u32, u32>,
}

impl Index {
    fn new(
        packages: &[Group],
        dies: &[Group],
        clusters: &[Group],
        cores: &[Core],
        caches: &[Cache],
        nodes: &[NumaNode],
    ) -> Self {
        let level = |level: u8| {
            membership(
                caches
                    .iter()
                    .filter(|c| c.level == level && c.cache_type.holds_data())
                    .map(|c| (c.id, &c.cpus)),
            )
        };
        Index {
            package: membership(packages.iter().map(|g| (g.id, &g.cpus))),
            die: membership(dies.iter().map(|g| (g.id, &g.cpus))),
            cluster: membership(clusters.iter().map(|g| (g.id, &g.cpus))),
            core: membership(cores.iter().map(|c| (c.id, &c.cpus))),
            l2: level(2),
            l3: level(3),
            node: membership(nodes.iter().map(|n| (n.id, &n.cpus))),
        }
    }

    fn cpu(&self, id: u32, online: bool, cores: &[Core], kinds: Option<&Kinds>) -> Cpu {
        let core = self.core.get(&id).copied();
        let siblings = core
            .and_then(|c| cores.get(c as usize))
            .map(|c| c.cpus.clone())
            .unwrap_or_default();
        Cpu {
            id,
            online,
            package: self.package.get(&id).copied(),
            die: self.die.get(&id).copied(),
            cluster: self.cluster.get(&id).copied(),
            core,
            numa_node: self.node.get(&id).copied(),
            siblings,
            l2: self.l2.get(&id).copied(),
            l3: self.l3.get(&id).copied(),
            kind: kinds.and_then(|k| k.of_cpu.get(&id).copied()),
        }
    }
}

/// CPU → object id; the first object listing a CPU wins, as overlapping sets are firmware bugs.
fn membership<'a>(objects: impl Iterator<Item = (u32, &'a CpuSet)>) -> HashMap<u32, u32> {
    let mut map = HashMap::new();
    for (id, cpus) in objects {
        for cpu in cpus.iter() {
            map.entry(cpu).or_insert(id);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(os_id: i64, list: &str) -> RawGroup {
        RawGroup {
            os_id: Some(os_id),
            cpus: CpuSet::parse_list(list).unwrap(),
        }
    }

    #[test]
    fn cores_are_numbered_depth_first_across_interleaved_packages() {
        let raw = RawCpus {
            known: CpuSet::parse_list("0-7").unwrap(),
            online: CpuSet::parse_list("0-7").unwrap(),
            with_topology: CpuSet::parse_list("0-7").unwrap(),
            cores: vec![
                group(0, "0,4"),
                group(0, "1,5"),
                group(1, "2,6"),
                group(1, "3,7"),
            ],
            packages: vec![group(0, "0,2,4,6"), group(1, "1,3,5,7")],
            dies: vec![group(0, "0,2,4,6"), group(0, "1,3,5,7")],
            clusters: vec![group(0, "0,4"), group(1, "1,5")],
        };
        let topology = assemble(raw, Vec::new(), Vec::new(), None);
        let cores: Vec<String> = topology.cores.iter().map(|c| c.cpus.to_list()).collect();
        assert_eq!(cores, ["0,4", "2,6", "1,5", "3,7"]);
        assert!(topology.dies.is_empty() && topology.clusters.is_empty());
        let cpu5 = topology.cpu(5).unwrap();
        assert_eq!((cpu5.core, cpu5.package), (Some(2), Some(1)));
        assert_eq!(cpu5.siblings.to_list(), "1,5");
    }
}
