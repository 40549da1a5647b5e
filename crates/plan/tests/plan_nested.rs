//! A target three cgroups below the scope, as containers and libvirt VMs live
//! (`kubepods.slice/.../<ctr>.scope`, `machine/qemu-...`), on hand-built hosts with cgroup v1
//! and v2 cpusets: the chain from the scope down to the target's cgroup keeps the exclusive
//! CPUs, only the cgroups beside it shrink, the bystanders directly in the chain move to the
//! housekeeping cgroup, and the kernel's cpuset rules hold at every step, applied and reverted.

use nearnative_host::{CpuSet, Host};
use nearnative_knob::Step;
use nearnative_plan::{plan, Fencing, Ledger, Plan, PlanRequest, Target};
use nearnative_testkit::Shape;

use crate::kernel_rules;
use crate::plan_support::*;

const SCOPE: &str = "/S";
const TARGET_CGROUP: &str = "/S/a/b/c";
/// The target process (threads 700, 701) and the bystanders: one more process in the
/// target's cgroup, one in a cgroup of the chain, one directly in the scope, two beside the
/// chain, one outside the scope.
const TARGET: u32 = 700;
const BESIDE_TARGET: u32 = 720;
const IN_CHAIN: u32 = 800;
const IN_SCOPE: u32 = 850;
const BESIDE: u32 = 900;
const BESIDE_DEEP: u32 = 950;
const OUTSIDE: u32 = 990;

fn ids(list: &str) -> CpuSet {
    CpuSet::parse_list(list).unwrap()
}

/// Every cgroup with its place: the chain, and beside it `/S/a/x` (child `/S/a/x/y` on CPU
/// 1 alone) and `/S/z`.
fn layout() -> [(&'static str, Option<&'static str>); 8] {
    [
        ("/S", None),
        ("/S/a", None),
        ("/S/a/b", None),
        ("/S/a/b/c", None),
        ("/S/a/x", None),
        ("/S/a/x/y", Some("1")),
        ("/S/z", None),
        ("/other", None),
    ]
}

fn populate(host: &mut Host) {
    add_threads(host, TARGET, &["main", "worker"], TARGET_CGROUP);
    add_user(host, BESIDE_TARGET, "sidecar", TARGET_CGROUP);
    add_user(host, IN_CHAIN, "in-chain", "/S/a");
    add_user(host, IN_SCOPE, "in-scope", SCOPE);
    add_user(host, BESIDE, "beside", "/S/z");
    add_user(host, BESIDE_DEEP, "beside-deep", "/S/a/x/y");
    add_user(host, OUTSIDE, "outside", "/other");
}

/// 1 node, 4 cores: CPU 0 is housekeeping. v1 cpusets, every CPU at every level.
fn v1_host() -> Host {
    let mut host = host(Shape::server(1, 1, 4, 1).build());
    let all = host.topology.online.clone();
    for (path, cpus) in layout() {
        add_cpuset(&mut host, path, &cpus.map_or(all.clone(), ids));
    }
    populate(&mut host);
    host
}

/// The same under cgroup v2 with the cpuset controller handed down everywhere, each
/// `cpuset.cpus` empty (inherited) but `/S/a/x/y`'s.
fn v2_host() -> Host {
    let mut host = host(Shape::server(1, 1, 4, 1).build());
    with_v2_cpusets(&mut host);
    for (path, cpus) in layout() {
        let cpus = cpus.map(ids);
        add_cpuset_v2(&mut host, path, cpus.as_ref(), "member");
    }
    populate(&mut host);
    host
}

fn cgroup_target() -> PlanRequest {
    let mut request = PlanRequest::new(Target::Cgroup(TARGET_CGROUP.into()));
    request.scope = Some(SCOPE.into());
    request
}

/// `pid:700`, its worker exclusive and its main thread on housekeeping.
fn pid_target() -> PlanRequest {
    let mut request = PlanRequest::new(Target::Pid(TARGET));
    request.threads = Some(vec![TARGET + 1]);
    request.scope = Some(SCOPE.into());
    request
}

fn planned(host: &Host, request: &PlanRequest) -> Plan {
    let plan = plan(host, request, &Ledger::new()).unwrap_or_else(|e| panic!("{e}"));
    kernel_rules::check(host, &plan).unwrap_or_else(|e| panic!("{e}"));
    plan
}

/// The cgroups (not the plan's own) whose CPUs the plan changes, with their new CPUs, in
/// step order.
fn shrunk(plan: &Plan) -> Vec<(String, CpuSet)> {
    plan.changes
        .iter()
        .filter_map(|c| match &c.step {
            Step::CpusetCpus(x) if !x.knob.cgroup.path.as_str().contains("nearnative-") => {
                Some((x.knob.cgroup.path.to_string(), x.to.clone()))
            }
            _ => None,
        })
        .collect()
}

fn moved_pids(plan: &Plan) -> Vec<u32> {
    let mut pids: Vec<u32> = moves(plan).iter().map(|m| m.0).collect();
    pids.dedup();
    pids
}

#[test]
fn v1_the_chain_keeps_the_exclusive_cpus_and_only_cgroups_beside_it_shrink() {
    let host = v1_host();
    for (what, request) in [("cgroup:", cgroup_target()), ("pid:", pid_target())] {
        let plan = planned(&host, &request);
        let exclusive = plan.allocation.exclusive_cpus.clone();
        assert!(exclusive.contains(1), "{what}: {exclusive}");
        let hk = plan.allocation.housekeeping.clone();
        let left = ids("0-3").difference(&exclusive);
        assert_eq!(
            shrunk(&plan),
            [
                ("/S/a/x/y".to_owned(), hk.intersection(&left)),
                ("/S/a/x".to_owned(), left.clone()),
                ("/S/z".to_owned(), left.clone()),
            ],
            "{what}: deepest first; the emptied /S/a/x/y gets what its parent keeps"
        );
        let moved = moved_pids(&plan);
        for pid in [TARGET, BESIDE_TARGET, IN_CHAIN, IN_SCOPE] {
            assert!(moved.contains(&pid), "{what}: {pid} moves: {moved:?}");
        }
        for pid in [BESIDE, BESIDE_DEEP, OUTSIDE] {
            assert!(!moved.contains(&pid), "{what}: {pid} stays: {moved:?}");
        }
        let hk_cgroup = format!("{SCOPE}/nearnative-{}-hk", plan.id);
        // `cgroup:` takes every process in the cgroup; `pid:` leaves the sidecar a bystander.
        let bystanders = match request.target {
            Target::Pid(_) => vec![BESIDE_TARGET, IN_CHAIN, IN_SCOPE],
            _ => vec![IN_CHAIN, IN_SCOPE],
        };
        for pid in bystanders {
            let to_hk = (pid, pid, hk_cgroup.clone());
            assert!(moves(&plan).contains(&to_hk), "{what}: {pid} to -hk");
        }
        assert!(
            pinned_right_before_move(&plan, TARGET + 1),
            "{what}: pinned inside /S/a/b/c, then moved"
        );
    }
}

#[test]
fn v1_under_an_exclusive_root_the_plans_cgroups_stay_non_exclusive_beside_the_chain() {
    let host = v1_host();
    let mut request = cgroup_target();
    request.scope = None;
    let plan = planned(&host, &request);
    assert!(
        !kinds(&plan).contains(&"CpusetCpuExclusive"),
        "the kernel refuses an exclusive cpuset that its sibling /S overlaps"
    );
    assert!(
        plan.notes
            .iter()
            .any(|n| n.to_string().contains("sibling /S keeps")),
        "{:?}",
        plan.notes
    );
    let shrunk: Vec<String> = shrunk(&plan).into_iter().map(|s| s.0).collect();
    assert_eq!(shrunk, ["/S/a/x/y", "/S/a/x", "/S/z", "/other"]);
    assert!(
        moved_pids(&plan).contains(&IN_SCOPE),
        "a process in /S, on the chain from the root, moves"
    );
}

#[test]
fn v1_a_target_directly_in_an_exclusive_scope_still_gets_exclusive_cgroups() {
    let mut host = host(Shape::server(1, 1, 4, 1).build());
    add_threads(&mut host, TARGET, &["main", "worker"], "/");
    let plan = planned(&host, &PlanRequest::new(Target::Pid(TARGET)));
    assert!(kinds(&plan).contains(&"CpusetCpuExclusive"));
}

#[test]
fn v2_the_chain_keeps_the_exclusive_cpus_and_only_cgroups_beside_it_shrink() {
    let mut host = v2_host();
    // Under v2 no process may live directly in the scope or between it and the target's
    // cgroup (the plan would fall back to affinity): those stay empty here.
    host.tasks
        .processes
        .retain(|p| ![IN_CHAIN, IN_SCOPE].contains(&p.pid));
    for (what, request) in [("cgroup:", cgroup_target()), ("pid:", pid_target())] {
        let plan = planned(&host, &request);
        assert!(
            matches!(&plan.scope.fencing, Fencing::CpusetV2 { thread_root, .. } if thread_root == TARGET_CGROUP),
            "{what}: {:?}",
            plan.scope.fencing
        );
        let exclusive = plan.allocation.exclusive_cpus.clone();
        let left = ids("0-3").difference(&exclusive);
        let shrunk = shrunk(&plan);
        assert_eq!(
            shrunk,
            [
                ("/S/a/x".to_owned(), left.clone()),
                ("/S/z".to_owned(), left.clone()),
            ],
            "{what}: beside the chain only (/S/a/x/y follows its parent)"
        );
        let moved = moved_pids(&plan);
        for pid in [TARGET, BESIDE_TARGET] {
            assert!(moved.contains(&pid), "{what}: {pid} moves: {moved:?}");
        }
        for pid in [BESIDE, BESIDE_DEEP, OUTSIDE] {
            assert!(!moved.contains(&pid), "{what}: {pid} stays: {moved:?}");
        }
    }
}
