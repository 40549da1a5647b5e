//! What inspect reports beyond raw values: latency risks it found, and objects it could not read.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ReadError;

/// Which half of "latency sensitivity = high" a setting belongs to. Plans tag every change
/// with one, and findings name the one that would fix them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    /// Whole cores owned by the workload: affinity, cpusets, IRQs and kthreads moved away.
    Exclusivity,
    /// Layers skipped: direct halt, PM QoS, no coalescing or LRO, busy polling.
    Bypass,
    /// Memory reserved and pre-mapped: THP, KSM, NUMA balancing, locking.
    Memory,
}

/// How much a finding is expected to cost in latency. Ordered from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// One latency risk on the host, such as "IRQ 36 virtio1-req.0 lands on CPU 1".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    /// The thing at risk or causing it: "vCPU 0 of VM web1", "IRQ 36 virtio1-req.0", "eth2".
    pub object: String,
    /// What was read that shows the risk: "may run on CPUs 0-7", "rx-usecs=50".
    pub evidence: String,
    pub mechanism: Mechanism,
}

/// An object inspect could not read: reported as unknown instead of guessed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unknown {
    /// What could not be determined: "NUMA node of cpu3", "coalescing of eth0".
    pub object: String,
    /// The file (or source) that was missing, empty or malformed.
    pub path: PathBuf,
    pub reason: String,
}

impl Unknown {
    pub fn from_error(object: impl Into<String>, err: &ReadError) -> Self {
        let reason = match err {
            ReadError::NotFound { .. } => "not found".to_owned(),
            ReadError::PermissionDenied { .. } => "permission denied".to_owned(),
            ReadError::Io { source, .. } => source.to_string(),
            ReadError::Parse { value, reason, .. } => format!("cannot parse {value:?}: {reason}"),
        };
        Unknown {
            object: object.into(),
            path: err.path().to_owned(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Root;

    #[test]
    fn unknown_keeps_path_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let err = Root::new(dir.path()).read_trimmed("/sys/x").unwrap_err();
        let unknown = Unknown::from_error("x of cpu0", &err);
        assert_eq!(unknown.reason, "not found");
        assert!(unknown.path.ends_with("sys/x"));
    }

    #[test]
    fn severities_order_by_cost() {
        assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Critical);
    }
}
