//! `nearnative probe jitter`: per-CPU interruptions and stolen time (spin) or timer wake-up
//! lateness (timer). Parses the request, runs `nearnative_probe::jitter`, prints the report.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use nearnative_host::cpus::online_cpus;
use nearnative_host::{CpuSet, Root};
use nearnative_probe::jitter::{self, JitterConfig, JitterReport, Mode, SpinReport, TimerReport};
use nearnative_probe::stats::Summary;

use crate::duration::parse_duration;
use crate::output::{outln, print_json};

/// Timer period when `--mode timer` is given without `--interval-us`, as cyclictest's default.
const DEFAULT_INTERVAL_US: u64 = 1_000;

#[derive(Debug, clap::Args)]
pub struct JitterArgs {
    /// CPUs to measure, in the kernel's list form (e.g. `0-3,8`) [default: all online CPUs]
    #[arg(long, value_name = "LIST")]
    cpus: Option<String>,
    /// Spin: a gap between two clock reads above this counts as an interruption.
    /// Timer: a wake-up later than this counts as late [default: 1000 (spin), 100000 (timer)]
    #[arg(long, value_name = "N")]
    threshold_ns: Option<u64>,
    /// How long to measure each CPU, in seconds (fractions allowed, at most one day)
    #[arg(long, value_name = "S", default_value = "10")]
    duration: String,
    /// spin: sysjitter/oslat-style busy loop; timer: cyclictest-style periodic wake-ups
    #[arg(long, value_enum, default_value_t = ModeArg::Spin)]
    mode: ModeArg,
    /// Timer mode: the wake-up period in microseconds [default: 1000]
    #[arg(long, value_name = "US")]
    interval_us: Option<u64>,
    /// Run the measuring threads SCHED_FIFO at this priority (1-99). A spinning FIFO thread
    /// holds its CPU until real-time throttling (sched_rt_runtime_us) stops it.
    #[arg(long, value_name = "PRIO")]
    rt: Option<u8>,
    /// Print the report as JSON (schema: docs/probe-jitter.md)
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Spin,
    Timer,
}

pub fn run(args: JitterArgs) -> anyhow::Result<ExitCode> {
    let config = config(&args)?;
    // Ctrl-C ends the run early; the report covers the time measured until then.
    let stop = nearnative_sys::signal::stop_on_signals()?;
    let report = jitter::run(&config, stop)?;
    match args.json {
        true => print_json(&report)?,
        false => print_table(&report),
    }
    Ok(ExitCode::SUCCESS)
}

fn config(args: &JitterArgs) -> anyhow::Result<JitterConfig> {
    let cpus = match &args.cpus {
        Some(list) => CpuSet::parse_list(list).with_context(|| format!("--cpus {list:?}"))?,
        None => online_cpus(&Root::default()).context("listing the online CPUs")?,
    };
    let mode = match (args.mode, args.interval_us) {
        (ModeArg::Spin, Some(_)) => bail!("--interval-us applies to --mode timer only"),
        (ModeArg::Spin, None) => Mode::Spin,
        (ModeArg::Timer, interval_us) => Mode::Timer {
            interval: Duration::from_micros(interval_us.unwrap_or(DEFAULT_INTERVAL_US)),
        },
    };
    Ok(JitterConfig {
        threshold_ns: args.threshold_ns.unwrap_or(mode.default_threshold_ns()),
        rt_priority: args.rt,
        ..JitterConfig::new(cpus, duration(&args.duration)?, mode)
    })
}

/// The range is checked by the library, which knows the limits.
fn duration(text: &str) -> anyhow::Result<Duration> {
    parse_duration(text).map_err(|reason| anyhow::anyhow!("--duration {text:?}: {reason}"))
}

fn print_table(report: &JitterReport) {
    match report {
        JitterReport::Spin(spin) => print_spin(spin),
        JitterReport::Timer(timer) => print_timer(timer),
    }
}

fn print_spin(report: &SpinReport) {
    outln!(
        "spin: threshold {} ns, {:.2} s{}; FLOOR = the loop's cheapest iteration; times in µs",
        report.threshold_ns,
        seconds(report.duration_ns),
        rt_note(report.rt_priority),
    );
    outln!(
        "{:>4} {:>9} {:>8} {:>10} {:>10} {:>12} {:>8} {}",
        "CPU",
        "RUNTIME_S",
        "FLOOR_NS",
        "INTERRUPTS",
        "PER_S",
        "STOLEN_US",
        "STOLEN%",
        percentile_header(report.cpus.first().map(|c| &c.gaps), "MAX_GAP"),
    );
    for cpu in &report.cpus {
        outln!(
            "{:>4} {:>9.2} {:>8} {:>10} {:>10.1} {:>12} {:>8.4} {}",
            cpu.cpu,
            seconds(cpu.runtime_ns),
            cpu.min_iteration_ns,
            cpu.interruptions,
            cpu.interruptions_per_sec,
            micros(cpu.stolen_ns),
            cpu.stolen_share * 100.0,
            percentile_cells(&cpu.gaps, cpu.max_gap_ns),
        );
    }
}

fn print_timer(report: &TimerReport) {
    outln!(
        "timer: interval {} µs, threshold {} ns, {:.2} s{}; lateness in µs",
        report.interval_ns / 1_000,
        report.threshold_ns,
        seconds(report.duration_ns),
        rt_note(report.rt_priority),
    );
    outln!(
        "{:>4} {:>9} {:>10} {:>8} {:>8} {:>8} {:>9} {}",
        "CPU",
        "RUNTIME_S",
        "WAKEUPS",
        "LATE",
        "LATE/S",
        "OVERRUNS",
        "MIN",
        percentile_header(report.cpus.first().map(|c| &c.lateness), "MAX"),
    );
    for cpu in &report.cpus {
        outln!(
            "{:>4} {:>9.2} {:>10} {:>8} {:>8.1} {:>8} {:>9} {}",
            cpu.cpu,
            seconds(cpu.runtime_ns),
            cpu.wakeups,
            cpu.late_wakeups,
            cpu.late_per_sec,
            cpu.overruns,
            micros(cpu.lateness.min),
            percentile_cells(&cpu.lateness, cpu.max_lateness_ns),
        );
    }
}

/// Column titles for the percentile cells, labelled as [`Summary::percentiles`] labels them.
fn percentile_header(any_row: Option<&Summary>, max_label: &str) -> String {
    let labels = any_row.map(Summary::percentiles).unwrap_or_default();
    let mut cells: Vec<String> = labels.iter().map(|(l, _)| format!("{l:>9}")).collect();
    cells.push(format!("{max_label:>10}"));
    cells.join(" ")
}

/// Percentiles, then the exact maximum. HDR reports a bucket's top, which can exceed the exact
/// maximum by its 0.1% precision, so cells are capped at `max_ns` to read consistently.
fn percentile_cells(summary: &Summary, max_ns: u64) -> String {
    let mut cells: Vec<String> = summary
        .percentiles()
        .iter()
        .map(|(_, ns)| format!("{:>9}", micros((*ns).min(max_ns))))
        .collect();
    cells.push(format!("{:>10}", micros(max_ns)));
    cells.join(" ")
}

fn rt_note(priority: Option<u8>) -> String {
    priority.map_or_else(String::new, |p| format!(", SCHED_FIFO {p}"))
}

fn micros(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1_000.0)
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_or_name_the_flag() {
        let cases = [
            ("whole", "2", Some(Duration::from_secs(2))),
            ("with a unit", "500ms", Some(Duration::from_millis(500))),
            ("fraction", "0.25", Some(Duration::from_millis(250))),
            (
                "zero passes here, the library refuses it",
                "0",
                Some(Duration::ZERO),
            ),
            ("word", "ten", None),
            ("negative", "-1", None),
            ("infinite", "inf", None),
            ("beyond Duration", "1e30", None),
        ];
        for (what, text, want) in cases {
            match (duration(text), want) {
                (Ok(got), Some(want)) => assert_eq!(got, want, "{what}"),
                (Err(err), None) => assert!(err.to_string().contains("--duration"), "{what}"),
                (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }
}
