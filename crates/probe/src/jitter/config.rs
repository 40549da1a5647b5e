//! What a jitter run measures, and the bounds that keep a request sane.
//!
//! Validation is pure (the online CPUs are passed in), so the same checks serve the CLI, the
//! `lab`, and tests on made-up CPU sets.

use std::time::Duration;

use nearnative_host::CpuSet;

use super::JitterError;

/// The longest run accepted. Memory does not grow with duration; the bound catches typos such
/// as a duration given in milliseconds.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The largest threshold accepted: a gap of a second is not jitter, it is an outage.
pub const MAX_THRESHOLD_NS: u64 = 1_000_000_000;

/// Timer periods accepted by [`Mode::Timer`]. Below 10 µs the wake-up path itself is the
/// period; above one second there are too few samples to call it a latency distribution.
pub const MIN_INTERVAL: Duration = Duration::from_micros(10);
pub const MAX_INTERVAL: Duration = Duration::from_secs(1);

/// SCHED_FIFO priorities Linux accepts.
pub const RT_PRIORITIES: std::ops::RangeInclusive<u8> = 1..=99;

/// How each CPU is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// sysjitter/oslat style: a thread spins reading the clock; a gap between two consecutive
    /// reads longer than the threshold is time the CPU was taken away.
    Spin,
    /// cyclictest style: a thread sleeps until each absolute deadline `interval` apart and
    /// records how late it woke.
    Timer { interval: Duration },
}

impl Mode {
    /// Spin: 1 µs, above the clock-read cost of any machine we run on and below the shortest
    /// interrupt handler, so every interruption counts and the loop itself never does.
    /// Timer: 100 µs, because even a tuned host needs a few µs to wake a thread; what matters
    /// there is the tail.
    pub fn default_threshold_ns(self) -> u64 {
        match self {
            Mode::Spin => 1_000,
            Mode::Timer { .. } => 100_000,
        }
    }
}

/// One jitter run. Invariant after [`JitterConfig::validate`]: `cpus` is non-empty and online,
/// `0 < threshold_ns <= MAX_THRESHOLD_NS`, `threshold < duration <= MAX_DURATION`, and the
/// priority and interval are within their ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JitterConfig {
    pub cpus: CpuSet,
    pub duration: Duration,
    /// Spin: a gap above this is an interruption. Timer: a wake-up later than this is late.
    pub threshold_ns: u64,
    /// SCHED_FIFO priority for the measuring threads; `None` keeps the normal scheduler.
    pub rt_priority: Option<u8>,
    pub mode: Mode,
}

impl JitterConfig {
    /// A run over `cpus` with the mode's default threshold and no real-time priority.
    pub fn new(cpus: CpuSet, duration: Duration, mode: Mode) -> Self {
        JitterConfig {
            cpus,
            duration,
            threshold_ns: mode.default_threshold_ns(),
            rt_priority: None,
            mode,
        }
    }

    /// A spin run over `cpus` with the default threshold and no real-time priority.
    pub fn spin(cpus: CpuSet, duration: Duration) -> Self {
        JitterConfig::new(cpus, duration, Mode::Spin)
    }

    /// Checks every field against its bounds and `cpus` against the `online` CPUs.
    pub fn validate(&self, online: &CpuSet) -> Result<(), JitterError> {
        if self.cpus.is_empty() {
            return Err(JitterError::NoCpus);
        }
        let offline = self.cpus.difference(online);
        if !offline.is_empty() {
            return Err(JitterError::NotOnline {
                cpus: offline,
                online: online.clone(),
            });
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(JitterError::Duration(self.duration));
        }
        if self.threshold_ns == 0
            || self.threshold_ns > MAX_THRESHOLD_NS
            || u128::from(self.threshold_ns) >= self.duration.as_nanos()
        {
            return Err(JitterError::Threshold(self.threshold_ns));
        }
        if let Some(priority) = self.rt_priority.filter(|p| !RT_PRIORITIES.contains(p)) {
            return Err(JitterError::RtPriority(priority));
        }
        if let Mode::Timer { interval } = self.mode {
            if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) || interval > self.duration {
                return Err(JitterError::Interval(interval));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn online() -> CpuSet {
        CpuSet::parse_list("0-3").unwrap()
    }

    fn good() -> JitterConfig {
        JitterConfig::spin(CpuSet::from_ids([1, 2]), Duration::from_secs(1))
    }

    #[test]
    fn a_sane_request_passes() {
        good().validate(&online()).unwrap();
        let timer = JitterConfig {
            mode: Mode::Timer {
                interval: Duration::from_micros(100),
            },
            rt_priority: Some(80),
            ..good()
        };
        timer.validate(&online()).unwrap();
    }

    #[test]
    fn bad_requests_name_the_problem() {
        let timer = |us| Mode::Timer {
            interval: Duration::from_micros(us),
        };
        let cases: Vec<(&str, JitterConfig, &str)> = vec![
            (
                "no CPUs",
                JitterConfig {
                    cpus: CpuSet::new(),
                    ..good()
                },
                "empty",
            ),
            (
                "offline CPU",
                JitterConfig {
                    cpus: CpuSet::from_ids([2, 7]),
                    ..good()
                },
                "CPU 7 is not online (online: 0-3)",
            ),
            (
                "zero duration",
                JitterConfig {
                    duration: Duration::ZERO,
                    ..good()
                },
                "duration",
            ),
            (
                "absurd duration",
                JitterConfig {
                    duration: Duration::from_secs(1 << 40),
                    ..good()
                },
                "duration",
            ),
            (
                "zero threshold",
                JitterConfig {
                    threshold_ns: 0,
                    ..good()
                },
                "threshold 0 ns",
            ),
            (
                "threshold above a second",
                JitterConfig {
                    threshold_ns: 2_000_000_000,
                    ..good()
                },
                "threshold",
            ),
            (
                "threshold as long as the run",
                JitterConfig {
                    threshold_ns: 1_000_000,
                    duration: Duration::from_millis(1),
                    ..good()
                },
                "threshold",
            ),
            (
                "priority 0",
                JitterConfig {
                    rt_priority: Some(0),
                    ..good()
                },
                "priority 0",
            ),
            (
                "priority 100",
                JitterConfig {
                    rt_priority: Some(100),
                    ..good()
                },
                "priority 100",
            ),
            (
                "interval too short",
                JitterConfig {
                    mode: timer(1),
                    ..good()
                },
                "interval",
            ),
            (
                "interval too long",
                JitterConfig {
                    mode: timer(5_000_000),
                    ..good()
                },
                "interval",
            ),
        ];
        for (what, config, needle) in cases {
            let err = config.validate(&online()).expect_err(what).to_string();
            assert!(err.contains(needle), "{what}: {err:?} lacks {needle:?}");
            assert!(!err.contains('\n'), "{what}: {err:?}");
        }
    }
}
