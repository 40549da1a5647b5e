//! Latency risks on NICs: coalescing, batching offloads, RPS/XPS onto exclusive CPUs, and
//! facts the plan needs (pass-through possible, default-route interface left alone).

use super::{Nic, NicKind, Nics};
use crate::wording::cpus_phrase;
use crate::{CpuSet, Finding, Mechanism, Severity};

impl Nics {
    pub fn findings(&self) -> Vec<Finding> {
        self.interfaces.iter().flat_map(Nic::findings).collect()
    }

    /// [`Nics::findings`] plus packet steering onto `exclusive`; replaces `findings` once
    /// the exclusive set is known.
    pub fn findings_for(&self, exclusive: &CpuSet) -> Vec<Finding> {
        let mut findings = self.findings();
        for nic in &self.interfaces {
            findings.extend(nic.steering_finding(exclusive));
        }
        findings
    }
}

impl Nic {
    fn findings(&self) -> Vec<Finding> {
        let mut findings = Vec::new();
        let mut add = |severity, evidence: String, mechanism| {
            findings.push(Finding {
                severity,
                object: self.name.clone(),
                evidence,
                mechanism,
            })
        };
        use Mechanism::{Bypass, Exclusivity};
        use Severity::{Info, Warning};
        if let Some(c) = self.coalescing.as_ref().and_then(|c| c.read()) {
            if c.rx_usecs > 0 {
                add(
                    Warning,
                    format!("rx-usecs={} on {}", c.rx_usecs, self.name),
                    Bypass,
                );
            }
            if c.adaptive_rx {
                add(Warning, format!("adaptive-rx on {}", self.name), Bypass);
            }
            if c.tx_usecs > 0 {
                add(
                    Info,
                    format!("tx-usecs={} on {}", c.tx_usecs, self.name),
                    Bypass,
                );
            }
        }
        if let Some(o) = self.offloads.as_ref().and_then(|o| o.read()) {
            if o.lro == Some(true) {
                add(Warning, format!("LRO on {}", self.name), Bypass);
            }
            // GRO on lo, ifb or veth only batches inside the host; on a NIC or tap it delays
            // the packets a workload waits for.
            if o.gro == Some(true) && matches!(self.kind, NicKind::Physical | NicKind::Tun) {
                add(Info, format!("GRO on {}", self.name), Bypass);
            }
        }
        if let Some(sriov) = self.sriov.filter(|s| s.total_vfs > 0) {
            let evidence = format!(
                "SR-IOV: {} of {} VFs enabled; pass-through (VFIO) is possible",
                sriov.enabled_vfs, sriov.total_vfs
            );
            add(Info, evidence, Bypass);
        }
        if !self.default_route.is_empty() {
            let evidence = "carries the default route: apply leaves its IRQs and link alone \
                            unless named";
            add(Info, evidence.to_owned(), Exclusivity);
        }
        findings
    }

    fn steering_finding(&self, exclusive: &CpuSet) -> Option<Finding> {
        let rps = self.rx_queues.iter().filter_map(|q| q.rps_cpus.as_ref());
        let xps = self.tx_queues.iter().filter_map(|q| q.xps_cpus.as_ref());
        let steered = rps
            .chain(xps)
            .fold(CpuSet::new(), |all, set| all.union(set))
            .intersection(exclusive);
        (!steered.is_empty()).then(|| Finding {
            severity: Severity::Warning,
            object: self.name.clone(),
            evidence: format!("RPS/XPS steer packet work onto {}", cpus_phrase(&steered)),
            mechanism: Mechanism::Exclusivity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nic::{Coalescing, Ethtool, IpFamily, Offloads, RxQueue, Sriov};

    fn eth2() -> Nic {
        Nic {
            name: "eth2".to_owned(),
            kind: NicKind::Physical,
            driver: Some("ixgbe".to_owned()),
            bus_device: Some("0000:03:00.0".to_owned()),
            numa_node: Some(0),
            rx_queues: vec![RxQueue {
                index: 0,
                rps_cpus: Some(CpuSet::from_ids([2, 3])),
            }],
            tx_queues: Vec::new(),
            irqs: Vec::new(),
            sriov: Some(Sriov {
                total_vfs: 63,
                enabled_vfs: 0,
            }),
            default_route: vec![IpFamily::Ipv4],
            coalescing: Some(Ethtool::Read(Coalescing {
                rx_usecs: 50,
                adaptive_rx: true,
                ..Coalescing::default()
            })),
            offloads: Some(Ethtool::Read(Offloads {
                lro: Some(true),
                gro: Some(false),
                hw_gro: None,
            })),
        }
    }

    #[test]
    fn coalescing_lro_sriov_and_default_route_are_reported() {
        let nics = Nics {
            interfaces: vec![eth2()],
        };
        let evidence: Vec<String> = nics.findings().into_iter().map(|f| f.evidence).collect();
        assert_eq!(
            evidence[..3],
            ["rx-usecs=50 on eth2", "adaptive-rx on eth2", "LRO on eth2"]
        );
        assert!(evidence[3].contains("0 of 63 VFs"));
        assert!(evidence[4].contains("default route"));
        let steering = nics.findings_for(&CpuSet::from_ids([3]));
        assert_eq!(
            steering.last().unwrap().evidence,
            "RPS/XPS steer packet work onto CPU 3"
        );
        assert_eq!(nics.findings_for(&CpuSet::from_ids([1])).len(), 5);
    }
}
