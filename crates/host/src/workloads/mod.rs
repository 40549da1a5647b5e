//! The running VMs: QEMU, Cloud Hypervisor and Firecracker processes, each with its vCPU
//! threads (vCPU index → thread id → current affinity), its emulator (main) thread, its I/O
//! threads, its `vhost-<pid>` threads and its other helper threads.
//!
//! VMs are found in the task table, by process name or program name, so a VM costs one extra
//! read (its command line) beyond the task table. vCPU threads are found by name; a QEMU
//! started without `debug-threads=on` names no thread, and is asked over QMP instead (live
//! host only).

mod cloud_hypervisor;
mod cmdline;
mod findings;
mod firecracker;
mod qemu;
mod qemu_opts;
mod qmp;
mod read;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::tasks::{SchedPolicy, Task};
use crate::{CpuSet, ReadError, Root};

pub use findings::findings;
pub use qmp::{query_threads, QmpError, QmpThreads};
pub use read::{check_qmp_sockets, read_workloads, WorkloadsError, QMP_TIMEOUT};

/// Which virtual machine monitor runs the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmmKind {
    Qemu,
    CloudHypervisor,
    Firecracker,
}

impl VmmKind {
    /// Recognises a VMM by its main thread's name or its program's file name.
    pub fn detect(comm: &str, args: &[String]) -> Option<Self> {
        if qemu::matches(comm, args) {
            Some(VmmKind::Qemu)
        } else if cloud_hypervisor::matches(comm, args) {
            Some(VmmKind::CloudHypervisor)
        } else if firecracker::matches(comm, args) {
            Some(VmmKind::Firecracker)
        } else {
            None
        }
    }

    /// The VM's name from the command line, if it gives one.
    pub fn vm_name(self, args: &[String]) -> Option<String> {
        match self {
            VmmKind::Qemu => qemu::name(args),
            VmmKind::CloudHypervisor => cloud_hypervisor::name(args),
            VmmKind::Firecracker => firecracker::name(args),
        }
    }

    /// The vCPUs the VM boots with, as its command line declares them; `None` when the
    /// command line does not say (Firecracker reads them from its API or a config file).
    pub fn boot_vcpus(self, args: &[String]) -> Option<u32> {
        match self {
            VmmKind::Qemu => qemu::boot_vcpus(args),
            VmmKind::CloudHypervisor => cloud_hypervisor::boot_vcpus(args),
            VmmKind::Firecracker => None,
        }
    }

    /// The vCPU index a thread's name gives, if it names a vCPU.
    pub fn vcpu_index(self, comm: &str) -> Option<u32> {
        match self {
            VmmKind::Qemu => qemu::vcpu_index(comm),
            VmmKind::CloudHypervisor => cloud_hypervisor::vcpu_index(comm),
            VmmKind::Firecracker => firecracker::vcpu_index(comm),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            VmmKind::Qemu => "qemu",
            VmmKind::CloudHypervisor => "cloud-hypervisor",
            VmmKind::Firecracker => "firecracker",
        }
    }
}

/// How many vCPUs `vm` boots with, from its command line: a daemon waits for that many vCPU
/// threads before it plans the VM. `None` when the command line does not say.
pub fn read_boot_vcpus(root: &Root, vm: &Workload) -> Result<Option<u32>, ReadError> {
    let args = cmdline::read_args(root, vm.pid)?;
    Ok(vm.kind.boot_vcpus(&args))
}

/// One thread of a VM, with where it may and did run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmThread {
    pub tid: u32,
    pub comm: String,
    pub affinity: CpuSet,
    pub policy: SchedPolicy,
    pub rt_priority: u32,
    pub last_cpu: u32,
}

impl From<&Task> for VmThread {
    fn from(task: &Task) -> Self {
        VmThread {
            tid: task.tid,
            comm: task.comm.clone(),
            affinity: task.affinity.clone(),
            policy: task.policy,
            rt_priority: task.rt_priority,
            last_cpu: task.last_cpu,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vcpu {
    pub index: u32,
    #[serde(flatten)]
    pub thread: VmThread,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoThread {
    /// The iothread's id (`-object iothread,id=ID`), or `mon_iothread` for the monitor's.
    pub id: String,
    #[serde(flatten)]
    pub thread: VmThread,
}

/// How the vCPU threads were told apart from the other threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VcpuSource {
    ThreadNames,
    Qmp,
}

/// One running VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    pub kind: VmmKind,
    /// From the command line (QEMU `-name`, Firecracker `--id`, Cloud Hypervisor's API
    /// socket), else `<kind>-<pid>`.
    pub name: String,
    pub pid: u32,
    /// In index order. Empty when the vCPU threads could not be told apart (`vcpu_source`
    /// is then `None`, and the reason is among the unknowns).
    pub vcpus: Vec<Vcpu>,
    pub vcpu_source: Option<VcpuSource>,
    /// The main thread (tid == pid): QEMU's emulator thread, the VMM thread of the others.
    pub emulator: Option<VmThread>,
    pub io_threads: Vec<IoThread>,
    /// `vhost-<pid>` threads: kernel threads, or (Linux 6.4+) threads of the VM's process.
    pub vhost_threads: Vec<VmThread>,
    /// Every other thread of the process: QEMU's call_rcu and worker pool, Firecracker's
    /// fc_api, Cloud Hypervisor's device threads, ...
    pub other_threads: Vec<VmThread>,
    /// The QMP socket that mapped the vCPUs, when QMP was used.
    pub qmp_socket: Option<PathBuf>,
}
