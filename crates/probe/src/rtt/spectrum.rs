//! `--histogram-out`: the percentile spectrum of a run as CSV, for plotting.
//!
//! The columns follow HdrHistogram's `outputPercentileDistribution` (value, percentile, total
//! count, 1/(1-percentile)), with values in ns and a leading `series` column: `rtt`, and in
//! fixed-rate mode also `service`. Plot value against the last column on a log axis to get the
//! usual latency-by-percentile chart.

use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;

use super::report::Histograms;
use super::RttError;

/// Points per halving of the distance to 100%, as in HdrHistogram's default output.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

pub const CSV_HEADER: &str = "series,value_ns,percentile,total_count,inverted_percentile";

/// The CSV text for `histograms`.
pub fn percentile_csv(histograms: &Histograms) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    append_series(&mut out, "rtt", &histograms.rtt);
    if let Some(service) = &histograms.service {
        append_series(&mut out, "service", service);
    }
    out
}

/// Writes [`percentile_csv`] to `path`.
pub fn write_percentile_csv(histograms: &Histograms, path: &Path) -> Result<(), RttError> {
    std::fs::write(path, percentile_csv(histograms)).map_err(|source| RttError::HistogramOut {
        path: path.to_owned(),
        source,
    })
}

fn append_series(out: &mut String, series: &str, hist: &Histogram<u64>) {
    let mut total = 0u64;
    for point in hist.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
        total += point.count_since_last_iteration();
        let quantile = point.quantile_iterated_to();
        let inverted = if quantile < 1.0 {
            format!("{:.2}", 1.0 / (1.0 - quantile))
        } else {
            "inf".to_owned()
        };
        let value = point.value_iterated_to().min(hist.max());
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{series},{value},{quantile:.12},{total},{inverted}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{new_histogram, record};

    #[test]
    fn spectrum_is_monotone_and_ends_at_the_total() {
        let mut rtt = new_histogram();
        for ns in 1..=10_000u64 {
            record(&mut rtt, ns * 100);
        }
        let csv = percentile_csv(&Histograms { rtt, service: None });
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some(CSV_HEADER));
        let rows: Vec<Vec<String>> = lines
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect();
        assert!(rows.len() > 20, "{} rows", rows.len());
        let values: Vec<u64> = rows.iter().map(|r| r[1].parse().unwrap()).collect();
        assert!(values.windows(2).all(|w| w[0] <= w[1]));
        let last = rows.last().unwrap();
        assert_eq!(last[3], "10000");
        assert_eq!(last[4], "inf");
        assert!(rows.iter().all(|r| r[0] == "rtt"));
    }
}
