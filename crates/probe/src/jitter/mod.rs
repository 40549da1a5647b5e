//! `probe jitter`: how much of each CPU is taken away from a thread that wants all of it.
//!
//! In spin mode (sysjitter, oslat) a thread pinned to each CPU reads the clock in a tight
//! loop; a gap between two reads above the threshold is an interruption (an IRQ, a softirq,
//! a kthread, another task, the hypervisor), and the gaps add up to the stolen time. In timer
//! mode (cyclictest) each thread sleeps to absolute deadlines and records its wake-up lateness.
//! `lab` calls [`run`] on the exclusive CPUs while it measures the network.

mod config;
mod error;
mod realtime;
mod report;
mod spin;
mod threads;
mod timer;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use nearnative_host::cpus::online_cpus;
use nearnative_host::Root;

pub use config::{
    JitterConfig, Mode, MAX_DURATION, MAX_INTERVAL, MAX_THRESHOLD_NS, MIN_INTERVAL, RT_PRIORITIES,
};
pub use error::JitterError;
pub use report::{JitterReport, SpinCpuReport, SpinReport, TimerCpuReport, TimerReport};

use crate::clock::now_ns;
use crate::stats::new_histogram;

/// Measures every CPU of `config` for `config.duration`, or until `stop` is set, and returns
/// one row per CPU. The request is checked against the host's online CPUs first.
pub fn run(config: &JitterConfig, stop: &AtomicBool) -> Result<JitterReport, JitterError> {
    let online = online_cpus(&Root::default()).map_err(JitterError::Online)?;
    config.validate(&online)?;
    match config.mode {
        Mode::Spin => run_spin(config, stop).map(JitterReport::Spin),
        Mode::Timer { interval } => run_timer(config, interval, stop).map(JitterReport::Timer),
    }
}

fn run_spin(config: &JitterConfig, stop: &AtomicBool) -> Result<SpinReport, JitterError> {
    let duration_ns = duration_ns(config);
    let cpus = threads::on_each_cpu(
        &config.cpus,
        config.rt_priority,
        new_histogram,
        |cpu, mut gaps| {
            let deadline = now_ns() + duration_ns;
            let tally = spin::spin(config.threshold_ns, deadline, stop, &mut gaps);
            Ok(spin::cpu_report(cpu, &tally, &gaps))
        },
    )?;
    Ok(SpinReport {
        threshold_ns: config.threshold_ns,
        duration_ns,
        rt_priority: config.rt_priority,
        cpus,
    })
}

fn run_timer(
    config: &JitterConfig,
    interval: Duration,
    stop: &AtomicBool,
) -> Result<TimerReport, JitterError> {
    let duration_ns = duration_ns(config);
    // Validation bounds the interval to a second.
    let interval_ns = interval.as_nanos() as u64;
    let cpus = threads::on_each_cpu(
        &config.cpus,
        config.rt_priority,
        new_histogram,
        |cpu, mut lateness| {
            let deadline = now_ns() + duration_ns;
            let tally = timer::tick(
                interval_ns,
                config.threshold_ns,
                deadline,
                stop,
                &mut lateness,
            )
            .map_err(|source| JitterError::Timer { cpu, source })?;
            Ok(timer::cpu_report(cpu, &tally, &lateness))
        },
    )?;
    Ok(TimerReport {
        threshold_ns: config.threshold_ns,
        duration_ns,
        interval_ns,
        rt_priority: config.rt_priority,
        cpus,
    })
}

/// The run's length in ns; validation bounds it to a day, far below `u64::MAX`.
fn duration_ns(config: &JitterConfig) -> u64 {
    u64::try_from(config.duration.as_nanos()).unwrap_or(u64::MAX)
}
