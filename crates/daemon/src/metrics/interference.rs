//! The interference counters of each workload: what disturbed its exclusive CPUs since the
//! daemon first sampled it, read at every sweep at the cost of a few file reads.
//!
//! Unlike `verify`'s sampler, which follows every thread that may run on the exclusive CPUs
//! for a while, this one only compares whole-CPU totals between sweeps:
//! - **IRQs**: the device lines of `/proc/interrupts` (numbered rows; the per-CPU named rows
//!   such as the timer tick are not device interrupts), summed over the exclusive CPUs.
//! - **Foreign run time**: the exclusive CPUs' run time (`rq_cpu_time` of `/proc/schedstat`,
//!   or on a kernel without it the busy time of `/proc/stat`, tick-grained and including
//!   interrupt time) minus the run time of the workload's own threads
//!   (`/proc/PID/task/TID/schedstat`). The kernel credits a CPU's run time when a task
//!   leaves it, so the difference can dip below zero while a thread keeps running; the
//!   counter reports the largest difference reached, so it never goes back.
//! - **Preemptions**: the growth of `nonvoluntary_ctxt_switches` of the workload's exclusive
//!   threads (`/proc/PID/task/TID/status`): each is something else taking the CPU from a
//!   thread that still wanted it.
//!
//! Threads come and go between sweeps. A thread first seen now has its whole run time
//! credited as the workload's own (it was most likely born since the last sweep; crediting
//! too much can hide foreign time, never invent it), while its preemptions count from now
//! (those before were not on our watch). A thread that exited since the last sweep loses its
//! run time of the last interval, which shows as foreign.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::path::PathBuf;

use nearnative_host::tasks::parse_context_switches;
use nearnative_host::{CpuSet, ReadError, Root, Unknown};
use nearnative_verify::cpu_busy::{self, StatReading};
use nearnative_verify::run_queues::read_cpu_run_time;
use nearnative_verify::threads::parse_schedstat;
use nearnative_verify::{advance, deltas, read_interrupts, CounterTable};

use crate::status::Interference;

/// A host file the sampler needs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("{object}: {}: {reason}", path.display())]
    Host {
        object: String,
        path: PathBuf,
        reason: String,
    },
    #[error("thread {tid} of process {pid}: {source}")]
    Thread {
        pid: u32,
        tid: u32,
        #[source]
        source: ReadError,
    },
}

impl From<Unknown> for SampleError {
    fn from(unknown: Unknown) -> Self {
        SampleError::Host {
            object: unknown.object,
            path: unknown.path,
            reason: unknown.reason,
        }
    }
}

/// The running totals of every workload sampled, by workload key.
#[derive(Debug)]
pub struct InterferenceSampler {
    root: Root,
    tick_ns: u64,
    workloads: BTreeMap<String, Tracked>,
}

impl InterferenceSampler {
    pub fn new(root: Root) -> Self {
        InterferenceSampler {
            root,
            tick_ns: cpu_busy::tick_ns(),
            workloads: BTreeMap::new(),
        }
    }

    /// Counts since the first sample of `workload` (all zero at that first sample) on
    /// `exclusive_cpus`, with `own_threads` (pid, tid) as the workload's exclusive threads.
    ///
    /// Fails when `/proc/interrupts`, or both `/proc/schedstat` and `/proc/stat`, cannot be
    /// read, or a thread's files cannot be read for another reason than its exit; the totals
    /// are then left as they were.
    pub fn sample(
        &mut self,
        workload: &str,
        exclusive_cpus: &CpuSet,
        own_threads: &[(u32, u32)],
    ) -> Result<Interference, SampleError> {
        let now = Reading::take(&self.root, own_threads)?;
        let tracked = match self.workloads.entry(workload.to_owned()) {
            Entry::Occupied(entry) => {
                let tracked = entry.into_mut();
                tracked.advance(now, exclusive_cpus, self.tick_ns);
                tracked
            }
            Entry::Vacant(entry) => entry.insert(Tracked {
                last: now,
                totals: Totals::default(),
            }),
        };
        Ok(tracked.totals.interference())
    }

    /// Drops `workload`'s totals: sampled again, it starts from zero.
    pub fn forget(&mut self, workload: &str) {
        self.workloads.remove(workload);
    }

    /// Keeps the totals of the workloads `keep` says yes to, dropping the rest.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.workloads.retain(|workload, _| keep(workload));
    }
}

#[derive(Debug)]
struct Tracked {
    last: Reading,
    totals: Totals,
}

impl Tracked {
    fn advance(&mut self, now: Reading, cpus: &CpuSet, tick_ns: u64) {
        let totals = &mut self.totals;
        let irqs = irqs_between(&self.last.irq_lines, &now.irq_lines, cpus);
        let cpu_run_ns = self
            .last
            .cpu_run_time
            .run_ns_until(&now.cpu_run_time, cpus, tick_ns);
        let (own_run_ns, preemptions) = own_between(&self.last.threads, &now.threads);
        totals.irqs = totals.irqs.saturating_add(irqs);
        totals.cpu_run_ns = totals.cpu_run_ns.saturating_add(cpu_run_ns);
        totals.own_run_ns = totals.own_run_ns.saturating_add(own_run_ns);
        totals.preemptions = totals.preemptions.saturating_add(preemptions);
        totals.foreign_run_ns = totals
            .foreign_run_ns
            .max(totals.cpu_run_ns.saturating_sub(totals.own_run_ns));
        self.last = now;
    }
}

/// Everything since the first sample; each only grows.
#[derive(Debug, Default)]
struct Totals {
    irqs: u64,
    /// Run time on the exclusive CPUs, of any thread.
    cpu_run_ns: u64,
    /// Run time of the workload's own threads, wherever they ran.
    own_run_ns: u64,
    /// The largest `cpu_run_ns - own_run_ns` reached.
    foreign_run_ns: u64,
    preemptions: u64,
}

impl Totals {
    fn interference(&self) -> Interference {
        Interference {
            irqs: self.irqs,
            foreign_runtime_ns: self.foreign_run_ns,
            preemptions: self.preemptions,
        }
    }
}

/// One sweep's reading of the host-wide counters and of the workload's threads.
#[derive(Debug)]
struct Reading {
    irq_lines: CounterTable<u32>,
    cpu_run_time: CpuRunTime,
    threads: BTreeMap<(u32, u32), ThreadReading>,
}

impl Reading {
    fn take(root: &Root, own_threads: &[(u32, u32)]) -> Result<Reading, SampleError> {
        // A malformed row is left out of both readings alike: it only goes uncounted.
        let (interrupts, _malformed_rows) = read_interrupts(root)?;
        let mut threads = BTreeMap::new();
        for &(pid, tid) in own_threads {
            if let Some(reading) = ThreadReading::take(root, pid, tid)? {
                threads.insert((pid, tid), reading);
            }
        }
        Ok(Reading {
            irq_lines: interrupts.lines,
            cpu_run_time: CpuRunTime::take(root)?,
            threads,
        })
    }
}

/// The run time of each CPU, from the best source the kernel has.
#[derive(Debug)]
enum CpuRunTime {
    /// `/proc/schedstat`: nanoseconds per CPU.
    SchedStat(BTreeMap<u32, u64>),
    /// `/proc/stat`: busy ticks per CPU, where the kernel lacks `CONFIG_SCHEDSTATS`.
    Stat(StatReading),
}

impl CpuRunTime {
    fn take(root: &Root) -> Result<CpuRunTime, SampleError> {
        match read_cpu_run_time(root) {
            Ok(by_cpu) => Ok(CpuRunTime::SchedStat(by_cpu)),
            Err(_) => Ok(CpuRunTime::Stat(cpu_busy::read(root)?)),
        }
    }

    /// The run time on `cpus` from this reading to `later`, in nanoseconds.
    fn run_ns_until(&self, later: &CpuRunTime, cpus: &CpuSet, tick_ns: u64) -> u64 {
        match (self, later) {
            (CpuRunTime::SchedStat(before), CpuRunTime::SchedStat(after)) => cpus
                .iter()
                .filter_map(|cpu| Some(advance(*before.get(&cpu)?, *after.get(&cpu)?)))
                .fold(0, u64::saturating_add),
            (CpuRunTime::Stat(before), CpuRunTime::Stat(after)) => {
                cpu_busy::busy(before, after, cpus, tick_ns)
                    .iter()
                    .map(|cpu| cpu.busy_ns)
                    .fold(0, u64::saturating_add)
            }
            // The source changed between two sweeps (a file that was readable no longer
            // is): the two readings cannot be compared, and this interval counts nothing.
            _ => 0,
        }
    }
}

/// One thread's counters.
#[derive(Debug, Clone, Copy)]
struct ThreadReading {
    run_ns: u64,
    nonvoluntary_switches: u64,
}

impl ThreadReading {
    /// `None` when the thread has exited.
    fn take(root: &Root, pid: u32, tid: u32) -> Result<Option<ThreadReading>, SampleError> {
        let dir = format!("/proc/{pid}/task/{tid}");
        let read = || -> Result<ThreadReading, ReadError> {
            let sched = root.read_parsed(format!("{dir}/schedstat"), parse_schedstat)?;
            let switches = root.read_parsed(format!("{dir}/status"), parse_context_switches)?;
            Ok(ThreadReading {
                run_ns: sched.runtime_ns,
                nonvoluntary_switches: switches.nonvoluntary,
            })
        };
        match read() {
            Ok(reading) => Ok(Some(reading)),
            Err(e) if exited(&e) => Ok(None),
            Err(source) => Err(SampleError::Thread { pid, tid, source }),
        }
    }
}

/// A thread that exits between the opening and the reading of its file gives ESRCH.
fn exited(err: &ReadError) -> bool {
    match err {
        ReadError::NotFound { .. } => true,
        ReadError::Io { source, .. } => source.raw_os_error() == Some(libc::ESRCH),
        _ => false,
    }
}

/// Device interrupts on `cpus` between two readings.
fn irqs_between(before: &CounterTable<u32>, after: &CounterTable<u32>, cpus: &CpuSet) -> u64 {
    deltas(before, after, cpus)
        .values()
        .flatten()
        .map(|count| count.count)
        .fold(0, u64::saturating_add)
}

/// The own threads' run time and preemptions between two readings (see the module comment
/// for threads seen only in `after`).
fn own_between(
    before: &BTreeMap<(u32, u32), ThreadReading>,
    after: &BTreeMap<(u32, u32), ThreadReading>,
) -> (u64, u64) {
    after
        .iter()
        .map(|(key, now)| match before.get(key) {
            Some(last) => (
                advance(last.run_ns, now.run_ns),
                advance(last.nonvoluntary_switches, now.nonvoluntary_switches),
            ),
            None => (now.run_ns, 0),
        })
        .fold((0, 0), |(run, preempt), (r, p)| {
            (run.saturating_add(r), preempt.saturating_add(p))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_workloads_kept_stay_tracked() {
        let mut sampler = InterferenceSampler::new(Root::default());
        let cpus = CpuSet::parse_list("0").unwrap();
        for workload in ["pid:10", "pid:11"] {
            sampler.sample(workload, &cpus, &[]).unwrap();
        }
        sampler.retain(|workload| workload == "pid:10");
        let tracked: Vec<&String> = sampler.workloads.keys().collect();
        assert_eq!(tracked, ["pid:10"]);
    }
}
