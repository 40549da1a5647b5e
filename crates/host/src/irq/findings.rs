//! Latency risks in IRQ placement: host-wide ones, and those against a chosen exclusive set.

use super::{Irq, Irqs};
use crate::wording::cpus_phrase;
use crate::{CpuSet, Finding, Mechanism, Severity};

impl Irqs {
    /// Risks that need no exclusive set: an irqbalance that will move IRQs anywhere, and
    /// lines whose affinity the kernel manages (they cannot be steered off any CPU).
    pub fn findings(&self) -> Vec<Finding> {
        let mut findings = Vec::new();
        let balance = &self.irqbalance;
        if balance.is_running() && balance.banned_cpus.as_ref().map_or(true, CpuSet::is_empty) {
            findings.push(Finding {
                severity: Severity::Warning,
                object: "irqbalance".to_owned(),
                evidence: format!(
                    "running (pid {}) without banned CPUs: it moves IRQs onto every CPU \
                     not isolated at boot",
                    balance.pids[0]
                ),
                mechanism: Mechanism::Exclusivity,
            });
        }
        let managed: Vec<&Irq> = self
            .lines
            .iter()
            .filter(|irq| irq.affinity_settable == Some(false) && !irq.actions.is_empty())
            .collect();
        if !managed.is_empty() {
            let labels: Vec<String> = managed.iter().map(|irq| irq.label()).collect();
            findings.push(Finding {
                severity: Severity::Info,
                object: "kernel-managed IRQs".to_owned(),
                evidence: format!(
                    "affinity cannot be set from user space: {}",
                    labels.join(", ")
                ),
                mechanism: Mechanism::Exclusivity,
            });
        }
        findings
    }

    /// Risks to the CPUs in `exclusive`: every IRQ line that lands there, new IRQs that would
    /// start there, and an irqbalance not told to keep off them.
    pub fn findings_for(&self, exclusive: &CpuSet) -> Vec<Finding> {
        let mut findings: Vec<Finding> = self
            .lines
            .iter()
            .filter_map(|irq| self.landing_finding(irq, exclusive))
            .collect();
        if let Some(default) = &self.default_affinity {
            let overlap = default.intersection(exclusive);
            if !overlap.is_empty() {
                findings.push(Finding {
                    severity: Severity::Warning,
                    object: "default_smp_affinity".to_owned(),
                    evidence: format!("new IRQs may start on {}", cpus_phrase(&overlap)),
                    mechanism: Mechanism::Exclusivity,
                });
            }
        }
        let balance = &self.irqbalance;
        let banned = balance.banned_cpus.clone().unwrap_or_default();
        if balance.is_running() && !exclusive.is_subset(&banned) {
            findings.push(Finding {
                severity: Severity::Warning,
                object: "irqbalance".to_owned(),
                evidence: format!(
                    "running without {} banned: it may move IRQs back onto them",
                    cpus_phrase(&exclusive.difference(&banned))
                ),
                mechanism: Mechanism::Exclusivity,
            });
        }
        findings
    }

    fn landing_finding(&self, irq: &Irq, exclusive: &CpuSet) -> Option<Finding> {
        let overlap = irq.delivered_to()?.intersection(exclusive);
        if overlap.is_empty() {
            return None;
        }
        let fired: u64 = overlap
            .iter()
            .filter_map(|cpu| irq.count_on(&self.cpus, cpu))
            .sum();
        let mut evidence = format!("lands on {}", cpus_phrase(&overlap));
        match fired {
            0 => {}
            1 => evidence.push_str(" (1 interrupt there since boot)"),
            _ => evidence.push_str(&format!(" ({fired} interrupts there since boot)")),
        }
        if irq.affinity_settable == Some(false) {
            evidence.push_str("; affinity is kernel-managed and cannot be changed");
        }
        Some(Finding {
            severity: Severity::Warning,
            object: irq.label(),
            evidence,
            mechanism: Mechanism::Exclusivity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::IrqBalance;

    fn line(number: u32, action: &str, effective: &str, settable: bool) -> Irq {
        Irq {
            number,
            counts: vec![0, 70639],
            actions: vec![action.to_owned()],
            affinity: Some(CpuSet::parse_list("0-1").unwrap()),
            effective_affinity: Some(CpuSet::parse_list(effective).unwrap()),
            affinity_settable: Some(settable),
            ..Irq::default()
        }
    }

    fn host() -> Irqs {
        Irqs {
            cpus: vec![0, 1],
            lines: vec![
                line(36, "virtio1-req.0", "1", false),
                line(39, "virtio2-output.0", "0", true),
            ],
            default_affinity: Some(CpuSet::parse_list("0-1").unwrap()),
            irqbalance: IrqBalance {
                pids: vec![812],
                ..IrqBalance::default()
            },
            ..Irqs::default()
        }
    }

    #[test]
    fn host_wide_findings_name_irqbalance_and_managed_lines() {
        let findings = host().findings();
        assert_eq!(findings.len(), 2);
        assert!(findings[0].evidence.contains("pid 812"), "{findings:?}");
        assert!(findings[1].evidence.contains("IRQ 36 virtio1-req.0"));
    }

    #[test]
    fn lines_landing_on_exclusive_cpus_are_named() {
        let findings = host().findings_for(&CpuSet::from_ids([1]));
        let objects: Vec<_> = findings.iter().map(|f| f.object.as_str()).collect();
        assert_eq!(
            objects,
            ["IRQ 36 virtio1-req.0", "default_smp_affinity", "irqbalance"]
        );
        assert_eq!(
            findings[0].evidence,
            "lands on CPU 1 (70639 interrupts there since boot); \
             affinity is kernel-managed and cannot be changed"
        );
    }

    #[test]
    fn a_banned_exclusive_set_quiets_irqbalance() {
        let mut irqs = host();
        irqs.irqbalance.banned_cpus = Some(CpuSet::from_ids([1]));
        irqs.default_affinity = Some(CpuSet::from_ids([0]));
        irqs.lines.truncate(1);
        irqs.lines[0].effective_affinity = Some(CpuSet::from_ids([0]));
        assert!(irqs.findings_for(&CpuSet::from_ids([1])).is_empty());
        assert_eq!(irqs.findings().len(), 1, "managed line only");
    }
}
