//! The planner under cgroup v2 cpusets, on hand-built hosts: threaded cgroups inside the
//! target's own cgroup, the cgroups around it shrunk, processes in the root moved whole,
//! partitions only under a partition root, the pool, the fallbacks the v2 rules force, and a
//! re-plan after apply.

use std::path::PathBuf;

use nearnative_host::isolation::CgroupMode;
use nearnative_host::{CpuSet, Host};
use nearnative_knob::exclusivity::cgroup::{Hierarchy, Partition};
use nearnative_knob::Step;
use nearnative_plan::{plan, Fencing, Ledger, Note, Plan, PlanRequest, Target, Topic};
use nearnative_testkit::Shape;

use crate::plan_support::*;

const R: &str = "/machine/vm.scope";

fn ids(list: &str) -> CpuSet {
    CpuSet::parse_list(list).unwrap()
}

fn planned(host: &Host, request: &PlanRequest) -> Plan {
    plan(host, request, &Ledger::new()).unwrap_or_else(|e| panic!("{e}"))
}

fn vm(name: &str) -> PlanRequest {
    PlanRequest::new(Target::Vm(name.into()))
}

/// 4 CPUs, no SMT, cgroup v2 with cpuset handed down to `/machine` and `/system`; nothing
/// running yet.
fn v2_host() -> Host {
    let mut host = host(Shape::server(1, 1, 4, 1).build());
    with_v2_cpusets(&mut host);
    add_cpuset_v2(&mut host, "/machine", None, "member");
    add_cpuset_v2(&mut host, "/system", None, "member");
    add_cpuset_v2(&mut host, "/pinned", Some(&ids("2-3")), "member");
    add_cpuset_v2(&mut host, R, None, "member");
    add_cpuset_v2(&mut host, "/machine/other.scope", Some(&ids("1")), "member");
    host
}

/// [`v2_host`] with VM web1 (2 vCPUs) and a helper in `R`, sshd in `/system`, a daemon and
/// PID 1 in the root.
fn v2_host_with_vm() -> Host {
    let mut host = v2_host();
    add_vm(&mut host, "web1", 4000, 2, R);
    add_user(&mut host, 600, "helper", R);
    add_user(&mut host, 500, "sshd", "/system");
    add_user(&mut host, 700, "rootd", "/");
    add_user(&mut host, 1, "init", "/");
    host
}

fn child(name: &str) -> String {
    format!("{R}/nearnative-vm-web1-{name}")
}

/// (cgroup, from, to) of each `cpuset.cpus` step.
fn cpuset_cpus(plan: &Plan) -> Vec<(String, CpuSet, CpuSet)> {
    plan.changes
        .iter()
        .filter_map(|c| match &c.step {
            Step::CpusetCpus(x) => {
                Some((x.knob.cgroup.path.to_string(), x.from.clone(), x.to.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The cgroup each step of `kind` configures, in order.
fn cgroups_of(plan: &Plan, kind: &str) -> Vec<String> {
    plan.changes
        .iter()
        .filter(|c| c.step.kind() == kind)
        .filter_map(|c| match &c.step {
            Step::CgroupDir(x) => Some(x.knob.cgroup.path.to_string()),
            Step::CgroupType(x) => Some(x.knob.cgroup.path.to_string()),
            Step::SubtreeCpuset(x) => Some(x.knob.cgroup.path.to_string()),
            Step::CpusetPartition(x) => Some(x.knob.cgroup.path.to_string()),
            _ => None,
        })
        .collect()
}

fn partitions(plan: &Plan) -> Vec<(String, Partition)> {
    plan.changes
        .iter()
        .filter_map(|c| match &c.step {
            Step::CpusetPartition(x) => Some((x.knob.cgroup.path.to_string(), x.to.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_vm_gets_threaded_cgroups_inside_its_own_cgroup() {
    let host = v2_host_with_vm();
    let plan = planned(&host, &vm("web1"));
    assert_eq!(
        plan.scope.fencing,
        Fencing::CpusetV2 {
            mount: PathBuf::from(V2_MOUNT),
            thread_root: R.into()
        }
    );
    let json = serde_json::to_value(&plan.scope.fencing).unwrap();
    assert_eq!(json["kind"], "cpuset_v2");
    assert_eq!(json["thread_root"], R);
    assert_eq!(plan.allocation.thread_cpus(), ids("1-2"));
    let hk = ids("0,3");

    let shrunk: Vec<_> = cpuset_cpus(&plan)
        .into_iter()
        .filter(|(path, _, _)| !path.contains("nearnative"))
        .collect();
    assert_eq!(
        shrunk,
        [
            ("/system".into(), CpuSet::new(), hk.clone()),
            ("/pinned".into(), ids("2-3"), ids("3")),
            ("/machine/other.scope".into(), ids("1"), hk.clone()),
        ],
        "the cgroups hanging off / .. {R} lose CPUs 1-2; those on the way to the VM keep them"
    );
    assert_eq!(cgroups_of(&plan, "SubtreeCpuset"), [R]);
    let threaded = [child("hk"), child("t0"), child("t1")];
    assert_eq!(cgroups_of(&plan, "CgroupType"), threaded);
    assert_eq!(
        cgroups_of(&plan, "CgroupDir"),
        [&threaded[..], &["/nearnative-vm-web1-hk".to_owned()]].concat(),
        "the root's processes get a domain cgroup of their own"
    );
    for (path, cpus) in [
        (child("hk"), hk.clone()),
        (child("t0"), ids("1")),
        (child("t1"), ids("2")),
        ("/nearnative-vm-web1-hk".into(), hk.clone()),
    ] {
        assert!(
            cpuset_cpus(&plan).contains(&(path.clone(), CpuSet::new(), cpus)),
            "{path}"
        );
    }
    let kinds = kinds(&plan);
    assert!(
        !kinds.contains(&"CpusetMems") && !kinds.contains(&"CpusetCpuExclusive"),
        "v2 cgroups inherit their memory nodes: {kinds:?}"
    );
    assert!(partitions(&plan).is_empty());
    assert!(
        plan.notes
            .iter()
            .any(|n| matches!(n, Note::NotPartitions { .. })),
        "{:?}",
        plan.notes
    );
    check_order(&plan);
    check_moves(&plan, &hk);
    assert!(
        !plan.advisories.iter().any(|a| a.topic == Topic::Fencing),
        "cpusets fence: no affinity-only advisory"
    );
}

/// Shrinks, then `R` hands cpuset down, then each threaded cgroup is made (directory, type,
/// CPUs, housekeeping first), then the root's domain cgroup, then the moves.
fn check_order(plan: &Plan) {
    let kinds = kinds(plan);
    let subtree = kinds.iter().position(|k| *k == "SubtreeCpuset").unwrap();
    let first_dir = kinds.iter().position(|k| *k == "CgroupDir").unwrap();
    assert!(
        kinds[..subtree].iter().all(|k| *k == "CpusetCpus"),
        "{kinds:?}"
    );
    assert_eq!(first_dir, subtree + 1, "{kinds:?}");
    for made in 0..3 {
        let at = first_dir + 3 * made;
        assert_eq!(
            kinds[at..at + 3],
            ["CgroupDir", "CgroupType", "CpusetCpus"],
            "{kinds:?}"
        );
    }
    assert!(cgroups_before_moves(plan), "{kinds:?}");
}

/// The VM's threads and the helper beside it move inside `R`'s threaded subtree; the root's
/// daemon moves whole; sshd (fenced by its cgroup) and PID 1 stay.
fn check_moves(plan: &Plan, hk: &CpuSet) {
    let moved = moves(plan);
    let expected = [
        (4000, 4001, child("t0")),
        (4000, 4002, child("t1")),
        (4000, 4000, child("hk")),
        (4000, 4003, child("hk")),
        (4000, 4004, child("hk")),
        (600, 600, child("hk")),
        (700, 700, "/nearnative-vm-web1-hk".into()),
    ];
    assert_eq!(moved.len(), expected.len(), "{moved:?}");
    for (pid, tid, to) in expected {
        assert!(moved.contains(&(pid, tid, to.clone())), "{tid} to {to}");
        assert!(pinned_right_before_move(plan, tid), "{tid}");
    }
    let pinned = pins(plan);
    assert!(pinned.contains(&(4000, 4001, ids("1"))));
    assert!(pinned.contains(&(600, 600, hk.clone())));
    assert!(pinned.contains(&(700, 700, hk.clone())));
    assert!(pinned.contains(&(1, 1, hk.clone())), "PID 1 only re-pinned");
    assert!(!pinned.iter().any(|(pid, _, _)| *pid == 500));
    let v2 = plan.changes.iter().all(|c| match &c.step {
        Step::TaskCgroup(x) => matches!(&x.knob.hierarchy, Hierarchy::V2 { mount }
            if mount.as_path() == std::path::Path::new(V2_MOUNT)),
        _ => true,
    });
    assert!(v2, "every move goes through the v2 hierarchy");
}

#[test]
fn partitions_only_under_a_valid_partition_root() {
    struct Case {
        what: &'static str,
        vm_cgroup: &'static str,
        partition: &'static str,
        cores: Option<u32>,
        expected: Vec<(&'static str, Partition)>,
    }
    let cases = [
        Case {
            what: "the root is always a partition root",
            vm_cgroup: "/",
            partition: "",
            cores: None,
            expected: vec![
                ("/nearnative-vm-web1-t0", Partition::Isolated),
                ("/nearnative-vm-web1-t1", Partition::Isolated),
            ],
        },
        Case {
            what: "a valid partition root",
            vm_cgroup: "/rt",
            partition: "root",
            cores: None,
            expected: vec![
                ("/rt/nearnative-vm-web1-t0", Partition::Isolated),
                ("/rt/nearnative-vm-web1-t1", Partition::Isolated),
            ],
        },
        Case {
            what: "an invalid partition root is none",
            vm_cgroup: "/rt",
            partition: "root invalid (Parent is not a partition root)",
            cores: None,
            expected: vec![],
        },
        Case {
            what: "a pool of two cores stays load balanced",
            vm_cgroup: "/",
            partition: "",
            cores: Some(2),
            expected: vec![("/nearnative-vm-web1-pool", Partition::Root)],
        },
    ];
    for case in cases {
        let mut host = host(Shape::server(1, 1, 4, 1).build());
        with_v2_cpusets(&mut host);
        if case.vm_cgroup != "/" {
            add_cpuset_v2(&mut host, case.vm_cgroup, None, case.partition);
        }
        add_vm(&mut host, "web1", 4000, 2, case.vm_cgroup);
        add_user(&mut host, 700, "rootd", "/");
        let mut request = vm("web1");
        request.cores = case.cores;
        let plan = planned(&host, &request);
        let expected: Vec<(String, Partition)> = case
            .expected
            .iter()
            .map(|(p, k)| (p.to_string(), k.clone()))
            .collect();
        assert_eq!(partitions(&plan), expected, "{}", case.what);
        let last_partition = kinds(&plan).iter().rposition(|k| *k == "CpusetPartition");
        let first_move = kinds(&plan).iter().position(|k| *k == "TaskCgroup");
        assert!(
            last_partition < first_move,
            "{}: before any move",
            case.what
        );
    }
}

#[test]
fn in_the_root_the_roots_processes_are_residents_of_the_threaded_subtree() {
    let mut host = host(Shape::server(1, 1, 4, 1).build());
    with_v2_cpusets(&mut host);
    add_vm(&mut host, "web1", 4000, 1, "/");
    add_user(&mut host, 700, "rootd", "/");
    add_user(&mut host, 1, "init", "/");
    let plan = planned(&host, &vm("web1"));
    assert!(moves(&plan).contains(&(700, 700, "/nearnative-vm-web1-hk".into())));
    assert_eq!(
        cgroups_of(&plan, "CgroupDir"),
        cgroups_of(&plan, "CgroupType"),
        "every cgroup is threaded: no domain cgroup beside"
    );
    assert!(!moves(&plan).iter().any(|(pid, _, _)| *pid == 1));
}

#[test]
fn a_pool_is_one_threaded_cgroup_the_vcpus_share() {
    let host = v2_host_with_vm();
    let mut request = vm("web1");
    request.cores = Some(1);
    let plan = planned(&host, &request);
    let pool = plan.pool.clone().expect("a pool");
    assert_eq!(pool.cgroup, Some(child("pool")));
    assert_eq!(pool.cpus, ids("1"));
    assert_eq!(
        cgroups_of(&plan, "CgroupType")[..2],
        [child("hk"), child("pool")]
    );
    let moved = moves(&plan);
    for tid in [4001, 4002] {
        assert!(moved.contains(&(4000, tid, child("pool"))), "{tid}");
        assert!(pins(&plan).contains(&(4000, tid, ids("1"))));
    }
    assert!(cpuset_cpus(&plan).contains(&(child("pool"), CpuSet::new(), ids("1"))));
}

#[test]
fn where_v2_rules_forbid_threaded_cgroups_thread_affinity_fences_and_says_why() {
    type Edit = fn(&mut Host);
    let cases: [(&str, &str, Option<&str>, Edit); 5] = [
        (
            "a scope the cpuset controller does not reach",
            "does not reach /x",
            Some("/x"),
            |host| {
                add_vm(host, "web1", 4000, 1, "/x");
            },
        ),
        (
            "a target cgroup it does not reach",
            "does not reach the target's cgroup /machine/deep.scope",
            None,
            |host| add_vm(host, "web1", 4000, 1, "/machine/deep.scope"),
        ),
        (
            "processes in the target cgroup's children",
            "has processes in its child cgroups (process 800 in /machine/vm.scope/sub)",
            None,
            |host| {
                add_vm(host, "web1", 4000, 1, R);
                add_cpuset_v2(host, "/machine/vm.scope/sub", None, "member");
                add_user(host, 800, "sub", "/machine/vm.scope/sub");
            },
        ),
        (
            "a root that does not hand cpuset down to its busy children yet",
            "the root cgroup does not hand the cpuset controller down yet",
            None,
            |host| {
                host.isolation.cgroups.cpusets.truncate(1);
                add_vm(host, "web1", 4000, 1, "/");
                add_user(host, 800, "sshd", "/system.slice/ssh.service");
            },
        ),
        (
            "a process between the scope and the target",
            "process 900 lives directly in /machine, between the scope",
            None,
            |host| {
                add_vm(host, "web1", 4000, 1, R);
                add_user(host, 900, "stray", "/machine");
            },
        ),
    ];
    for (what, why, scope, edit) in cases {
        let mut host = v2_host();
        edit(&mut host);
        let mut request = vm("web1");
        request.scope = scope.map(str::to_owned);
        let plan = planned(&host, &request);
        match &plan.scope.fencing {
            Fencing::AffinityOnly { why: said } => assert!(said.contains(why), "{what}: {said}"),
            other => panic!("{what}: {other:?}"),
        }
        let kinds = kinds(&plan);
        assert!(
            kinds.iter().all(|k| !k.starts_with("Cgroup")
                && !k.starts_with("Cpuset")
                && *k != "SubtreeCpuset"
                && *k != "TaskCgroup"),
            "{what}: {kinds:?}"
        );
        assert!(pins(&plan).contains(&(4000, 4001, ids("1"))), "{what}");
        let advisory = plan.advisories.iter().find(|a| a.topic == Topic::Fencing);
        assert!(advisory.is_some_and(|a| a.text.contains(why)), "{what}");
    }
}

#[test]
fn a_replan_after_apply_keeps_the_cgroups_it_made() {
    let mut host = v2_host();
    add_vm(&mut host, "web1", 4000, 2, &child("hk"));
    add_cpuset_v2(&mut host, &child("hk"), Some(&ids("0,3")), "member");
    add_cpuset_v2(&mut host, &child("t0"), Some(&ids("1")), "member");
    add_cpuset_v2(&mut host, &child("t1"), Some(&ids("2")), "member");
    let plan = planned(&host, &vm("web1"));
    assert!(
        matches!(&plan.scope.fencing, Fencing::CpusetV2 { thread_root, .. } if thread_root == R),
        "{:?}",
        plan.scope.fencing
    );
    assert_eq!(plan.allocation.thread_cpus(), ids("1-2"));
    for kind in ["CgroupDir", "CgroupType", "SubtreeCpuset"] {
        assert!(cgroups_of(&plan, kind).is_empty(), "{kind}: already so");
    }
    assert!(
        !cpuset_cpus(&plan)
            .iter()
            .any(|(path, _, _)| path.contains("nearnative")),
        "the plan's cpusets already hold their CPUs"
    );
    let moved = moves(&plan);
    assert!(
        !moved
            .iter()
            .any(|(_, tid, _)| [4000, 4003, 4004].contains(tid)),
        "threads already in the housekeeping cgroup stay: {moved:?}"
    );
}

#[test]
fn a_v1_cpuset_hierarchy_wins_over_a_v2_mount() {
    let mut host = host(Shape::server(1, 1, 4, 1).build());
    host.isolation.cgroups.mode = CgroupMode::Hybrid;
    host.isolation.cgroups.unified_mount = Some(PathBuf::from("/sys/fs/cgroup/unified"));
    add_vm(&mut host, "web1", 4000, 1, "/");
    let plan = planned(&host, &vm("web1"));
    assert!(
        matches!(plan.scope.fencing, Fencing::CpusetV1 { .. }),
        "{:?}",
        plan.scope.fencing
    );
}
