//! The workload's own threads: how much they ran and how often they were switched out,
//! read at the start and the end of the sample.
//!
//! A thread id is also a directory under `/proc` (hidden from listings when it is not a
//! process leader), so `/proc/TID/task/TID` reaches any thread without knowing its process.
//! Nonvoluntary switches count the times the thread was preempted while it still wanted the
//! CPU: on an exclusive CPU, each is something else running in its place.

use std::collections::BTreeMap;

use nearnative_host::tasks::{parse_context_switches, parse_stat, ContextSwitches};
use nearnative_host::{ReadError, Root};
use serde::{Deserialize, Serialize};

use super::{parse_schedstat, SchedStat};
use crate::counters::advance;
use crate::unknowns::UnknownLog;

/// One target thread over the sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetActivity {
    pub tid: u32,
    /// The process, when the thread was listed under `/proc`.
    pub pid: Option<u32>,
    pub comm: String,
    /// CPU time during the sample, in nanoseconds.
    pub runtime_ns: u64,
    /// Time spent runnable but waiting for a CPU during the sample, in nanoseconds.
    pub wait_ns: u64,
    pub voluntary_switches: u64,
    pub nonvoluntary_switches: u64,
    /// The CPU the thread was on at the end.
    pub last_cpu: u32,
}

#[derive(Debug, Clone)]
struct Reading {
    comm: String,
    sched: SchedStat,
    switches: ContextSwitches,
    processor: u32,
}

/// The target threads' readings at the start of the sample.
#[derive(Debug, Default)]
pub struct Targets {
    start: BTreeMap<u32, Reading>,
}

impl Targets {
    /// Reads every target; one that cannot be read is an unknown and is left out.
    pub fn start(
        root: &Root,
        tids: impl IntoIterator<Item = u32>,
        unknowns: &mut UnknownLog,
    ) -> Self {
        let start = tids
            .into_iter()
            .filter_map(|tid| {
                read(root, tid)
                    .map_err(|e| unread(tid, &e, unknowns))
                    .ok()
                    .map(|r| (tid, r))
            })
            .collect();
        Targets { start }
    }

    /// Reads every target again and returns what each did in between.
    pub fn finish(
        self,
        root: &Root,
        pids: &BTreeMap<u32, u32>,
        unknowns: &mut UnknownLog,
    ) -> Vec<TargetActivity> {
        self.start
            .into_iter()
            .filter_map(|(tid, start)| {
                let end = read(root, tid)
                    .map_err(|e| unread(tid, &e, unknowns))
                    .ok()?;
                Some(TargetActivity {
                    tid,
                    pid: pids.get(&tid).copied(),
                    runtime_ns: advance(start.sched.runtime_ns, end.sched.runtime_ns),
                    wait_ns: advance(start.sched.wait_ns, end.sched.wait_ns),
                    voluntary_switches: advance(start.switches.voluntary, end.switches.voluntary),
                    nonvoluntary_switches: advance(
                        start.switches.nonvoluntary,
                        end.switches.nonvoluntary,
                    ),
                    last_cpu: end.processor,
                    comm: end.comm,
                })
            })
            .collect()
    }
}

fn unread(tid: u32, err: &ReadError, unknowns: &mut UnknownLog) {
    unknowns.error(format!("target thread {tid}"), err);
}

fn read(root: &Root, tid: u32) -> Result<Reading, ReadError> {
    let dir = format!("/proc/{tid}/task/{tid}");
    let stat = root.read_parsed(format!("{dir}/stat"), parse_stat)?;
    let switches = root.read_parsed(format!("{dir}/status"), parse_context_switches)?;
    let sched = root.read_parsed(format!("{dir}/schedstat"), parse_schedstat)?;
    Ok(Reading {
        comm: stat.comm,
        sched,
        switches,
        processor: stat.processor,
    })
}
