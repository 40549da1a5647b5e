//! What one sample found on the exclusive CPUs: the raw material of the verdict, and what
//! `verify --json` prints.

use std::collections::BTreeSet;

use nearnative_host::{CpuSet, Unknown};
use serde::{Deserialize, Serialize};

use crate::cpu_busy::CpuBusy;
use crate::irqs::{IrqActivity, NamedCount};
use crate::threads::{ForeignThread, TargetActivity, TrackerCost};
use crate::Scope;

/// Everything measured on the exclusive CPUs over one sample. Counts are deltas over the
/// sample, times are nanoseconds of CPU time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// The exclusive CPUs sampled.
    pub cpus: CpuSet,
    /// The workload's thread ids as requested (those that could not be read are unknowns).
    pub target_tids: BTreeSet<u32>,
    pub scope: Option<Scope>,
    /// Wall time actually sampled, in nanoseconds.
    pub duration_ns: u64,
    /// True when the caller's stop flag ended the sample before its duration.
    pub stopped_early: bool,
    /// `None` when `/proc/interrupts` could not be read at the start or the end.
    pub irqs: Option<IrqActivity>,
    /// Softirqs per name; `None` when `/proc/softirqs` could not be read.
    pub softirqs: Option<Vec<NamedCount>>,
    /// Each exclusive CPU's busy time; `None` when `/proc/stat` could not be read.
    pub cpu_busy: Option<Vec<CpuBusy>>,
    /// Threads other than the targets that ran there, most CPU time first.
    pub threads: Vec<ForeignThread>,
    pub targets: Vec<TargetActivity>,
    pub sampler: SamplerCost,
    /// What could not be read, at most one per file.
    pub unknowns: Vec<Unknown>,
    /// Unknowns beyond the kept ones, only counted.
    pub unknowns_dropped: u64,
}

/// What the sample cost the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerCost {
    /// CPU time the sampling thread used, in nanoseconds.
    pub cpu_time_ns: u64,
    /// The housekeeping CPUs the sampling thread ran on, so that it never ran on the CPUs it
    /// measured; `None` when it could not be placed (no housekeeping CPU, or not the live host).
    pub pinned_to: Option<CpuSet>,
    /// The longest period between two polls, in nanoseconds: the spec's poll interval, or
    /// longer where one round took over a quarter of it.
    pub longest_poll_period_ns: u64,
    #[serde(flatten)]
    pub threads: TrackerCost,
}
