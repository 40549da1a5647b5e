//! What the daemon knows of each workload, as `status` prints it and `/metrics` counts it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use nearnative_host::CpuSet;
use serde::{Deserialize, Serialize};

/// Who asked for a workload to be latency-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// A `[[workload]]` table of a policy file, by file and line.
    Policy { file: PathBuf, line: usize },
    /// `nearnative apply` through the control socket.
    Cli,
    /// A libvirt domain's XML, through the hook.
    Libvirt { domain: String },
    /// A pod annotation, through the NRI plugin.
    Kubernetes { pod: String },
}

/// Where a workload stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum WorkloadState {
    /// Applied, and every knob of its plan reads back as planned.
    Applied,
    /// Admission or planning refused it; tried again when the ledger changes.
    Refused { reason: String },
    /// Not enough free cores now; tried again when cores are released.
    WaitingForCores { reason: String },
    /// Applied, but knobs read back other than planned (repaired, or only reported under
    /// `on_drift = "report"`).
    Drifted { knobs: Vec<String> },
    /// The apply or revert failed for another reason; the message says which knob and why.
    Failed { reason: String },
}

impl WorkloadState {
    /// The label used in logs and in the `state` label of the metrics.
    pub fn label(&self) -> &'static str {
        match self {
            WorkloadState::Applied => "applied",
            WorkloadState::Refused { .. } => "refused",
            WorkloadState::WaitingForCores { .. } => "waiting_for_cores",
            WorkloadState::Drifted { .. } => "drifted",
            WorkloadState::Failed { .. } => "failed",
        }
    }
}

/// Interruptions seen on a workload's exclusive CPUs since it was applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interference {
    /// Device IRQs handled on the exclusive CPUs.
    pub irqs: u64,
    /// Run time of threads other than the workload's own on the exclusive CPUs, in nanoseconds.
    pub foreign_runtime_ns: u64,
    /// Involuntary context switches of the workload's exclusive threads.
    pub preemptions: u64,
}

/// One workload the daemon knows of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadStatus {
    /// The ledger key (`vm:web1`, `cgroup:/pods/a`, `pid:4000`).
    pub workload: String,
    /// The target as planned (`vm:web1`, `vm-pid:4000`, ...).
    pub target: String,
    pub source: Source,
    #[serde(flatten)]
    pub state: WorkloadState,
    pub exclusive_cpus: CpuSet,
    pub io_cpus: CpuSet,
    /// `None` until the sampler has run once for it.
    pub interference: Option<Interference>,
}

/// Totals since the daemon started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub applies: u64,
    pub reverts: u64,
    pub refusals: u64,
    pub drift_repairs: u64,
    pub drift_reports: u64,
}

/// The daemon's whole report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub pid: u32,
    pub state_dir: PathBuf,
    pub policy_dir: PathBuf,
    pub workloads: Vec<WorkloadStatus>,
    /// Whole cores still free for exclusive use, by NUMA node.
    pub free_cores_by_node: BTreeMap<u32, u32>,
    /// Policy files rejected at the last load, one line each (`FILE:LINE: reason`).
    pub policy_errors: Vec<String>,
    /// Standing remarks: the proc connector unavailable (sweep only), and the like.
    pub notes: Vec<String>,
    pub counters: Counters,
}
