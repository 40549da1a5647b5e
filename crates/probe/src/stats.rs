//! Summaries of recorded nanosecond values: the columns every probe report shares.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest value a histogram tracks: one hour in ns. Larger values are clamped to it, so a
/// stalled run still records a (saturated) sample rather than losing it.
pub const HIGHEST_TRACKABLE_NS: u64 = 3_600_000_000_000;

/// Three significant digits: 0.1% resolution at every magnitude.
const SIGNIFICANT_DIGITS: u8 = 3;

/// A histogram of nanosecond values with the probe's range and precision.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_TRACKABLE_NS, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// Records `ns`, clamped to the histogram's range.
pub fn record(hist: &mut Histogram<u64>, ns: u64) {
    hist.saturating_record(ns.clamp(1, HIGHEST_TRACKABLE_NS));
}

/// Order statistics of a set of nanosecond values. All fields are nanoseconds; with no
/// samples every field is zero. Percentiles are monotone: min <= p50 <= ... <= p99_999 <= max.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Summary {
    pub min: u64,
    pub mean: f64,
    pub stddev: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub p99_99: u64,
    pub p99_999: u64,
    pub max: u64,
}

impl Summary {
    pub fn of(hist: &Histogram<u64>) -> Summary {
        if hist.is_empty() {
            return Summary {
                min: 0,
                mean: 0.0,
                stddev: 0.0,
                p50: 0,
                p90: 0,
                p99: 0,
                p99_9: 0,
                p99_99: 0,
                p99_999: 0,
                max: 0,
            };
        }
        // HDR reports the top of a value's bucket; clamping to max keeps percentiles monotone.
        let at = |q: f64| hist.value_at_quantile(q).min(hist.max());
        Summary {
            min: hist.min(),
            mean: hist.mean(),
            stddev: hist.stdev(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p99_9: at(0.999),
            p99_99: at(0.9999),
            p99_999: at(0.99999),
            max: hist.max(),
        }
    }

    /// As [`Summary::of`], with the exactly tracked largest value as `max`: HDR only knows the
    /// top of that value's bucket (up to 0.1% above), and a report that prints both must not
    /// show a percentile above its own maximum.
    pub fn of_with_max(hist: &Histogram<u64>, exact_max: u64) -> Summary {
        let mut summary = Summary::of(hist);
        if hist.is_empty() {
            return summary;
        }
        summary.max = exact_max;
        for p in [
            &mut summary.p50,
            &mut summary.p90,
            &mut summary.p99,
            &mut summary.p99_9,
            &mut summary.p99_99,
            &mut summary.p99_999,
        ] {
            *p = (*p).min(exact_max);
        }
        summary.min = summary.min.min(exact_max);
        summary
    }

    /// The percentiles from p50 up, with their labels, for tables and plots.
    pub fn percentiles(&self) -> [(&'static str, u64); 6] {
        [
            ("p50", self.p50),
            ("p90", self.p90),
            ("p99", self.p99),
            ("p99.9", self.p99_9),
            ("p99.99", self.p99_99),
            ("p99.999", self.p99_999),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_histogram_gives_zeros() {
        let s = Summary::of(&new_histogram());
        assert_eq!((s.min, s.p50, s.max), (0, 0, 0));
    }

    #[test]
    fn known_distribution() {
        let mut h = new_histogram();
        for ns in 1..=1000 {
            record(&mut h, ns * 1000);
        }
        let s = Summary::of(&h);
        assert_eq!(s.min, 1000);
        assert!((500_000..=500_500).contains(&s.p50), "{}", s.p50);
        assert!((990_000..=991_000).contains(&s.p99), "{}", s.p99);
        assert!(s.max >= 1_000_000 && s.max <= 1_001_000);
    }

    #[test]
    fn huge_values_saturate_instead_of_vanishing() {
        let mut h = new_histogram();
        record(&mut h, u64::MAX);
        record(&mut h, 0);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn exact_max_caps_the_percentiles() {
        let mut h = new_histogram();
        record(&mut h, 3_528_751);
        let s = Summary::of_with_max(&h, 3_528_751);
        assert_eq!((s.p50, s.p99_999, s.max), (3_528_751, 3_528_751, 3_528_751));
        assert!(
            Summary::of(&h).max > 3_528_751,
            "HDR rounds up to its bucket's top"
        );
    }

    proptest! {
        #[test]
        fn percentiles_are_monotone(values in proptest::collection::vec(0u64..10_000_000_000, 1..500)) {
            let mut h = new_histogram();
            for v in &values {
                record(&mut h, *v);
            }
            let s = Summary::of(&h);
            let chain = [s.min, s.p50, s.p90, s.p99, s.p99_9, s.p99_99, s.p99_999, s.max];
            prop_assert!(chain.windows(2).all(|w| w[0] <= w[1]), "{:?}", chain);
        }
    }
}
