//! What a workload asks for: how many exclusive threads, at which level, where its memory and
//! NIC are, and the host-wide constraints the user set on the command line.

use std::fmt;
use std::str::FromStr;

use nearnative_host::CpuSet;
use serde::{Deserialize, Serialize};

/// The ledger key of a workload, such as `vm:web1` or `pid:4242`. Re-planning the same key
/// replaces that workload's previous allocation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkloadKey(pub String);

impl fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for WorkloadKey {
    fn from(key: &str) -> Self {
        WorkloadKey(key.to_owned())
    }
}

/// How exclusive each thread's core is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// One thread per core; the core's SMT siblings stay idle and belong to the workload.
    High,
    /// Two threads of the same workload share a core (vSphere 8's "high with hyperthreading");
    /// an odd thread count leaves the last core's sibling idle. Without SMT this is `High`.
    HighHt,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::High => "high",
            Level::HighHt => "high-ht",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Level {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "high" => Ok(Level::High),
            "high-ht" => Ok(Level::HighHt),
            other => Err(format!("level {other:?} is not one of: high, high-ht")),
        }
    }
}

/// Where the workload's I/O threads (QEMU iothreads, the emulator thread, vhost) run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoPlacement {
    /// On the host's housekeeping cores, shared with the host's own work.
    #[default]
    Housekeeping,
    /// On one more exclusive core of the workload's own, on its node.
    Dedicated,
}

/// What to do when the workload's cores do not fit in one NUMA node.
///
/// The default refuses: a latency-sensitive workload split across nodes has threads whose
/// memory is remote and whose shared cache lines bounce across the interconnect, so its
/// latency depends on which thread handles a request. That is worse than a clear refusal
/// the user can act on (free cores on one node, or use fewer threads).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NumaSpill {
    #[default]
    Refuse,
    /// Fill the preferred node, then the nearest nodes by distance, with a note.
    Nearest,
}

/// One workload's request for exclusive cores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationRequest {
    pub workload: WorkloadKey,
    /// vCPUs or threads that each need an exclusive CPU; with [`cores`](Self::cores), the
    /// threads that share the pool.
    pub threads: u32,
    pub level: Level,
    /// `Some(N)`: a pool of N whole cores that all `threads` share, as kubelet's static CPU
    /// manager gives a container (at `high` one CPU of each core, its siblings idle; at
    /// `high-ht` every CPU of each core). `None`: one CPU per thread.
    #[serde(default)]
    pub cores: Option<u32>,
    #[serde(default)]
    pub io: IoPlacement,
    /// The node holding the workload's memory: placement prefers it first.
    #[serde(default)]
    pub memory_node: Option<u32>,
    /// The node of the workload's NIC: placement prefers it second.
    #[serde(default)]
    pub nic_node: Option<u32>,
    /// CPU 0's core is never allocated unless this is set: the boot CPU keeps timers and
    /// interrupts that cannot move.
    #[serde(default)]
    pub allow_cpu0: bool,
    /// CPUs the host keeps (`--housekeeping LIST`), taken as whole cores; when set it must hold
    /// a core on every node with CPUs, and it replaces the default of one free core per node.
    #[serde(default)]
    pub housekeeping: Option<CpuSet>,
    #[serde(default)]
    pub spill: NumaSpill,
    /// Only cores whose CPUs all lie in this set may be given (a `--scope` cgroup's CPUs);
    /// each node keeps its housekeeping core inside it. `None`: the whole host.
    #[serde(default)]
    pub within: Option<CpuSet>,
    /// `Some(cpus)`: exactly the whole cores of `cpus`, or a refusal; never other cores. For
    /// a workload admitted before it existed whose runtime already confined it to those CPUs
    /// (a container's cpuset), so the apply cannot land anywhere else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<CpuSet>,
}

impl AllocationRequest {
    /// A request with the defaults: one CPU per thread, I/O on housekeeping cores, no node
    /// preference, CPU 0's core left alone, one housekeeping core per node, no spilling across
    /// nodes.
    pub fn new(workload: impl Into<WorkloadKey>, threads: u32, level: Level) -> Self {
        AllocationRequest {
            workload: workload.into(),
            threads,
            level,
            cores: None,
            io: IoPlacement::Housekeeping,
            memory_node: None,
            nic_node: None,
            allow_cpu0: false,
            housekeeping: None,
            spill: NumaSpill::Refuse,
            within: None,
            exact: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_round_trips_through_its_name_and_json() {
        for level in [Level::High, Level::HighHt] {
            assert_eq!(level.name().parse::<Level>(), Ok(level));
            let json = serde_json::to_string(&level).unwrap();
            assert_eq!(json, format!("\"{}\"", level.name()));
        }
        assert!("medium".parse::<Level>().unwrap_err().contains("high-ht"));
    }
}
