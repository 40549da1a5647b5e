//! The lab report's data model: one [`Row`] per measured cell (path × condition ×
//! configuration), plus the run's context. This is what `lab --json` emits and what the table,
//! the verdict and the HTML page are computed from; docs/lab-report.md is its schema.
//!
//! All latencies are nanoseconds. A cell is identified by `(path, condition, config)`; a report
//! should hold each cell at most once, and every reader uses the first row of a cell.

use nearnative_host::CpuSet;
use nearnative_verify::Interference;
use serde::{Deserialize, Serialize};

use crate::path::Layer;

/// The version of the JSON layout below; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabReport {
    pub schema_version: u32,
    /// When the run started, RFC 3339, as the caller formatted it.
    pub started: String,
    pub host: HostLine,
    /// Where client, server and housekeeping ran, in words.
    pub placement: String,
    /// Whether the run used the short `--quick` cells.
    pub quick: bool,
    /// How long each cell's closed-loop run measured, in ms.
    pub cell_duration_ms: u64,
    pub rows: Vec<Row>,
    /// Anything the reader should know about this run (skipped cells, warnings), one line each.
    pub notes: Vec<String>,
}

/// The machine the run measured, as the caller read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostLine {
    /// In JSON a list of CPU ids.
    pub cpus_online: CpuSet,
    pub cpu_model: String,
    pub kernel: String,
}

/// Whether the noisy neighbour ran during the cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    Quiet,
    Noisy,
}

/// The host configuration the cell measured: as found; with the measured threads pinned
/// (`taskset`-style) to the CPUs latency-sensitive gives them and nothing else changed; or
/// with the latency-sensitive plan applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Config {
    Default,
    Pinned,
    LatencySensitive,
}

/// One measured cell. `rtt_ns` and `spectrum` come from the closed-loop run; `samples` is its
/// sample count and `lost` its requests that got no reply in time (never samples).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    #[serde(with = "layer_name")]
    pub path: Layer,
    pub condition: Condition,
    pub config: Config,
    pub rtt_ns: Percentiles,
    pub samples: u64,
    pub lost: u64,
    #[serde(default)]
    pub fixed_rate: Option<FixedRate>,
    #[serde(default)]
    pub jitter: Option<Jitter>,
    /// The closed-loop RTT by percentile, ascending; may be empty.
    #[serde(default)]
    pub spectrum: Vec<SpectrumPoint>,
    /// What took the jitter run's CPU during that run: interrupts, softirqs, per-CPU
    /// interrupts and foreign threads, against the time the run saw stolen; `None` when the
    /// cell has no jitter run or the sampler could not run.
    #[serde(default)]
    pub interference: Option<Interference>,
}

/// The order statistics the table shows, in ns. Monotone: p50 <= p99 <= ... <= max; all zero
/// when there were no samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub p99_99: u64,
    pub max: u64,
}

/// The cell's fixed-rate run. Its `rtt_ns` counts from each request's intended send time, so a
/// stall shows in every request queued behind it (no coordinated omission).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FixedRate {
    /// Requests per second asked for.
    pub target_rate: u64,
    /// Requests per second actually sent.
    pub achieved_rate: f64,
    pub samples: u64,
    pub lost: u64,
    pub rtt_ns: Percentiles,
}

/// The spin-loop jitter run on the cell's exclusive CPU: what took that CPU away from a
/// thread that wanted all of it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Jitter {
    pub cpu: u32,
    /// A gap between two clock reads longer than this is an interruption.
    pub threshold_ns: u64,
    pub interruptions_per_sec: f64,
    /// Fraction of the run's wall time lost to interruptions, in [0, 1].
    pub stolen_share: f64,
    /// The exact largest gap.
    pub max_gap_ns: u64,
    /// p99.99 of the interruptions' lengths.
    pub gap_p99_99_ns: u64,
}

/// One point of a latency-by-percentile curve: `percentile` in percent (50.0, 99.9, 100.0),
/// `ns` the RTT at or below which that share of samples fell.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpectrumPoint {
    pub percentile: f64,
    pub ns: u64,
}

impl LabReport {
    /// A report with no rows or notes yet.
    pub fn new(
        started: String,
        host: HostLine,
        placement: String,
        quick: bool,
        cell_duration_ms: u64,
    ) -> LabReport {
        LabReport {
            schema_version: SCHEMA_VERSION,
            started,
            host,
            placement,
            quick,
            cell_duration_ms,
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The first row of a cell.
    pub fn row(&self, path: Layer, condition: Condition, config: Config) -> Option<&Row> {
        self.rows
            .iter()
            .find(|row| row.path == path && row.condition == condition && row.config == config)
    }
}

impl Condition {
    pub const ALL: [Condition; 2] = [Condition::Quiet, Condition::Noisy];

    pub fn name(&self) -> &'static str {
        match self {
            Condition::Quiet => "quiet",
            Condition::Noisy => "noisy",
        }
    }
}

impl Config {
    /// In reading order: the host as found, what users do by hand, the plan.
    pub const ALL: [Config; 3] = [Config::Default, Config::Pinned, Config::LatencySensitive];

    pub fn name(&self) -> &'static str {
        match self {
            Config::Default => "default",
            Config::Pinned => "pinned",
            Config::LatencySensitive => "latency-sensitive",
        }
    }
}

/// A name `--configs` does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown configuration {0:?} (expected default, pinned or latency-sensitive)")]
pub struct UnknownConfig(pub String);

impl std::str::FromStr for Config {
    type Err = UnknownConfig;

    fn from_str(name: &str) -> Result<Config, UnknownConfig> {
        Config::ALL
            .into_iter()
            .find(|config| config.name() == name)
            .ok_or_else(|| UnknownConfig(name.to_owned()))
    }
}

impl Percentiles {
    /// The spread of the tail above the median: `p99_99 - p50`.
    pub fn jitter_ns(&self) -> u64 {
        self.p99_99.saturating_sub(self.p50)
    }
}

/// `Layer` by its lowercase name, readable back, whether or not `Layer` derives `Deserialize`.
mod layer_name {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    use crate::path::Layer;

    pub fn serialize<S: Serializer>(layer: &Layer, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(layer.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Layer, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(D::Error::custom)
    }
}
