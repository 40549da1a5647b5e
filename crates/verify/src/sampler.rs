//! The sampling loop: read the counters, follow the candidate threads for the duration, read
//! the counters again.
//!
//! The loop runs on its own thread, named `nn-verify`, pinned first thing to the housekeeping
//! CPUs (online minus exclusive) so the measurement never lands on what it measures. Its
//! duration is bounded by the spec and by the caller's stop flag, checked every poll.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nearnative_host::cpus::online_cpus;
use nearnative_host::{CpuSet, Root};
use nearnative_probe::pin::pin_current_thread_to;
use nix::time::{clock_gettime, ClockId};

use crate::cpu_busy;
use crate::irqs::{irq_activity, named_counts, read_interrupts, read_softirqs};
use crate::threads::{Targets, Tracker};
use crate::unknowns::UnknownLog;
use crate::{Sample, SampleSpec, SamplerCost, VerifyError};

/// The sampler stretches its poll period so that a round takes at most a quarter of it: on a
/// host with tens of thousands of candidate threads it polls less often rather than use more
/// than a quarter of a housekeeping CPU.
const MAX_BUSY_SHARE_INVERSE: u32 = 4;

/// Samples the exclusive CPUs of `spec` for `duration`, or until `stop` is set.
///
/// Fails only on a refused spec or when the sampling thread cannot start; whatever cannot be
/// read on the host is an unknown inside the sample.
pub fn sample(
    root: &Root,
    spec: &SampleSpec,
    duration: Duration,
    stop: &AtomicBool,
) -> Result<Sample, VerifyError> {
    spec.check(duration)?;
    check_online(root, &spec.cpus)?;
    std::thread::scope(|scope| {
        let sampler = std::thread::Builder::new()
            .name("nn-verify".to_owned())
            .spawn_scoped(scope, || run(root, spec, duration, stop))
            .map_err(VerifyError::Spawn)?;
        sampler.join().map_err(|_| VerifyError::SamplerPanicked)
    })
}

fn run(root: &Root, spec: &SampleSpec, duration: Duration, stop: &AtomicBool) -> Sample {
    let pinned_to = pin_to_housekeeping(root, &spec.cpus);
    let cpu_start = thread_cpu_ns();
    let mut unknowns = UnknownLog::default();
    // Listing every thread can take long on a big host: the sample starts once the followed
    // threads have their baselines, so the whole duration is measured.
    let mut tracker = Tracker::new(root, spec);
    tracker.rescan(&mut unknowns);
    let targets = Targets::start(root, spec.targets.iter().copied(), &mut unknowns);
    tracker.rebaseline(&mut unknowns);
    let interrupts_start = read_interrupts(root).map_err(|u| unknowns.push(u)).ok();
    let softirqs_start = read_softirqs(root).map_err(|u| unknowns.push(u)).ok();
    let stat_start = cpu_busy::read(root).map_err(|u| unknowns.push(u)).ok();
    let started = Instant::now();

    let deadline = started + duration;
    let mut next_poll = Instant::now();
    let mut period = spec.poll_interval;
    let mut longest_period = period;
    let mut last_rescan = Instant::now();
    let mut stopped_early = false;
    while Instant::now() < deadline {
        if stop.load(Ordering::Relaxed) {
            stopped_early = true;
            break;
        }
        // Polls keep a fixed period: the time a poll takes is not added to the interval.
        next_poll = (next_poll + period).min(deadline);
        std::thread::sleep(next_poll.saturating_duration_since(Instant::now()));
        let round = Instant::now();
        if last_rescan.elapsed() >= spec.rescan_interval {
            tracker.rescan(&mut unknowns);
            last_rescan = Instant::now();
        }
        tracker.poll(&mut unknowns);
        period = spec
            .poll_interval
            .max(round.elapsed() * MAX_BUSY_SHARE_INVERSE);
        longest_period = longest_period.max(period);
    }
    tracker.final_poll(&mut unknowns);

    let targets = targets.finish(root, &tracker.target_pids, &mut unknowns);
    let interrupts_end = read_interrupts(root).map_err(|u| unknowns.push(u)).ok();
    let softirqs_end = read_softirqs(root).map_err(|u| unknowns.push(u)).ok();
    let stat_end = cpu_busy::read(root).map_err(|u| unknowns.push(u)).ok();
    let duration_ns = nanos(started.elapsed());
    let irqs = match (interrupts_start, interrupts_end) {
        (Some((start, bad_start)), Some((end, bad_end))) => {
            bad_start
                .into_iter()
                .chain(bad_end)
                .for_each(|u| unknowns.push(u));
            Some(irq_activity(root, &start, &end, &spec.cpus))
        }
        _ => None,
    };
    let softirqs = match (softirqs_start, softirqs_end) {
        (Some(start), Some(end)) => {
            Some(named_counts(&start, &end, &spec.cpus, &Default::default()))
        }
        _ => None,
    };
    let cpu_busy = match (stat_start, stat_end) {
        (Some(start), Some(end)) => Some(cpu_busy::busy(
            &start,
            &end,
            &spec.cpus,
            cpu_busy::tick_ns(),
        )),
        _ => None,
    };
    let cost = SamplerCost {
        cpu_time_ns: thread_cpu_ns().saturating_sub(cpu_start),
        pinned_to,
        longest_poll_period_ns: nanos(longest_period),
        threads: tracker.cost,
    };
    Sample {
        cpus: spec.cpus.clone(),
        target_tids: spec.targets.clone(),
        scope: spec.scope.clone(),
        duration_ns,
        stopped_early,
        irqs,
        softirqs,
        cpu_busy,
        threads: tracker.finish(),
        targets,
        sampler: cost,
        unknowns_dropped: unknowns.dropped,
        unknowns: unknowns.into_vec(),
    }
}

/// Refuses exclusive CPUs that are not online, naming the first; when the online list cannot
/// be read, sampling goes ahead and the counters show what they show.
fn check_online(root: &Root, cpus: &CpuSet) -> Result<(), VerifyError> {
    let Ok(online) = online_cpus(root) else {
        return Ok(());
    };
    match cpus.difference(&online).first() {
        Some(cpu) => Err(VerifyError::InvalidSpec {
            reason: format!("CPU {cpu} is not online (online CPUs: {online})"),
        }),
        None => Ok(()),
    }
}

/// Pins the calling thread to the online CPUs outside `exclusive`; `None` when there are
/// none, the root is not the live host, or the kernel refused.
fn pin_to_housekeeping(root: &Root, exclusive: &CpuSet) -> Option<CpuSet> {
    if !root.is_live() {
        return None;
    }
    let housekeeping = online_cpus(root).ok()?.difference(exclusive);
    if housekeeping.is_empty() {
        return None;
    }
    pin_current_thread_to(&housekeeping).ok()?;
    Some(housekeeping)
}

/// CPU time of the calling thread; 0 if the clock cannot be read (it always can on Linux).
fn thread_cpu_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| nanos(Duration::from(t)))
        .unwrap_or(0)
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
