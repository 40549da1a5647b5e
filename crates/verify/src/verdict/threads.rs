//! The foreign-threads check: who ran on the exclusive CPUs, and whether nearnative should
//! have moved it away.

use nearnative_host::{Mechanism, Severity};

use super::accounting;
use super::findings::{finding, seconds, times_on_cpus};
use super::{Check, CheckKind, Expectations};
use crate::{Attribution, ForeignThread, Sample, ThreadClass};

pub fn check(sample: &Sample, expect: &Expectations) -> Check {
    let mut findings: Vec<_> = sample
        .threads
        .iter()
        .map(|thread| {
            let severity = severity(thread, sample, expect);
            finding(severity, thread.label(), evidence(thread))
        })
        .collect();
    findings.extend(accounting::findings(sample));
    let not_followed = sample.sampler.threads.threads_not_followed;
    if not_followed > 0 {
        findings.push(finding(
            Severity::Warning,
            "sampler".to_owned(),
            format!("{not_followed} candidate threads were not followed (max_threads reached)"),
        ));
    }
    let check = Check::from_findings(CheckKind::ForeignThreads, Mechanism::Exclusivity, findings);
    match sample.sampler.threads.threads_listed {
        0 => check.unknown("no thread could be listed under /proc".to_owned()),
        _ => check,
    }
}

fn severity(thread: &ForeignThread, sample: &Sample, expect: &Expectations) -> Severity {
    let over_allowance = thread.total_ns > expect.foreign_time_allowance_ns;
    match thread.class {
        ThreadClass::InScope if over_allowance => Severity::Critical,
        ThreadClass::KernelUnbound if over_allowance => match sample.scope {
            None => Severity::Critical,
            Some(_) => Severity::Warning,
        },
        ThreadClass::KernelPerCpu => {
            let allowance = expect.per_cpu_kthread_share * seconds(sample) * 1e9;
            match thread.cpu_time.iter().any(|t| t.ns as f64 > allowance) {
                true => Severity::Warning,
                false => Severity::Info,
            }
        }
        _ => Severity::Info,
    }
}

/// "ran 120 ms on CPU 1", with how the time was attributed when it is an estimate.
fn evidence(thread: &ForeignThread) -> String {
    let ran = format!("ran {}", times_on_cpus(&thread.cpu_time));
    match thread.attribution {
        Attribution::Exact => ran,
        Attribution::Confined => format!("{ran} (split between CPUs estimated)"),
        Attribution::LastCpu => format!("{ran} (estimated from the CPU it was last seen on)"),
    }
}
