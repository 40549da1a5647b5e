//! A libvirt domain under cgroup v1 cpusets, on hand-built hosts with libvirt's two layouts
//! (plain `machine/qemu-ID-NAME.libvirt-qemu`, and systemd's
//! `machine.slice/machine-qemu\x2dID\x2dNAME.scope/libvirt`): its threads stay in libvirt's
//! cgroups and are pinned through libvirt (emulator, the stray nx-lpage worker's move, vCPUs,
//! iothreads, in that order), no cgroup of ours is made for them, the other domain's cgroups
//! shrink deepest first while `/machine` and the domain's own keep every CPU, and the
//! kernel's cpuset rules hold applied and reverted.

use nearnative_host::libvirt::LibvirtChild;
use nearnative_host::tasks::{ProcessCgroup, Task, TaskKind};
use nearnative_host::workloads::{IoThread, Vcpu, VcpuSource, VmThread, VmmKind, Workload};
use nearnative_host::{CpuSet, Host};
use nearnative_knob::Step;
use nearnative_plan::{plan, IoPlacement, Ledger, Plan, PlanRequest, Target};
use nearnative_testkit::Shape;

use crate::kernel_rules;
use crate::plan_support::*;

const QEMU: u32 = 4000;
const OTHER_QEMU: u32 = 5000;
const BYSTANDER: u32 = 300;

/// Where libvirt puts domains: the plain layout and systemd's.
#[derive(Clone, Copy)]
enum Layout {
    Plain,
    Systemd,
}

impl Layout {
    fn partition(self) -> &'static str {
        match self {
            Layout::Plain => "/machine",
            Layout::Systemd => "/machine.slice",
        }
    }

    fn domain(self, id: u32, name: &str) -> String {
        match self {
            Layout::Plain => format!("/machine/qemu-{id}-{name}.libvirt-qemu"),
            Layout::Systemd => {
                format!("/machine.slice/machine-qemu\\x2d{id}\\x2d{name}.scope/libvirt")
            }
        }
    }
}

fn thread_in(tid: u32, comm: &str, cgroup: &str, online: &CpuSet) -> Task {
    let mut task = task(tid, comm, TaskKind::User, online);
    task.cgroup = Some(ProcessCgroup {
        cpuset_v1: Some(cgroup.to_owned()),
        unified: Some("/".to_owned()),
    });
    task
}

/// Domain `name` (ID `id`) as QEMU process `pid`: the main thread and the monitor's iothread
/// in `emulator`, `CPU n/KVM` in `vcpun`, `IO iothread1` in `iothread1`, and kernel 6.x's
/// `kvm-nx-lpage-re` in `vcpu0`.
fn add_domain(host: &mut Host, layout: Layout, id: u32, name: &str, pid: u32, vcpus: u32) {
    let online = host.topology.online.clone();
    let dir = layout.domain(id, name);
    let mut children = vec!["emulator".to_owned(), "iothread1".to_owned()];
    children.extend((0..vcpus).map(|i| format!("vcpu{i}")));
    add_cpuset(host, &dir, &online);
    for child in &children {
        add_cpuset(host, &format!("{dir}/{child}"), &online);
    }
    let emulator = format!("{dir}/emulator");
    let mut threads = vec![thread_in(pid, "qemu-system-x86", &emulator, &online)];
    threads.extend((0..vcpus).map(|i| {
        let comm = format!("CPU {i}/KVM");
        thread_in(pid + 1 + i, &comm, &format!("{dir}/vcpu{i}"), &online)
    }));
    let tid = pid + 1 + vcpus;
    threads.push(thread_in(
        tid,
        "IO iothread1",
        &format!("{dir}/iothread1"),
        &online,
    ));
    threads.push(thread_in(tid + 1, "IO mon_iothread", &emulator, &online));
    threads.push(thread_in(
        tid + 2,
        "kvm-nx-lpage-re",
        &format!("{dir}/vcpu0"),
        &online,
    ));
    let vm = |t: &Task| VmThread::from(t);
    let workload = Workload {
        kind: VmmKind::Qemu,
        name: name.into(),
        pid,
        vcpus: (0..vcpus)
            .map(|i| Vcpu {
                index: i,
                thread: vm(&threads[1 + i as usize]),
            })
            .collect(),
        vcpu_source: Some(VcpuSource::ThreadNames),
        emulator: Some(vm(&threads[0])),
        io_threads: vec![
            IoThread {
                id: "iothread1".into(),
                thread: vm(&threads[1 + vcpus as usize]),
            },
            IoThread {
                id: "mon_iothread".into(),
                thread: vm(&threads[2 + vcpus as usize]),
            },
        ],
        vhost_threads: Vec::new(),
        other_threads: vec![vm(&threads[3 + vcpus as usize])],
        qmp_socket: None,
    };
    add_process(host, pid, &emulator, threads);
    host.workloads.push(workload);
}

/// 1 node, 4 cores (CPU 0 housekeeping): domain nn1 (2 vCPUs) and domain other (1 vCPU),
/// and a bystander in the root cpuset.
fn libvirt_host(layout: Layout) -> Host {
    let mut host = host(Shape::server(1, 1, 4, 1).build());
    let all = host.topology.online.clone();
    add_cpuset(&mut host, layout.partition(), &all);
    if let Layout::Systemd = layout {
        for name in ["nn1", "other"] {
            let id = if name == "nn1" { 2 } else { 3 };
            let scope = layout.domain(id, name);
            let scope = scope.trim_end_matches("/libvirt");
            add_cpuset(&mut host, scope, &all);
        }
    }
    add_domain(&mut host, layout, 2, "nn1", QEMU, 2);
    add_domain(&mut host, layout, 3, "other", OTHER_QEMU, 1);
    add_user(&mut host, BYSTANDER, "bystander", "/");
    host
}

fn planned(host: &Host, request: &PlanRequest) -> Plan {
    let plan = plan(host, request, &Ledger::new()).unwrap_or_else(|e| panic!("{e}"));
    kernel_rules::check(host, &plan).unwrap_or_else(|e| panic!("{e}"));
    plan
}

/// (role, domain id, uri, target CPUs) of each libvirt_pin step, in order.
fn libvirt_pins(plan: &Plan) -> Vec<(LibvirtChild, u32, String, CpuSet)> {
    plan.changes
        .iter()
        .filter_map(|c| match &c.step {
            Step::LibvirtPin(p) => Some((
                p.knob.which,
                p.knob.domain_id,
                p.knob.uri.clone(),
                p.to.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn cpus_steps(plan: &Plan) -> Vec<String> {
    plan.changes
        .iter()
        .filter_map(|c| match &c.step {
            Step::CpusetCpus(x) => Some(x.knob.cgroup.path.to_string()),
            _ => None,
        })
        .collect()
}

fn pinned_through_libvirt(layout: Layout) {
    let host = libvirt_host(layout);
    let plan = planned(&host, &PlanRequest::new(Target::Vm("nn1".into())));
    let hk = plan.allocation.housekeeping.clone();
    let slot = |i: usize| CpuSet::from_ids([plan.allocation.slots[i].cpu]);
    let uri = "qemu:///system".to_owned();
    assert_eq!(
        libvirt_pins(&plan),
        [
            (LibvirtChild::Emulator, 2, uri.clone(), hk.clone()),
            (LibvirtChild::Vcpu(0), 2, uri.clone(), slot(0)),
            (LibvirtChild::Vcpu(1), 2, uri.clone(), slot(1)),
            (LibvirtChild::Iothread(1), 2, uri.clone(), hk.clone()),
        ]
    );
    let nx = QEMU + 5;
    let dir = layout.domain(2, "nn1");
    assert_eq!(
        moves(&plan)
            .into_iter()
            .filter(|m| m.0 == QEMU)
            .collect::<Vec<_>>(),
        [(QEMU, nx, format!("{dir}/emulator"))],
        "only the nx-lpage worker changes cgroup, to the emulator's"
    );
    let at = |pick: &dyn Fn(&Step) -> bool| position(&plan, pick).unwrap();
    let emulator_pin =
        at(&|s| matches!(s, Step::LibvirtPin(p) if p.knob.which == LibvirtChild::Emulator));
    assert_eq!(
        position(&plan, |s: &Step| matches!(
            s,
            Step::ThreadAffinity(a) if a.knob.tid == nx
        )),
        None,
        "the move alone gives the nx-lpage worker the emulator's CPUs"
    );
    let nx_move = at(&|s| matches!(s, Step::TaskCgroup(m) if m.knob.tid == nx));
    let vcpu_pin =
        at(&|s| matches!(s, Step::LibvirtPin(p) if p.knob.which == LibvirtChild::Vcpu(0)));
    assert!(emulator_pin < nx_move && nx_move < vcpu_pin);
    let ours: Vec<String> = plan
        .changes
        .iter()
        .filter_map(|c| match &c.step {
            Step::CgroupDir(d) => Some(d.knob.cgroup.path.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        ours,
        [format!("/nearnative-{}-hk", plan.id)],
        "only the housekeeping cgroup, for the bystander in the root cpuset"
    );
    let other = layout.domain(3, "other");
    let mut shrunk = vec![
        format!("{other}/emulator"),
        format!("{other}/iothread1"),
        format!("{other}/vcpu0"),
        other.clone(),
    ];
    if let Layout::Systemd = layout {
        shrunk.push(other.trim_end_matches("/libvirt").to_owned());
    }
    shrunk.push(format!("/nearnative-{}-hk", plan.id));
    assert_eq!(
        cpus_steps(&plan),
        shrunk,
        "the other domain shrinks deepest first; /machine and nn1's own cgroups keep"
    );
}

#[test]
fn a_libvirt_domain_is_pinned_through_libvirt_in_the_plain_layout() {
    pinned_through_libvirt(Layout::Plain);
}

#[test]
fn a_libvirt_domain_is_pinned_through_libvirt_in_the_systemd_layout() {
    pinned_through_libvirt(Layout::Systemd);
}

#[test]
fn dedicated_io_the_pool_and_the_uri_reach_the_pins() {
    let host = libvirt_host(Layout::Plain);
    let mut request = PlanRequest::new(Target::Vm("nn1".into()));
    request.io = IoPlacement::Dedicated;
    request.libvirt_uri = Some("qemu+ssh://h/system".into());
    let plan = planned(&host, &request);
    let pins = libvirt_pins(&plan);
    assert!(
        pins.iter().all(|p| p.2 == "qemu+ssh://h/system"),
        "{pins:?}"
    );
    let iothread = pins.iter().find(|p| p.0 == LibvirtChild::Iothread(1));
    assert_eq!(iothread.map(|p| &p.3), Some(&plan.allocation.io_cpus));

    let mut request = PlanRequest::new(Target::Vm("nn1".into()));
    request.cores = Some(2);
    let plan = planned(&host, &request);
    let pool = plan.allocation.pool_cpus().unwrap();
    let vcpus: Vec<CpuSet> = libvirt_pins(&plan)
        .into_iter()
        .filter(|p| matches!(p.0, LibvirtChild::Vcpu(_)))
        .map(|p| p.3)
        .collect();
    assert_eq!(vcpus, [pool.clone(), pool]);
}

#[test]
fn kvm_kernel_threads_of_the_scopes_vms_are_kept_off_the_exclusive_cpus() {
    let mut host = libvirt_host(Layout::Plain);
    add_kernel(
        &mut host,
        7001,
        &format!("kvm-pit/{QEMU}"),
        TaskKind::KernelUnbound,
        false,
    );
    add_kernel(
        &mut host,
        7002,
        &format!("kvm-pit/{OTHER_QEMU}"),
        TaskKind::KernelUnbound,
        false,
    );
    add_kernel(
        &mut host,
        7003,
        "kvm-pit/9999",
        TaskKind::KernelUnbound,
        false,
    );
    add_kernel(
        &mut host,
        7004,
        "kworker/u8:1",
        TaskKind::KernelUnbound,
        false,
    );
    let mut request = PlanRequest::new(Target::Vm("nn1".into()));
    request.scope = Some("/machine".into());
    let plan = planned(&host, &request);
    let pinned: Vec<(u32, CpuSet)> = pins(&plan)
        .into_iter()
        .filter(|p| p.0 > 7000)
        .map(|p| (p.1, p.2))
        .collect();
    let hk = plan.allocation.housekeeping.clone();
    assert_eq!(
        pinned,
        [(7001, hk.clone()), (7002, hk)],
        "the PIT threads of the scope's two VMs; not one of a pid outside it, nor other kthreads"
    );
}

#[test]
fn the_step_journals_as_libvirt_pin() {
    let host = libvirt_host(Layout::Plain);
    let plan = planned(&host, &PlanRequest::new(Target::Vm("nn1".into())));
    let step = plan
        .steps()
        .into_iter()
        .find(|s| matches!(s, Step::LibvirtPin(_)))
        .unwrap();
    let json = serde_json::to_value(&step).unwrap();
    assert_eq!(json["kind"], "libvirt_pin");
    assert_eq!(json["knob"]["domain"], "nn1");
    assert_eq!(json["knob"]["which"]["role"], "emulator");
    assert_eq!(
        json["knob"]["cgroup"]["path"],
        "/machine/qemu-2-nn1.libvirt-qemu/emulator"
    );
}
