//! The timer loop, in the style of cyclictest: sleep until each absolute deadline on
//! `CLOCK_MONOTONIC` and record how late the wake-up came.
//!
//! Absolute deadlines (`TIMER_ABSTIME`) keep the period from drifting by the loop's own cost.
//! A wake-up that comes after the next deadline has already passed skips the missed periods
//! (counted as overruns) instead of firing a burst of instant wake-ups that would hide the
//! stall behind zero-lateness samples.
//!
//! The thread's timer slack is set to 1 ns first: a normal-priority thread otherwise gets the
//! kernel's default 50 µs of deliberate timer coalescing added to every wake-up, which is a
//! setting, not latency. (SCHED_FIFO threads get no slack anyway.)

use std::sync::atomic::{AtomicBool, Ordering};

use hdrhistogram::Histogram;
use nix::errno::Errno;
use nix::sys::prctl::set_timerslack;
use nix::sys::time::TimeSpec;
use nix::time::{clock_nanosleep, ClockId, ClockNanosleepFlags};

use super::report::{per_sec, TimerCpuReport};
use crate::clock::now_ns;
use crate::stats::{record, Summary};

/// What one timer run saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TimerTally {
    pub runtime_ns: u64,
    pub wakeups: u64,
    pub late_wakeups: u64,
    pub overruns: u64,
    pub max_lateness_ns: u64,
}

/// Wakes every `interval_ns` until `deadline_ns` or `stop`, recording each wake-up's lateness
/// into `lateness` and counting those above `threshold_ns`. Sets the calling thread's timer
/// slack to the minimum.
pub(super) fn tick(
    interval_ns: u64,
    threshold_ns: u64,
    deadline_ns: u64,
    stop: &AtomicBool,
    lateness: &mut Histogram<u64>,
) -> Result<TimerTally, Errno> {
    set_timerslack(1)?;
    let start = now_ns();
    let mut tally = TimerTally {
        runtime_ns: 0,
        wakeups: 0,
        late_wakeups: 0,
        overruns: 0,
        max_lateness_ns: 0,
    };
    let mut next = start + interval_ns;
    let mut now = start;
    while now < deadline_ns && !stop.load(Ordering::Relaxed) {
        sleep_until(next)?;
        now = now_ns();
        let late = now.saturating_sub(next);
        record(lateness, late);
        tally.wakeups += 1;
        tally.late_wakeups += u64::from(late > threshold_ns);
        tally.max_lateness_ns = tally.max_lateness_ns.max(late);
        let missed = late / interval_ns;
        tally.overruns += missed;
        next += (missed + 1) * interval_ns;
    }
    tally.runtime_ns = now - start;
    Ok(tally)
}

/// Sleeps until `deadline_ns` on `CLOCK_MONOTONIC`, resuming after signals.
fn sleep_until(deadline_ns: u64) -> Result<(), Errno> {
    let at = TimeSpec::from_duration(std::time::Duration::from_nanos(deadline_ns));
    loop {
        match clock_nanosleep(
            ClockId::CLOCK_MONOTONIC,
            ClockNanosleepFlags::TIMER_ABSTIME,
            &at,
        ) {
            Err(Errno::EINTR) => continue,
            other => return other.map(drop),
        }
    }
}

/// The report row for `cpu`, from its tally and lateness histogram.
pub(super) fn cpu_report(
    cpu: u32,
    tally: &TimerTally,
    lateness: &Histogram<u64>,
) -> TimerCpuReport {
    TimerCpuReport {
        cpu,
        runtime_ns: tally.runtime_ns,
        wakeups: tally.wakeups,
        late_wakeups: tally.late_wakeups,
        late_per_sec: per_sec(tally.late_wakeups, tally.runtime_ns),
        overruns: tally.overruns,
        max_lateness_ns: tally.max_lateness_ns,
        lateness: Summary::of_with_max(lateness, tally.max_lateness_ns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn wakes_about_once_per_interval() {
        let mut lateness = new_histogram();
        let stop = AtomicBool::new(false);
        let deadline = now_ns() + 50_000_000;
        let tally = tick(1_000_000, 1_000_000, deadline, &stop, &mut lateness).unwrap();
        // 50 periods of 1 ms; a loaded machine may overrun some, never add any.
        assert!(tally.wakeups + tally.overruns >= 45, "{tally:?}");
        assert!(tally.wakeups + tally.overruns <= 52, "{tally:?}");
        assert_eq!(lateness.len(), tally.wakeups);
        assert!(tally.runtime_ns >= 50_000_000, "{tally:?}");
    }

    #[test]
    fn stop_before_start_takes_no_samples() {
        let mut lateness = new_histogram();
        let stop = AtomicBool::new(true);
        let tally = tick(1_000_000, 1_000, u64::MAX, &stop, &mut lateness).unwrap();
        assert_eq!(tally.wakeups, 0);
        assert_eq!(cpu_report(1, &tally, &lateness).lateness.max, 0);
    }
}
