//! The results of a jitter run, per CPU, as the CLI prints them and `--json` emits them.
//!
//! All times are nanoseconds; shares are fractions in [0, 1]; rates are per second of the
//! CPU's measured runtime. See docs/probe-jitter.md for the JSON schema.

use serde::{Deserialize, Serialize};

use crate::stats::Summary;

/// A whole run. In JSON the variant is the `"mode"` field: `"spin"` or `"timer"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum JitterReport {
    Spin(SpinReport),
    Timer(TimerReport),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpinReport {
    pub threshold_ns: u64,
    pub duration_ns: u64,
    pub rt_priority: Option<u8>,
    /// One entry per CPU, in ascending CPU order.
    pub cpus: Vec<SpinCpuReport>,
}

/// One CPU of a spin run. Invariants: `stolen_ns <= runtime_ns`; `gaps` summarises exactly
/// the `interruptions` gaps above the threshold, to the histogram's 0.1% precision, while
/// `max_gap_ns` is the exact largest gap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpinCpuReport {
    pub cpu: u32,
    /// Wall time from the loop's first clock read to its last.
    pub runtime_ns: u64,
    /// Clock reads the loop made.
    pub iterations: u64,
    /// The loop's cheapest iteration: the floor below which this probe cannot see.
    pub min_iteration_ns: u64,
    /// Gaps between consecutive clock reads above the threshold.
    pub interruptions: u64,
    pub interruptions_per_sec: f64,
    /// Sum of those gaps: time the CPU spent on something other than this loop.
    pub stolen_ns: u64,
    /// `stolen_ns / runtime_ns`.
    pub stolen_share: f64,
    pub max_gap_ns: u64,
    pub gaps: Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimerReport {
    pub threshold_ns: u64,
    pub duration_ns: u64,
    pub interval_ns: u64,
    pub rt_priority: Option<u8>,
    /// One entry per CPU, in ascending CPU order.
    pub cpus: Vec<TimerCpuReport>,
}

/// One CPU of a timer run. `lateness` covers every wake-up, as cyclictest's min/avg/max do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimerCpuReport {
    pub cpu: u32,
    pub runtime_ns: u64,
    pub wakeups: u64,
    /// Wake-ups later than the threshold.
    pub late_wakeups: u64,
    pub late_per_sec: f64,
    /// Periods skipped because a wake-up came after the next deadline had passed.
    pub overruns: u64,
    pub max_lateness_ns: u64,
    pub lateness: Summary,
}

/// `count` per second of `runtime_ns`; zero for an empty run.
pub(super) fn per_sec(count: u64, runtime_ns: u64) -> f64 {
    if runtime_ns == 0 {
        return 0.0;
    }
    count as f64 * 1e9 / runtime_ns as f64
}

/// `part / whole`, clamped to [0, 1]; zero for an empty whole.
pub(super) fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 / whole as f64).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn rates_and_shares_survive_empty_runs() {
        let cases = [
            ("empty run", per_sec(5, 0), 0.0),
            ("half a second", per_sec(5, 500_000_000), 10.0),
            ("empty whole", share(1, 0), 0.0),
            ("quarter", share(1, 4), 0.25),
            ("rounding above one", share(5, 4), 1.0),
        ];
        for (what, got, want) in cases {
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn json_carries_the_mode_tag() {
        let report = JitterReport::Spin(SpinReport {
            threshold_ns: 1000,
            duration_ns: 1,
            rt_priority: None,
            cpus: vec![SpinCpuReport {
                cpu: 3,
                runtime_ns: 1,
                iterations: 1,
                min_iteration_ns: 1,
                interruptions: 0,
                interruptions_per_sec: 0.0,
                stolen_ns: 0,
                stolen_share: 0.0,
                max_gap_ns: 0,
                gaps: Summary::of(&new_histogram()),
            }],
        });
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["mode"], "spin");
        assert_eq!(json["cpus"][0]["cpu"], 3);
        let back: JitterReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }
}
