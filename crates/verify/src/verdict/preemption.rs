//! The preemption check: how often the workload's own threads were switched out while they
//! still wanted their CPU, and whether they ran where they should.

use nearnative_host::{Mechanism, Severity};

use super::findings::{duration, finding, seconds};
use super::{Check, CheckKind, Expectations};
use crate::{Sample, TargetActivity};

pub fn check(sample: &Sample, expect: &Expectations) -> Check {
    let secs = seconds(sample);
    let mut findings: Vec<_> = sample
        .targets
        .iter()
        .map(|target| {
            let rate = target.nonvoluntary_switches as f64 / secs;
            let severity = if rate > expect.max_preemptions_per_sec {
                Severity::Critical
            } else if target.nonvoluntary_switches > 0 || !sample.cpus.contains(target.last_cpu) {
                Severity::Warning
            } else {
                Severity::Info
            };
            finding(severity, label(target), evidence(target, sample, rate))
        })
        .collect();
    let seen: Vec<u32> = sample.targets.iter().map(|t| t.tid).collect();
    let missing: Vec<String> = sample
        .target_tids
        .iter()
        .filter(|tid| !seen.contains(tid))
        .map(u32::to_string)
        .collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let check = Check::from_findings(CheckKind::Preemption, Mechanism::Exclusivity, findings);
    match missing.is_empty() {
        true => check,
        false => check.unknown(format!(
            "target threads {} could not be read at the start or the end (see unknowns)",
            missing.join(", ")
        )),
    }
}

/// "target thread CPU 0/KVM (tid 99)".
fn label(target: &TargetActivity) -> String {
    format!("target thread {} (tid {})", target.comm, target.tid)
}

fn evidence(target: &TargetActivity, sample: &Sample, rate: f64) -> String {
    let times = match target.nonvoluntary_switches {
        1 => "time",
        _ => "times",
    };
    let mut text = format!(
        "preempted {} {times} ({rate:.1}/s), {} voluntary switches, ran {}, waited {}",
        target.nonvoluntary_switches,
        target.voluntary_switches,
        duration(target.runtime_ns),
        duration(target.wait_ns),
    );
    if !sample.cpus.contains(target.last_cpu) {
        text.push_str(&format!(
            "; last ran on CPU {}, outside the exclusive CPUs {}",
            target.last_cpu, sample.cpus
        ));
    }
    text
}
