//! The busy-time cross-check: each exclusive CPU's busy time from `/proc/stat` against what
//! the sample accounts for (the targets, the foreign threads found, interrupt handling). A
//! large remainder means threads ran there that polling never saw, such as short-lived ones
//! born and gone between two listings.

use nearnative_host::{Finding, Severity};

use super::findings::{duration, finding};
use crate::{CpuBusy, Sample};

/// Busy time is read in ticks of 10 ms at both ends, and thread times lag by under a tick, so
/// a remainder below three ticks is rounding.
const ROUNDING_NS: u64 = 30_000_000;
/// Past this share of the sample, a remainder is worth a warning.
const UNACCOUNTED_SHARE: f64 = 0.05;

pub fn findings(sample: &Sample) -> Vec<Finding> {
    let Some(busy) = &sample.cpu_busy else {
        return Vec::new();
    };
    busy.iter().map(|cpu| cpu_finding(sample, cpu)).collect()
}

fn cpu_finding(sample: &Sample, cpu: &CpuBusy) -> Finding {
    let targets: u64 = sample
        .targets
        .iter()
        .filter(|t| t.last_cpu == cpu.cpu)
        .fold(0, |sum, t| sum.saturating_add(t.runtime_ns));
    let foreign: u64 = sample
        .threads
        .iter()
        .flat_map(|t| &t.cpu_time)
        .filter(|t| t.cpu == cpu.cpu)
        .fold(0, |sum, t| sum.saturating_add(t.ns));
    let accounted = targets.saturating_add(foreign).saturating_add(cpu.irq_ns);
    let unaccounted = cpu.busy_ns.saturating_sub(accounted);
    let limit = ROUNDING_NS.max((sample.duration_ns as f64 * UNACCOUNTED_SHARE) as u64);
    let severity = match unaccounted > limit {
        true => Severity::Warning,
        false => Severity::Info,
    };
    let evidence = format!(
        "busy {}: targets {}, foreign threads {}, interrupt handlers {}, unaccounted {}{}",
        duration(cpu.busy_ns),
        duration(targets),
        duration(foreign),
        duration(cpu.irq_ns),
        duration(unaccounted),
        match severity {
            Severity::Warning => " (threads too short-lived to be polled?)",
            _ => "",
        }
    );
    finding(severity, format!("CPU {}", cpu.cpu), evidence)
}
