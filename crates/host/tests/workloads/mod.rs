//! VM discovery on synthetic /proc trees with fake QEMU, Cloud Hypervisor and Firecracker
//! processes, and on real QEMU processes (qemu_live).

mod qemu_live;

use std::fs;
use std::path::PathBuf;

use nearnative_host::tasks::read_tasks;
use nearnative_host::workloads::{
    check_qmp_sockets, findings, read_workloads, VcpuSource, VmmKind, Workload, WorkloadsError,
};
use nearnative_host::{CpuSet, Root, Severity, Unknown};

use crate::fake_proc::{FakeProc, ThreadSpec, PF_NO_SETAFFINITY};

const QEMU_DEBUG_THREADS: &[&str] = &[
    "/usr/bin/qemu-system-x86_64",
    "-enable-kvm",
    "-name",
    "guest=web1,debug-threads=on",
    "-smp",
    "2",
    "-object",
    "iothread,id=disk0",
];

fn fake_vms() -> FakeProc {
    let host = FakeProc::new();
    host.kernel_thread(2, &ThreadSpec::kernel("kthreadd", "0-3", 0))
        .kernel_thread(
            20,
            &ThreadSpec::kernel("ksoftirqd/2", "2", PF_NO_SETAFFINITY),
        )
        // QEMU with debug-threads: every thread is named.
        .process(1000, QEMU_DEBUG_THREADS, "/machine/web1")
        .thread(1000, 1000, &ThreadSpec::user("qemu-system-x86", "0-1"))
        .thread(1000, 1001, &ThreadSpec::user("call_rcu", "0-1"))
        .thread(1000, 1002, &ThreadSpec::user("IO disk0", "0-1"))
        .thread(1000, 1003, &ThreadSpec::user("CPU 1/KVM", "3").fifo(10))
        .thread(1000, 1004, &ThreadSpec::user("CPU 0/KVM", "2").fifo(10))
        .thread(1000, 1005, &ThreadSpec::user("worker", "0-3"))
        // Linux 6.4+ runs vhost workers as threads of the VM's own process.
        .thread(1000, 1006, &ThreadSpec::user("vhost-1000", "0-3"))
        .kernel_thread(1010, &ThreadSpec::kernel("vhost-1000", "0-3", 0))
        // The parent a daemonizing QEMU leaves behind until it is reaped: not a VM.
        .process(999, &[], "/")
        .thread(
            999,
            999,
            &ThreadSpec::user("qemu-system-x86", "0-3").zombie(),
        )
        // QEMU without debug-threads, renamed with -name process=: only its program says QEMU.
        .process(
            2000,
            &[
                "qemu-system-x86_64",
                "-name",
                "db,process=dbvm",
                "-qmp",
                "unix:/run/db.qmp,server=on,wait=off",
            ],
            "/",
        )
        .thread(2000, 2000, &ThreadSpec::user("dbvm", "0-3"))
        .thread(2000, 2001, &ThreadSpec::user("dbvm", "0-3"))
        .thread(2000, 2002, &ThreadSpec::user("dbvm", "0-3"))
        // Cloud Hypervisor and Firecracker.
        .process(
            3000,
            &[
                "cloud-hypervisor",
                "--api-socket",
                "path=/run/ch.sock",
                "--cpus",
                "boot=2",
            ],
            "/",
        )
        .thread(3000, 3000, &ThreadSpec::user("cloud-hyperviso", "0-3"))
        .thread(3000, 3001, &ThreadSpec::user("vmm", "0-3"))
        .thread(3000, 3002, &ThreadSpec::user("vcpu0", "1"))
        .thread(3000, 3003, &ThreadSpec::user("vcpu1", "0-3"))
        .process(
            4000,
            &[
                "/usr/bin/firecracker",
                "--id",
                "fc1",
                "--api-sock",
                "/run/fc.sock",
            ],
            "/",
        )
        .thread(4000, 4000, &ThreadSpec::user("firecracker", "0-3"))
        .thread(4000, 4001, &ThreadSpec::user("fc_api", "0-3"))
        .thread(4000, 4002, &ThreadSpec::user("fc_vcpu 0", "1"))
        // Not VMs: a tool whose name starts like QEMU's helpers, and a shell.
        .process(5000, &["qemu-img", "convert", "a", "b"], "/")
        .thread(5000, 5000, &ThreadSpec::user("qemu-img", "0-3"))
        .process(5100, &["bash"], "/")
        .thread(5100, 5100, &ThreadSpec::user("bash", "0-3"));
    host
}

/// What one read found, with the unknowns of both the task table and the VMs.
#[derive(Debug)]
struct Found {
    workloads: Vec<Workload>,
    unknowns: Vec<Unknown>,
}

fn read_with_sockets(root: &Root, sockets: &[PathBuf]) -> Found {
    let mut unknowns = Vec::new();
    let tasks = read_tasks(root, &mut unknowns);
    let workloads = read_workloads(root, &tasks, sockets, &mut unknowns);
    Found {
        workloads,
        unknowns,
    }
}

fn read(host: &FakeProc) -> Found {
    read_with_sockets(&host.root(), &[])
}

fn vm(found: &Found, pid: u32) -> &Workload {
    found
        .workloads
        .iter()
        .find(|w| w.pid == pid)
        .unwrap_or_else(|| panic!("no VM with pid {pid} in {found:#?}"))
}

fn vcpu_map(workload: &Workload) -> Vec<(u32, u32, Vec<u32>)> {
    workload
        .vcpus
        .iter()
        .map(|v| (v.index, v.thread.tid, v.thread.affinity.iter().collect()))
        .collect()
}

#[test]
fn every_vmm_kind_is_found_and_nothing_else() {
    let workloads = read(&fake_vms());
    let found: Vec<(u32, VmmKind, &str)> = workloads
        .workloads
        .iter()
        .map(|w| (w.pid, w.kind, w.name.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (1000, VmmKind::Qemu, "web1"),
            (2000, VmmKind::Qemu, "db"),
            (3000, VmmKind::CloudHypervisor, "/run/ch.sock"),
            (4000, VmmKind::Firecracker, "fc1"),
        ]
    );
}

#[test]
fn qemu_threads_are_sorted_by_role() {
    let workloads = read(&fake_vms());
    let web1 = vm(&workloads, 1000);
    assert_eq!(
        vcpu_map(web1),
        [(0, 1004, vec![2]), (1, 1003, vec![3])],
        "vCPUs in index order, not thread order"
    );
    assert_eq!(web1.vcpu_source, Some(VcpuSource::ThreadNames));
    assert_eq!(web1.emulator.as_ref().map(|t| t.tid), Some(1000));
    let io: Vec<(&str, u32)> = web1
        .io_threads
        .iter()
        .map(|t| (t.id.as_str(), t.thread.tid))
        .collect();
    assert_eq!(io, [("disk0", 1002)]);
    let vhost: Vec<u32> = web1.vhost_threads.iter().map(|t| t.tid).collect();
    assert_eq!(
        vhost,
        [1006, 1010],
        "in-process and kernel-thread vhost workers"
    );
    let others: Vec<&str> = web1.other_threads.iter().map(|t| t.comm.as_str()).collect();
    assert_eq!(others, ["call_rcu", "worker"]);
}

#[test]
fn cloud_hypervisor_and_firecracker_vcpus_come_from_thread_names() {
    let workloads = read(&fake_vms());
    assert_eq!(
        vcpu_map(vm(&workloads, 3000)),
        [(0, 3002, vec![1]), (1, 3003, vec![0, 1, 2, 3])]
    );
    let fc = vm(&workloads, 4000);
    assert_eq!(vcpu_map(fc), [(0, 4002, vec![1])]);
    let others: Vec<&str> = fc.other_threads.iter().map(|t| t.comm.as_str()).collect();
    assert_eq!(others, ["fc_api"]);
}

#[test]
fn unnamed_qemu_vcpus_on_a_captured_tree_are_unknown_not_guessed() {
    let host = fake_vms();
    let workloads = read(&host);
    let db = vm(&workloads, 2000);
    assert!(db.vcpus.is_empty() && db.vcpu_source.is_none());
    assert_eq!(db.other_threads.len(), 2);
    let unknown = workloads
        .unknowns
        .iter()
        .find(|u| u.object == "vCPU threads of VM db")
        .expect("an unknown for db's vCPUs");
    assert_eq!(unknown.path, host.path("/proc/2000/task"));
    assert!(unknown.reason.contains("live host"), "{}", unknown.reason);
}

#[test]
fn qmp_sockets_are_refused_on_a_captured_tree() {
    let host = fake_vms();
    let socket = PathBuf::from("/run/db.qmp");
    let err = check_qmp_sockets(&host.root(), std::slice::from_ref(&socket)).unwrap_err();
    assert!(matches!(err, WorkloadsError::QmpNotLive { .. }));
    assert!(
        err.to_string().starts_with("QMP socket /run/db.qmp: "),
        "{err}"
    );
    let found = read_with_sockets(&host.root(), std::slice::from_ref(&socket));
    assert!(found.unknowns.iter().any(|u| u.path == socket), "{found:?}");
    assert_eq!(found.workloads.len(), 4, "the VMs are still read");
}

#[test]
fn broken_files_of_a_vm_become_unknowns_with_their_path() {
    let host = fake_vms();
    fs::remove_file(host.path("/proc/1000/cmdline")).unwrap();
    fs::write(host.path("/proc/4000/task/4002/stat"), "4002 (fc_vcpu 0) R").unwrap();
    fs::write(host.path("/proc/3000/task/3002/status"), "").unwrap();
    let workloads = read(&host);
    let paths: Vec<PathBuf> = workloads.unknowns.iter().map(|u| u.path.clone()).collect();
    assert!(
        paths.contains(&host.path("/proc/1000/cmdline")),
        "{paths:?}"
    );
    let web1 = vm(&workloads, 1000);
    assert_eq!(web1.name, "qemu-1000", "no command line, so named by pid");
    assert_eq!(web1.vcpus.len(), 2, "threads still found by name");
    for broken in ["/proc/4000/task/4002/stat", "/proc/3000/task/3002/status"] {
        assert!(
            workloads
                .unknowns
                .iter()
                .any(|u| u.path == host.path(broken)),
            "{broken}"
        );
    }
    assert!(vm(&workloads, 4000).vcpus.is_empty());
}

#[test]
fn findings_name_the_vm_and_the_vcpu() {
    let workloads = read(&fake_vms());
    let found = findings(&workloads.workloads);
    let has = |object: &str, evidence: &str, severity: Severity| {
        found
            .iter()
            .any(|f| f.object == object && f.evidence.contains(evidence) && f.severity == severity)
    };
    assert!(
        has(
            "vCPU 1 of VM /run/ch.sock",
            "may run on 4 CPUs (0-3)",
            Severity::Warning
        ),
        "{found:#?}"
    );
    assert!(
        has(
            "CPU 1",
            "vCPU 0 of VM /run/ch.sock, vCPU 0 of VM fc1",
            Severity::Critical
        ),
        "{found:#?}"
    );
    assert!(
        has(
            "helper threads of VM web1",
            "worker (1005)",
            Severity::Warning
        ),
        "{found:#?}"
    );
    assert!(
        has(
            "vhost threads of VM web1",
            "vhost-1000 (1010)",
            Severity::Warning
        ),
        "{found:#?}"
    );
    assert!(
        !found.iter().any(|f| f.object == "VM web1"),
        "web1's vCPUs are FIFO"
    );
    assert!(has(
        "VM fc1",
        "vCPU 0 runs under SCHED_OTHER",
        Severity::Info
    ));
}

#[test]
fn json_has_kind_name_pid_and_vcpus_with_affinity_lists() {
    let workloads = read(&fake_vms());
    let json = serde_json::to_value(&workloads.workloads).unwrap();
    let web1 = &json[0];
    assert_eq!(web1["kind"], "qemu");
    assert_eq!(web1["name"], "web1");
    assert_eq!(web1["pid"], 1000);
    assert_eq!(web1["vcpus"][0]["index"], 0);
    assert_eq!(web1["vcpus"][0]["tid"], 1004);
    assert_eq!(web1["vcpus"][0]["affinity"], serde_json::json!([2]));
    assert_eq!(json[2]["kind"], "cloud_hypervisor");
    let back: Vec<Workload> = serde_json::from_value(json).unwrap();
    assert_eq!(back, workloads.workloads);
    assert_eq!(back[0].vcpus[1].thread.affinity, CpuSet::from_ids([3]));
}

#[test]
fn a_given_qmp_socket_that_fails_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.sock");
    let given = std::slice::from_ref(&missing);
    let err = check_qmp_sockets(&Root::default(), given).unwrap_err();
    assert!(matches!(err, WorkloadsError::Qmp { .. }), "{err}");
    assert_eq!(err.to_string(), format!("QMP socket {}", missing.display()));
    let cause = std::error::Error::source(&err).map(|c| c.to_string());
    assert_eq!(cause.as_deref(), Some("cannot connect"));
    let found = read_with_sockets(&Root::default(), given);
    let unknown = found.unknowns.iter().find(|u| u.path == missing);
    assert!(
        unknown.is_some_and(|u| u.reason.contains("cannot connect: No such file")),
        "{found:?}"
    );
}
