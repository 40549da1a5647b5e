//! Real QEMU processes on this machine: a paused microvm with two vCPUs, started by the test
//! and always killed when it ends. Guest code never runs (`-S`); the VM is only discovered.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nearnative_host::workloads::{query_threads, VcpuSource, VmmKind, Workload};
use nearnative_host::{CpuSet, Root};
use nix::sched::{sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

use nearnative_testkit::{PausedQemu, QemuOptions};

/// A two-vCPU QEMU with a QMP socket, in a directory of its own that lives as long as it.
struct RunningQemu {
    qemu: PausedQemu,
    _dir: tempfile::TempDir,
}

impl RunningQemu {
    /// Starts QEMU; fails the test in one line when it is not installed.
    #[track_caller]
    fn start(name: &str, debug_threads: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let options = QemuOptions {
            vcpus: 2,
            debug_threads,
            qmp: true,
        };
        let qemu = RunningQemu {
            qemu: PausedQemu::start_with(dir.path(), name, options),
            _dir: dir,
        };
        qemu.wait_for_threads();
        qemu
    }

    fn socket(&self) -> PathBuf {
        self.qemu
            .qmp_socket()
            .map(PathBuf::from)
            .unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.qemu.pid()
    }

    /// QEMU creates its vCPU threads before it daemonizes, but be patient on a loaded host.
    fn wait_for_threads(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while thread_count(self.pid()) < 4 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

fn thread_name(tid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{tid}/comm"))
        .unwrap()
        .trim()
        .to_owned()
}

fn affinity_of(tid: u32) -> CpuSet {
    let set = sched_getaffinity(Pid::from_raw(tid as i32)).unwrap();
    (0..nix::sched::CpuSet::count() as u32)
        .filter(|&cpu| set.is_set(cpu as usize).unwrap_or(false))
        .collect()
}

fn pin(tid: u32, cpu: u32) {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu as usize).unwrap();
    sched_setaffinity(Pid::from_raw(tid as i32), &set).unwrap();
}

fn inspect(qemu: &RunningQemu, sockets: &[PathBuf]) -> Workload {
    let found = super::read_with_sockets(&Root::default(), sockets);
    let vm = found
        .workloads
        .iter()
        .find(|w| w.pid == qemu.pid())
        .cloned();
    vm.unwrap_or_else(|| {
        panic!(
            "QEMU {} not found; unknowns {:?}",
            qemu.pid(),
            found.unknowns
        )
    })
}

/// The highest CPU this process may use, so pinning stays inside any cpuset CI runs us in.
fn last_allowed_cpu() -> u32 {
    affinity_of(std::process::id()).iter().last().unwrap()
}

#[test]
#[ignore = "needs QEMU (qemu-system-x86) and root for /dev/kvm"]
fn qemu_vcpus_found_by_thread_names_needs_qemu() {
    let qemu = RunningQemu::start("test1", true);
    let before = inspect(&qemu, &[]);
    let vcpu1_tid = before.vcpus[1].thread.tid;
    let cpu = last_allowed_cpu();
    pin(vcpu1_tid, cpu);
    let vm = inspect(&qemu, &[]);

    assert_eq!((vm.kind, vm.name.as_str()), (VmmKind::Qemu, "test1"));
    assert_eq!(vm.vcpu_source, Some(VcpuSource::ThreadNames));
    let indexes: Vec<u32> = vm.vcpus.iter().map(|v| v.index).collect();
    assert_eq!(indexes, [0, 1]);
    for vcpu in &vm.vcpus {
        assert_eq!(
            thread_name(vcpu.thread.tid),
            format!("CPU {}/KVM", vcpu.index)
        );
        assert_eq!(vcpu.thread.affinity, affinity_of(vcpu.thread.tid));
    }
    assert_eq!(vm.vcpus[1].thread.affinity, CpuSet::from_ids([cpu]));
    assert_eq!(vm.emulator.as_ref().map(|t| t.tid), Some(qemu.pid()));
    assert!(
        vm.io_threads.iter().any(|t| t.id == "mon_iothread"),
        "{vm:#?}"
    );
    assert!(vm.qmp_socket.is_none(), "named threads need no QMP");
}

#[test]
#[ignore = "needs QEMU (qemu-system-x86) and root for /dev/kvm"]
fn qemu_vcpus_found_over_qmp_without_debug_threads_needs_qemu() {
    let qemu = RunningQemu::start("test2", false);
    let straight_from_qmp = query_threads(&qemu.socket(), Duration::from_secs(5)).unwrap();
    let (_, vcpu0_tid) = straight_from_qmp.vcpus[0];
    assert_eq!(
        thread_name(vcpu0_tid),
        "qemu-system-x86",
        "threads are unnamed"
    );
    let cpu = last_allowed_cpu();
    pin(vcpu0_tid, cpu);

    let from_command_line = inspect(&qemu, &[]);
    let given = inspect(&qemu, &[qemu.socket()]);
    for vm in [&from_command_line, &given] {
        assert_eq!(vm.name, "test2");
        assert_eq!(vm.vcpu_source, Some(VcpuSource::Qmp));
        assert_eq!(vm.qmp_socket.as_deref(), Some(qemu.socket().as_path()));
        let mapping: Vec<(u32, u32)> = vm.vcpus.iter().map(|v| (v.index, v.thread.tid)).collect();
        let mut expected = straight_from_qmp.vcpus.clone();
        expected.sort();
        assert_eq!(mapping, expected);
        assert_eq!(vm.vcpus[0].thread.affinity, CpuSet::from_ids([cpu]));
        assert!(vm.other_threads.iter().all(|t| t.tid != vcpu0_tid));
    }
}
