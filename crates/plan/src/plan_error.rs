//! Why no plan could be made. Each message is one line naming the object and the reason.

use nearnative_host::CpuSet;

use crate::error::AdmissionError;
use crate::request::WorkloadKey;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("no VM named {name:?} on this host (VMs: {known})")]
    UnknownVm { name: String, known: String },
    #[error("no VM with process id {pid} on this host (VMs: {known})")]
    UnknownVmPid { pid: u32, known: String },
    #[error("no process {pid} on this host ({processes} processes; VMs: {vms})")]
    UnknownPid {
        pid: u32,
        processes: usize,
        vms: String,
    },
    #[error("process {pid} has exited (only a zombie or its last traces are left)")]
    ProcessExited { pid: u32 },
    #[error(
        "VM name {name:?} is ambiguous: VMs with pids {pids} share it; name one with vm-pid:PID"
    )]
    AmbiguousVm { name: String, pids: String },
    #[error("process {pid} has no thread {tid} (threads: {known})")]
    UnknownThread { pid: u32, tid: u32, known: String },
    #[error("process {pid} ({comm}) is a kernel thread; only user processes can be planned")]
    KernelThreadTarget { pid: u32, comm: String },
    #[error("VM {name} has no vCPU {index} (it has {count})")]
    UnknownVcpu {
        name: String,
        index: u32,
        count: usize,
    },
    #[error(
        "VM {name}: its vCPU threads could not be told apart (start it with \
         debug-threads=on, or pass its QMP socket to inspect)"
    )]
    NoVcpus { name: String },
    #[error("{option} applies only to {applies_to} targets, not {target}")]
    OptionNotForTarget {
        option: &'static str,
        applies_to: &'static str,
        target: String,
    },
    #[error("cgroup {path} holds no user thread to plan")]
    EmptyCgroup { path: String },
    #[error("scope cgroup {path} does not exist in the cpuset hierarchy at {mount}")]
    ScopeMissing { path: String, mount: String },
    #[error("--scope {path}: {reason}")]
    ScopeUnusable { path: String, reason: String },
    #[error(
        "thread {tid} ({comm}) of process {pid} is in cgroup {cgroup}, outside the scope \
         {scope}; widen --scope or move the workload first"
    )]
    OutsideScope {
        pid: u32,
        tid: u32,
        comm: String,
        cgroup: String,
        scope: String,
    },
    #[error("scope {scope} has CPUs {scope_cpus}, but the allocation needs {needed}")]
    AllocationOutsideScope {
        scope: String,
        scope_cpus: CpuSet,
        needed: CpuSet,
    },
    #[error("scope {scope} would keep no housekeeping CPU (its CPUs: {cpus})")]
    NoHousekeeping { scope: String, cpus: CpuSet },
    #[error("--nic {name}: no such interface (interfaces: {known})")]
    UnknownNic { name: String, known: String },
    #[error("--rt {priority}: a SCHED_FIFO priority is 1 to 99")]
    BadPriority { priority: u32 },
    #[error(transparent)]
    Admission(AdmissionError),
    #[error("{workload} no longer fits its allocation: {reason}; revert it and apply it afresh")]
    AllocationNoLongerFits {
        workload: WorkloadKey,
        reason: String,
    },
}
