//! What `nearnative plan` asks for: the target and every option that shapes its plan.

use nearnative_host::CpuSet;
use serde::{Deserialize, Serialize};

use crate::request::{IoPlacement, Level, NumaSpill};
use crate::target::Target;

/// One workload's request for "latency sensitivity = high".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRequest {
    pub target: Target,
    pub level: Level,
    /// The vCPUs (by index) that get an exclusive CPU; `None`: all of them.
    pub vcpus: Option<CpuSet>,
    /// For `pid:` targets, the threads that get an exclusive CPU; `None`: all of them.
    pub threads: Option<Vec<u32>>,
    /// `--cores N`: those threads share a pool of N exclusive whole cores instead of getting a
    /// CPU each (at most one core per thread); `None`: a CPU each.
    #[serde(default)]
    pub cores: Option<u32>,
    pub io: IoPlacement,
    /// The NIC the workload's traffic uses: its coalescing and offloads are turned off, and
    /// its IRQs may be steered even when it carries the default route.
    pub nic: Option<String>,
    /// CPUs the host keeps (`--housekeeping LIST`).
    pub housekeeping: Option<CpuSet>,
    /// The cgroup (in the cpuset hierarchy) whose CPUs are shared out; `None`: the whole host.
    pub scope: Option<String>,
    /// SCHED_FIFO priority for the exclusive threads.
    pub rt: Option<u32>,
    pub spill: NumaSpill,
    pub allow_cpu0: bool,
    /// The libvirt connection that owns the target when it is a libvirt domain: its vCPUs,
    /// emulator and iothreads are pinned through it (`virsh vcpupin ... --live`), so libvirt
    /// keeps knowing where they run. `None`: `qemu:///system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libvirt_uri: Option<String>,
    /// The exact CPUs the workload must get, as whole cores (`AllocationRequest::exact`): a
    /// container whose runtime already confined it to the cores admitted before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<CpuSet>,
    /// Keep the host's own threads (unbound kernel threads, PID 1) off the exclusive CPUs
    /// even when the scope is narrower than the whole host: for a workload whose cores are
    /// the node's alone though its scope is its own cgroup (a Kubernetes container).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fence_host_threads: bool,
}

impl PlanRequest {
    /// The defaults: level high, a CPU per thread, I/O on housekeeping, whole-host scope, no real-time policy.
    pub fn new(target: Target) -> Self {
        PlanRequest {
            target,
            level: Level::High,
            vcpus: None,
            threads: None,
            cores: None,
            io: IoPlacement::Housekeeping,
            nic: None,
            housekeeping: None,
            scope: None,
            rt: None,
            spill: NumaSpill::Refuse,
            allow_cpu0: false,
            libvirt_uri: None,
            exact: None,
            fence_host_threads: false,
        }
    }
}
