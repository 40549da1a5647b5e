//! Exclusivity under cgroup v2 cpusets: threaded children of the target's own cgroup R (see
//! [`crate::scope_v2`] for why there and when it is allowed), scope S, exclusive CPUs X.
//!
//! ```text
//! R/nearnative-<id>-hk    threaded: the housekeeping CPUs, for the target's other threads and
//!                         every other thread directly in R
//! R/nearnative-<id>-t<i>  threaded: exclusive thread i's CPU (`--cores N`: one `-pool` with
//!                         the pool's CPUs for all of them)
//! R/nearnative-<id>-io    threaded: the I/O core (`--io dedicated`)
//! /nearnative-<id>-hk     domain, only with S = / and R below it: the processes directly in
//!                         the root, moved whole
//! ```
//!
//! In order: (1) every cgroup hanging off the chain S..R (not on it, not the plan's own) whose
//! CPUs meet X loses them; its descendants follow, as a v2 cpuset's effective CPUs are always
//! within its parent's. (2) R hands the cpuset controller down (`cgroup.subtree_control`).
//! (3) The threaded cgroups: `mkdir`, `cgroup.type` threaded, `cpuset.cpus`; `cpuset.mems`
//! stays empty, which inherits R's nodes and keeps every thread on its leader's nodes, as v2
//! asks. (4) Where R is a valid partition root (the root always is), each exclusive cgroup
//! becomes a partition: `isolated` for one CPU, `root` for more; the kernel then takes those
//! CPUs from every other cgroup. (5) The root's domain cgroup. (6) Each thread: affinity, then
//! its move through `cgroup.threads` (inside R's threaded subtree, so no process changes
//! domain); each root process: its threads' affinities, then its move through `cgroup.procs`.
//!
//! Revert runs backwards: a thread's move back into R goes through R's `cgroup.procs` (R is
//! not threaded), which brings the whole process back at once; each thread's exact affinity is
//! restored after it. Threads and processes born in the plan's cgroups since the apply are
//! moved to the parent before a cgroup is removed.

use std::path::Path;

use nearnative_host::tasks::Process;
use nearnative_host::{CpuSet, Host};
use nearnative_knob::exclusivity::cgroup::{
    CpusetCpus, CpusetPartition, Hierarchy, Partition, TaskCgroup,
};
use nearnative_knob::exclusivity::cgroup_v2::{
    CgroupKind, CgroupType, CpusetDistribution, SubtreeCpuset,
};
use nearnative_knob::{CgroupMount, CgroupPath, Change};

use super::exclusivity::{
    affinity_step, cgroup, cgroup_path, make_dir, movable, move_thread, set_cpus,
    target_destinations, Destination, MECHANISM,
};
use super::{Changes, Context};
use crate::decisions::Note;
use crate::plan::without;
use crate::plan_error::PlanError;
use crate::scope::chain;
use crate::scope_v2::hands_cpuset_down;
use crate::target::ThreadRef;
use nearnative_host::cgroup::parent_of;

pub(super) fn plan(
    context: &Context,
    mount: &Path,
    thread_root: &str,
    out: &mut Changes,
) -> Result<(), PlanError> {
    let mount =
        CgroupMount::try_from(mount.to_owned()).map_err(|reason| PlanError::ScopeUnusable {
            path: context.scope.path.clone(),
            reason,
        })?;
    let hierarchy = Hierarchy::V2 {
        mount: mount.clone(),
    };
    shrink_outside(context, &mount, thread_root, out);
    enable_cpuset(context, &mount, thread_root, out);
    let placed = target_destinations(context, |suffix| cgroup_path(context, suffix));
    let made = create_threaded(context, &mount, &placed, out);
    partitions(context, &mount, thread_root, &made, out);
    let root_processes = root_bystanders(context, thread_root);
    let root_hk = Destination {
        path: context
            .scope
            .child(&format!("nearnative-{}-hk", context.id)),
        cpus: context.housekeeping.clone(),
        why: format!("kept off the exclusive CPUs of {}", context.target.key),
    };
    if !root_processes.is_empty() {
        create_domain(context, &mount, &root_hk, out);
    }
    for (thread, destination) in &placed {
        match thread.task.kind.is_kernel() {
            true => affinity_step(thread, &destination.cpus, &destination.why, out),
            false => move_thread(context, &hierarchy, thread, destination, out),
        }
    }
    let housekeeping = Destination {
        path: cgroup_path(context, "hk"),
        ..root_hk.clone()
    };
    for process in residents(context, thread_root) {
        for task in process.threads.iter().filter(|t| movable(t)) {
            if !context.target.holds(process.pid, task.tid) {
                let thread = ThreadRef { process, task };
                move_thread(context, &hierarchy, &thread, &housekeeping, out);
            }
        }
    }
    for process in root_processes {
        move_process(&hierarchy, process, &root_hk, out);
    }
    Ok(())
}

/// The cgroups hanging off the chain from the scope down to `thread_root` whose CPUs meet the
/// exclusive ones lose them (those on the chain keep them: the target's cgroup lies below).
fn shrink_outside(context: &Context, mount: &CgroupMount, thread_root: &str, out: &mut Changes) {
    let chain = chain(&context.scope.path, thread_root);
    let own = format!("nearnative-{}-", context.id);
    for cpuset in &context.host.isolation.cgroups.cpusets {
        let path = cpuset.path.as_str();
        let hangs_off = parent_of(path).is_some_and(|p| chain.iter().any(|c| c == p));
        let name = path.rsplit('/').next().unwrap_or("");
        if !hangs_off || chain.iter().any(|c| c == path) || name.starts_with(&own) {
            continue;
        }
        let explicit = cpuset.cpus.clone().filter(|cpus| !cpus.is_empty());
        let Some(base) = explicit.or_else(|| cpuset.effective_cpus.clone()) else {
            continue;
        };
        if base.is_disjoint(&context.exclusive) {
            continue;
        }
        let Some(cgroup) = cgroup(mount, path, out) else {
            continue;
        };
        out.push(
            Change {
                knob: CpusetCpus { cgroup },
                from: cpuset.cpus.clone().unwrap_or_default(),
                to: without(&base, &context.exclusive, &context.housekeeping),
            },
            MECHANISM,
            format!(
                "cpuset {path} overlaps the exclusive CPUs {}; its tasks and those of its \
                 child cgroups keep the others",
                context.exclusive
            ),
        );
    }
}

/// `thread_root` hands the cpuset controller to its children. The host shows it on when a
/// child of it has cpuset files; when not, the executor reads the file afresh anyway.
fn enable_cpuset(context: &Context, mount: &CgroupMount, thread_root: &str, out: &mut Changes) {
    let from = match hands_cpuset_down(context.host, thread_root) {
        true => CpusetDistribution::Enabled,
        false => CpusetDistribution::Disabled,
    };
    let Some(cgroup) = cgroup(mount, thread_root, out) else {
        return;
    };
    out.push(
        Change {
            knob: SubtreeCpuset { cgroup },
            from,
            to: CpusetDistribution::Enabled,
        },
        MECHANISM,
        format!(
            "{thread_root} hands the cpuset controller to the threaded cgroups of {}",
            context.target.key
        ),
    );
}

/// The plan's threaded cgroups, housekeeping first, each made threaded and given its CPUs
/// before any thread joins. Returns each with its CPUs.
fn create_threaded(
    context: &Context,
    mount: &CgroupMount,
    placed: &[(ThreadRef, Destination)],
    out: &mut Changes,
) -> Vec<(String, CpuSet)> {
    let hk_path = cgroup_path(context, "hk");
    let mut made: Vec<(String, CpuSet)> = vec![(hk_path.clone(), context.housekeeping.clone())];
    for (_, destination) in placed {
        if !made.iter().any(|(path, _)| *path == destination.path) {
            made.push((destination.path.clone(), destination.cpus.clone()));
        }
    }
    let cpusets = &context.host.isolation.cgroups.cpusets;
    for (path, cpus) in &made {
        let Some(cgroup) = cgroup(mount, path, out) else {
            continue;
        };
        let existing = cpusets.iter().find(|c| c.path == *path);
        let reason = format!("threaded cpuset for {} ({cpus})", context.target.key);
        let kind = match existing {
            Some(_) => CgroupKind::Threaded,
            None => CgroupKind::Domain,
        };
        make_dir(&cgroup, existing.is_some(), &reason, out);
        out.push(
            Change {
                knob: CgroupType {
                    cgroup: cgroup.clone(),
                },
                from: kind,
                to: CgroupKind::Threaded,
            },
            MECHANISM,
            "threaded, so one process's threads can sit in different cpusets",
        );
        set_cpus(&cgroup, existing, cpus, &reason, out);
    }
    made
}

/// Each exclusive cgroup becomes a partition where the kernel allows a local one: under a
/// valid partition root.
fn partitions(
    context: &Context,
    mount: &CgroupMount,
    thread_root: &str,
    made: &[(String, CpuSet)],
    out: &mut Changes,
) {
    let cpusets = &context.host.isolation.cgroups.cpusets;
    let partition_of = |path: &str| {
        let found = cpusets.iter().find(|c| c.path == path);
        found.and_then(|c| c.partition.clone())
    };
    let root_is_partition =
        thread_root == "/" || partition_of(thread_root).is_some_and(|p| p.is_valid_partition());
    if !root_is_partition {
        out.note(Note::NotPartitions {
            thread_root: thread_root.to_owned(),
            taken: context.exclusive.clone(),
        });
        return;
    }
    let hk_path = cgroup_path(context, "hk");
    for (path, cpus) in made.iter().filter(|(path, _)| *path != hk_path) {
        let Some(cgroup) = cgroup(mount, path, out) else {
            continue;
        };
        let from = partition_of(path).unwrap_or(Partition::Member);
        let (to, what) = match cpus.len() {
            1 => (
                Partition::Isolated,
                "an isolated partition: out of every other cgroup, load balancing and the \
                 unbound workqueues",
            ),
            _ => (
                Partition::Root,
                "a partition root: out of every other cgroup, balanced among themselves",
            ),
        };
        out.push(
            Change {
                knob: CpusetPartition { cgroup },
                from,
                to,
            },
            MECHANISM,
            format!("CPUs {cpus} of {} become {what}", context.target.key),
        );
    }
}

/// The processes directly in the root that move into the root's domain housekeeping cgroup:
/// only when the scope is the whole host and the target lives below the root (with the target
/// in the root, they are residents of its cgroup instead).
fn root_bystanders<'h>(context: &Context<'h>, thread_root: &str) -> Vec<&'h Process> {
    if !context.scope.whole_host() || thread_root == "/" {
        return Vec::new();
    }
    residents(context, "/")
}

/// The processes directly in `path` that may be moved: not PID 1, not another workload's,
/// with a thread to move.
fn residents<'h>(context: &Context<'h>, path: &str) -> Vec<&'h Process> {
    let host: &'h Host = context.host;
    host.tasks
        .processes
        .iter()
        .filter(|p| p.pid != 1 && !context.others.contains(&p.pid))
        .filter(|p| context.scope.cgroup_of(p) == Some(path))
        .filter(|p| p.threads.iter().any(movable))
        .collect()
}

/// A domain cgroup for whole processes: the directory and its CPUs.
fn create_domain(
    context: &Context,
    mount: &CgroupMount,
    destination: &Destination,
    out: &mut Changes,
) {
    let Some(cgroup) = cgroup(mount, &destination.path, out) else {
        return;
    };
    let existing = context
        .host
        .isolation
        .cgroups
        .cpusets
        .iter()
        .find(|c| c.path == destination.path);
    let reason = format!(
        "cpuset for the root's processes beside {} ({})",
        context.target.key, destination.cpus
    );
    make_dir(&cgroup, existing.is_some(), &reason, out);
    set_cpus(&cgroup, existing, &destination.cpus, &reason, out);
}

/// Every thread's affinity, then the whole process through `cgroup.procs` (its leader's
/// cgroup is the process's), so revert brings it back before restoring each affinity.
fn move_process(
    hierarchy: &Hierarchy,
    process: &Process,
    destination: &Destination,
    out: &mut Changes,
) {
    let leader = process.thread(process.pid).filter(|t| !t.has_exited());
    let to = CgroupPath::try_from(destination.path.as_str());
    let (Some(leader), Ok(to)) = (leader, to) else {
        out.note(Note::MainThreadGone {
            pid: process.pid,
            comm: process.comm.clone(),
        });
        return;
    };
    for task in process.threads.iter().filter(|t| movable(t)) {
        let thread = ThreadRef { process, task };
        affinity_step(&thread, &destination.cpus, &destination.why, out);
    }
    out.push(
        Change {
            knob: TaskCgroup {
                pid: process.pid,
                tid: process.pid,
                start_time: leader.start_time,
                hierarchy: hierarchy.clone(),
            },
            from: CgroupPath::root(),
            to,
        },
        MECHANISM,
        format!(
            "process {} ({}) {}, with the processes it starts (its cgroup enforces it)",
            process.pid, process.comm, destination.why
        ),
    );
}
