//! Hand-built hosts for the planner's tests: a synthetic topology, a cgroup v1 cpuset root,
//! and processes, VMs, IRQs and NICs added in code.

use std::path::PathBuf;

use nearnative_host::irq::Irq;
use nearnative_host::isolation::{CgroupMode, Cgroups, Cpuset};
use nearnative_host::nic::{Nic, NicIrq, NicKind};
use nearnative_host::tasks::{Process, ProcessCgroup, SchedPolicy, Task, TaskKind};
use nearnative_host::topology::Topology;
use nearnative_host::workloads::{Vcpu, VcpuSource, VmThread, VmmKind, Workload};
use nearnative_host::{CpuSet, Host};
use nearnative_knob::Step;
use nearnative_plan::Plan;
use nearnative_testkit::hosts::{v1_cpuset, v1_host};

/// A host of `topology` with a v1 cpuset root holding every CPU, and nothing running.
pub fn host(topology: Topology) -> Host {
    let nodes = topology.numa_nodes.iter().map(|n| n.id).collect();
    let root = v1_cpuset("/", &topology.online, nodes, true);
    v1_host(topology, vec![root])
}

/// Takes the cpuset hierarchy away: cgroup v2 without the cpuset controller.
pub fn without_cpusets(host: &mut Host) {
    host.isolation.cgroups = Cgroups {
        mode: CgroupMode::Unified,
        unified_mount: Some(PathBuf::from("/sys/fs/cgroup")),
        cpuset_version: None,
        cpuset_mount: None,
        cpusets: Vec::new(),
        truncated: false,
    };
}

pub fn add_cpuset(host: &mut Host, path: &str, cpus: &CpuSet) {
    let cpuset = v1_cpuset(path, cpus, CpuSet::from_ids([0]), false);
    host.isolation.cgroups.cpusets.push(cpuset);
}

pub fn task(tid: u32, comm: &str, kind: TaskKind, affinity: &CpuSet) -> Task {
    Task {
        tid,
        comm: comm.into(),
        state: 'S',
        kind,
        affinity: affinity.clone(),
        policy: SchedPolicy::Other,
        rt_priority: 0,
        nice: 0,
        last_cpu: affinity.first().unwrap_or(0),
        start_time: 1000 + u64::from(tid),
        affinity_fixed: false,
        ppid: 1,
        cgroup: None,
    }
}

/// Adds a process in cpuset `cgroup` (and the same unified path) with `threads`.
pub fn add_process(host: &mut Host, pid: u32, cgroup: &str, threads: Vec<Task>) {
    let comm = threads.first().map_or("x".to_owned(), |t| t.comm.clone());
    host.tasks.processes.push(Process {
        pid,
        comm,
        cgroup: Some(ProcessCgroup {
            cpuset_v1: Some(cgroup.into()),
            unified: Some(cgroup.into()),
        }),
        threads,
    });
    host.tasks.processes.sort_by_key(|p| p.pid);
}

/// A user process with one thread, allowed on every online CPU.
pub fn add_user(host: &mut Host, pid: u32, comm: &str, cgroup: &str) {
    let online = host.topology.online.clone();
    add_process(
        host,
        pid,
        cgroup,
        vec![task(pid, comm, TaskKind::User, &online)],
    );
}

/// A user process whose threads (tids `pid`, `pid + 1`, ...) are named `comms`, allowed on
/// every online CPU.
pub fn add_threads(host: &mut Host, pid: u32, comms: &[&str], cgroup: &str) {
    let online = host.topology.online.clone();
    let threads = (pid..)
        .zip(comms)
        .map(|(tid, comm)| task(tid, comm, TaskKind::User, &online))
        .collect();
    add_process(host, pid, cgroup, threads);
}

/// A kernel thread process (kernel threads are their own processes).
pub fn add_kernel(host: &mut Host, pid: u32, comm: &str, kind: TaskKind, fixed: bool) {
    let affinity = match kind {
        TaskKind::KernelPerCpu => CpuSet::from_ids([1]),
        _ => host.topology.online.clone(),
    };
    let mut thread = task(pid, comm, kind, &affinity);
    thread.affinity_fixed = fixed;
    add_process(host, pid, "/", vec![thread]);
}

/// A QEMU VM `name` as process `pid` with `vcpus` vCPU threads (tids pid+1..), one iothread
/// and a worker thread, in cpuset `cgroup`.
pub fn add_vm(host: &mut Host, name: &str, pid: u32, vcpus: u32, cgroup: &str) {
    let online = host.topology.online.clone();
    let mut threads = vec![task(pid, "qemu-system-x86", TaskKind::User, &online)];
    threads.extend((0..vcpus).map(|i| {
        task(
            pid + 1 + i,
            &format!("CPU {i}/KVM"),
            TaskKind::User,
            &online,
        )
    }));
    threads.push(task(
        pid + 1 + vcpus,
        "IO iothread1",
        TaskKind::User,
        &online,
    ));
    threads.push(task(pid + 2 + vcpus, "worker", TaskKind::User, &online));
    let vm_thread = |t: &Task| VmThread::from(t);
    let workload = Workload {
        kind: VmmKind::Qemu,
        name: name.into(),
        pid,
        vcpus: threads[1..=vcpus as usize]
            .iter()
            .enumerate()
            .map(|(i, t)| Vcpu {
                index: i as u32,
                thread: vm_thread(t),
            })
            .collect(),
        vcpu_source: Some(VcpuSource::ThreadNames),
        emulator: Some(vm_thread(&threads[0])),
        io_threads: vec![nearnative_host::workloads::IoThread {
            id: "iothread1".into(),
            thread: vm_thread(&threads[vcpus as usize + 1]),
        }],
        vhost_threads: Vec::new(),
        other_threads: vec![vm_thread(&threads[vcpus as usize + 2])],
        qmp_socket: None,
    };
    add_process(host, pid, cgroup, threads);
    host.workloads.push(workload);
}

pub fn add_irq(host: &mut Host, number: u32, action: &str, affinity: &CpuSet) {
    host.irqs.lines.push(Irq {
        number,
        actions: vec![action.into()],
        affinity: Some(affinity.clone()),
        ..Irq::default()
    });
}

/// A NIC with the given IRQs; `default_route` marks it as carrying the IPv4 default route.
pub fn add_nic(host: &mut Host, name: &str, irqs: &[u32], default_route: bool) {
    host.nics.interfaces.push(Nic {
        name: name.into(),
        kind: NicKind::Physical,
        driver: Some("virtio_net".into()),
        bus_device: None,
        numa_node: None,
        rx_queues: Vec::new(),
        tx_queues: Vec::new(),
        irqs: irqs
            .iter()
            .map(|&irq| NicIrq {
                irq,
                name: None,
                queue: None,
            })
            .collect(),
        sriov: None,
        default_route: match default_route {
            true => vec![nearnative_host::nic::IpFamily::Ipv4],
            false => Vec::new(),
        },
        coalescing: None,
        offloads: None,
    });
}

/// The kinds of the plan's steps, in order.
pub fn kinds(plan: &Plan) -> Vec<&'static str> {
    plan.changes.iter().map(|c| c.step.kind()).collect()
}

/// The index of the first step matching `pick`.
pub fn position(plan: &Plan, pick: impl Fn(&Step) -> bool) -> Option<usize> {
    plan.changes.iter().position(|c| pick(&c.step))
}

/// (pid, tid) of each task_cgroup step with its destination.
pub fn moves(plan: &Plan) -> Vec<(u32, u32, String)> {
    plan.changes
        .iter()
        .filter_map(|c| match &c.step {
            Step::TaskCgroup(change) => {
                Some((change.knob.pid, change.knob.tid, change.to.to_string()))
            }
            _ => None,
        })
        .collect()
}

/// (pid, tid) → target CPUs of each thread_affinity step.
pub fn pins(plan: &Plan) -> Vec<(u32, u32, CpuSet)> {
    plan.changes
        .iter()
        .filter_map(|c| match &c.step {
            Step::ThreadAffinity(change) => {
                Some((change.knob.pid, change.knob.tid, change.to.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Whether thread `tid`'s affinity step comes right before its cgroup move, so revert puts it
/// back in its old cgroup before restoring its exact prior affinity.
pub fn pinned_right_before_move(plan: &Plan, tid: u32) -> bool {
    let pin = position(
        plan,
        |s| matches!(s, Step::ThreadAffinity(c) if c.knob.tid == tid),
    );
    let mv = position(
        plan,
        |s| matches!(s, Step::TaskCgroup(c) if c.knob.tid == tid),
    );
    pin.is_some() && pin.map(|p| p + 1) == mv
}

/// Whether every cgroup the plan sets up is ready before the first thread moves.
pub fn cgroups_before_moves(plan: &Plan) -> bool {
    let kinds = kinds(plan);
    let first_move = kinds.iter().position(|k| *k == "TaskCgroup");
    let last_setup = kinds
        .iter()
        .rposition(|k| k.starts_with("Cgroup") || k.starts_with("Cpuset"));
    matches!((last_setup, first_move), (Some(setup), Some(moved)) if setup < moved)
}

/// The CPUs whose PM QoS resume latency the plan changes, in step order.
pub fn pm_qos_cpus(plan: &Plan) -> Vec<u32> {
    plan.changes
        .iter()
        .filter_map(|c| match &c.step {
            Step::PmQosResumeLatency(x) => Some(x.knob.cpu),
            _ => None,
        })
        .collect()
}

/// Where the hand-built hosts mount cgroup v2.
pub const V2_MOUNT: &str = "/sys/fs/cgroup";

/// Gives `host` a cgroup v2 hierarchy whose cpuset controller the root hands down: only the
/// root cgroup so far (add more with [`add_cpuset_v2`]).
pub fn with_v2_cpusets(host: &mut Host) {
    let online = host.topology.online.clone();
    host.isolation.cgroups = Cgroups {
        mode: CgroupMode::Unified,
        unified_mount: Some(PathBuf::from(V2_MOUNT)),
        cpuset_version: Some(2),
        cpuset_mount: Some(PathBuf::from(V2_MOUNT)),
        cpusets: vec![Cpuset {
            path: "/".into(),
            cpus: None,
            mems: None,
            effective_cpus: Some(online),
            cpu_exclusive: None,
            sched_load_balance: None,
            partition: None,
        }],
        truncated: false,
    };
}

/// A v2 cgroup with cpuset files: `cpus` as written (`None`: empty, inheriting its parent's),
/// every online CPU effective, and `partition` as the kernel shows it.
pub fn add_cpuset_v2(host: &mut Host, path: &str, cpus: Option<&CpuSet>, partition: &str) {
    let effective = cpus
        .cloned()
        .unwrap_or_else(|| host.topology.online.clone());
    host.isolation.cgroups.cpusets.push(Cpuset {
        path: path.into(),
        cpus: Some(cpus.cloned().unwrap_or_default()),
        mems: Some(CpuSet::new()),
        effective_cpus: Some(effective),
        cpu_exclusive: None,
        sched_load_balance: None,
        partition: partition.parse().ok(),
    });
}
