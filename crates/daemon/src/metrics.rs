//! Prometheus metrics (`nearnative_*`) on a loopback HTTP responder (docs/daemon.md).
//!
//! Two kinds of values: the apply-duration histogram, observed as applies finish, and
//! everything else, taken from the daemon's latest [`DaemonStatus`] at each scrape. The
//! latter are encoded by a collector from that snapshot rather than kept in live metric
//! families, so a workload that went away disappears from the output at the next
//! [`Metrics::update`], and the status totals stay typed as counters.
//!
//! - [`http`]: the responder ([`serve`]) and the `--metrics` argument ([`parse_addr`]).
//! - [`interference`]: the continuous, cheap sampler behind the per-workload interference
//!   counters.

mod http;
mod interference;

use std::sync::{Arc, PoisonError, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::status::{DaemonStatus, Source, WorkloadStatus};

pub use http::{parse_addr, serve, MetricsServer, CONTENT_TYPE, DEFAULT_ADDR};
pub use interference::{InterferenceSampler, SampleError};

/// Every metric name starts with it.
const PREFIX: &str = "nearnative";

/// Apply durations from 1 ms (a workload of one thread on an idle host) to 10 s (a big VM
/// whose IRQs and kernel threads all move), in 1-2.5-5 steps.
const APPLY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Every value of the `state` label, so each is present (at 0) even when no workload is in it.
const STATES: [&str; 5] = [
    "applied",
    "refused",
    "waiting_for_cores",
    "drifted",
    "failed",
];

/// The daemon's metrics. Shared between the daemon loop (which updates them) and the HTTP
/// thread (which encodes them).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    apply_duration: Histogram,
    snapshot: Arc<StatusCollector>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let apply_duration = Histogram::new(APPLY_BUCKETS);
        registry.register_with_unit(
            "apply_duration",
            "Time one apply of a workload took, from planning to the last knob written",
            Unit::Seconds,
            apply_duration.clone(),
        );
        let snapshot = Arc::new(StatusCollector::default());
        registry.register_collector(Box::new(Arc::clone(&snapshot)));
        Metrics {
            registry,
            apply_duration,
            snapshot,
        }
    }

    /// Records one apply that took `seconds`.
    pub fn observe_apply(&self, seconds: f64) {
        self.apply_duration.observe(seconds);
    }

    /// Replaces every value taken from the status with those of `status`.
    pub fn update(&self, status: &DaemonStatus) {
        let mut current = self
            .snapshot
            .status
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *current = status.clone();
    }

    /// The Prometheus text exposition (version 0.0.4, [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail, and the collector's only errors are the writer's.
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("encoding into a String cannot fail");
        text
    }
}

/// The latest status, encoded at each scrape.
#[derive(Debug, Default)]
struct StatusCollector {
    status: RwLock<DaemonStatus>,
}

type Labels = Vec<(&'static str, String)>;

impl Collector for StatusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = self.status.read().unwrap_or_else(PoisonError::into_inner);
        encode_workloads_by_state(&mut encoder, &status)?;
        encode_free_cores(&mut encoder, &status)?;
        encode_totals(&mut encoder, &status)?;
        encode_policy_errors(&mut encoder, &status)?;
        encode_per_workload(&mut encoder, &status.workloads)
    }
}

fn encode_workloads_by_state(
    encoder: &mut DescriptorEncoder,
    status: &DaemonStatus,
) -> Result<(), std::fmt::Error> {
    let series = STATES.iter().map(|&state| {
        let count = status
            .workloads
            .iter()
            .filter(|w| w.state.label() == state)
            .count();
        (vec![("state", state.to_owned())], ConstGauge::new(count))
    });
    encode_family(
        encoder,
        "workloads",
        "Workloads the daemon knows of, by state.",
        None,
        series,
    )
}

fn encode_free_cores(
    encoder: &mut DescriptorEncoder,
    status: &DaemonStatus,
) -> Result<(), std::fmt::Error> {
    let series = status
        .free_cores_by_node
        .iter()
        .map(|(node, &cores)| (vec![("node", node.to_string())], ConstGauge::new(cores)));
    encode_family(
        encoder,
        "free_exclusive_cores",
        "Whole cores still free for exclusive use, by NUMA node.",
        None,
        series,
    )
}

/// The daemon's totals since it started: counters, as the daemon only ever adds to them.
fn encode_totals(
    encoder: &mut DescriptorEncoder,
    status: &DaemonStatus,
) -> Result<(), std::fmt::Error> {
    let counters = &status.counters;
    let totals = [
        ("applies", "Workloads applied.", counters.applies),
        ("reverts", "Workloads reverted.", counters.reverts),
        (
            "refusals",
            "Applies refused by admission or planning.",
            counters.refusals,
        ),
        (
            "drift_repairs",
            "Drift repairs made: planned values written back after another tool changed them.",
            counters.drift_repairs,
        ),
        (
            "drift_reports",
            "Drifts found and only reported (on_drift = \"report\").",
            counters.drift_reports,
        ),
    ];
    for (name, help, value) in totals {
        let metric = ConstCounter::new(value);
        metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)?;
    }
    Ok(())
}

fn encode_policy_errors(
    encoder: &mut DescriptorEncoder,
    status: &DaemonStatus,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(status.policy_errors.len());
    let metric_encoder = encoder.encode_descriptor(
        "policy_errors",
        "Policy files rejected at the last load.",
        None,
        metric.metric_type(),
    )?;
    metric.encode(metric_encoder)
}

fn encode_per_workload(
    encoder: &mut DescriptorEncoder,
    workloads: &[WorkloadStatus],
) -> Result<(), std::fmt::Error> {
    if !workloads.is_empty() {
        let mut info = encoder.encode_descriptor(
            "workload",
            "One series per workload, labelled with its target, source and state.",
            None,
            MetricType::Info,
        )?;
        for workload in workloads {
            info.encode_info(&info_labels(workload))?;
        }
    }
    encode_family(
        encoder,
        "workload_exclusive_cpus",
        "CPUs reserved for the workload alone.",
        None,
        workloads
            .iter()
            .map(|w| (workload_label(w), ConstGauge::new(w.exclusive_cpus.len()))),
    )?;
    let sampled: Vec<_> = workloads
        .iter()
        .filter_map(|w| Some((workload_label(w), w.interference?)))
        .collect();
    encode_family(
        encoder,
        "interference_irqs",
        "Device IRQs handled on the workload's exclusive CPUs since it was first sampled.",
        None,
        sampled
            .iter()
            .map(|(labels, i)| (labels.clone(), ConstCounter::new(i.irqs))),
    )?;
    encode_family(
        encoder,
        "interference_foreign_runtime",
        "Run time of other threads on the workload's exclusive CPUs since it was first sampled.",
        Some(&Unit::Seconds),
        sampled.iter().map(|(labels, i)| {
            (
                labels.clone(),
                ConstCounter::new(nanos_to_seconds(i.foreign_runtime_ns)),
            )
        }),
    )?;
    encode_family(
        encoder,
        "interference_preemptions",
        "Involuntary context switches of the workload's exclusive threads since it was first \
         sampled.",
        None,
        sampled
            .iter()
            .map(|(labels, i)| (labels.clone(), ConstCounter::new(i.preemptions))),
    )
}

/// One descriptor, then one sample per label set.
fn encode_family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: impl IntoIterator<Item = (Labels, M)>,
) -> Result<(), std::fmt::Error> {
    let mut series = series.into_iter().peekable();
    let Some((_, first)) = series.peek() else {
        // A family without samples is left out, as the client library does for its own.
        return Ok(());
    };
    let mut metric_encoder = encoder.encode_descriptor(name, help, unit, first.metric_type())?;
    for (labels, metric) in series {
        metric.encode(metric_encoder.encode_family(&labels)?)?;
    }
    Ok(())
}

fn workload_label(workload: &WorkloadStatus) -> Labels {
    vec![("workload", workload.workload.clone())]
}

fn info_labels(workload: &WorkloadStatus) -> Labels {
    vec![
        ("workload", workload.workload.clone()),
        ("target", workload.target.clone()),
        ("source", source_label(&workload.source).to_owned()),
        ("state", workload.state.label().to_owned()),
    ]
}

/// The kind of source only: a policy file's path and line belong in `status`, not in a
/// label whose every new value makes a new series.
fn source_label(source: &Source) -> &'static str {
    match source {
        Source::Policy { .. } => "policy",
        Source::Cli => "cli",
        Source::Libvirt { .. } => "libvirt",
        Source::Kubernetes { .. } => "kubernetes",
    }
}

fn nanos_to_seconds(ns: u64) -> f64 {
    // Exact up to 2^53 ns (104 days of run time); beyond, off by under a microsecond.
    ns as f64 / 1e9
}
