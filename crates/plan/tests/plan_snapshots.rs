//! The planner on the six real host snapshots, with fake VMs added in code: CPU 0's core is
//! never given, the ledger is respected, and every step's prior value is what the host shows
//! (read back through the knob crate's tree backend for the files the snapshot holds).

use std::path::Path;

use nearnative_host::{Host, InspectOptions, Root};
use nearnative_knob::{Step, TreeBackend};
use nearnative_plan::{plan, Ledger, Plan, PlanRequest, Target};
use nearnative_testkit::hosts::CPUSET_MOUNT;
use nearnative_testkit::{shared, SNAPSHOTS};

use crate::plan_support::{add_user, add_vm, host as hand_built};

/// The snapshot as read, plus two one-vCPU VMs (the 8-node AMD has two cores per node) and
/// a user process; `cpusets` adds a v1 cpuset root
/// (most snapshots have no cgroup mounts, so without it the plan falls back to affinity).
pub fn snapshot_host(name: &str, cpusets: bool) -> Host {
    let mut host = Host::read(&Root::new(shared(name)), &InspectOptions::default());
    if cpusets {
        host.isolation = hand_built(host.topology.clone()).isolation;
    }
    add_vm(&mut host, "a", 4000, 1, "/");
    add_vm(&mut host, "b", 5000, 1, "/");
    add_user(&mut host, 300, "sshd", "/");
    host
}

/// The value the host shows for the knob of a per-thread or cgroup step, when the step is
/// one of those; `None` for knobs that live in files.
fn task_or_cgroup_prior(host: &Host, step: &Step) -> Option<bool> {
    let thread = |pid: u32, tid: u32| host.tasks.process(pid).and_then(|p| p.thread(tid));
    let cpuset = |path: &str| {
        host.isolation
            .cgroups
            .cpusets
            .iter()
            .find(|c| c.path == path)
    };
    Some(match step {
        Step::ThreadAffinity(c) => {
            thread(c.knob.pid, c.knob.tid).map(|t| &t.affinity) == Some(&c.from)
        }
        Step::TaskCgroup(c) => {
            let process = host.tasks.process(c.knob.pid)?;
            let cgroup = process.cgroup.as_ref()?.cpuset_v1.as_deref();
            cgroup == Some(c.from.as_str())
        }
        Step::CgroupDir(c) => {
            let exists = cpuset(c.knob.cgroup.path.as_str()).is_some();
            exists
                == matches!(
                    c.from,
                    nearnative_knob::exclusivity::cgroup::Presence::Present
                )
        }
        Step::CpusetCpus(c) => {
            let cpus = cpuset(c.knob.cgroup.path.as_str()).and_then(|c| c.cpus.clone());
            cpus.unwrap_or_default() == c.from
        }
        Step::CpusetMems(c) => {
            let mems = cpuset(c.knob.cgroup.path.as_str()).and_then(|c| c.mems.clone());
            mems.unwrap_or_default() == c.from
        }
        Step::CpusetCpuExclusive(c) => {
            let flag = cpuset(c.knob.cgroup.path.as_str()).and_then(|c| c.cpu_exclusive);
            flag.unwrap_or(false) == c.from
        }
        Step::SchedPolicy(_) => true,
        _ => return None,
    })
}

/// Every step of `plan` starts from what `host` (read from the tree at `root`) shows: thread
/// and cgroup knobs against the Host's values, file knobs read afresh from the tree.
pub fn check_priors(name: &str, root: &Path, host: &Host, plan: &Plan) -> usize {
    let backend = TreeBackend::new(root);
    let mut from_tree = 0;
    for change in &plan.changes {
        let step = &change.step;
        match task_or_cgroup_prior(host, step) {
            Some(matches) => assert!(matches, "{name}: {step:?} starts from what the host shows"),
            None => {
                let fresh = step
                    .with_current(&backend)
                    .unwrap_or_else(|e| panic!("{name}: {step:?}: {e}"));
                assert_eq!(&fresh, step, "{name}: prior value as the tree holds it");
                from_tree += 1;
            }
        }
    }
    from_tree
}

#[test]
fn snapshot_plans_keep_cpu0s_core_respect_the_ledger_and_start_from_the_host() {
    for name in SNAPSHOTS {
        for cpusets in [false, true] {
            let what = format!("{name} (cpusets: {cpusets})");
            let host = snapshot_host(name, cpusets);
            let first = plan(
                &host,
                &PlanRequest::new(Target::Vm("a".into())),
                &Ledger::new(),
            )
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            let mut ledger = Ledger::new();
            ledger.record(first.allocation.clone());
            let second = plan(&host, &PlanRequest::new(Target::Vm("b".into())), &ledger)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            for plan in [&first, &second] {
                if let Some(cpu0) = host.topology.cpu(0).filter(|c| c.online) {
                    assert!(
                        plan.allocation.held().is_disjoint(&cpu0.siblings),
                        "{what}: CPU 0's core is housekeeping"
                    );
                }
                check_priors(name, &shared(name), &host, plan);
                assert!(!plan.changes.is_empty(), "{what}: the VM's threads move");
                let cgroup_steps = plan.changes.iter().any(|c| c.step.kind() == "TaskCgroup");
                let v1 = host.isolation.cgroups.cpuset_version == Some(1);
                assert_eq!(
                    cgroup_steps, v1,
                    "{what}: cgroups only with a cpuset hierarchy"
                );
            }
            assert!(
                second
                    .allocation
                    .held()
                    .is_disjoint(&first.allocation.held()),
                "{what}: b gets none of a's CPUs"
            );
        }
    }
    assert!(!CPUSET_MOUNT.is_empty());
}
