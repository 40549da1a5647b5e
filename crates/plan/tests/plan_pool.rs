//! `--cores N`: the target's threads share a pool of N exclusive whole cores. On hand-built
//! hosts (this machine's 2-CPU shape, an SMT host, no cpusets) and on the real snapshots:
//! where the threads go and in which order, refusals, the ledger, determinism, old JSON.

use nearnative_host::power::{CpuPower, ResumeLatency};
use nearnative_host::{CpuSet, Host};
use nearnative_knob::Step;
use nearnative_plan::{
    plan, AllocationRequest, Ledger, LedgerError, Level, NumaSpill, Plan, PlanRequest, Pool, Target,
};
use nearnative_testkit::{shared, Shape, SNAPSHOTS};

use crate::plan_snapshots::{check_priors, snapshot_host};
use crate::plan_support::*;

fn pooled(target: Target, cores: u32) -> PlanRequest {
    let mut request = PlanRequest::new(target);
    request.cores = Some(cores);
    request
}

fn planned(host: &Host, request: &PlanRequest) -> Plan {
    plan(host, request, &Ledger::new()).unwrap_or_else(|e| panic!("{e}"))
}

/// The cgroups the plan creates, in order.
fn created(plan: &Plan) -> Vec<String> {
    plan.changes
        .iter()
        .filter_map(|c| match &c.step {
            Step::CgroupDir(x) => Some(x.knob.cgroup.path.to_string()),
            _ => None,
        })
        .collect()
}

/// The `cpuset.cpus` the plan gives cgroup `path`.
fn cpuset_cpus(plan: &Plan, path: &str) -> Option<CpuSet> {
    plan.changes.iter().find_map(|c| match &c.step {
        Step::CpusetCpus(x) if x.knob.cgroup.path.as_str() == path => Some(x.to.clone()),
        _ => None,
    })
}

fn ids(list: &str) -> CpuSet {
    CpuSet::parse_list(list).unwrap()
}

/// This machine's shape: 2 CPUs, one core each, and a probe client and server (two threads
/// of one process).
fn two_cpus_with_probe() -> Host {
    let mut host = host(Shape::server(1, 1, 2, 1).build());
    add_threads(&mut host, 4242, &["client", "server"], "/");
    add_user(&mut host, 300, "sshd", "/");
    host
}

#[test]
fn a_pool_of_one_core_on_two_cpus_gives_both_threads_cpu_1_and_keeps_cpu_0() {
    let host = two_cpus_with_probe();
    let one_each = plan(&host, &PlanRequest::new(Target::Pid(4242)), &Ledger::new());
    assert!(
        one_each
            .unwrap_err()
            .to_string()
            .contains("asks for 2 exclusive cores"),
        "a CPU per thread does not fit: only one core can be exclusive"
    );
    let mut request = pooled(Target::Pid(4242), 1);
    request.rt = Some(10);
    let plan = planned(&host, &request);
    let pool_path = "/nearnative-pid-4242-pool";
    assert_eq!(
        plan.pool,
        Some(Pool {
            cores: 1,
            cpus: ids("1"),
            tids: vec![4242, 4243],
            cgroup: Some(pool_path.into()),
        })
    );
    let allocation = &plan.allocation;
    assert_eq!(allocation.exclusive_cpus, ids("1"));
    assert_eq!(allocation.housekeeping, ids("0"));
    assert_eq!(allocation.pool_cpus(), Some(ids("1")));
    assert_eq!(
        created(&plan),
        ["/nearnative-pid-4242-hk", pool_path],
        "one cgroup for the pool, none per thread"
    );
    assert_eq!(cpuset_cpus(&plan, pool_path), Some(ids("1")));
    assert_eq!(
        cpuset_cpus(&plan, "/nearnative-pid-4242-hk"),
        Some(ids("0"))
    );
    assert!(plan.changes.iter().any(|c| matches!(&c.step,
        Step::CpusetCpuExclusive(x) if x.knob.cgroup.path.as_str() == pool_path && x.to)));
    let moved = moves(&plan);
    let pinned = pins(&plan);
    let cases = [
        ("the client shares the pool", 4242, 4242, pool_path, "1"),
        ("the server shares the pool", 4242, 4243, pool_path, "1"),
        (
            "sshd stays on housekeeping",
            300,
            300,
            "/nearnative-pid-4242-hk",
            "0",
        ),
    ];
    for (what, pid, tid, cgroup, cpus) in cases {
        assert!(
            moved.contains(&(pid, tid, cgroup.into())),
            "{what}: {moved:?}"
        );
        assert!(
            pinned.contains(&(pid, tid, ids(cpus))),
            "{what}: {pinned:?}"
        );
        assert!(
            pinned_right_before_move(&plan, tid),
            "{what}: affinity right before the move"
        );
    }
    let kinds = kinds(&plan);
    assert!(
        cgroups_before_moves(&plan),
        "cgroups exist first: {kinds:?}"
    );
    let last_move = kinds.iter().rposition(|k| *k == "TaskCgroup").unwrap();
    let fifo: Vec<(u32, usize)> = plan
        .changes
        .iter()
        .enumerate()
        .filter_map(|(at, c)| match &c.step {
            Step::SchedPolicy(x) => Some((x.knob.tid, at)),
            _ => None,
        })
        .collect();
    assert_eq!(fifo.iter().map(|f| f.0).collect::<Vec<_>>(), [4242, 4243]);
    assert!(
        fifo.iter().all(|&(_, at)| at > last_move),
        "--rt after the moves"
    );
}

/// 1 node, 4 two-thread cores: core c is CPUs c and c+4.
fn smt_host() -> Host {
    let mut host = host(Shape::server(1, 1, 4, 2).build());
    add_threads(&mut host, 6000, &["a", "b", "c", "d"], "/");
    host.power.cpus = host
        .topology
        .online
        .iter()
        .map(|cpu| CpuPower {
            cpu,
            resume_latency: Some(ResumeLatency::NoLimit),
            ..Default::default()
        })
        .collect();
    host
}

#[test]
fn a_pool_at_high_keeps_the_siblings_idle_and_at_high_ht_runs_on_them() {
    let host = smt_host();
    let cases = [
        ("high: one CPU of each core", Level::High, "1-2", "5-6"),
        (
            "high-ht: both CPUs of each core",
            Level::HighHt,
            "1-2,5-6",
            "",
        ),
    ];
    for (what, level, pool, idle) in cases {
        let mut request = pooled(Target::Pid(6000), 2);
        request.level = level;
        let plan = planned(&host, &request);
        let allocation = &plan.allocation;
        assert_eq!(
            allocation.exclusive_cpus,
            ids("1-2,5-6"),
            "{what}: two whole cores"
        );
        assert_eq!(allocation.reserved_idle, ids(idle), "{what}: idle siblings");
        assert_eq!(
            plan.pool.as_ref().map(|p| p.cpus.clone()),
            Some(ids(pool)),
            "{what}"
        );
        let path = "/nearnative-pid-6000-pool";
        assert_eq!(
            cpuset_cpus(&plan, path),
            Some(ids(pool)),
            "{what}: the pool cgroup"
        );
        for tid in 6000..6004 {
            assert!(
                pins(&plan).contains(&(6000, tid, ids(pool))),
                "{what}: thread {tid} may run on the whole pool"
            );
        }
        assert_eq!(
            pm_qos_cpus(&plan).into_iter().collect::<CpuSet>(),
            ids(pool),
            "{what}: PM QoS on the CPUs the threads run on"
        );
    }
}

#[test]
fn a_pool_larger_than_the_threads_or_of_no_cores_is_refused_in_one_line() {
    let mut host = host(Shape::server(1, 1, 8, 1).build());
    add_threads(&mut host, 42, &["main", "worker"], "/");
    let cases = [
        (
            "more cores than threads",
            3,
            "--cores 3 but pid:42 has 2 threads to place; a pool of more cores than threads \
             leaves a core no thread can use",
        ),
        (
            "no cores",
            0,
            "--cores 0 for pid:42: a pool needs at least one core",
        ),
    ];
    for (what, cores, message) in cases {
        let err = plan(&host, &pooled(Target::Pid(42), cores), &Ledger::new())
            .expect_err(what)
            .to_string();
        assert_eq!(err, message, "{what}");
    }
    let mut one_thread = pooled(Target::Pid(42), 2);
    one_thread.threads = Some(vec![43]);
    let err = plan(&host, &one_thread, &Ledger::new()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("--cores 2 but pid:42 has 1 thread to place"),
        "counts the threads --threads picks: {err}"
    );
}

#[test]
fn a_pool_round_trips_through_the_ledger_and_no_one_else_gets_its_cpus() {
    let mut host = host(Shape::server(1, 1, 4, 1).build());
    add_threads(&mut host, 42, &["a", "b", "c"], "/");
    add_threads(&mut host, 50, &["x"], "/");
    add_threads(&mut host, 60, &["y"], "/");
    let request = pooled(Target::Pid(42), 2);
    let first = planned(&host, &request);
    let mut ledger = Ledger::new();
    ledger.record(first.allocation.clone());
    let json = serde_json::to_string(&ledger).unwrap();
    let ledger: Ledger = serde_json::from_str(&json).unwrap();
    ledger
        .validate(&host.topology)
        .expect("a pool is a valid ledger entry");
    assert_eq!(ledger.get(&"pid:42".into()), Some(&first.allocation));
    let again = plan(&host, &request, &ledger).unwrap();
    assert_eq!(
        again.allocation.slots, first.allocation.slots,
        "the same pool back"
    );
    let other = plan(&host, &PlanRequest::new(Target::Pid(50)), &ledger).unwrap();
    assert!(other
        .allocation
        .held()
        .is_disjoint(&first.allocation.held()));
    assert!(
        pins(&other).iter().all(|p| p.0 != 42) && moves(&other).iter().all(|m| m.0 != 42),
        "the pool's threads are another workload's: never moved"
    );
    let mut full = ledger.clone();
    full.record(other.allocation.clone());
    let err = plan(&host, &PlanRequest::new(Target::Pid(60)), &full).unwrap_err();
    assert!(err.to_string().contains("0 are free"), "{err}");
    let mut edited = ledger.clone();
    let mut allocation = edited.release(&"pid:42".into()).unwrap();
    allocation.request.cores = Some(3);
    edited.record(allocation);
    assert_eq!(
        edited.validate(&host.topology),
        Err(LedgerError::PoolSize {
            workload: "pid:42".into(),
            cores: 3,
            spanned: 2,
        })
    );
}

#[test]
fn pool_plans_are_deterministic_and_plans_without_one_keep_their_json() {
    let host = smt_host();
    let request = pooled(Target::Pid(6000), 2);
    let first = planned(&host, &request);
    let second = planned(&host, &request);
    let json = serde_json::to_string(&first).unwrap();
    assert_eq!(json, serde_json::to_string(&second).unwrap());
    let back: Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, first);
    assert!(json.contains("\"pool\":{\"cores\":2"), "{json}");
    let mut one_each = PlanRequest::new(Target::Pid(6000));
    one_each.threads = Some(vec![6000, 6001]);
    let one_each = planned(&host, &one_each);
    let json = serde_json::to_string(&one_each).unwrap();
    assert!(!json.contains("\"pool\""), "no pool key without --cores");
}

#[test]
fn requests_saved_before_pools_existed_still_load() {
    let mut plan_request = serde_json::to_value(PlanRequest::new(Target::Pid(7))).unwrap();
    let mut allocation_request =
        serde_json::to_value(AllocationRequest::new("pid:7", 2, Level::High)).unwrap();
    for value in [&mut plan_request, &mut allocation_request] {
        assert!(value.as_object_mut().unwrap().remove("cores").is_some());
    }
    let plan_request: PlanRequest = serde_json::from_value(plan_request).unwrap();
    let allocation_request: AllocationRequest = serde_json::from_value(allocation_request).unwrap();
    assert_eq!(plan_request.cores, None);
    assert_eq!(allocation_request.cores, None);
}

#[test]
fn without_cpusets_the_pool_is_the_threads_affinity() {
    let mut host = two_cpus_with_probe();
    without_cpusets(&mut host);
    let plan = planned(&host, &pooled(Target::Pid(4242), 1));
    assert_eq!(plan.pool.as_ref().and_then(|p| p.cgroup.clone()), None);
    let pinned = pins(&plan);
    for tid in [4242, 4243] {
        assert!(pinned.contains(&(4242, tid, ids("1"))), "{tid}: {pinned:?}");
    }
    assert!(pinned.contains(&(300, 300, ids("0"))));
    assert!(moves(&plan).is_empty());
}

#[test]
fn a_container_with_more_threads_than_cores_shares_its_pool() {
    let mut host = host(Shape::server(1, 1, 4, 1).build());
    let all = host.topology.online.clone();
    add_cpuset(&mut host, "/app", &all);
    add_threads(&mut host, 700, &["web", "web-io"], "/app");
    add_threads(&mut host, 800, &["db", "db-wal", "db-bg"], "/app");
    let plan = planned(&host, &pooled(Target::Cgroup("/app".into()), 2));
    let pool = plan.pool.clone().unwrap();
    assert_eq!(pool.cpus, ids("1-2"));
    assert_eq!(pool.tids, [700, 701, 800, 801, 802]);
    let moved = moves(&plan);
    let pool_cgroup = format!("/nearnative-{}-pool", plan.id);
    for (pid, tid) in [(700, 700), (700, 701), (800, 800), (800, 801), (800, 802)] {
        assert!(pins(&plan).contains(&(pid, tid, ids("1-2"))), "{tid}");
        assert!(
            moved.contains(&(pid, tid, pool_cgroup.clone())),
            "{tid}: {moved:?}"
        );
    }
    assert_eq!(
        cpuset_cpus(&plan, "/app"),
        None,
        "the container's own cpuset keeps the pool, which its threads are pinned to inside it"
    );
    assert!(
        !kinds(&plan).contains(&"CpusetCpuExclusive"),
        "the kernel refuses an exclusive pool beside /app, which overlaps it"
    );
}

#[test]
fn a_vm_pool_pins_every_vcpu_to_the_pool_in_the_advice() {
    let mut host = host(Shape::server(1, 1, 4, 1).build());
    add_vm(&mut host, "web1", 4000, 3, "/");
    let plan = planned(&host, &pooled(Target::Vm("web1".into()), 2));
    let text: Vec<&str> = plan.advisories.iter().map(|a| a.text.as_str()).collect();
    for vcpu in 0..3 {
        let pin = format!("<vcpupin vcpu='{vcpu}' cpuset='1-2'/>");
        assert!(text.iter().any(|t| t.contains(&pin)), "{pin} in {text:#?}");
    }
    host.workloads[0].kind = nearnative_host::workloads::VmmKind::CloudHypervisor;
    let plan = planned(&host, &pooled(Target::Vm("web1".into()), 2));
    assert!(plan
        .advisories
        .iter()
        .any(|a| a.text == "--cpus boot=3,affinity=[0@[1,2],1@[1,2],2@[1,2]]"));
}

#[test]
fn snapshot_pools_are_whole_cores_off_cpu0_and_start_from_the_host() {
    for name in SNAPSHOTS {
        for level in [Level::High, Level::HighHt] {
            let what = format!("{name} at {level}");
            let mut host = snapshot_host(name, true);
            add_threads(&mut host, 9000, &["a", "b", "c"], "/");
            let mut request = pooled(Target::Pid(9000), 2);
            request.level = level;
            // The 8-node AMD has two cores per node, one of them the node's housekeeping.
            request.spill = NumaSpill::Nearest;
            let plan = planned(&host, &request);
            let allocation = &plan.allocation;
            let mut ledger = Ledger::new();
            ledger.record(allocation.clone());
            ledger
                .validate(&host.topology)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            if let Some(cpu0) = host.topology.cpu(0).filter(|c| c.online) {
                assert!(allocation.held().is_disjoint(&cpu0.siblings), "{what}");
            }
            let pool = plan.pool.as_ref().expect("a pool");
            if level == Level::HighHt {
                assert_eq!(pool.cpus, allocation.exclusive_cpus, "{what}: every CPU");
            }
            for tid in 9000..9003 {
                assert!(
                    pins(&plan).contains(&(9000, tid, pool.cpus.clone())),
                    "{what}"
                );
            }
            check_priors(name, &shared(name), &host, &plan);
        }
    }
}
