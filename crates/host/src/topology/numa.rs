//! NUMA nodes from `/sys/devices/system/node/nodeN`: local CPUs, memory and distances.
//!
//! Nodes may have no CPUs (memory expanders, HBM) or no memory; both are kept. A kernel
//! without NUMA support has no node directory and the whole machine is one node, as the
//! kernel itself treats it.

use super::{parse, NumaNode};
use crate::{CpuSet, Root, Unknown};

const NODE_DIR: &str = "/sys/devices/system/node";

pub fn read(root: &Root, online: &CpuSet, unknowns: &mut Vec<Unknown>) -> Vec<NumaNode> {
    let ids = match root.list_dir(NODE_DIR) {
        Ok(names) => {
            let mut ids: Vec<u32> = names
                .iter()
                .filter_map(|name| parse::numbered_dir(name, "node"))
                .collect();
            ids.sort_unstable();
            ids
        }
        Err(err) => {
            if !err.is_not_found() {
                unknowns.push(Unknown::from_error("NUMA nodes", &err));
            }
            Vec::new()
        }
    };
    if ids.is_empty() {
        return vec![implicit_node(root, online, unknowns)];
    }
    let mut nodes: Vec<NumaNode> = ids
        .iter()
        .map(|&id| read_node(root, id, online, unknowns))
        .collect();
    attach_distances(root, &mut nodes, unknowns);
    nodes
}

fn read_node(root: &Root, id: u32, online: &CpuSet, unknowns: &mut Vec<Unknown>) -> NumaNode {
    let dir = format!("{NODE_DIR}/node{id}");
    let cpus = match root.read_parsed(format!("{dir}/cpulist"), CpuSet::parse_list) {
        Err(err) if err.is_not_found() => {
            root.read_parsed(format!("{dir}/cpumap"), CpuSet::parse_mask)
        }
        other => other,
    };
    let cpus = cpus
        .map_err(|err| unknowns.push(Unknown::from_error(format!("CPUs of NUMA node {id}"), &err)))
        .unwrap_or_default()
        .intersection(online);
    let memory_kib = root
        .read_parsed(format!("{dir}/meminfo"), |text| {
            parse::mem_total_kib(text).ok_or("no MemTotal line")
        })
        .map_err(|err| {
            unknowns.push(Unknown::from_error(
                format!("memory of NUMA node {id}"),
                &err,
            ))
        })
        .ok();
    NumaNode {
        id,
        cpus,
        memory_kib,
        distances: None,
        implicit: false,
    }
}

/// Distances are only kept when every node has a row as long as the node list.
fn attach_distances(root: &Root, nodes: &mut [NumaNode], unknowns: &mut Vec<Unknown>) {
    let count = nodes.len();
    for node in nodes.iter_mut() {
        let path = format!("{NODE_DIR}/node{}/distance", node.id);
        let row = root.read_parsed(&path, |text| {
            let row = parse::distances(text).map_err(|e| e.to_string())?;
            if row.len() == count {
                Ok(row)
            } else {
                Err(format!("{} distances for {count} nodes", row.len()))
            }
        });
        match row {
            Ok(row) => node.distances = Some(row),
            Err(err) => {
                let object = format!("distances of NUMA node {}", node.id);
                unknowns.push(Unknown::from_error(object, &err));
            }
        }
    }
}

fn implicit_node(root: &Root, online: &CpuSet, unknowns: &mut Vec<Unknown>) -> NumaNode {
    let memory_kib = root
        .read_parsed("/proc/meminfo", |text| {
            parse::mem_total_kib(text).ok_or("no MemTotal line")
        })
        .map_err(|err| unknowns.push(Unknown::from_error("total memory", &err)))
        .ok();
    NumaNode {
        id: 0,
        cpus: online.clone(),
        memory_kib,
        distances: None,
        implicit: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(dir: &std::path::Path, id: u32, cpulist: &str, distance: &str) {
        let base = dir.join(format!("sys/devices/system/node/node{id}"));
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(base.join("cpulist"), cpulist).unwrap();
        std::fs::write(base.join("distance"), distance).unwrap();
        let meminfo = format!("Node {id} MemTotal:  1024 kB\n");
        std::fs::write(base.join("meminfo"), meminfo).unwrap();
    }

    #[test]
    fn cpu_less_nodes_and_distances_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        node(dir.path(), 0, "0-1\n", "10 20\n");
        node(dir.path(), 1, "\n", "20 10\n");
        let mut unknowns = Vec::new();
        let online = CpuSet::parse_list("0-1").unwrap();
        let nodes = read(&Root::new(dir.path()), &online, &mut unknowns);
        assert_eq!(nodes.len(), 2);
        assert!(nodes[1].cpus.is_empty());
        assert_eq!(nodes[1].distances, Some(vec![20, 10]));
        assert_eq!(nodes[0].memory_kib, Some(1024));
        assert!(unknowns.is_empty(), "{unknowns:?}");
    }

    #[test]
    fn short_distance_row_is_unknown_and_no_sysfs_means_one_node() {
        let dir = tempfile::tempdir().unwrap();
        node(dir.path(), 0, "0\n", "10\n");
        node(dir.path(), 1, "1\n", "10 20\n");
        let mut unknowns = Vec::new();
        let online = CpuSet::parse_list("0-1").unwrap();
        let nodes = read(&Root::new(dir.path()), &online, &mut unknowns);
        assert_eq!(nodes[0].distances, None);
        assert_eq!(unknowns.len(), 1, "{unknowns:?}");

        let empty = tempfile::tempdir().unwrap();
        let nodes = read(&Root::new(empty.path()), &online, &mut unknowns);
        assert!(nodes[0].implicit && nodes[0].cpus == online);
    }
}
