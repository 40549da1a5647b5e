//! The planner's rules on hand-built hosts: step kinds and order, scope filtering, kernel
//! threads, the default-route NIC, no-op knobs, the fallback without cpusets, refusals.

use nearnative_host::knobs::{KsmRun, NumaBalancing, ThpDefrag, ThpEnabled};
use nearnative_host::nic::{Coalescing, Ethtool, Offloads};
use nearnative_host::power::ResumeLatency;
use nearnative_host::tasks::TaskKind;
use nearnative_host::{CpuSet, Host, Mechanism};
use nearnative_knob::Step;
use nearnative_plan::{
    plan, IoPlacement, Ledger, Note, Plan, PlanError, PlanRequest, ProtectedIrq, Target, Topic,
};
use nearnative_testkit::Shape;

use crate::plan_support::*;

/// 1 node, 4 cores, no SMT: CPU 0's core is housekeeping, so a VM's vCPUs take CPUs 1...
fn four_cpus() -> Host {
    host(Shape::server(1, 1, 4, 1).build())
}

/// A change to a hand-built host.
type Edit = fn(&mut Host);

fn vm_request(name: &str) -> PlanRequest {
    PlanRequest::new(Target::Vm(name.into()))
}

fn planned(host: &Host, request: &PlanRequest) -> Plan {
    plan(host, request, &Ledger::new()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_same_inputs_give_the_same_plan() {
    let mut host = four_cpus();
    add_vm(&mut host, "web1", 4000, 2, "/");
    add_user(&mut host, 300, "sshd", "/");
    let all = host.topology.online.clone();
    add_irq(&mut host, 40, "eth1-rx", &all);
    let request = vm_request("web1");
    let first = planned(&host, &request);
    let second = planned(&host, &request);
    assert_eq!(first, second);
    assert_eq!(
        serde_json::to_string(&first).unwrap(),
        serde_json::to_string(&second).unwrap()
    );
    let round_trip: Plan = serde_json::from_str(&serde_json::to_string(&first).unwrap()).unwrap();
    assert_eq!(round_trip, first);
}

#[test]
fn a_vm_gets_cgroups_before_its_threads_move_and_affinity_before_each_move() {
    let mut host = four_cpus();
    add_vm(&mut host, "web1", 4000, 2, "/");
    let plan = planned(&host, &vm_request("web1"));
    assert_eq!(plan.allocation.thread_cpus(), CpuSet::from_ids([1, 2]));
    let kinds = kinds(&plan);
    assert!(
        cgroups_before_moves(&plan),
        "cgroups exist first: {kinds:?}"
    );
    assert_eq!(
        &kinds[..3],
        ["CgroupDir", "CpusetCpus", "CpusetMems"],
        "housekeeping cgroup first"
    );
    for (pid, tid, to) in moves(&plan) {
        assert!(
            pinned_right_before_move(&plan, tid),
            "thread {pid}/{tid}: affinity right before the move to {to}"
        );
    }
    let expected = [
        (4001, "/nearnative-vm-web1-t0", CpuSet::from_ids([1])),
        (4002, "/nearnative-vm-web1-t1", CpuSet::from_ids([2])),
        (4000, "/nearnative-vm-web1-hk", CpuSet::from_ids([0, 3])),
        (4003, "/nearnative-vm-web1-hk", CpuSet::from_ids([0, 3])),
        (4004, "/nearnative-vm-web1-hk", CpuSet::from_ids([0, 3])),
    ];
    let moved = moves(&plan);
    let pinned = pins(&plan);
    for (tid, cgroup, cpus) in expected {
        assert!(
            moved.contains(&(4000, tid, cgroup.to_owned())),
            "thread {tid} to {cgroup}: {moved:?}"
        );
        assert!(
            pinned.contains(&(4000, tid, cpus.clone())),
            "thread {tid} pinned to {cpus}"
        );
    }
    let exclusive: Vec<String> = plan
        .changes
        .iter()
        .filter_map(|c| match &c.step {
            Step::CpusetCpuExclusive(x) => Some(x.knob.cgroup.path.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        exclusive,
        ["/nearnative-vm-web1-t0", "/nearnative-vm-web1-t1"]
    );
    assert!(plan
        .changes
        .iter()
        .all(|c| !c.reason.is_empty() && !c.reason.contains('\n')));
}

#[test]
fn dedicated_io_gets_its_own_cgroup_on_the_io_core() {
    let mut host = four_cpus();
    add_vm(&mut host, "web1", 4000, 1, "/");
    let mut request = vm_request("web1");
    request.io = IoPlacement::Dedicated;
    let plan = planned(&host, &request);
    let io_cpus = plan.allocation.io_cpus.clone();
    assert_eq!(io_cpus.len(), 1);
    assert!(moves(&plan).contains(&(4000, 4002, "/nearnative-vm-web1-io".into())));
    assert!(pins(&plan).contains(&(4000, 4002, io_cpus)));
}

#[test]
fn only_tasks_in_the_scope_move_and_overlapping_children_shrink_deepest_first() {
    let mut host = four_cpus();
    let all = host.topology.online.clone();
    add_cpuset(&mut host, "/vms", &all);
    add_cpuset(&mut host, "/vms/other", &CpuSet::from_ids([1, 2, 3]));
    add_cpuset(&mut host, "/vms/other/deep", &CpuSet::from_ids([1]));
    add_cpuset(&mut host, "/system", &all);
    add_vm(&mut host, "web1", 4000, 1, "/vms");
    add_user(&mut host, 500, "in-scope", "/vms");
    add_user(&mut host, 501, "in-child", "/vms/other");
    add_user(&mut host, 502, "outside", "/system");
    let mut request = vm_request("web1");
    request.scope = Some("/vms".into());
    let plan = planned(&host, &request);
    let moved: Vec<u32> = moves(&plan).iter().map(|m| m.0).collect();
    let cases = [
        ("the target moves", 4000, true),
        ("a task directly in the scope moves", 500, true),
        ("a task in a child of the scope stays", 501, false),
        ("a task outside the scope stays", 502, false),
    ];
    for (what, pid, expected) in cases {
        assert_eq!(moved.contains(&pid), expected, "{what}");
    }
    assert!(
        pins(&plan).iter().all(|p| p.0 != 502),
        "nothing outside is pinned"
    );
    let shrunk: Vec<(String, CpuSet)> = plan
        .changes
        .iter()
        .filter_map(|c| match &c.step {
            Step::CpusetCpus(x) if !x.knob.cgroup.path.as_str().contains("nearnative") => {
                Some((x.knob.cgroup.path.to_string(), x.to.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        shrunk,
        [
            ("/vms/other/deep".to_owned(), CpuSet::from_ids([2, 3])),
            ("/vms/other".to_owned(), CpuSet::from_ids([2, 3])),
        ],
        "deepest first; an emptied cpuset gets the housekeeping CPUs its parent keeps"
    );
    assert!(plan.changes.iter().all(|c| match &c.step {
        Step::CgroupDir(d) => d
            .knob
            .cgroup
            .path
            .as_str()
            .starts_with("/vms/nearnative-vm-web1-"),
        _ => true,
    }));
    assert!(
        !kinds(&plan).contains(&"CpusetCpuExclusive"),
        "the kernel refuses an exclusive child under the non-exclusive /vms"
    );
    assert!(plan
        .notes
        .iter()
        .any(|n| matches!(n, Note::NotCpuExclusive { scope } if scope == "/vms")));
    assert!(
        plan.changes
            .iter()
            .all(|c| !matches!(c.step, Step::ThreadAffinity(ref a) if a.knob.pid < 100)),
        "kernel threads are left alone in a narrower scope"
    );
}

#[test]
fn pid_1_and_kernel_threads_never_change_cgroup() {
    let mut host = four_cpus();
    add_user(&mut host, 1, "systemd", "/");
    add_kernel(&mut host, 2, "kthreadd", TaskKind::KernelUnbound, false);
    add_kernel(&mut host, 10, "kworker/u8:0", TaskKind::KernelUnbound, true);
    add_kernel(&mut host, 11, "ksoftirqd/1", TaskKind::KernelPerCpu, true);
    add_vm(&mut host, "web1", 4000, 1, "/");
    let plan = planned(&host, &vm_request("web1"));
    let moved: Vec<u32> = moves(&plan).iter().map(|m| m.0).collect();
    let pinned: Vec<u32> = pins(&plan).iter().map(|p| p.0).collect();
    let cases = [
        (
            "PID 1 is not moved but its affinity leaves the exclusive CPUs",
            1,
            false,
            true,
        ),
        ("an unbound kernel thread gets an affinity", 2, false, true),
        (
            "a PF_NO_SETAFFINITY kernel thread is left alone",
            10,
            false,
            false,
        ),
        ("a per-CPU kernel thread is left alone", 11, false, false),
    ];
    for (what, pid, moves_cgroup, pinned_expected) in cases {
        assert_eq!(moved.contains(&pid), moves_cgroup, "{what}");
        assert_eq!(pinned.contains(&pid), pinned_expected, "{what}");
    }
}

#[test]
fn default_route_nic_irqs_are_untouched_unless_named() {
    let mut host = four_cpus();
    add_vm(&mut host, "web1", 4000, 1, "/");
    let all = host.topology.online.clone();
    add_irq(&mut host, 37, "virtio2-input.0", &all);
    add_irq(&mut host, 41, "virtio3-rx", &all);
    add_irq(&mut host, 50, "timer", &CpuSet::from_ids([0]));
    add_nic(&mut host, "eth0", &[37], true);
    add_nic(&mut host, "eth1", &[41], false);
    let irqs = |plan: &Plan| -> Vec<u32> {
        plan.changes
            .iter()
            .filter_map(|c| match &c.step {
                Step::IrqAffinity(x) => Some(x.knob.irq),
                _ => None,
            })
            .collect()
    };
    let plan = planned(&host, &vm_request("web1"));
    assert_eq!(
        irqs(&plan),
        [41],
        "eth0 carries the default route; IRQ 50 is already off"
    );
    assert!(plan
        .notes
        .iter()
        .any(|n| matches!(n, Note::DefaultRouteIrq { irq: 37, nic, .. } if nic == "eth0")));
    assert_eq!(
        plan.protected_irqs,
        Some(vec![ProtectedIrq {
            irq: 37,
            nic: "eth0".into()
        }]),
        "recorded for verify"
    );
    let mut named = vm_request("web1");
    named.nic = Some("eth0".into());
    assert_eq!(
        irqs(&planned(&host, &named)),
        [37, 41],
        "--nic eth0 allows it"
    );
}

/// The lockup detectors leave the exclusive CPUs and go nowhere else: a watchdog that
/// watched only them ends up watching no CPU, not the housekeeping ones.
#[test]
fn the_watchdog_leaves_the_exclusive_cpus_with_no_fallback() {
    let mut host = four_cpus();
    add_vm(&mut host, "web1", 4000, 1, "/");
    let watchdog = |plan: &Plan| -> Vec<(CpuSet, CpuSet, String)> {
        plan.changes
            .iter()
            .filter_map(|c| match &c.step {
                Step::WatchdogCpumask(w) => Some((w.from.clone(), w.to.clone(), c.reason.clone())),
                _ => None,
            })
            .collect()
    };
    let cases = [
        ([0, 1, 2, 3].as_slice(), CpuSet::from_ids([0, 2, 3])),
        (&[1], CpuSet::new()),
    ];
    for (watched, expected) in cases {
        host.knobs.watchdog_cpumask = Some(CpuSet::from_ids(watched.iter().copied()));
        let plan = planned(&host, &vm_request("web1"));
        assert_eq!(plan.allocation.thread_cpus(), CpuSet::from_ids([1]));
        let steps = watchdog(&plan);
        assert_eq!(steps.len(), 1, "watching {watched:?}: {steps:?}");
        let (from, to, reason) = &steps[0];
        assert_eq!(from, &CpuSet::from_ids(watched.iter().copied()));
        assert_eq!(to, &expected, "watching {watched:?}");
        assert!(reason.contains("watchdog_cpumask"), "{reason}");
    }
    host.knobs.watchdog_cpumask = None;
    assert!(watchdog(&planned(&host, &vm_request("web1"))).is_empty());
}

#[test]
fn knobs_already_at_their_target_give_no_step() {
    let mut host = four_cpus();
    add_vm(&mut host, "web1", 4000, 1, "/");
    add_nic(&mut host, "eth1", &[], false);
    let tuned = Coalescing {
        rx_usecs: 0,
        rx_frames: 1,
        tx_usecs: 0,
        tx_frames: 1,
        adaptive_rx: false,
        adaptive_tx: false,
    };
    let cases: [(&str, Edit, &str); 9] = [
        (
            "THP defrag",
            |h| h.knobs.thp_defrag = Some(ThpDefrag::Never),
            "ThpDefrag",
        ),
        (
            "THP enabled",
            |h| h.knobs.thp_enabled = Some(ThpEnabled::Madvise),
            "ThpEnabled",
        ),
        ("KSM", |h| h.knobs.ksm = Some(KsmRun::Stopped), "KsmRun"),
        (
            "NUMA balancing",
            |h| h.knobs.numa_balancing = Some(NumaBalancing::Disabled),
            "NumaBalancing",
        ),
        (
            "timer migration",
            |h| h.knobs.timer_migration = Some(false),
            "TimerMigration",
        ),
        (
            "halt polling",
            |h| h.knobs.kvm_halt_poll_ns = Some(400_000),
            "KvmHaltPollNs",
        ),
        ("busy poll", |h| h.knobs.busy_poll_us = Some(50), "BusyPoll"),
        (
            "workqueue mask",
            |h| h.knobs.workqueue_cpumask = Some(CpuSet::from_ids([0, 3])),
            "WorkqueueCpumask",
        ),
        (
            "watchdog mask",
            |h| h.knobs.watchdog_cpumask = Some(CpuSet::from_ids([0, 3])),
            "WatchdogCpumask",
        ),
    ];
    let untuned: [(&str, Edit); 9] = [
        ("THP defrag", |h| {
            h.knobs.thp_defrag = Some(ThpDefrag::Madvise)
        }),
        ("THP enabled", |h| {
            h.knobs.thp_enabled = Some(ThpEnabled::Always)
        }),
        ("KSM", |h| h.knobs.ksm = Some(KsmRun::Running)),
        ("NUMA balancing", |h| {
            h.knobs.numa_balancing = Some(NumaBalancing::Normal)
        }),
        ("timer migration", |h| h.knobs.timer_migration = Some(true)),
        ("halt polling", |h| h.knobs.kvm_halt_poll_ns = Some(10_000)),
        ("busy poll", |h| h.knobs.busy_poll_us = Some(0)),
        ("workqueue mask", |h| {
            h.knobs.workqueue_cpumask = Some(CpuSet::from_ids([0, 1, 2, 3]))
        }),
        ("watchdog mask", |h| {
            h.knobs.watchdog_cpumask = Some(CpuSet::from_ids([0, 1, 2, 3]))
        }),
    ];
    let mut request = vm_request("web1");
    request.nic = Some("eth1".into());
    for ((what, tune, kind), (_, untune)) in cases.iter().zip(untuned.iter()) {
        let mut at_target = host.clone();
        tune(&mut at_target);
        assert!(
            !kinds(&planned(&at_target, &request)).contains(kind),
            "{what}: at target"
        );
        let mut off_target = host.clone();
        untune(&mut off_target);
        assert!(
            kinds(&planned(&off_target, &request)).contains(kind),
            "{what}: off target"
        );
    }
    let mut nic_host = host.clone();
    nic_host.nics.interfaces[0].coalescing = Some(Ethtool::Read(tuned));
    nic_host.nics.interfaces[0].offloads = Some(Ethtool::Read(Offloads {
        lro: Some(false),
        gro: Some(false),
        hw_gro: None,
    }));
    let nic_kinds = kinds(&planned(&nic_host, &request));
    assert!(!nic_kinds.contains(&"NicCoalesce") && !nic_kinds.contains(&"NicFeature"));
    nic_host.nics.interfaces[0].offloads = Some(Ethtool::Read(Offloads {
        lro: None,
        gro: Some(true),
        hw_gro: None,
    }));
    assert_eq!(
        kinds(&planned(&nic_host, &request))
            .iter()
            .filter(|k| **k == "NicFeature")
            .count(),
        1,
        "GRO on, LRO absent: one step"
    );
    let mut power = host.clone();
    power.power.cpus = (0..4)
        .map(|cpu| nearnative_host::power::CpuPower {
            cpu,
            resume_latency: Some(ResumeLatency::NoLimit),
            cpufreq_governor: "schedutil".parse().ok(),
            cpufreq_available_governors: ["schedutil", "performance"]
                .map(|g| g.parse().unwrap())
                .to_vec(),
            ..Default::default()
        })
        .collect();
    let plan = planned(&power, &request);
    let per_cpu: Vec<(&str, Mechanism)> = plan
        .changes
        .iter()
        .filter(|c| {
            matches!(
                c.step,
                Step::PmQosResumeLatency(_) | Step::CpufreqGovernor(_)
            )
        })
        .map(|c| (c.step.kind(), c.mechanism))
        .collect();
    assert_eq!(
        per_cpu,
        [
            ("PmQosResumeLatency", Mechanism::Bypass),
            ("CpufreqGovernor", Mechanism::Bypass)
        ],
        "only the exclusive CPU 1"
    );
}

#[test]
fn without_cpusets_thread_affinity_alone_fences_and_an_advisory_says_so() {
    let mut host = four_cpus();
    without_cpusets(&mut host);
    add_vm(&mut host, "web1", 4000, 1, "/");
    add_user(&mut host, 500, "sshd", "/");
    let plan = planned(&host, &vm_request("web1"));
    let kinds = kinds(&plan);
    assert!(kinds
        .iter()
        .all(|k| !k.starts_with("Cgroup") && !k.starts_with("Cpuset") && *k != "TaskCgroup"));
    let pinned = pins(&plan);
    assert!(pinned.contains(&(4000, 4001, CpuSet::from_ids([1]))));
    assert!(pinned.contains(&(500, 500, CpuSet::from_ids([0, 2, 3]))));
    assert!(plan.advisories.iter().any(|a| a
        .text
        .contains("threads created later by processes outside the plan are not fenced")));
}

/// What only the boot command line removes (the tick, RCU callbacks), and the vmstat fold
/// that no live knob keeps off a CPU, are named in advice.
#[test]
fn the_tick_rcu_callbacks_and_vmstat_are_advised_not_changed() {
    let mut host = four_cpus();
    add_vm(&mut host, "web1", 4000, 1, "/");
    let plan = planned(&host, &vm_request("web1"));
    let text = |topic: Topic| -> Vec<&str> {
        plan.advisories
            .iter()
            .filter(|a| a.topic == topic)
            .map(|a| a.text.as_str())
            .collect()
    };
    let cmdline = text(Topic::KernelCommandLine);
    assert!(
        cmdline
            .iter()
            .any(|t| t.contains("nohz_full=1") && t.contains("rcu_nocbs=1")),
        "{cmdline:?}"
    );
    let sysctl = text(Topic::Sysctl);
    assert!(
        sysctl
            .iter()
            .any(|t| t.contains("vmstat_update") && t.contains("on CPUs 1 ")),
        "{sysctl:?}"
    );
}

#[test]
fn refusals_name_the_reason() {
    let mut host = four_cpus();
    add_vm(&mut host, "web1", 4000, 1, "/system");
    let all = host.topology.online.clone();
    add_cpuset(&mut host, "/system", &all);
    add_cpuset(&mut host, "/vms", &all);
    let scoped = |scope: &str| {
        let mut request = vm_request("web1");
        request.scope = Some(scope.into());
        request
    };
    let mut too_many = four_cpus();
    add_vm(&mut too_many, "big", 4000, 4, "/");
    let cases: Vec<(&str, &Host, PlanRequest, &str)> = vec![
        (
            "unknown VM lists the VMs",
            &host,
            vm_request("nope"),
            "no VM named \"nope\" on this host (VMs: web1 (qemu, pid 4000))",
        ),
        (
            "unknown pid",
            &host,
            PlanRequest::new(Target::Pid(77)),
            "no process 77",
        ),
        (
            "missing scope",
            &host,
            scoped("/nope"),
            "scope cgroup /nope does not exist",
        ),
        (
            "target outside the scope",
            &host,
            scoped("/vms"),
            "outside the scope /vms",
        ),
        ("no housekeeping left", &too_many, vm_request("big"), "free"),
    ];
    for (what, host, request, message) in cases {
        let err = plan(host, &request, &Ledger::new())
            .expect_err(what)
            .to_string();
        assert!(err.contains(message), "{what}: {err}");
        assert!(!err.contains('\n'), "{what}: one line");
    }
    let mut vcpus_on_pid = PlanRequest::new(Target::Pid(4000));
    vcpus_on_pid.vcpus = Some(CpuSet::from_ids([0]));
    let err = plan(&host, &vcpus_on_pid, &Ledger::new())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "--vcpus applies only to vm: and vm-pid: targets, not pid:4000"
    );
    let mut rt = vm_request("web1");
    rt.rt = Some(100);
    assert!(matches!(
        plan(&host, &rt, &Ledger::new()),
        Err(PlanError::BadPriority { .. })
    ));
}

#[test]
fn a_zombie_process_is_refused_as_exited() {
    let mut host = four_cpus();
    add_threads(&mut host, 5000, &["worker"], "/");
    let zombie = host.tasks.processes.iter_mut().find(|p| p.pid == 5000);
    zombie.unwrap().threads[0].state = 'Z';
    let err = plan(&host, &PlanRequest::new(Target::Pid(5000)), &Ledger::new()).unwrap_err();
    assert_eq!(err, PlanError::ProcessExited { pid: 5000 });
    assert!(err.to_string().contains("process 5000 has exited"), "{err}");
    // Exited between the listing of /proc and the reading of its threads.
    add_process(&mut host, 5001, "/", Vec::new());
    let err = plan(&host, &PlanRequest::new(Target::Pid(5001)), &Ledger::new()).unwrap_err();
    assert_eq!(err, PlanError::ProcessExited { pid: 5001 });
}

#[test]
fn two_vms_sharing_a_name_are_refused_listing_both_pids() {
    let mut host = four_cpus();
    add_vm(&mut host, "web1", 4000, 1, "/");
    add_vm(&mut host, "web1", 4100, 1, "/");
    let err = plan(&host, &vm_request("web1"), &Ledger::new()).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, PlanError::AmbiguousVm { .. }), "{message}");
    assert!(
        message.contains("4000") && message.contains("4100"),
        "{message}"
    );
    let by_pid = plan(
        &host,
        &PlanRequest::new(Target::VmPid(4100)),
        &Ledger::new(),
    );
    assert!(by_pid.is_ok(), "{by_pid:?}");
}

#[test]
fn rt_priority_gives_fifo_steps_and_a_throttling_advisory() {
    let mut host = four_cpus();
    add_vm(&mut host, "web1", 4000, 2, "/");
    let mut request = vm_request("web1");
    request.rt = Some(10);
    let plan = planned(&host, &request);
    let fifo: Vec<u32> = plan
        .changes
        .iter()
        .filter_map(|c| match &c.step {
            Step::SchedPolicy(x) => Some(x.knob.tid),
            _ => None,
        })
        .collect();
    assert_eq!(fifo, [4001, 4002]);
    let last_move = kinds(&plan)
        .iter()
        .rposition(|k| *k == "TaskCgroup")
        .unwrap();
    assert!(position(&plan, |s| matches!(s, Step::SchedPolicy(_))).unwrap() > last_move);
    assert!(plan
        .advisories
        .iter()
        .any(|a| a.text.contains("sched_rt_runtime_us")));
    assert!(plan.advisories.iter().any(|a| a
        .text
        .contains("<vcpusched vcpus='0,1' scheduler='fifo' priority='10'/>")));
}

#[test]
fn advisories_give_text_to_paste() {
    let mut host = four_cpus();
    add_vm(&mut host, "web1", 4000, 2, "/");
    host.irqs.irqbalance.pids = vec![700];
    let plan = planned(&host, &vm_request("web1"));
    let text: Vec<&str> = plan.advisories.iter().map(|a| a.text.as_str()).collect();
    let expected = [
        "isolcpus=domain,managed_irq,1-2 nohz_full=1-2 rcu_nocbs=1-2 irqaffinity=0,3",
        "-overcommit cpu-pm=on,mem-lock=on",
        "<vcpupin vcpu='0' cpuset='1'/>",
        "<vcpupin vcpu='1' cpuset='2'/>",
        "<emulatorpin cpuset='0,3'/>",
        "<iothreadpin iothread='1' cpuset='0,3'/>",
        "<hint-dedicated state='on'/>",
        "<memoryBacking><locked/></memoryBacking>",
        "IRQBALANCE_BANNED_CPULIST=1-2",
        "ethtool -C eth0 rx-usecs 0 adaptive-rx off",
    ];
    for snippet in expected {
        assert!(
            text.iter().any(|t| t.contains(snippet)),
            "{snippet} in {text:#?}"
        );
    }
}

#[test]
fn the_ledger_keeps_other_workloads_cores() {
    let mut host = four_cpus();
    add_vm(&mut host, "a", 4000, 1, "/");
    add_vm(&mut host, "b", 5000, 1, "/");
    let first = planned(&host, &vm_request("a"));
    let mut ledger = Ledger::new();
    ledger.record(first.allocation.clone());
    let second = plan(&host, &vm_request("b"), &ledger).unwrap();
    assert!(second
        .allocation
        .held()
        .is_disjoint(&first.allocation.held()));
    assert!(
        second.advisories[0]
            .text
            .contains("isolcpus=domain,managed_irq,1-2"),
        "the cmdline covers both"
    );
}

#[test]
fn the_planner_source_reads_no_file_clock_or_environment() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for forbidden in [
            "std::fs",
            "std::time",
            "Instant",
            "SystemTime",
            "std::env",
            "std::net",
            "std::process",
            "rand::",
        ] {
            assert!(
                !text.contains(forbidden),
                "{}: uses {forbidden}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked > 10, "walked the planner's sources");
}

#[test]
fn cloud_hypervisor_and_sriov_advice() {
    let mut host = four_cpus();
    add_vm(&mut host, "ch1", 4000, 2, "/");
    host.workloads[0].kind = nearnative_host::workloads::VmmKind::CloudHypervisor;
    add_nic(&mut host, "ens1f0", &[], false);
    host.nics.interfaces[0].sriov = Some(nearnative_host::nic::Sriov {
        total_vfs: 8,
        enabled_vfs: 0,
    });
    let mut request = vm_request("ch1");
    request.nic = Some("ens1f0".into());
    let plan = planned(&host, &request);
    let topics: Vec<Topic> = plan.advisories.iter().map(|a| a.topic).collect();
    let text = |topic: Topic| {
        let advisory = plan.advisories.iter().find(|a| a.topic == topic);
        advisory.map_or("", |a| a.text.as_str()).to_owned()
    };
    assert_eq!(
        text(Topic::CloudHypervisorCommandLine),
        "--cpus boot=2,affinity=[0@[1],1@[2]]"
    );
    assert!(
        text(Topic::PassThrough).contains("ens1f0 offers SR-IOV (0 of 8 VFs enabled)"),
        "{topics:?}"
    );
    assert!(!topics.contains(&Topic::QemuCommandLine), "{topics:?}");
}

#[test]
fn pm_qos_goes_on_thread_cpus_and_not_on_their_idle_siblings() {
    let mut host = host(Shape::server(1, 1, 4, 2).build());
    add_vm(&mut host, "web1", 4000, 1, "/");
    host.power.cpus = host
        .topology
        .online
        .iter()
        .map(|cpu| nearnative_host::power::CpuPower {
            cpu,
            resume_latency: Some(ResumeLatency::NoLimit),
            ..Default::default()
        })
        .collect();
    let plan = planned(&host, &vm_request("web1"));
    let thread_cpu = plan.allocation.slots[0].cpu;
    assert_eq!(pm_qos_cpus(&plan), [thread_cpu]);
    assert_eq!(
        plan.allocation.reserved_idle.len(),
        1,
        "the sibling is held idle"
    );
    assert!(plan
        .notes
        .iter()
        .any(|n| matches!(n, Note::IdleSiblingsPmQos { .. })));
}

#[test]
fn a_narrow_scope_gets_cores_inside_it_with_its_own_housekeeping() {
    let mut host = host(Shape::server(1, 1, 8, 1).build());
    add_cpuset(&mut host, "/vms", &CpuSet::from_ids([4, 5, 6, 7]));
    add_vm(&mut host, "web1", 4000, 2, "/vms");
    let mut request = vm_request("web1");
    request.scope = Some("/vms".into());
    let scoped = planned(&host, &request);
    assert!(
        scoped
            .allocation
            .held()
            .is_subset(&CpuSet::from_ids([4, 5, 6, 7])),
        "inside the scope"
    );
    let hk: Vec<CpuSet> = scoped
        .changes
        .iter()
        .filter_map(|c| match &c.step {
            Step::CpusetCpus(x) if x.knob.cgroup.path.as_str().ends_with("-hk") => {
                Some(x.to.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(hk.len(), 1);
    assert!(
        !hk[0].is_empty() && hk[0].is_subset(&CpuSet::from_ids([4, 5, 6, 7])),
        "{hk:?}"
    );
    assert!(hk[0].is_disjoint(&scoped.allocation.held()));
    let mut crowded = host.clone();
    add_vm(&mut crowded, "big", 6000, 4, "/vms");
    let mut request = vm_request("big");
    request.scope = Some("/vms".into());
    let err = plan(&crowded, &request, &Ledger::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("asks for 4 exclusive cores"),
        "4 vCPUs do not fit the 4-CPU scope with its housekeeping: {err}"
    );
}
