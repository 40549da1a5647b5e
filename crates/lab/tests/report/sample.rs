//! Synthetic lab reports: a realistic full one built through the probe's own report types,
//! and hand-made rows with round numbers for checking arithmetic.

use nearnative_lab::report::{
    Condition, Config, FixedRate, HostLine, Jitter, LabReport, Percentiles, Row, SpectrumPoint,
};
use nearnative_lab::Layer;
use nearnative_probe::jitter::{JitterReport, SpinCpuReport, SpinReport};
use nearnative_probe::rtt::{Histograms, Mode, RateReport, RttReport, Transport};
use nearnative_probe::stats::{new_histogram, record, Summary};
use nearnative_verify::{
    Attribution, EventCosts, Interference, InterruptSource, ThreadClass, ThreadSource,
};

pub const SAMPLES_PER_CELL: u64 = 60_000;

/// An empty report with made-up context.
pub fn empty_report() -> LabReport {
    let host = HostLine {
        cpus_online: "0-1".parse().unwrap(),
        cpu_model: "Intel Xeon Processor (Icelake)".to_owned(),
        kernel: "6.1.0-27-amd64".to_owned(),
    };
    LabReport::new(
        "2026-11-24T10:00:00Z".to_owned(),
        host,
        "client and server share exclusive CPU 1; CPU 0 housekeeping".to_owned(),
        false,
        2000,
    )
}

/// Every cell of the experiment, each from a synthetic closed-loop run (with its histogram),
/// a fixed-rate run and a spin jitter run: noise fattens the default configuration's tail
/// far more than the latency-sensitive one's.
pub fn full_report() -> LabReport {
    let mut report = empty_report();
    for path in Layer::ALL {
        for condition in Condition::ALL {
            for config in Config::ALL {
                report.rows.push(synthetic_row(path, condition, config));
            }
        }
    }
    report.notes.push("synthetic data for tests".to_owned());
    report
}

fn synthetic_row(path: Layer, condition: Condition, config: Config) -> Row {
    let shape = Shape::of(path, condition, config);
    let closed = rtt_report(Mode::ClosedLoop, &shape.histogram(SAMPLES_PER_CELL));
    let fixed = rtt_report(Mode::FixedRate, &shape.histogram(SAMPLES_PER_CELL / 4));
    let mut row = Row::new(path, condition, config, &closed);
    row.fixed_rate = FixedRate::from_run(&fixed);
    row.jitter = Jitter::from_report(&jitter_report(condition, config), 1);
    row.interference = Some(interference(condition, config));
    row
}

/// What took CPU 1 during a synthetic jitter run: under noise without the apply the hog on
/// CPU 1 dominates; otherwise TLB shootdowns, the tick and the rest below the guest.
pub fn interference(condition: Condition, config: Config) -> Interference {
    let hog = condition == Condition::Noisy && config != Config::LatencySensitive;
    let source = |name: &str, count: u64| InterruptSource {
        name: name.to_owned(),
        description: None,
        count,
        estimated_ns: count * 2_000,
    };
    let threads = match hog {
        true => vec![ThreadSource {
            comm: "nn-hog-1".to_owned(),
            pid: 4242,
            tid: 4250,
            class: ThreadClass::InScope,
            ns: 900_000_000,
            attribution: Attribution::Exact,
        }],
        false => Vec::new(),
    };
    let stolen_ns = if hog { 1_000_000_000 } else { 20_000_000 };
    let mut interference = Interference {
        cpus: "1".parse().unwrap(),
        window_ns: 2_000_000_000,
        stolen_ns: Some(stolen_ns),
        irqs: vec![source("IRQ 38 virtio2-input.0", 100)],
        softirqs: vec![source("NET_RX", 400)],
        ipis: vec![source("TLB", 3_000), source("LOC", 500)],
        threads,
        steal_ns: Some(10_000_000),
        unexplained_ns: None,
        costs: EventCosts::default(),
        incomplete: false,
    };
    interference.unexplained_ns = Some(stolen_ns.saturating_sub(interference.explained_ns()));
    interference
}

/// How one cell's RTTs are drawn: an exponential spread over a floor, plus rare spikes.
struct Shape {
    floor_ns: f64,
    spread: f64,
    spike_share: f64,
    spike_max_ns: f64,
    seed: u64,
}

impl Shape {
    fn of(path: Layer, condition: Condition, config: Config) -> Shape {
        let floor_us = match path {
            Layer::Loopback => 16.0,
            Layer::Veth => 21.0,
            Layer::Bridge => 24.0,
            Layer::Tap => 42.0,
        };
        let (factor, spike_share, spike_max_us) = match (condition, config) {
            (Condition::Quiet, Config::LatencySensitive) => (1.0, 0.0001, 40.0),
            (Condition::Quiet, Config::Default) => (1.15, 0.0005, 150.0),
            (Condition::Quiet, Config::Pinned) => (1.1, 0.0003, 100.0),
            (Condition::Noisy, Config::Pinned) => (1.3, 0.01, 1500.0),
            (Condition::Noisy, Config::LatencySensitive) => (1.05, 0.0003, 60.0),
            (Condition::Noisy, Config::Default) => (1.6, 0.03, 3000.0),
        };
        Shape {
            floor_ns: floor_us * factor * 1000.0,
            spread: 0.06,
            spike_share,
            spike_max_ns: spike_max_us * 1000.0,
            seed: floor_us as u64 * 31 + (factor * 100.0) as u64,
        }
    }

    fn histogram(&self, samples: u64) -> hdrhistogram::Histogram<u64> {
        let mut random = SplitMix(self.seed);
        let mut hist = new_histogram();
        for _ in 0..samples {
            let spread = -random.unit().max(1e-12).ln() * self.spread;
            let mut ns = self.floor_ns * (1.0 + spread);
            if random.unit() < self.spike_share {
                ns += random.unit() * self.spike_max_ns;
            }
            record(&mut hist, ns as u64);
        }
        hist
    }
}

/// splitmix64: deterministic, so every test sees the same report.
struct SplitMix(u64);

impl SplitMix {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as f64 / u64::MAX as f64
    }
}

pub fn rtt_report(mode: Mode, hist: &hdrhistogram::Histogram<u64>) -> RttReport {
    let fixed = mode == Mode::FixedRate;
    RttReport {
        mode,
        transport: Transport::Udp,
        wait: "block".to_owned(),
        busy_poll_us: None,
        target: "198.18.2.2:40000".to_owned(),
        payload: 64,
        cpus: Some("1".to_owned()),
        warmup_ns: 500_000_000,
        elapsed_ns: 2_000_000_000,
        sent: hist.len() + 3,
        count: hist.len(),
        lost: 3,
        late: 0,
        stale: 0,
        timeout_ns: 1_000_000_000,
        rtt_ns: Summary::of_with_max(hist, hist.max()),
        service_ns: None,
        rate: RateReport {
            target: fixed.then_some(10_000),
            achieved: if fixed { 9_998.7 } else { 30_000.0 },
        },
        clock_read_ns: 25.0,
        histograms: Some(Histograms {
            rtt: hist.clone(),
            service: None,
        }),
    }
}

pub fn jitter_report(condition: Condition, config: Config) -> JitterReport {
    let noisy_default = condition == Condition::Noisy && config == Config::Default;
    let (per_sec, max_gap_ns) = if noisy_default {
        (950.0, 3_400_000)
    } else {
        (4.0, 18_000)
    };
    let mut gaps = new_histogram();
    record(&mut gaps, max_gap_ns);
    JitterReport::Spin(SpinReport {
        threshold_ns: 5_000,
        duration_ns: 2_000_000_000,
        rt_priority: None,
        cpus: vec![SpinCpuReport {
            cpu: 1,
            runtime_ns: 2_000_000_000,
            iterations: 80_000_000,
            min_iteration_ns: 20,
            interruptions: (per_sec * 2.0) as u64,
            interruptions_per_sec: per_sec,
            stolen_ns: (per_sec * 2000.0) as u64,
            stolen_share: per_sec * 1e-6,
            max_gap_ns,
            gaps: Summary::of_with_max(&gaps, max_gap_ns),
        }],
    })
}

/// A hand-made row: p99 and p99.9 between p50 and p99.99, max twice p99.99, and a three-point
/// spectrum.
pub fn cell(path: Layer, condition: Condition, config: Config, p50: u64, p99_99: u64) -> Row {
    let mid = (p50 + p99_99) / 2;
    Row {
        path,
        condition,
        config,
        rtt_ns: Percentiles {
            p50,
            p99: mid,
            p99_9: mid,
            p99_99,
            max: p99_99 * 2,
        },
        samples: 10_000,
        lost: 0,
        fixed_rate: None,
        jitter: None,
        interference: None,
        spectrum: vec![
            SpectrumPoint {
                percentile: 50.0,
                ns: p50,
            },
            SpectrumPoint {
                percentile: 99.99,
                ns: p99_99,
            },
            SpectrumPoint {
                percentile: 100.0,
                ns: p99_99 * 2,
            },
        ],
    }
}

/// `empty_report()` holding `rows`.
pub fn report_of(rows: Vec<Row>) -> LabReport {
    LabReport {
        rows,
        ..empty_report()
    }
}
