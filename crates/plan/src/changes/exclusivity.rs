//! Exclusivity: keep every other task off the workload's CPUs.
//!
//! With a cgroup v1 cpuset hierarchy, scope S gets child cpusets: `nearnative-<id>-hk` (the
//! housekeeping CPUs), one `nearnative-<id>-t<i>` per exclusive thread holding just its CPU
//! (1:1 pinning enforced by the cgroup, as libvirt does), or with `--cores N` a single
//! `nearnative-<id>-pool` holding the pool's CPUs that all those threads share, and, with
//! `--io dedicated`, `nearnative-<id>-io`. The target's cgroups may lie below S (a container's
//! `kubepods.slice/.../<ctr>.scope`, libvirt's `machine/qemu-...`): the chain of cgroups from S
//! down to each of them keeps the exclusive CPUs, and only the cgroups beside that chain that
//! overlap them shrink, first (deepest first, as the kernel wants children inside parents;
//! revert restores parents first). Then each moved thread gets a `thread_affinity` step to its
//! new cgroup's CPUs followed by its `task_cgroup` step: the kernel takes the affinity only
//! within the cpuset the thread is still in, which is why its chain keeps those CPUs. Revert
//! runs backwards, so the thread returns to its old cgroup first (the kernel resets its
//! affinity to that cpuset) and only then gets its exact prior affinity back. Every other
//! thread directly in a cgroup of the chain moves to `-hk`.
//!
//! A container whose runtime already confined it to its exact cores (`exact`, Kubernetes
//! through NRI) keeps its threads in its own cgroup: they only get their affinity.
//!
//! Under cgroup v2 the cgroups are threaded children of the target's own cgroup instead; see
//! [`super::cpuset_v2`], which builds on the helpers here.
//!
//! Without a cpuset hierarchy, thread affinity alone does the fencing, which threads created
//! later by processes outside the plan escape (an advisory says so).
//!
//! PID 1 and kernel threads never change cgroup. On the whole host, unbound kernel threads
//! that allow it, and PID 1, get an affinity that leaves out the exclusive CPUs; so they do
//! in a narrower scope when the request asks (`fence_host_threads`: a container, whose cores
//! are the node's alone though its scope is its pod).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use nearnative_host::isolation::Cpuset;
use nearnative_host::{CpuSet, Mechanism};
use nearnative_knob::exclusivity::cgroup::{
    Cgroup, CgroupDir, Controller, CpusetCpuExclusive, CpusetCpus, CpusetMems, Hierarchy, Presence,
    TaskCgroup,
};
use nearnative_knob::exclusivity::task::ThreadAffinity;
use nearnative_knob::{CgroupMount, CgroupPath, Change};

use super::{cpuset_v2, libvirt, Changes, Context};
use crate::decisions::Note;
use crate::plan::without;
use crate::plan_error::PlanError;
use crate::request::IoPlacement;
use crate::scope::{chain, Fencing};
use crate::target::ThreadRef;
use nearnative_host::cgroup::parent_of;

pub(crate) const MECHANISM: Mechanism = Mechanism::Exclusivity;

/// The suffix of the pool's cgroup.
pub(crate) const POOL: &str = "pool";

/// The path of the plan's cgroup `suffix` (`hk`, `t0`, `pool`, `io`): a child of the scope,
/// or under cgroup v2 of the target's cgroup.
pub(crate) fn cgroup_path(context: &Context, suffix: &str) -> String {
    let name = format!("nearnative-{}-{suffix}", context.id);
    match &context.scope.fencing {
        Fencing::CpusetV2 { thread_root, .. } => match thread_root.as_str() {
            "/" => format!("/{name}"),
            root => format!("{root}/{name}"),
        },
        _ => context.scope.child(&name),
    }
}

/// Where a thread goes: a cgroup path (cpuset fencing only) and its CPUs.
#[derive(Debug, Clone)]
pub(super) struct Destination {
    pub(super) path: String,
    pub(super) cpus: CpuSet,
    pub(super) why: String,
}

pub fn plan(context: &Context, out: &mut Changes) -> Result<(), PlanError> {
    check_in_scope(context)?;
    match &context.scope.fencing {
        Fencing::CpusetV1 { mount } => cpuset_changes(context, mount, out)?,
        Fencing::CpusetV2 { mount, thread_root } => {
            cpuset_v2::plan(context, mount, thread_root, out)?
        }
        Fencing::AffinityOnly { .. } => affinity_changes(context, out),
    }
    if context.scope.whole_host() || context.request.fence_host_threads {
        host_thread_changes(context, out);
    } else {
        vm_kernel_thread_changes(context, out);
    }
    Ok(())
}

/// Every user thread of the target must lie in the scope: a thread outside it would be moved
/// into a cgroup the scope's owner does not control.
fn check_in_scope(context: &Context) -> Result<(), PlanError> {
    let scope = context.scope;
    let target = context.target;
    let threads = target
        .exclusive
        .iter()
        .chain(&target.io)
        .chain(&target.rest);
    for thread in threads.filter(|t| !t.task.kind.is_kernel()) {
        if !scope.holds(thread.process) {
            return Err(PlanError::OutsideScope {
                pid: thread.pid(),
                tid: thread.tid(),
                comm: thread.task.comm.clone(),
                cgroup: scope
                    .cgroup_of(thread.process)
                    .unwrap_or("unknown")
                    .to_owned(),
                scope: scope.path.clone(),
            });
        }
    }
    Ok(())
}

/// Each target thread with where it goes, in slot order, then I/O, then the rest.
pub(super) fn target_destinations<'h>(
    context: &Context<'h>,
    name: impl Fn(&str) -> String,
) -> Vec<(ThreadRef<'h>, Destination)> {
    let target = context.target;
    let housekeeping = Destination {
        path: name("hk"),
        cpus: context.housekeeping.clone(),
        why: format!("a thread of {} runs on the housekeeping CPUs", target.key),
    };
    let io = match context.request.io {
        IoPlacement::Dedicated => Destination {
            path: name("io"),
            cpus: context.allocation.io_cpus.clone(),
            why: format!(
                "an I/O thread of {} runs on its dedicated I/O core",
                target.key
            ),
        },
        IoPlacement::Housekeeping => housekeeping.clone(),
    };
    let mut placed = exclusive_destinations(context, name);
    placed.extend(target.io.iter().map(|t| (*t, io.clone())));
    placed.extend(target.rest.iter().map(|t| (*t, housekeeping.clone())));
    placed
}

/// Each exclusive thread with its own CPU, or with the pool that all of them share.
fn exclusive_destinations<'h>(
    context: &Context<'h>,
    name: impl Fn(&str) -> String,
) -> Vec<(ThreadRef<'h>, Destination)> {
    let target = context.target;
    let pool = context.allocation.pool_cpus();
    let threads = target.exclusive.iter().enumerate();
    let describe = |i: usize, thread: &ThreadRef| {
        let kind = match target.workload {
            Some(_) => "vCPU",
            None => "thread",
        };
        let label = target.labels.get(i).copied().unwrap_or(thread.tid());
        format!("{kind} {label} ({}) of {}", thread.task.comm, target.key)
    };
    match pool {
        Some(cpus) => threads
            .map(|(i, thread)| {
                let destination = Destination {
                    path: name(POOL),
                    why: format!("{} shares the pool CPUs {cpus}", describe(i, thread)),
                    cpus: cpus.clone(),
                };
                (*thread, destination)
            })
            .collect(),
        None => threads
            .zip(&context.allocation.slots)
            .map(|((i, thread), slot)| {
                let destination = Destination {
                    path: name(&format!("t{i}")),
                    cpus: CpuSet::from_ids([slot.cpu]),
                    why: format!("{} gets CPU {} to itself", describe(i, thread), slot.cpu),
                };
                (*thread, destination)
            })
            .collect(),
    }
}

fn cpuset_changes(context: &Context, mount: &Path, out: &mut Changes) -> Result<(), PlanError> {
    let unusable = |reason: String| PlanError::ScopeUnusable {
        path: context.scope.path.clone(),
        reason,
    };
    let mount = CgroupMount::try_from(mount.to_owned()).map_err(unusable)?;
    let controller = Controller::try_from("cpuset".to_owned()).map_err(unusable)?;
    let hierarchy = Hierarchy::V1 {
        mount: mount.clone(),
        controller,
    };
    let prefix = format!("nearnative-{}-", context.id);
    let name = |suffix: &str| cgroup_path(context, suffix);
    let domain = libvirt::recognise(context.scope, context.target);
    let mut chain = target_chain(context, &prefix);
    if let Some(domain) = &domain {
        chain.extend(libvirt::domain_cgroups(context, domain));
    }
    shrink_beside(context, &mount, &prefix, &chain, out);
    let placed = target_destinations(context, name);
    let housekeeping = Destination {
        path: name("hk"),
        cpus: context.housekeeping.clone(),
        why: format!("kept off the exclusive CPUs of {}", context.target.key),
    };
    let others = others_on_chain(context, &chain);
    match &domain {
        Some(domain) => {
            if !others.is_empty() {
                create_cgroups(context, &mount, &[], &chain, out);
            }
            libvirt::pin(context, domain, &mount, &hierarchy, &placed, out);
            let kernel = placed.iter().filter(|(t, _)| t.task.kind.is_kernel());
            for (thread, destination) in kernel {
                affinity_step(thread, &destination.cpus, &destination.why, out);
            }
        }
        None => {
            let moved: Vec<(ThreadRef, Destination)> = placed
                .iter()
                .filter(|(t, d)| !t.task.kind.is_kernel() && !confined_by_runtime(context, t, d))
                .cloned()
                .collect();
            create_cgroups(context, &mount, &moved, &chain, out);
            for (thread, destination) in &placed {
                match moved.iter().any(|(t, _)| t.tid() == thread.tid()) {
                    false => affinity_step(thread, &destination.cpus, &destination.why, out),
                    true => move_thread(context, &hierarchy, thread, destination, out),
                }
            }
        }
    }
    for thread in &others {
        move_thread(context, &hierarchy, thread, &housekeeping, out);
    }
    Ok(())
}

/// A thread its runtime already confined to the exclusive cores (a container given `exact`
/// CPUs at its creation, its cgroup's cpuset set by the runtime): it stays in its cgroup,
/// which keeps the runtime's limits, accounting and view of it, and only its affinity is set.
fn confined_by_runtime(context: &Context, thread: &ThreadRef, destination: &Destination) -> bool {
    if context.request.exact.is_none() {
        return false;
    }
    let Some(path) = context.scope.cgroup_of(thread.process) else {
        return false;
    };
    let cpusets = &context.host.isolation.cgroups.cpusets;
    cpusets
        .iter()
        .find(|c| c.path == path)
        .and_then(|c| c.cpus.as_ref())
        .is_some_and(|cpus| destination.cpus.is_subset(cpus) && cpus.is_subset(&context.exclusive))
}

/// The movable threads directly in a cgroup of the chain that are not the target's nor
/// another workload's, PID 1's aside: they go to the housekeeping cgroup.
fn others_on_chain<'h>(context: &Context<'h>, chain: &BTreeSet<String>) -> Vec<ThreadRef<'h>> {
    let mut others = Vec::new();
    for process in &context.host.tasks.processes {
        let other_workload = context.others.contains(&process.pid);
        let on_chain = context
            .scope
            .cgroup_of(process)
            .is_some_and(|c| chain.contains(c));
        if process.pid == 1 || other_workload || !on_chain {
            continue;
        }
        for task in process.threads.iter().filter(|t| movable(t)) {
            if !context.target.holds(process.pid, task.tid) {
                others.push(ThreadRef { process, task });
            }
        }
    }
    others
}

pub(super) fn movable(task: &nearnative_host::tasks::Task) -> bool {
    !task.kind.is_kernel() && !task.has_exited()
}

/// The cgroups from the scope down to each cgroup that holds a target thread, the plan's own
/// (`prefix`) left out: they keep the exclusive CPUs. The kernel pins a thread only within
/// the cpuset it is in, and its `thread_affinity` comes before its move; and a manager's own
/// cgroups (libvirt's `/machine`, a container runtime's slices) must still admit the CPUs it
/// hands out next.
fn target_chain(context: &Context, prefix: &str) -> BTreeSet<String> {
    let target = context.target;
    let threads = target
        .exclusive
        .iter()
        .chain(&target.io)
        .chain(&target.rest);
    let cgroups: BTreeSet<&str> = threads
        .filter(|t| !t.task.kind.is_kernel())
        .filter_map(|t| context.scope.cgroup_of(t.process))
        .collect();
    let mut kept = BTreeSet::from([context.scope.path.clone()]);
    for cgroup in cgroups {
        kept.extend(chain(&context.scope.path, cgroup));
    }
    kept.retain(|path| !last_component(path).starts_with(prefix));
    kept
}

fn last_component(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// The cgroups in the scope beside `chain` whose CPUs overlap the exclusive set lose those
/// CPUs, deepest first.
fn shrink_beside(
    context: &Context,
    mount: &CgroupMount,
    prefix: &str,
    chain: &BTreeSet<String>,
    out: &mut Changes,
) {
    let scope = context.scope;
    let mut beside: Vec<(&str, &CpuSet)> = context
        .host
        .isolation
        .cgroups
        .cpusets
        .iter()
        .filter(|c| scope.contains_path(&c.path) && !chain.contains(&c.path))
        .filter(|c| !last_component(&c.path).starts_with(prefix))
        .filter_map(|c| Some((c.path.as_str(), c.cpus.as_ref()?)))
        .collect();
    let mut shrunk = shrunk_cpus(context, &mut beside);
    beside.sort_by_key(|(path, _)| (std::cmp::Reverse(path.matches('/').count()), *path));
    for (path, cpus) in beside {
        let Some(to) = shrunk.remove(path) else {
            continue;
        };
        let Some(cgroup) = cgroup(mount, path, out) else {
            continue;
        };
        out.push(
            Change {
                knob: CpusetCpus { cgroup },
                from: cpus.clone(),
                to,
            },
            MECHANISM,
            format!(
                "cpuset {path} overlaps the exclusive CPUs {}; its tasks keep the others",
                context.exclusive
            ),
        );
    }
}

/// The new CPUs of each overlapping cgroup of `beside`, worked out parents first: its CPUs
/// without the exclusive ones, or when none are left the housekeeping CPUs its parent keeps,
/// as a v1 cpuset must stay within its parent's.
fn shrunk_cpus<'c>(
    context: &Context,
    beside: &mut [(&'c str, &'c CpuSet)],
) -> BTreeMap<&'c str, CpuSet> {
    let cpusets = &context.host.isolation.cgroups.cpusets;
    beside.sort_by_key(|(path, _)| (path.matches('/').count(), *path));
    let mut shrunk: BTreeMap<&str, CpuSet> = BTreeMap::new();
    for &(path, cpus) in beside.iter() {
        if cpus.is_disjoint(&context.exclusive) {
            continue;
        }
        let parent = parent_of(path).and_then(|parent| match shrunk.get(parent) {
            Some(cpus) => Some(cpus.clone()),
            None => cpusets.iter().find(|c| c.path == parent)?.cpus.clone(),
        });
        let left = parent
            .map(|p| p.intersection(&context.housekeeping))
            .filter(|left| !left.is_empty())
            .unwrap_or_else(|| context.housekeeping.clone());
        shrunk.insert(path, without(cpus, &context.exclusive, &left));
    }
    shrunk
}

pub(super) fn cgroup(mount: &CgroupMount, path: &str, out: &mut Changes) -> Option<Cgroup> {
    match CgroupPath::try_from(path) {
        Ok(path) => Some(Cgroup {
            mount: mount.clone(),
            path,
        }),
        Err(why) => {
            out.note(Note::CpusetNotPlain {
                path: path.to_owned(),
                why: why.to_string(),
            });
            None
        }
    }
}

/// The plan's own cgroups, housekeeping first, each with its CPUs and memory nodes before any
/// task joins; the thread cgroups are made CPU-exclusive once no sibling overlaps them.
fn create_cgroups(
    context: &Context,
    mount: &CgroupMount,
    placed: &[(ThreadRef, Destination)],
    chain: &BTreeSet<String>,
    out: &mut Changes,
) {
    let mut made: Vec<(&str, &CpuSet, bool)> = Vec::new();
    for (_, destination) in placed {
        if !made.iter().any(|(path, _, _)| *path == destination.path) {
            let exclusive = !destination.path.ends_with("-hk");
            made.push((&destination.path, &destination.cpus, exclusive));
        }
    }
    let hk_path = cgroup_path(context, "hk");
    if !made.iter().any(|(path, _, _)| *path == hk_path) {
        made.insert(0, (&hk_path, &context.housekeeping, false));
    }
    made.sort_by_key(|(_, _, exclusive)| *exclusive);
    let cpusets = &context.host.isolation.cgroups.cpusets;
    for &(path, cpus, _) in &made {
        let Some(cgroup) = cgroup(mount, path, out) else {
            continue;
        };
        let existing = cpusets.iter().find(|c| c.path == path);
        let reason = format!("cpuset for {} ({cpus})", context.target.key);
        make_dir(&cgroup, existing.is_some(), &reason, out);
        set_cpus(&cgroup, existing, cpus, &reason, out);
        out.push(
            Change {
                knob: CpusetMems { cgroup },
                from: existing.and_then(|c| c.mems.clone()).unwrap_or_default(),
                to: context.scope.mems.clone(),
            },
            MECHANISM,
            format!("{reason}: the memory nodes of the scope"),
        );
    }
    if !context.scope.cpu_exclusive {
        out.note(Note::NotCpuExclusive {
            scope: context.scope.path.clone(),
        });
        return;
    }
    let sibling = chain
        .iter()
        .find(|path| parent_of(path) == Some(context.scope.path.as_str()));
    if let Some(sibling) = sibling {
        out.note(Note::SiblingKeepsCpus {
            sibling: sibling.clone(),
        });
        return;
    }
    for &(path, _, exclusive) in made.iter().filter(|(_, _, e)| *e) {
        let Some(cgroup) = cgroup(mount, path, out) else {
            continue;
        };
        let existing = cpusets.iter().find(|c| c.path == path);
        out.push(
            Change {
                knob: CpusetCpuExclusive { cgroup },
                from: existing.and_then(|c| c.cpu_exclusive).unwrap_or(false),
                to: exclusive,
            },
            MECHANISM,
            "no sibling cpuset may take these CPUs (the kernel refuses an overlapping one)",
        );
    }
}

/// `cgroup_dir`: the plan makes the cgroup unless it `exists` already.
pub(super) fn make_dir(cgroup: &Cgroup, exists: bool, reason: &str, out: &mut Changes) {
    let from = match exists {
        true => Presence::Present,
        false => Presence::Absent,
    };
    let knob = CgroupDir {
        cgroup: cgroup.clone(),
    };
    let to = Presence::Present;
    out.push(Change { knob, from, to }, MECHANISM, reason);
}

/// `cpuset_cpus` of a cgroup the plan makes, from what `existing` shows (empty when new).
pub(super) fn set_cpus(
    cgroup: &Cgroup,
    existing: Option<&Cpuset>,
    cpus: &CpuSet,
    reason: &str,
    out: &mut Changes,
) {
    let change = Change {
        knob: CpusetCpus {
            cgroup: cgroup.clone(),
        },
        from: existing.and_then(|c| c.cpus.clone()).unwrap_or_default(),
        to: cpus.clone(),
    };
    out.push(change, MECHANISM, reason);
}

/// Affinity to the destination's CPUs, then the cgroup move.
pub(super) fn move_thread(
    context: &Context,
    hierarchy: &Hierarchy,
    thread: &ThreadRef,
    destination: &Destination,
    out: &mut Changes,
) {
    let Some(current) = context.scope.cgroup_of(thread.process) else {
        out.note(Note::CgroupUnreadable {
            pid: thread.pid(),
            tid: thread.tid(),
        });
        return;
    };
    let (Ok(from), Ok(to)) = (
        CgroupPath::try_from(current),
        CgroupPath::try_from(destination.path.as_str()),
    ) else {
        out.note(Note::CgroupNotPlain {
            pid: thread.pid(),
            tid: thread.tid(),
            cgroup: current.to_owned(),
        });
        return;
    };
    affinity_step(thread, &destination.cpus, &destination.why, out);
    let why = format!("{} (its cgroup enforces it)", destination.why);
    task_cgroup_step(thread, hierarchy, from, to, why, out);
}

pub(super) fn affinity_step(thread: &ThreadRef, cpus: &CpuSet, why: &str, out: &mut Changes) {
    out.push(
        Change {
            knob: ThreadAffinity {
                pid: thread.pid(),
                tid: thread.tid(),
                start_time: thread.task.start_time,
            },
            from: thread.task.affinity.clone(),
            to: cpus.clone(),
        },
        MECHANISM,
        why,
    );
}

/// Without cpusets: target threads pinned as above; every other user thread in the scope
/// (PID 1 included: its affinity is all that can be changed) leaves the exclusive CPUs.
fn affinity_changes(context: &Context, out: &mut Changes) {
    let placed = target_destinations(context, |suffix| suffix.to_owned());
    for (thread, destination) in &placed {
        affinity_step(thread, &destination.cpus, &destination.why, out);
    }
    let why = format!("kept off the exclusive CPUs of {}", context.target.key);
    for process in &context.host.tasks.processes {
        if !context.scope.holds(process) || context.others.contains(&process.pid) {
            continue;
        }
        for task in process.threads.iter().filter(|t| movable(t)) {
            if !context.target.holds(process.pid, task.tid) {
                let to = without(&task.affinity, &context.exclusive, &context.housekeeping);
                affinity_step(&ThreadRef { process, task }, &to, &why, out);
            }
        }
    }
}

/// The whole host: unbound kernel threads that accept an affinity, and PID 1 (which is never
/// moved between cgroups; the affinity-only path already covers it).
fn host_thread_changes(context: &Context, out: &mut Changes) {
    let cpuset = !matches!(context.scope.fencing, Fencing::AffinityOnly { .. });
    let why = format!("kept off the exclusive CPUs of {}", context.target.key);
    for process in &context.host.tasks.processes {
        for task in &process.threads {
            let unbound_kernel = task.kind == nearnative_host::tasks::TaskKind::KernelUnbound
                && !task.affinity_fixed;
            let init = cpuset && process.pid == 1 && !task.has_exited();
            if (unbound_kernel || init) && !context.target.holds(process.pid, task.tid) {
                let to = without(&task.affinity, &context.exclusive, &context.housekeeping);
                affinity_step(&ThreadRef { process, task }, &to, &why, out);
            }
        }
    }
}

/// In a narrower scope, the kernel threads KVM starts for each VM of the scope: `kvm-pit/PID`
/// (the emulated PIT's timer, named after the VMM's pid) wakes on whichever CPU it last ran
/// and preempts an exclusive vCPU there. They belong to the scope's VMs, so they are kept off
/// the exclusive CPUs even though the host's other kernel threads are not the scope's to move.
fn vm_kernel_thread_changes(context: &Context, out: &mut Changes) {
    let in_scope = |pid: u32| {
        let process = context.host.tasks.processes.iter().find(|p| p.pid == pid);
        process.is_some_and(|p| context.scope.holds(p))
    };
    for process in &context.host.tasks.processes {
        for task in &process.threads {
            let Some(vm) = vm_kernel_thread_owner(&task.comm) else {
                continue;
            };
            let movable = task.kind == nearnative_host::tasks::TaskKind::KernelUnbound
                && !task.affinity_fixed;
            if movable && in_scope(vm) && !task.affinity.is_disjoint(&context.exclusive) {
                let to = without(&task.affinity, &context.exclusive, &context.housekeeping);
                let why = format!(
                    "{} is KVM's kernel thread for the VM of pid {vm}, in scope {}: kept off \
                     the exclusive CPUs of {}",
                    task.comm, context.scope.path, context.target.key
                );
                affinity_step(&ThreadRef { process, task }, &to, &why, out);
            }
        }
    }
}

/// The VMM pid a KVM kernel thread is named after (`kvm-pit/4000`).
fn vm_kernel_thread_owner(comm: &str) -> Option<u32> {
    comm.strip_prefix("kvm-pit/")?.parse().ok()
}

/// Moves `thread` from cgroup `from` to `to` in `hierarchy`.
pub(super) fn task_cgroup_step(
    thread: &ThreadRef,
    hierarchy: &Hierarchy,
    from: CgroupPath,
    to: CgroupPath,
    why: String,
    out: &mut Changes,
) {
    let knob = TaskCgroup {
        pid: thread.pid(),
        tid: thread.tid(),
        start_time: thread.task.start_time,
        hierarchy: hierarchy.clone(),
    };
    out.push(Change { knob, from, to }, MECHANISM, why);
}
