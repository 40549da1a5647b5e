//! Wording shared by the checks: durations, per-CPU breakdowns and rates.

use nearnative_host::{Finding, Mechanism, Severity};

use crate::{CpuCount, CpuTime, Sample};

pub fn finding(severity: Severity, object: String, evidence: String) -> Finding {
    Finding {
        severity,
        object,
        evidence,
        mechanism: Mechanism::Exclusivity,
    }
}

/// "120 ms", "0.35 ms", "12 µs".
pub fn duration(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else if ms >= 0.1 {
        format!("{ms:.2} ms")
    } else {
        format!("{} µs", ns / 1000)
    }
}

/// "120 ms on CPU 1" or "120 ms on CPU 1, 3.00 ms on CPU 2".
pub fn times_on_cpus(times: &[CpuTime]) -> String {
    let parts: Vec<String> = times
        .iter()
        .map(|t| format!("{} on CPU {}", duration(t.ns), t.cpu))
        .collect();
    parts.join(", ")
}

/// "57 times on CPU 1" or "57 times on CPU 1, 2 times on CPU 2".
pub fn counts_on_cpus(counts: &[CpuCount]) -> String {
    let parts: Vec<String> = counts
        .iter()
        .map(|c| {
            let times = if c.count == 1 { "time" } else { "times" };
            format!("{} {times} on CPU {}", c.count, c.cpu)
        })
        .collect();
    parts.join(", ")
}

/// The sample's length in seconds, never zero (a zero-length sample is judged as 1 ns long).
pub fn seconds(sample: &Sample) -> f64 {
    sample.duration_ns.max(1) as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        let cases = [
            ("large", 120_000_000, "120 ms"),
            ("small ms", 350_000, "0.35 ms"),
            ("microseconds", 12_345, "12 µs"),
            ("zero", 0, "0 µs"),
        ];
        for (what, ns, expected) in cases {
            assert_eq!(duration(ns), expected, "{what}");
        }
    }
}
