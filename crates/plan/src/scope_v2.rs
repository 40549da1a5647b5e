//! Whether cgroup v2's rules allow the plan's cpuset layout, and around which cgroup.
//!
//! Under v2 a process's threads can sit in different cgroups only inside one threaded
//! subtree, and a process moved to another cgroup leaves its memory, I/O and pids limits
//! behind. So the plan leaves every process in its cgroup and gives the target's cgroup R (its
//! "thread root") threaded children for its threads, as libvirt (`vcpuN`, `emulator`) and
//! KubeVirt (`housekeeping`) do. That needs: the cpuset controller enabled down to R (the
//! plan enables it in R's own `cgroup.subtree_control`, nowhere above); every target process
//! in R; no process in R's child cgroups (a cgroup with populated domain children cannot have
//! threaded ones; the root is exempt when it already hands cpuset down, so those cgroups can
//! be shrunk); and no process directly in a cgroup between the scope and R (the root
//! excepted), which no cpuset the plan may change would fence. When one of these fails the
//! plan falls back to thread affinity, saying which.

use std::collections::BTreeSet;
use std::path::Path;

use nearnative_host::isolation::Cpuset;
use nearnative_host::Host;

use crate::scope::{all_nodes, chain, cpus_of, Fencing, Scope};
use crate::target::ResolvedTarget;
use crate::workload_id::WorkloadId;
use nearnative_host::cgroup::{is_within, parent_of};

/// The scope fenced by v2 cpusets around the target's cgroup, or why it cannot be.
pub(crate) fn resolve(
    host: &Host,
    path: &str,
    mount: &Path,
    target: &ResolvedTarget,
) -> Result<Scope, String> {
    let find = |path: &str| cpuset(host, path);
    let scope = find(path).ok_or_else(|| {
        format!(
            "the cpuset controller of the cgroup v2 hierarchy at {} does not reach {path} \
             (cpuset is not in its parent's cgroup.subtree_control)",
            mount.display()
        )
    })?;
    let root = thread_root(target)?;
    let root_cpuset = find(&root).ok_or_else(|| {
        format!(
            "the cpuset controller does not reach the target's cgroup {root}: enable cpuset in \
             the cgroup.subtree_control of each cgroup from {path} down to its parent (systemd: \
             AllowedCPUs= or Delegate=yes on those units)"
        )
    })?;
    check_processes(host, path, &root)?;
    let online = &host.topology.online;
    let mems = scope.mems.clone().filter(|m| !m.is_empty());
    Ok(Scope {
        path: path.to_owned(),
        cpus: cpus_of(root_cpuset, online).intersection(&cpus_of(scope, online)),
        mems: mems.unwrap_or_else(|| all_nodes(host)),
        cpu_exclusive: false,
        fencing: Fencing::CpusetV2 {
            mount: mount.to_owned(),
            thread_root: root,
        },
    })
}

fn cpuset<'h>(host: &'h Host, path: &str) -> Option<&'h Cpuset> {
    host.isolation
        .cgroups
        .cpusets
        .iter()
        .find(|c| c.path == path)
}

/// The one cgroup all the target's user threads live in. A thread already moved into one of
/// the plan's own threaded cgroups (a re-plan after apply) counts as in that cgroup's parent.
fn thread_root(target: &ResolvedTarget) -> Result<String, String> {
    let own = format!("nearnative-{}-", WorkloadId::of(&target.key));
    let threads = target
        .exclusive
        .iter()
        .chain(&target.io)
        .chain(&target.rest);
    let mut roots = BTreeSet::new();
    for thread in threads.filter(|t| !t.task.kind.is_kernel()) {
        let process = thread.process;
        let path = process.cgroup.as_ref().and_then(|c| c.unified.as_deref());
        let path = path.ok_or_else(|| {
            format!(
                "the cgroup v2 path of process {} could not be read",
                process.pid
            )
        })?;
        roots.insert(outside_own(path, &own).to_owned());
    }
    match roots.len() {
        1 => Ok(roots.pop_first().unwrap_or_default()),
        0 => Err("the target has no user thread to place in a cgroup".to_owned()),
        _ => Err(format!(
            "the target's processes live in different cgroups ({}), and cgroup v2 places a \
             process's threads only inside its own cgroup",
            roots.into_iter().collect::<Vec<_>>().join(", ")
        )),
    }
}

/// `path` without a last component that is one of the plan's own cgroups (`own` prefix).
fn outside_own<'p>(path: &'p str, own: &str) -> &'p str {
    match path.rsplit_once('/') {
        Some((parent, last)) if last.starts_with(own) => match parent {
            "" => "/",
            parent => parent,
        },
        _ => path,
    }
}

/// No process in `root`'s child cgroups (other than nearnative's threaded ones), and none
/// directly in a non-root cgroup between the scope and `root`.
fn check_processes(host: &Host, scope: &str, root: &str) -> Result<(), String> {
    let between: Vec<String> = chain(scope, root)
        .into_iter()
        .filter(|c| c != root && c != "/")
        .collect();
    for process in &host.tasks.processes {
        let Some(path) = process.cgroup.as_ref().and_then(|c| c.unified.as_deref()) else {
            continue;
        };
        let below = path != root && is_within(path, root) && !in_nearnative(path, root);
        if below && root != "/" {
            return Err(format!(
                "the target's cgroup {root} has processes in its child cgroups (process {} in \
                 {path}), and cgroup v2 gives threaded children only to a cgroup whose child \
                 cgroups hold none",
                process.pid
            ));
        }
        if below && !hands_cpuset_down(host, root) {
            return Err(format!(
                "the root cgroup does not hand the cpuset controller down yet, and enabling it \
                 would leave its child cgroups on every CPU (process {} in {path})",
                process.pid
            ));
        }
        if between.iter().any(|c| c == path) {
            return Err(format!(
                "process {} lives directly in {path}, between the scope and the target's \
                 cgroup {root}, where no cpuset the plan may change fences it",
                process.pid
            ));
        }
    }
    Ok(())
}

/// Whether `cgroup` enables cpuset for its children: one of them has cpuset files.
pub(crate) fn hands_cpuset_down(host: &Host, cgroup: &str) -> bool {
    let cpusets = &host.isolation.cgroups.cpusets;
    cpusets.iter().any(|c| parent_of(&c.path) == Some(cgroup))
}

/// Whether `path` (below `root`) is inside a cgroup nearnative made, which is threaded.
fn in_nearnative(path: &str, root: &str) -> bool {
    let below = match root {
        "/" => path.strip_prefix('/'),
        _ => path.strip_prefix(root).and_then(|r| r.strip_prefix('/')),
    };
    below.is_some_and(|rest| rest.starts_with("nearnative-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plans_own_cgroups_count_as_their_parent() {
        let own = "nearnative-vm-a-";
        let cases = [
            ("in its own cgroup", "/vm.scope", "/vm.scope"),
            (
                "moved by an apply",
                "/vm.scope/nearnative-vm-a-hk",
                "/vm.scope",
            ),
            ("under the root", "/nearnative-vm-a-t0", "/"),
            (
                "another workload's",
                "/vm.scope/nearnative-vm-b-hk",
                "/vm.scope/nearnative-vm-b-hk",
            ),
        ];
        for (what, path, expected) in cases {
            assert_eq!(outside_own(path, own), expected, "{what}");
        }
        assert!(in_nearnative("/a/nearnative-x-hk", "/a"));
        assert!(in_nearnative("/nearnative-x-hk", "/"));
        assert!(!in_nearnative("/a/b", "/a"));
    }
}
