//! The scope: the cgroup whose CPUs a plan shares out, and how other tasks are kept off the
//! exclusive CPUs there: by cpuset cgroups (cgroup v1 `cpuset`), or, where the host has no
//! usable cpuset hierarchy, by thread affinity alone.

use std::path::PathBuf;

use nearnative_host::isolation::Cpuset;
use nearnative_host::tasks::Process;
use nearnative_host::{CpuSet, Host};
use serde::{Deserialize, Serialize};

use crate::plan_error::PlanError;

/// How the plan fences the exclusive CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fencing {
    /// cgroup v1 cpusets under `mount`: every moved thread's cgroup enforces its CPUs.
    CpusetV1 { mount: PathBuf },
    /// Thread affinity only; `why` says why cpusets are not used.
    AffinityOnly { why: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Path in the cpuset hierarchy (else the unified one); `/` is the whole host.
    pub path: String,
    pub cpus: CpuSet,
    pub mems: CpuSet,
    /// v1 `cpuset.cpu_exclusive` of the scope: the kernel lets a child be CPU-exclusive only
    /// under an exclusive parent (the root always is).
    #[serde(default)]
    pub cpu_exclusive: bool,
    pub fencing: Fencing,
}

impl Scope {
    pub fn whole_host(&self) -> bool {
        self.path == "/"
    }

    /// The cgroup path of `process` in the hierarchy the scope lives in.
    pub fn cgroup_of<'p>(&self, process: &'p Process) -> Option<&'p str> {
        let cgroup = process.cgroup.as_ref()?;
        match self.fencing {
            Fencing::CpusetV1 { .. } => cgroup.cpuset_v1.as_deref(),
            Fencing::AffinityOnly { .. } => cgroup.unified.as_deref(),
        }
    }

    /// Whether `process` lies in the scope or below it. The whole host holds every process.
    pub fn holds(&self, process: &Process) -> bool {
        self.whole_host()
            || self
                .cgroup_of(process)
                .is_some_and(|p| self.contains_path(p))
    }

    /// Whether `process` is directly in the scope's own cgroup.
    pub fn holds_directly(&self, process: &Process) -> bool {
        self.cgroup_of(process) == Some(self.path.as_str())
    }

    pub fn contains_path(&self, path: &str) -> bool {
        is_within(path, &self.path)
    }

    /// The path of child `name` of the scope.
    pub fn child(&self, name: &str) -> String {
        format!("{}/{name}", self.path.trim_end_matches('/'))
    }
}

/// `path` is `scope` or below it.
pub fn is_within(path: &str, scope: &str) -> bool {
    scope == "/"
        || path == scope
        || path
            .strip_prefix(scope)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The scope `--scope` names (default `/`), checked against the host.
pub fn resolve(host: &Host, scope: Option<&str>) -> Result<Scope, PlanError> {
    let path = scope.unwrap_or("/").to_owned();
    let cgroups = &host.isolation.cgroups;
    let all_nodes: CpuSet = host.topology.numa_nodes.iter().map(|n| n.id).collect();
    match (cgroups.cpuset_version, &cgroups.cpuset_mount) {
        (Some(1), Some(mount)) => {
            let cpuset = cgroups.cpusets.iter().find(|c| c.path == path);
            let cpuset = cpuset.ok_or_else(|| PlanError::ScopeMissing {
                path: path.clone(),
                mount: mount.display().to_string(),
            })?;
            Ok(Scope {
                cpus: cpus_of(cpuset, &host.topology.online),
                mems: cpuset.mems.clone().unwrap_or(all_nodes),
                cpu_exclusive: path == "/" || cpuset.cpu_exclusive == Some(true),
                path,
                fencing: Fencing::CpusetV1 {
                    mount: mount.clone(),
                },
            })
        }
        (version, _) => {
            let why = match version {
                Some(2) => "the cpuset controller is on cgroup v2, whose partitions this planner does not build yet",
                _ => "no cgroup hierarchy has the cpuset controller",
            };
            if path != "/"
                && !host.tasks.processes.iter().any(|p| {
                    p.cgroup
                        .as_ref()
                        .and_then(|c| c.unified.as_deref())
                        .is_some_and(|u| is_within(u, &path))
                })
            {
                return Err(PlanError::ScopeUnusable {
                    path,
                    reason: format!("{why}, and no process lives in that cgroup v2 path"),
                });
            }
            Ok(Scope {
                path,
                cpus: host.topology.online.clone(),
                mems: all_nodes,
                cpu_exclusive: false,
                fencing: Fencing::AffinityOnly {
                    why: why.to_owned(),
                },
            })
        }
    }
}

fn cpus_of(cpuset: &Cpuset, online: &CpuSet) -> CpuSet {
    match (&cpuset.cpus, &cpuset.effective_cpus) {
        (Some(cpus), _) if !cpus.is_empty() => cpus.intersection(online),
        (_, Some(effective)) => effective.clone(),
        _ => online.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_within_a_scope() {
        let cases = [
            ("root holds everything", "/a/b", "/", true),
            ("itself", "/a", "/a", true),
            ("child", "/a/b", "/a", true),
            ("prefix is not a child", "/ab", "/a", false),
            ("parent", "/", "/a", false),
        ];
        for (what, path, scope, expected) in cases {
            assert_eq!(is_within(path, scope), expected, "{what}");
        }
    }
}
