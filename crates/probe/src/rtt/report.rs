//! The result of one client run: counts, summaries in ns, and the histograms behind them.
//!
//! Serialised as the `--json` output documented in `docs/wire-format.md`. Accounting
//! invariant: every measured request ends as exactly one of a sample or a loss, so
//! `count + lost == sent`. Late and stale replies are counted apart and are never samples.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::config::Transport;
use crate::stats::Summary;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// One request in flight; the next leaves when the reply (or its timeout) arrives.
    ClosedLoop,
    /// Requests leave on a fixed schedule whatever the replies do.
    FixedRate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RttReport {
    pub mode: Mode,
    pub transport: Transport,
    /// `block`, `spin` or `busy-poll`.
    pub wait: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub busy_poll_us: Option<u32>,
    /// The server's address as resolved.
    pub target: String,
    /// Message length in bytes, header included.
    pub payload: usize,
    /// The client's CPU list, or `None` if unpinned.
    pub cpus: Option<String>,
    pub warmup_ns: u64,
    /// Wall time of the measured part (after the warm-up).
    pub elapsed_ns: u64,
    /// Measured requests sent.
    pub sent: u64,
    /// Samples: replies received in time.
    pub count: u64,
    /// Requests whose reply did not come within the timeout (or that were evicted).
    pub lost: u64,
    /// Replies that came after their request had been counted lost.
    pub late: u64,
    /// Received messages that were not a reply to any request of this run.
    pub stale: u64,
    pub timeout_ns: u64,
    /// Round-trip time. In fixed-rate mode measured from each request's intended send time.
    pub rtt_ns: Summary,
    /// Fixed-rate only: round-trip time from the actual send.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub service_ns: Option<Summary>,
    pub rate: RateReport,
    /// Median cost of one `now_ns()` read on this machine, measured at the start of the run.
    pub clock_read_ns: f64,
    /// The histograms behind the summaries, for `--histogram-out`; not serialised.
    #[serde(skip)]
    pub histograms: Option<Histograms>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct RateReport {
    /// Requests per second asked for (fixed-rate only).
    pub target: Option<u64>,
    /// Requests per second actually sent.
    pub achieved: f64,
}

#[derive(Debug, Clone)]
pub struct Histograms {
    pub rtt: Histogram<u64>,
    pub service: Option<Histogram<u64>>,
}
