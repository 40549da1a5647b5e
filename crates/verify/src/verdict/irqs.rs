//! The interrupt checks: device IRQ lines and named per-CPU interrupts that fired on the
//! exclusive CPUs, and the softirqs run there.

use nearnative_host::{Mechanism, Severity};

use super::findings::{counts_on_cpus, finding, seconds};
use super::{Check, CheckKind, Expectations};
use crate::{NamedCount, Sample};

/// Named interrupts that every CPU takes: NMIs (the watchdog), performance-monitoring
/// interrupts, machine-check polls, and the posted-interrupt rows of CPUs running KVM guests.
const EXPECTED_NAMED: &[&str] = &["NMI", "PMI", "MCP", "PIN", "NPI", "PIW", "ERR", "MIS"];
/// The local timer tick.
const TICK: &str = "LOC";
/// Softirqs raised by device interrupts; the others follow timers, the scheduler and RCU.
const DEVICE_SOFTIRQS: &[&str] = &["HI", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET"];

pub fn check_irqs(sample: &Sample, expect: &Expectations) -> Check {
    let Some(irqs) = &sample.irqs else {
        return Check::from_findings(CheckKind::Irqs, Mechanism::Exclusivity, Vec::new())
            .unknown("/proc/interrupts could not be read (see unknowns)".to_owned());
    };
    let mut findings: Vec<_> = irqs
        .lines
        .iter()
        .map(|line| {
            let fired = format!("fired {}", counts_on_cpus(&line.counts));
            let (severity, evidence) = if expect.allowed_irqs.contains(&line.irq) {
                (Severity::Info, fired)
            } else if line.affinity_settable == Some(false) {
                let why = "kernel-managed or per-CPU: its affinity cannot be changed";
                (Severity::Warning, format!("{fired} ({why})"))
            } else if expect.moved_irqs.contains(&line.irq) && line.total <= 1 {
                let why = "moved by the apply: x86 carries out the move at its next interrupt";
                (Severity::Warning, format!("{fired} ({why})"))
            } else {
                (Severity::Critical, fired)
            };
            finding(severity, line.label(), evidence)
        })
        .collect();
    findings.extend(irqs.named.iter().map(|named| {
        let severity = named_severity(named, sample, expect);
        finding(
            severity,
            named_label(named),
            format!("fired {}", counts_on_cpus(&named.counts)),
        )
    }));
    Check::from_findings(CheckKind::Irqs, Mechanism::Exclusivity, findings)
}

fn named_severity(named: &NamedCount, sample: &Sample, expect: &Expectations) -> Severity {
    if named.name == TICK {
        let limit = expect.nohz_tick_rate * seconds(sample);
        let too_many = named.counts.iter().any(|c| c.count as f64 > limit);
        return match expect.nohz_full && too_many {
            true => Severity::Critical,
            false => Severity::Info,
        };
    }
    match EXPECTED_NAMED.contains(&named.name.as_str()) {
        true => Severity::Info,
        false => Severity::Warning,
    }
}

/// "LOC (Local timer interrupts)".
fn named_label(named: &NamedCount) -> String {
    match &named.description {
        Some(description) => format!("{} ({description})", named.name),
        None => named.name.clone(),
    }
}

pub fn check_softirqs(sample: &Sample) -> Check {
    let Some(softirqs) = &sample.softirqs else {
        return Check::from_findings(CheckKind::Softirqs, Mechanism::Exclusivity, Vec::new())
            .unknown("/proc/softirqs could not be read (see unknowns)".to_owned());
    };
    let findings = softirqs
        .iter()
        .map(|softirq| {
            let severity = match DEVICE_SOFTIRQS.contains(&softirq.name.as_str()) {
                true => Severity::Warning,
                false => Severity::Info,
            };
            let object = format!("softirq {}", softirq.name);
            finding(
                severity,
                object,
                format!("ran {}", counts_on_cpus(&softirq.counts)),
            )
        })
        .collect();
    Check::from_findings(CheckKind::Softirqs, Mechanism::Exclusivity, findings)
}
