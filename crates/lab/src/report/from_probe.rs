//! Building report rows from the probe's own reports, so a runner hands each run's report over
//! as it is and the numbers cannot drift from what `probe rtt` / `probe jitter` printed.

use hdrhistogram::Histogram;
use nearnative_probe::jitter::{JitterReport, SpinCpuReport};
use nearnative_probe::rtt::{Mode, RttReport};
use nearnative_probe::stats::Summary;

use super::model::{Condition, Config, FixedRate, Jitter, Percentiles, Row, SpectrumPoint};
use crate::path::Layer;

/// Points per halving of the distance to 100%, as in the probe's `--histogram-out` and
/// HdrHistogram's default percentile output.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

impl From<&Summary> for Percentiles {
    fn from(summary: &Summary) -> Percentiles {
        Percentiles {
            p50: summary.p50,
            p99: summary.p99,
            p99_9: summary.p99_9,
            p99_99: summary.p99_99,
            max: summary.max,
        }
    }
}

impl Row {
    /// The row of one cell from its closed-loop run. The spectrum comes from the run's
    /// histogram when the report still carries it, else from the summary's percentiles.
    /// `fixed_rate` and `jitter` start empty; set them with [`FixedRate::from_run`] and
    /// [`Jitter::from_report`].
    pub fn new(path: Layer, condition: Condition, config: Config, closed_loop: &RttReport) -> Row {
        let spectrum = match &closed_loop.histograms {
            Some(histograms) => spectrum_of(&histograms.rtt, closed_loop.rtt_ns.max),
            None => spectrum_of_summary(&closed_loop.rtt_ns),
        };
        Row {
            path,
            condition,
            config,
            rtt_ns: Percentiles::from(&closed_loop.rtt_ns),
            samples: closed_loop.count,
            lost: closed_loop.lost,
            fixed_rate: None,
            jitter: None,
            spectrum,
            interference: None,
        }
    }
}

impl FixedRate {
    /// The fixed-rate part of a cell; `None` if `run` was a closed-loop run.
    pub fn from_run(run: &RttReport) -> Option<FixedRate> {
        if run.mode != Mode::FixedRate {
            return None;
        }
        Some(FixedRate {
            target_rate: run.rate.target.unwrap_or(0),
            achieved_rate: run.rate.achieved,
            samples: run.count,
            lost: run.lost,
            rtt_ns: Percentiles::from(&run.rtt_ns),
        })
    }
}

impl Jitter {
    /// `cpu`'s row of a spin-mode jitter run; `None` for a timer-mode run (its lateness is not
    /// an interruption count) or a CPU the run did not measure.
    pub fn from_report(report: &JitterReport, cpu: u32) -> Option<Jitter> {
        let JitterReport::Spin(spin) = report else {
            return None;
        };
        let row = spin.cpus.iter().find(|row| row.cpu == cpu)?;
        Some(Jitter::from_spin(spin.threshold_ns, row))
    }

    pub fn from_spin(threshold_ns: u64, row: &SpinCpuReport) -> Jitter {
        Jitter {
            cpu: row.cpu,
            threshold_ns,
            interruptions_per_sec: row.interruptions_per_sec,
            stolen_share: row.stolen_share,
            max_gap_ns: row.max_gap_ns,
            gap_p99_99_ns: row.gaps.p99_99,
        }
    }
}

/// The latency-by-percentile curve of `hist`, HdrHistogram's percentile iteration with values
/// capped at the exactly tracked `exact_max` (HDR knows only the top of the max's bucket).
pub fn spectrum_of(hist: &Histogram<u64>, exact_max: u64) -> Vec<SpectrumPoint> {
    hist.iter_quantiles(TICKS_PER_HALF_DISTANCE)
        .map(|point| SpectrumPoint {
            percentile: percent(point.quantile_iterated_to()),
            ns: point.value_iterated_to().min(exact_max),
        })
        .collect()
}

/// `quantile` in percent, rounded to 1e-9 %: enough for a billion samples, and free of binary
/// noise such as 30.000000000000004.
fn percent(quantile: f64) -> f64 {
    (quantile * 100.0 * 1e9).round() / 1e9
}

/// A coarse curve from a summary alone: its named percentiles and the max as 100%.
fn spectrum_of_summary(summary: &Summary) -> Vec<SpectrumPoint> {
    if summary.max == 0 {
        return Vec::new();
    }
    let named = [
        (50.0, summary.p50),
        (90.0, summary.p90),
        (99.0, summary.p99),
        (99.9, summary.p99_9),
        (99.99, summary.p99_99),
        (99.999, summary.p99_999),
        (100.0, summary.max),
    ];
    named
        .into_iter()
        .map(|(percentile, ns)| SpectrumPoint { percentile, ns })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nearnative_probe::stats::{new_histogram, record};

    #[test]
    fn spectrum_is_monotone_and_ends_at_the_exact_max() {
        let mut hist = new_histogram();
        for ns in 1..=100_000u64 {
            record(&mut hist, 10_000 + ns);
        }
        let spectrum = spectrum_of(&hist, 110_000);
        assert!(spectrum.len() > 50, "{} points", spectrum.len());
        assert!(spectrum
            .windows(2)
            .all(|w| w[0].ns <= w[1].ns && w[0].percentile <= w[1].percentile));
        let last = spectrum.last().unwrap();
        assert_eq!((last.percentile, last.ns), (100.0, 110_000));
    }

    #[test]
    fn summary_spectrum_of_an_empty_run_is_empty() {
        let summary = Summary::of(&new_histogram());
        assert!(spectrum_of_summary(&summary).is_empty());
    }
}
