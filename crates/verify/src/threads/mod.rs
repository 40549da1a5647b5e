//! Which threads ran on the exclusive CPUs, and for how long, found by polling `/proc`.
//!
//! Method: every `rescan_interval` the sampler lists every thread and reads its affinity
//! (`sched_getaffinity` on the live host, `Cpus_allowed_list` elsewhere). A thread whose affinity excludes every exclusive CPU cannot run
//! there and is not followed; the rest (the candidates) are followed. Every `poll_interval`
//! each candidate's CPU time is read from `schedstat` (a thread idle for ten polls only every
//! tenth poll); when it grew, the growth is credited to the CPU the thread was last on
//! (`processor` in `stat`, read only then) if that CPU is one of the exclusive ones.
//!
//! Limits, each reported through [`Attribution`] or documented here:
//! - A thread allowed on one CPU only is credited exactly. Otherwise, a thread that migrated
//!   within one poll interval is credited to where it ended: time it spent on an exclusive CPU
//!   before moving away is missed, and time it spent elsewhere before moving there is counted.
//! - A thread born and gone between two listings is never seen (the `/proc/stat` busy-time
//!   cross-check of the verdict shows such time as unaccounted). One born mid-sample is
//!   found by the next listing; since it was not in the previous one, its whole CPU time is
//!   new and is credited to the CPU it is on at the next poll.
//! - A thread that exits between two polls loses its CPU time since the last poll.
//! - CPU time lags a running thread by under a scheduler tick (see `schedstat`).
//! - Interrupt and softirq time is charged by the kernel to whichever thread it interrupted.

mod cpu_time;
mod schedstat;
mod targets;
mod tracker;

use nearnative_host::tasks::TaskKind;
use serde::{Deserialize, Serialize};

pub use schedstat::{parse_schedstat, SchedStat, SchedStatError};
pub use targets::{TargetActivity, Targets};
pub use tracker::{Tracker, TrackerCost};

/// Why a foreign thread is or is not nearnative's to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadClass {
    /// A user thread inside the scope (or any user thread when no scope was given): it should
    /// have been moved away.
    InScope,
    /// A user thread outside the scope: nearnative was not allowed to move it.
    OutsideScope,
    /// A kernel thread not bound to one CPU (kworker/uN, rcu, irq/N-name): placed by the
    /// workqueue cpumask, kthread affinity or its IRQ's affinity, which apply moves.
    KernelUnbound,
    /// A kernel thread bound to one exclusive CPU (ksoftirqd/N, kworker/N:M, migration/N,
    /// cpuhp/N): it can never be moved away.
    KernelPerCpu,
}

impl ThreadClass {
    pub fn describe(self) -> &'static str {
        match self {
            ThreadClass::InScope => "in scope",
            ThreadClass::OutsideScope => "outside scope",
            ThreadClass::KernelUnbound => "unbound kernel thread",
            ThreadClass::KernelPerCpu => "per-CPU kernel thread",
        }
    }
}

/// How certain the CPU time credited to a thread is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribution {
    /// The thread may run on one CPU only: its whole CPU time ran there.
    Exact,
    /// Every CPU the thread may use is exclusive: the total is exact, the split is estimated.
    Confined,
    /// Credited to the CPU the thread was last seen on at each poll: an estimate.
    LastCpu,
}

/// CPU time on one CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTime {
    pub cpu: u32,
    pub ns: u64,
}

/// A thread other than the workload's own that ran on the exclusive CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignThread {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub kind: TaskKind,
    pub class: ThreadClass,
    /// CPU time credited to each exclusive CPU, in CPU order, non-zero only.
    pub cpu_time: Vec<CpuTime>,
    /// The sum of `cpu_time`.
    pub total_ns: u64,
    pub attribution: Attribution,
}

impl ForeignThread {
    /// "thread stress-ng (tid 1234, in scope)".
    pub fn label(&self) -> String {
        format!(
            "thread {} (tid {}, {})",
            self.comm,
            self.tid,
            self.class.describe()
        )
    }
}
