//! The scope: the cgroup whose CPUs a plan shares out, and how other tasks are kept off the
//! exclusive CPUs there: by cpuset cgroups (cgroup v1 `cpuset`, or the cgroup v2 cpuset
//! controller where v2's rules allow the plan's threaded layout, see [`crate::scope_v2`]),
//! or, where neither is usable, by thread affinity alone.

use std::path::PathBuf;

use nearnative_host::cgroup::{is_within, parent_of};
use nearnative_host::isolation::Cpuset;
use nearnative_host::tasks::Process;
use nearnative_host::{CpuSet, Host};
use serde::{Deserialize, Serialize};

use crate::plan_error::PlanError;
use crate::scope_v2;
use crate::target::{ResolvedTarget, ThreadRef};

/// How the plan fences the exclusive CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fencing {
    /// cgroup v1 cpusets under `mount`: every moved thread's cgroup enforces its CPUs.
    CpusetV1 { mount: PathBuf },
    /// The cgroup v2 hierarchy at `mount`, whose cpuset controller reaches the target's
    /// cgroup `thread_root`: the plan's cgroups are threaded children of it, so the target's
    /// threads are placed one by one without leaving its cgroup (and its other controllers).
    CpusetV2 { mount: PathBuf, thread_root: String },
    /// Thread affinity only; `why` says why cpusets are not used.
    AffinityOnly { why: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Path in the cpuset hierarchy (else the unified one); `/` is the whole host.
    pub path: String,
    /// The CPUs the plan may give out: the scope's, and under cgroup v2 those the target's
    /// cgroup may use (its threads cannot leave it, so their CPUs must lie inside it).
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
            Fencing::CpusetV2 { .. } | Fencing::AffinityOnly { .. } => cgroup.unified.as_deref(),
        }
    }

    /// The cgroup path of one thread in the hierarchy the scope lives in: its own where
    /// inspect read it (libvirt spreads a QEMU's threads over cgroups), else its process's.
    pub fn thread_cgroup_of<'p>(&self, thread: &ThreadRef<'p>) -> Option<&'p str> {
        let cgroup = thread.process.cgroup_of(thread.task)?;
        match self.fencing {
            Fencing::CpusetV1 { .. } => cgroup.cpuset_v1.as_deref(),
            Fencing::CpusetV2 { .. } | Fencing::AffinityOnly { .. } => cgroup.unified.as_deref(),
        }
    }

    /// Whether `process` lies in the scope or below it. The whole host holds every process.
    pub fn holds(&self, process: &Process) -> bool {
        self.whole_host()
            || self
                .cgroup_of(process)
                .is_some_and(|p| self.contains_path(p))
    }

    pub fn contains_path(&self, path: &str) -> bool {
        is_within(path, &self.path)
    }

    /// The path of child `name` of the scope.
    pub fn child(&self, name: &str) -> String {
        format!("{}/{name}", self.path.trim_end_matches('/'))
    }
}

/// The scope `--scope` names (default `/`), checked against the host, with the fencing the
/// host allows for `target`.
pub fn resolve(
    host: &Host,
    scope: Option<&str>,
    target: &ResolvedTarget,
) -> Result<Scope, PlanError> {
    let path = scope.unwrap_or("/").to_owned();
    let cgroups = &host.isolation.cgroups;
    let in_v1 = cgroups.cpusets.iter().any(|c| c.path == path);
    match (cgroups.cpuset_version, &cgroups.cpuset_mount) {
        // Beside a v1 cpuset hierarchy, a scope only the unified hierarchy has (the lab's
        // `--cgroup v2`, a systemd slice) is fenced by affinity: v1 cpusets cannot reach it.
        (Some(1), Some(mount)) if path != "/" && !in_v1 && cgroups.unified_mount.is_some() => {
            let why = format!(
                "the scope is a cgroup v2 path, not a cgroup of the v1 cpuset hierarchy at {}",
                mount.display()
            );
            affinity_only(host, path, why)
        }
        (Some(1), Some(mount)) => {
            let cpuset = cgroups.cpusets.iter().find(|c| c.path == path);
            let cpuset = cpuset.ok_or_else(|| PlanError::ScopeMissing {
                path: path.clone(),
                mount: mount.display().to_string(),
            })?;
            Ok(Scope {
                cpus: cpus_of(cpuset, &host.topology.online),
                mems: cpuset.mems.clone().unwrap_or_else(|| all_nodes(host)),
                cpu_exclusive: path == "/" || cpuset.cpu_exclusive == Some(true),
                path,
                fencing: Fencing::CpusetV1 {
                    mount: mount.clone(),
                },
            })
        }
        (Some(2), Some(mount)) => match scope_v2::resolve(host, &path, mount, target) {
            Ok(scope) => Ok(scope),
            Err(why) => affinity_only(host, path, why),
        },
        _ => affinity_only(
            host,
            path,
            "no cgroup hierarchy has the cpuset controller".to_owned(),
        ),
    }
}

/// Thread affinity alone fences; `why` says why cpusets do not. A scope other than the whole
/// host is then a cgroup v2 path, which a process must live in.
fn affinity_only(host: &Host, path: String, why: String) -> Result<Scope, PlanError> {
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
        mems: all_nodes(host),
        cpu_exclusive: false,
        fencing: Fencing::AffinityOnly { why },
    })
}

pub(crate) fn all_nodes(host: &Host) -> CpuSet {
    host.topology.numa_nodes.iter().map(|n| n.id).collect()
}

/// The cgroups from `scope` down to `cgroup`, both included; just `cgroup` when it does not
/// lie within `scope`.
pub fn chain(scope: &str, cgroup: &str) -> Vec<String> {
    let mut chain = vec![cgroup.to_owned()];
    let mut at = cgroup;
    while at != scope && is_within(cgroup, scope) {
        let Some(parent) = parent_of(at) else { break };
        chain.push(parent.to_owned());
        at = parent;
    }
    chain.reverse();
    chain
}

/// A cpuset's CPUs: `cpuset.cpus` when set, else (an empty v2 `cpuset.cpus` inherits) the
/// effective ones, else every online CPU.
pub fn cpus_of(cpuset: &Cpuset, online: &CpuSet) -> CpuSet {
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
    fn chains_run_from_the_scope_down() {
        let cases = [
            ("root to deep", "/", "/a/b", vec!["/", "/a", "/a/b"]),
            ("itself", "/a", "/a", vec!["/a"]),
            ("middle", "/a", "/a/b/c", vec!["/a", "/a/b", "/a/b/c"]),
            ("outside", "/x", "/a/b", vec!["/a/b"]),
        ];
        for (what, scope, cgroup, expected) in cases {
            assert_eq!(chain(scope, cgroup), expected, "{what}");
        }
    }
}
