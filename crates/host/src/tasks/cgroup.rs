//! Parsing `/proc/PID/cgroup`: which cgroups a process lies in, so the planner can tell the
//! tasks inside a `--scope cgroup:PATH` from the rest.
//!
//! Only the two hierarchies that decide CPU placement are kept: the cgroup v1 `cpuset`
//! controller's line and the cgroup v2 unified line (`0::PATH`).

use serde::{Deserialize, Serialize};

use crate::cgroup::{entries, CgroupError, CgroupLine};

/// A process's cgroup paths, relative to each hierarchy's mount point. `None` when the
/// hierarchy is not mounted on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessCgroup {
    /// Path in the cgroup v1 hierarchy that carries the `cpuset` controller.
    pub cpuset_v1: Option<String>,
    /// Path in the cgroup v2 unified hierarchy.
    pub unified: Option<String>,
}

/// Parses a cgroup file (see [`entries`]), refusing it whole if any line is malformed.
pub fn parse_cgroup(text: &str) -> Result<ProcessCgroup, CgroupError> {
    let cpuset = CgroupLine::V1 {
        controller: "cpuset".to_owned(),
    };
    let mut cgroup = ProcessCgroup::default();
    for entry in entries(text) {
        let entry = entry?;
        if entry.is(&CgroupLine::V2) {
            cgroup.unified = Some(entry.path.to_owned());
        } else if entry.is(&cpuset) {
            cgroup.cpuset_v1 = Some(entry.path.to_owned());
        }
    }
    Ok(cgroup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_hierarchy_keeps_cpuset_and_unified() {
        let text = "9:name=systemd:/\n4:memory:/a\n3:cpuset,cpu:/vms/web1\n0::/system.slice/x:y\n";
        let cgroup = parse_cgroup(text).unwrap();
        assert_eq!(cgroup.cpuset_v1.as_deref(), Some("/vms/web1"));
        assert_eq!(cgroup.unified.as_deref(), Some("/system.slice/x:y"));
    }

    #[test]
    fn cases() {
        let cases = [
            ("empty file", "", Ok(ProcessCgroup::default())),
            (
                "v2 only",
                "0::/user.slice\n",
                Ok(ProcessCgroup {
                    cpuset_v1: None,
                    unified: Some("/user.slice".into()),
                }),
            ),
            (
                "no colons",
                "garbage\n",
                Err(CgroupError::BadLine("garbage".into())),
            ),
        ];
        for (what, text, expected) in cases {
            assert_eq!(parse_cgroup(text), expected, "{what}");
        }
    }
}
