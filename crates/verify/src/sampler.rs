//! The sampling loop: read the counters, follow the candidate threads for the duration, read
//! the counters again.
//!
//! The loop runs on its own thread, named `nn-verify`, pinned first thing to the housekeeping
//! CPUs (online minus exclusive) so the measurement never lands on what it measures. Its
//! duration is bounded by the spec and by the caller's stop flag, checked every poll.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nearnative_host::cpus::online_cpus;
use nearnative_host::{CpuSet, Root, Unknown};
use nearnative_sys::pin::pin_current_thread_to;
use nix::time::{clock_gettime, ClockId};

use crate::counters::CounterTable;
use crate::cpu_busy::{self, CpuBusy};
use crate::irqs::{
    irq_activity, named_counts, read_interrupts, read_softirqs, InterruptsReading, IrqActivity,
    NamedCount,
};
use crate::threads::{Targets, Tracker};
use crate::unknowns::UnknownLog;
use crate::{Sample, SampleSpec, SamplerCost, VerifyError};

/// The sampler stretches its poll period so that a round takes at most a quarter of it: on a
/// host with tens of thousands of candidate threads it polls less often rather than use more
/// than a quarter of a housekeeping CPU.
const MAX_BUSY_SHARE_INVERSE: u32 = 4;
/// Listing every thread again is the dearest step on a big host, and new threads are rare:
/// the rescan interval stretches so that listing takes at most a tenth of it.
const MAX_RESCAN_SHARE_INVERSE: u32 = 10;

/// Samples the exclusive CPUs of `spec` for `duration`, or until `stop` is set.
///
/// Fails only on a refused spec (see [`SampleSpec::check`]; offline CPUs; a scope cgroup
/// that does not exist) or when the sampling thread cannot start; whatever cannot be
/// read on the host is an unknown inside the sample.
pub fn sample(
    root: &Root,
    spec: &SampleSpec,
    duration: Duration,
    stop: &AtomicBool,
) -> Result<Sample, VerifyError> {
    sample_notifying(root, spec, duration, stop, || {})
}

/// [`sample`], calling `started` the moment the window opens (once every followed thread has
/// its baseline and the counters are read): a caller that times something else over the same
/// window (a spin-loop probe) starts it then, and ends the sample with `stop`.
pub fn sample_notifying(
    root: &Root,
    spec: &SampleSpec,
    duration: Duration,
    stop: &AtomicBool,
    started: impl FnOnce() + Send,
) -> Result<Sample, VerifyError> {
    spec.check(duration)?;
    check_online(root, &spec.cpus)?;
    if let Some(scope) = &spec.scope {
        scope.check_exists(root)?;
    }
    std::thread::scope(|scope| {
        let sampler = std::thread::Builder::new()
            .name("nn-verify".to_owned())
            .spawn_scoped(scope, || run(root, spec, duration, stop, started))
            .map_err(VerifyError::Spawn)?;
        sampler.join().map_err(|_| VerifyError::SamplerPanicked)
    })
}

fn run(
    root: &Root,
    spec: &SampleSpec,
    duration: Duration,
    stop: &AtomicBool,
    started_window: impl FnOnce(),
) -> Sample {
    let pinned_to = pin_to_housekeeping(root, &spec.cpus);
    let cpu_start = thread_cpu_ns();
    let mut unknowns = UnknownLog::default();
    // Listing every thread can take long on a big host: the sample starts once the followed
    // threads have their baselines, so the whole duration is measured.
    let mut tracker = Tracker::new(root, spec);
    tracker.rescan(&mut unknowns);
    let targets = Targets::start(root, spec.targets.iter().copied(), &mut unknowns);
    tracker.rebaseline(&mut unknowns);
    let counters_start = Counters::read(root, &mut unknowns);
    let started = Instant::now();
    started_window();
    let followed = follow(&mut tracker, spec, started + duration, stop, &mut unknowns);
    let targets = targets.finish(root, &tracker.target_pids, &mut unknowns);
    let counters_end = Counters::read(root, &mut unknowns);
    let duration_ns = nanos(started.elapsed());
    let (irqs, softirqs, cpu_busy) =
        counters_start.activity(counters_end, root, &spec.cpus, &mut unknowns);
    let cost = SamplerCost {
        cpu_time_ns: thread_cpu_ns().saturating_sub(cpu_start),
        pinned_to,
        longest_poll_period_ns: nanos(followed.longest_period),
        threads: tracker.cost,
    };
    Sample {
        cpus: spec.cpus.clone(),
        target_tids: spec.targets.clone(),
        scope: spec.scope.clone(),
        duration_ns,
        stopped_early: followed.stopped_early,
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

/// How the polling loop ended.
struct Followed {
    stopped_early: bool,
    longest_period: Duration,
}

/// Polls the candidates until `deadline` or `stop`, listing `/proc` again every rescan
/// interval, then reads every candidate once more.
fn follow(
    tracker: &mut Tracker,
    spec: &SampleSpec,
    deadline: Instant,
    stop: &AtomicBool,
    unknowns: &mut UnknownLog,
) -> Followed {
    let mut next_poll = Instant::now();
    let mut period = spec.poll_interval;
    let mut longest_period = period;
    let mut last_rescan = Instant::now();
    let mut rescan_interval = spec.rescan_interval;
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
        if last_rescan.elapsed() >= rescan_interval {
            tracker.rescan(unknowns);
            last_rescan = Instant::now();
            rescan_interval = spec
                .rescan_interval
                .max(last_rescan.duration_since(round) * MAX_RESCAN_SHARE_INVERSE);
        }
        tracker.poll(unknowns);
        period = spec
            .poll_interval
            .max(round.elapsed() * MAX_BUSY_SHARE_INVERSE);
        longest_period = longest_period.max(period);
    }
    tracker.final_poll(unknowns);
    Followed {
        stopped_early,
        longest_period,
    }
}

/// One reading of the per-CPU counter files; `None` for a file that could not be read.
struct Counters {
    interrupts: Option<(InterruptsReading, Vec<Unknown>)>,
    softirqs: Option<CounterTable<String>>,
    stat: Option<cpu_busy::StatReading>,
}

type Activity = (
    Option<IrqActivity>,
    Option<Vec<NamedCount>>,
    Option<Vec<CpuBusy>>,
);

impl Counters {
    fn read(root: &Root, unknowns: &mut UnknownLog) -> Counters {
        Counters {
            interrupts: read_interrupts(root).map_err(|u| unknowns.push(u)).ok(),
            softirqs: read_softirqs(root).map_err(|u| unknowns.push(u)).ok(),
            stat: cpu_busy::read(root).map_err(|u| unknowns.push(u)).ok(),
        }
    }

    /// What happened on `cpus` between this reading and `end`; a file missing at either end
    /// gives `None`. Bad rows of `/proc/interrupts` become unknowns.
    fn activity(
        self,
        end: Counters,
        root: &Root,
        cpus: &CpuSet,
        unknowns: &mut UnknownLog,
    ) -> Activity {
        let irqs = match (self.interrupts, end.interrupts) {
            (Some((start, bad_start)), Some((end, bad_end))) => {
                bad_start
                    .into_iter()
                    .chain(bad_end)
                    .for_each(|u| unknowns.push(u));
                Some(irq_activity(root, &start, &end, cpus))
            }
            _ => None,
        };
        let softirqs = match (self.softirqs, end.softirqs) {
            (Some(start), Some(end)) => Some(named_counts(&start, &end, cpus, &BTreeMap::new())),
            _ => None,
        };
        let tick_ns = cpu_busy::tick_ns();
        let busy = match (self.stat, end.stat) {
            (Some(start), Some(end)) => Some(cpu_busy::busy(&start, &end, cpus, tick_ns)),
            _ => None,
        };
        (irqs, softirqs, busy)
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
