//! Latency facts of the topology itself worth a plan's attention: hybrid cores, where only
//! some cores are fast.

use super::{CoreKind, Topology};
use crate::{CpuSet, Finding, Mechanism, Severity};

pub fn findings(topology: &Topology) -> Vec<Finding> {
    let Some(source) = topology.hybrid else {
        return Vec::new();
    };
    let of_kind = |kind| -> CpuSet {
        topology
            .cpus
            .iter()
            .filter(|c| c.kind == Some(kind))
            .map(|c| c.id)
            .collect()
    };
    let evidence = format!(
        "hybrid CPU (by {}): performance cores on CPUs {}, efficiency cores on CPUs {}; \
         exclusive cores for latency-sensitive work should be performance cores",
        source.file(),
        of_kind(CoreKind::Performance),
        of_kind(CoreKind::Efficiency),
    );
    vec![Finding {
        severity: Severity::Info,
        object: "CPU core kinds".to_owned(),
        evidence,
        mechanism: Mechanism::Exclusivity,
    }]
}
