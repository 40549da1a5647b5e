//! `probe rtt` over real loopback sockets: accounting and percentiles per mode and transport,
//! loss and duplicate counting against a misbehaving server, and the server's limits.

mod accounting;
mod faults;
mod server_limits;

use nearnative_probe::rtt::{RttReport, ServerStats};
use nearnative_probe::stats::Summary;

/// The invariants every report must keep, whatever the run.
pub fn assert_consistent(what: &str, report: &RttReport) {
    assert_eq!(
        report.count + report.lost,
        report.sent,
        "{what}: count + lost == sent in {report:?}"
    );
    assert_monotone(what, &report.rtt_ns);
    if let Some(service) = &report.service_ns {
        assert_monotone(what, service);
    }
    let histograms = report.histograms.as_ref().expect("histograms kept");
    assert_eq!(
        histograms.rtt.len(),
        report.count,
        "{what}: one sample per reply"
    );
}

pub fn assert_monotone(what: &str, s: &Summary) {
    let chain = [
        s.min, s.p50, s.p90, s.p99, s.p99_9, s.p99_99, s.p99_999, s.max,
    ];
    assert!(
        chain.windows(2).all(|w| w[0] <= w[1]),
        "{what}: percentiles not monotone: {chain:?}"
    );
    assert!(s.min > 0, "{what}: a zero RTT is impossible");
    assert!(
        s.min as f64 <= s.mean && s.mean <= s.max as f64,
        "{what}: mean outside [min, max]"
    );
}

/// Requests the server must have answered: the measured ones, the warm-up and the handshake.
pub fn assert_server_answered_all(what: &str, report: &RttReport, stats: &ServerStats) {
    assert_eq!(stats.malformed.total(), 0, "{what}: {stats:?}");
    assert_eq!(stats.send_errors, 0, "{what}: {stats:?}");
    assert_eq!(
        stats.received, stats.answered,
        "{what}: the server left requests unanswered: {stats:?}"
    );
    assert!(
        stats.answered > report.count,
        "{what}: server answered {} but the client counted {}",
        stats.answered,
        report.count
    );
}
