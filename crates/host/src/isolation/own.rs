//! The cpuset of the process that reads the host (`/proc/self`): the CPUs it may use. In a
//! container this is less than the online CPUs, and hwloc's `lstopo` shows only these by
//! default. In a snapshot it is the cpuset of the process that took the snapshot.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cgroup::{path_in_table, CgroupLine};
use crate::{CpuSet, ReadError, Root, Unknown};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessCpuset {
    /// The cgroup path inside the cpuset hierarchy.
    pub cgroup: String,
    /// Its effective CPUs.
    pub cpus: CpuSet,
}

/// The cgroup path of the cpuset controller in a `/proc/PID/cgroup` table
/// (`hierarchy-id:controllers:path`): the v1 line naming `cpuset`, or the v2 `0::` line.
pub fn cgroup_path(table: &str, version: u8) -> Option<String> {
    let line = match version {
        1 => CgroupLine::V1 {
            controller: "cpuset".to_owned(),
        },
        _ => CgroupLine::V2,
    };
    path_in_table(table, &line).map(|path| path.trim_end().to_owned())
}

pub fn read(
    root: &Root,
    version: u8,
    mount: &Path,
    unknowns: &mut Vec<Unknown>,
) -> Option<ProcessCpuset> {
    let cgroup = match root.read_to_string("/proc/self/cgroup") {
        Ok(table) => cgroup_path(&table, version),
        Err(_) => None,
    };
    let cgroup = cgroup.or_else(|| {
        let path = root.read_trimmed("/proc/self/cpuset").ok()?;
        path.starts_with('/').then_some(path)
    })?;
    let dir = mount.join(cgroup.trim_start_matches('/'));
    let files: &[&str] = match version {
        1 => &["cpuset.effective_cpus", "cpuset.cpus"],
        _ => &["cpuset.cpus.effective"],
    };
    let mut last_error = None;
    for file in files {
        match root.read_parsed(dir.join(file), CpuSet::parse_list) {
            Ok(cpus) => return Some(ProcessCpuset { cgroup, cpus }),
            Err(err) if err.is_not_found() => last_error = Some(err),
            Err(err) => {
                last_error = Some(err);
                break;
            }
        }
    }
    let err = last_error.unwrap_or_else(|| ReadError::NotFound {
        path: root.path(&dir),
    });
    unknowns.push(Unknown::from_error("CPUs of this process's cpuset", &err));
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuset_line_is_found_for_each_version() {
        let table = "12:cpu,cpuacct:/user\n3:cpuset:/docker/abc\n0::/system.slice/x.service\n";
        assert_eq!(cgroup_path(table, 1).as_deref(), Some("/docker/abc"));
        assert_eq!(
            cgroup_path(table, 2).as_deref(),
            Some("/system.slice/x.service")
        );
        assert_eq!(cgroup_path("garbage\n1:cpu:\n", 1), None);
    }

    #[test]
    fn reads_the_effective_cpus_of_the_process_cgroup() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc/self")).unwrap();
        std::fs::write(dir.path().join("proc/self/cgroup"), "3:cpuset:/rt\n").unwrap();
        std::fs::create_dir_all(dir.path().join("cg/rt")).unwrap();
        std::fs::write(dir.path().join("cg/rt/cpuset.cpus"), "2-3\n").unwrap();
        let mut unknowns = Vec::new();
        let own = read(&Root::new(dir.path()), 1, Path::new("/cg"), &mut unknowns).unwrap();
        assert_eq!(
            (own.cgroup.as_str(), own.cpus.to_list()),
            ("/rt", "2-3".to_owned())
        );
        assert!(unknowns.is_empty());
    }
}
