//! The cgroup versions in use and the cpuset hierarchy: for v1 `cpuset.cpus`,
//! `cpuset.cpu_exclusive` and `cpuset.sched_load_balance`; for v2 `cpuset.cpus` and
//! `cpuset.cpus.partition`. The walk is bounded in depth and count: systemd hosts can have
//! thousands of cgroups.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::mounts::{self, Mount};
use crate::kernel::cgroup::{CgroupAt, CpusetDistribution, Partition};
use crate::kernel::KernelFile;
use crate::{CpuSet, Root, Unknown};

/// Limits of the cpuset walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkLimits {
    /// Levels below the hierarchy's root.
    pub max_depth: usize,
    pub max_cpusets: usize,
}

impl Default for WalkLimits {
    fn default() -> Self {
        WalkLimits {
            max_depth: 8,
            max_cpusets: 512,
        }
    }
}

/// How the cgroup hierarchies are mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// No cgroup filesystem mounted (or the mounts could not be read).
    None,
    /// cgroup v1 only.
    Legacy,
    /// v1 controllers plus a v2 hierarchy (often at /sys/fs/cgroup/unified).
    Hybrid,
    /// cgroup v2 only.
    Unified,
}

/// The cgroups as far as CPU isolation is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroups {
    pub mode: CgroupMode,
    /// Where the v2 hierarchy is mounted, if any.
    pub unified_mount: Option<PathBuf>,
    /// 1 or 2: the hierarchy that has the cpuset controller, if any.
    pub cpuset_version: Option<u8>,
    pub cpuset_mount: Option<PathBuf>,
    /// The cpusets, breadth-first from the hierarchy's root (path `/`).
    pub cpusets: Vec<Cpuset>,
    /// True when the walk stopped at its depth or count limit.
    pub truncated: bool,
}

/// One cgroup of the cpuset hierarchy. A field is `None` where the file does not exist
/// (v1-only or v2-only files, the v2 root, a kernel too old for the file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpuset {
    /// Path inside the hierarchy, `/` for its root.
    pub path: String,
    pub cpus: Option<CpuSet>,
    /// `cpuset.mems`: the memory nodes its tasks may allocate from.
    #[serde(default)]
    pub mems: Option<CpuSet>,
    pub effective_cpus: Option<CpuSet>,
    pub cpu_exclusive: Option<bool>,
    pub sched_load_balance: Option<bool>,
    /// v2 `cpuset.cpus.partition`: `member`, `root`, `isolated`, or `root invalid (why)`;
    /// serialized as that text.
    pub partition: Option<Partition>,
}

pub fn read(root: &Root, limits: WalkLimits, unknowns: &mut Vec<Unknown>) -> Cgroups {
    let mounts = read_mounts(root, unknowns);
    let v1 = mounts.iter().any(|m| m.fs_type == "cgroup");
    let v2 = mounts.iter().find(|m| m.is_cgroup2());
    let mode = match (v1, v2.is_some()) {
        (false, false) => CgroupMode::None,
        (true, false) => CgroupMode::Legacy,
        (true, true) => CgroupMode::Hybrid,
        (false, true) => CgroupMode::Unified,
    };
    let unified_mount = v2.map(|m| m.mount_point.clone());
    let hierarchy = cpuset_hierarchy(root, &mounts);
    let (cpusets, truncated) = match &hierarchy {
        Some((version, mount)) => walk(root, *version, mount, limits, unknowns),
        None => (Vec::new(), false),
    };
    Cgroups {
        mode,
        unified_mount,
        cpuset_version: hierarchy.as_ref().map(|(v, _)| *v),
        cpuset_mount: hierarchy.map(|(_, m)| m),
        cpusets,
        truncated,
    }
}

/// The mounts; a table with no line that parses is reported, not taken as "no cgroups".
fn read_mounts(root: &Root, unknowns: &mut Vec<Unknown>) -> Vec<Mount> {
    mounts::read_table(root)
        .map_err(|err| unknowns.push(Unknown::from_error("cgroup mounts", &err)))
        .unwrap_or_default()
}

/// The v1 hierarchy with the cpuset controller, else a v2 hierarchy that offers it.
fn cpuset_hierarchy(root: &Root, mounts: &[Mount]) -> Option<(u8, PathBuf)> {
    if let Some(v1) = mounts.iter().find(|m| m.is_cgroup1_with("cpuset")) {
        return Some((1, v1.mount_point.clone()));
    }
    mounts.iter().filter(|m| m.is_cgroup2()).find_map(|m| {
        let controllers = root
            .read_to_string(m.mount_point.join("cgroup.controllers"))
            .ok()?;
        controllers
            .split_whitespace()
            .any(|c| c == "cpuset")
            .then(|| (2, m.mount_point.clone()))
    })
}

/// Breadth-first over the hierarchy. In v2 a cgroup's children have cpuset files only when
/// its `cgroup.subtree_control` enables the controller, so other subtrees are not entered.
fn walk(
    root: &Root,
    version: u8,
    mount: &Path,
    limits: WalkLimits,
    unknowns: &mut Vec<Unknown>,
) -> (Vec<Cpuset>, bool) {
    let mut queue = VecDeque::from([(String::from("/"), 0usize)]);
    let mut cpusets = Vec::new();
    let mut truncated = false;
    while let Some((path, depth)) = queue.pop_front() {
        if cpusets.len() == limits.max_cpusets {
            truncated = true;
            break;
        }
        let dir = mount.join(path.trim_start_matches('/'));
        cpusets.push(read_cpuset(root, version, &dir, &path, unknowns));
        if version == 2 && !enables_cpuset(root, &dir) {
            continue;
        }
        let children = match root.list_dir(&dir) {
            Ok(names) => names,
            Err(err) => {
                unknowns.push(Unknown::from_error(
                    format!("children of cpuset {path}"),
                    &err,
                ));
                continue;
            }
        };
        for name in children {
            if !root.is_dir(dir.join(&name)) {
                continue;
            }
            if depth == limits.max_depth {
                truncated = true;
                break;
            }
            let child = format!("{}/{name}", path.trim_end_matches('/'));
            queue.push_back((child, depth + 1));
        }
    }
    (cpusets, truncated)
}

fn enables_cpuset(root: &Root, dir: &Path) -> bool {
    let subtree = CgroupAt::new(dir, "").subtree_cpuset().read(root);
    matches!(subtree, Ok(CpusetDistribution::Enabled))
}

/// Every file through its definition in [`crate::kernel::cgroup`], as the knobs write them.
fn read_cpuset(
    root: &Root,
    version: u8,
    dir: &Path,
    path: &str,
    unknowns: &mut Vec<Unknown>,
) -> Cpuset {
    let at = CgroupAt::new(dir, path);
    let mut cpuset = Cpuset {
        path: path.to_owned(),
        cpus: present(&at.cpus(), root, unknowns),
        mems: present(&at.mems(), root, unknowns),
        effective_cpus: None,
        cpu_exclusive: None,
        sched_load_balance: None,
        partition: None,
    };
    if version == 1 {
        cpuset.effective_cpus = present(&at.effective_cpus_v1(), root, unknowns);
        cpuset.cpu_exclusive = present(&at.cpu_exclusive(), root, unknowns);
        cpuset.sched_load_balance = present(&at.sched_load_balance(), root, unknowns);
    } else {
        cpuset.effective_cpus = present(&at.effective_cpus_v2(), root, unknowns);
        cpuset.partition = present(&at.partition(), root, unknowns);
    }
    cpuset
}

/// The value; `None` for a file this kernel or cgroup does not have; an Unknown otherwise.
fn present<F: KernelFile>(file: &F, root: &Root, unknowns: &mut Vec<Unknown>) -> Option<F::Value> {
    match file.read(root) {
        Ok(value) => Some(value),
        Err(err) if err.is_not_found() => None,
        Err(err) => {
            unknowns.push(Unknown::from_error(file.object(), &err));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn v1_hierarchy_is_walked_within_limits() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "proc/mounts",
            "cgroup /cg/cpuset cgroup rw,cpuset 0 0\ncgroup2 /cg/unified cgroup2 rw 0 0\n",
        );
        write(dir.path(), "cg/cpuset/cpuset.cpus", "0-3\n");
        write(dir.path(), "cg/cpuset/cpuset.sched_load_balance", "0\n");
        write(dir.path(), "cg/cpuset/rt/cpuset.cpus", "2-3\n");
        write(dir.path(), "cg/cpuset/rt/cpuset.cpu_exclusive", "1\n");
        write(dir.path(), "cg/cpuset/rt/deep/cpuset.cpus", "garbage\n");
        let mut unknowns = Vec::new();
        let limits = WalkLimits {
            max_depth: 1,
            max_cpusets: 10,
        };
        let cgroups = read(&Root::new(dir.path()), limits, &mut unknowns);
        assert_eq!(cgroups.mode, CgroupMode::Hybrid);
        assert_eq!(cgroups.cpuset_version, Some(1));
        let paths: Vec<&str> = cgroups.cpusets.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["/", "/rt"]);
        assert!(cgroups.truncated);
        assert_eq!(cgroups.cpusets[1].cpu_exclusive, Some(true));
        assert_eq!(cgroups.cpusets[0].sched_load_balance, Some(false));
        assert!(unknowns.is_empty(), "{unknowns:?}");

        let limits = WalkLimits {
            max_depth: 5,
            max_cpusets: 10,
        };
        let cgroups = read(&Root::new(dir.path()), limits, &mut unknowns);
        assert_eq!(cgroups.cpusets.len(), 3);
        assert_eq!(unknowns.len(), 1, "garbled cpuset.cpus is an unknown");
        assert!(unknowns[0].path.ends_with("rt/deep/cpuset.cpus"));
    }

    #[test]
    fn v2_partitions_are_read_where_the_controller_is_enabled() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "proc/self/mountinfo",
            "1 0 0:1 / /cg rw - cgroup2 cgroup2 rw\n",
        );
        write(dir.path(), "cg/cgroup.controllers", "cpu cpuset memory\n");
        write(dir.path(), "cg/cgroup.subtree_control", "cpuset\n");
        write(dir.path(), "cg/rt/cpuset.cpus", "2-3\n");
        write(dir.path(), "cg/rt/cpuset.cpus.partition", "isolated\n");
        write(dir.path(), "cg/rt/cgroup.subtree_control", "\n");
        write(dir.path(), "cg/rt/child/cpuset.cpus", "3\n");
        let mut unknowns = Vec::new();
        let cgroups = read(&Root::new(dir.path()), WalkLimits::default(), &mut unknowns);
        assert_eq!(
            (cgroups.mode, cgroups.cpuset_version),
            (CgroupMode::Unified, Some(2))
        );
        let paths: Vec<&str> = cgroups.cpusets.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/", "/rt"],
            "rt does not enable cpuset for its children"
        );
        assert_eq!(cgroups.cpusets[1].partition, Some(Partition::Isolated));
        assert!(!cgroups.truncated && unknowns.is_empty());
    }
}
