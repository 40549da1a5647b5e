//! The spin loop: read the clock as fast as possible and record every long gap.
//!
//! Each iteration is one clock read (vDSO, no system call), a subtraction and two compares.
//! Only a gap above the threshold touches the histogram, which was allocated before the loop,
//! so the loop never allocates and its memory does not grow with the run's length.

use std::sync::atomic::{AtomicBool, Ordering};

use hdrhistogram::Histogram;

use super::report::{per_sec, share, SpinCpuReport};
use crate::clock::now_ns;
use crate::stats::{record, Summary};

/// What one spin run saw, before it is turned into rates and shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SpinTally {
    pub runtime_ns: u64,
    pub iterations: u64,
    pub min_gap_ns: u64,
    pub interruptions: u64,
    pub stolen_ns: u64,
    pub max_gap_ns: u64,
}

/// Spins until `deadline_ns` on the monotonic clock or until `stop` is set, recording each gap
/// longer than `threshold_ns` into `gaps`.
pub(super) fn spin(
    threshold_ns: u64,
    deadline_ns: u64,
    stop: &AtomicBool,
    gaps: &mut Histogram<u64>,
) -> SpinTally {
    let start = now_ns();
    let mut prev = start;
    let mut tally = SpinTally {
        runtime_ns: 0,
        iterations: 0,
        min_gap_ns: u64::MAX,
        interruptions: 0,
        stolen_ns: 0,
        max_gap_ns: 0,
    };
    loop {
        let now = now_ns();
        let gap = now.saturating_sub(prev);
        prev = now;
        tally.iterations += 1;
        tally.min_gap_ns = tally.min_gap_ns.min(gap);
        if gap > threshold_ns {
            tally.interruptions += 1;
            tally.stolen_ns += gap;
            tally.max_gap_ns = tally.max_gap_ns.max(gap);
            record(gaps, gap);
        }
        // A relaxed load of a line nobody writes until the end stays in L1: no bus traffic.
        if now >= deadline_ns || stop.load(Ordering::Relaxed) {
            break;
        }
    }
    tally.runtime_ns = prev - start;
    tally
}

/// The report row for `cpu`, from its tally and gap histogram.
pub(super) fn cpu_report(cpu: u32, tally: &SpinTally, gaps: &Histogram<u64>) -> SpinCpuReport {
    SpinCpuReport {
        cpu,
        runtime_ns: tally.runtime_ns,
        iterations: tally.iterations,
        min_iteration_ns: tally.min_gap_ns,
        interruptions: tally.interruptions,
        interruptions_per_sec: per_sec(tally.interruptions, tally.runtime_ns),
        stolen_ns: tally.stolen_ns,
        stolen_share: share(tally.stolen_ns, tally.runtime_ns),
        max_gap_ns: tally.max_gap_ns,
        gaps: Summary::of_with_max(gaps, tally.max_gap_ns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn a_short_spin_accounts_for_its_time() {
        let mut gaps = new_histogram();
        let stop = AtomicBool::new(false);
        let deadline = now_ns() + 20_000_000;
        let tally = spin(1_000, deadline, &stop, &mut gaps);
        assert!(tally.runtime_ns >= 19_000_000, "{tally:?}");
        assert!(tally.iterations > 1_000, "{tally:?}");
        assert!(tally.min_gap_ns < 10_000, "{tally:?}");
        assert!(tally.stolen_ns <= tally.runtime_ns, "{tally:?}");
        assert_eq!(gaps.len(), tally.interruptions);
        let row = cpu_report(0, &tally, &gaps);
        assert!((0.0..=1.0).contains(&row.stolen_share));
        assert_eq!(row.gaps.max, row.max_gap_ns, "{row:?}");
        assert!(row.gaps.p99_999 <= row.gaps.max, "{row:?}");
    }

    #[test]
    fn stop_ends_the_loop_at_once() {
        let mut gaps = new_histogram();
        let stop = AtomicBool::new(true);
        let tally = spin(1_000, u64::MAX, &stop, &mut gaps);
        assert_eq!(tally.iterations, 1);
    }
}
