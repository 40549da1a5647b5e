//! The workload's own threads as they were at apply time, and whether they are still there.
//!
//! A thread is known by its id *and* its start time: a tid reused by a later thread is not
//! the thread that was made exclusive.

use nearnative_host::tasks::parse_stat;
use nearnative_host::Root;
use nearnative_plan::target::ResolvedTarget;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetThread {
    pub pid: u32,
    pub tid: u32,
    pub start_time: u64,
    /// True for a thread with an exclusive CPU, false for an I/O thread.
    pub exclusive: bool,
}

/// The exclusive and I/O threads of a resolved target.
pub(crate) fn of_target(target: &ResolvedTarget) -> Vec<TargetThread> {
    let exclusive = target.exclusive.iter().map(|t| (t, true));
    let io = target.io.iter().map(|t| (t, false));
    exclusive
        .chain(io)
        .map(|(thread, exclusive)| TargetThread {
            pid: thread.pid(),
            tid: thread.tid(),
            start_time: thread.task.start_time,
            exclusive,
        })
        .collect()
}

impl TargetThread {
    /// True while the same thread (same start time) exists and has not exited.
    pub fn is_alive(&self, root: &Root) -> bool {
        let path = format!("/proc/{}/task/{}/stat", self.pid, self.tid);
        let Ok(text) = root.read_to_string(&path) else {
            return false;
        };
        parse_stat(&text).is_ok_and(|stat| {
            stat.start_time == self.start_time && !matches!(stat.state, 'Z' | 'X')
        })
    }
}

/// Whether the workload applied to `threads` still runs: while one of its exclusive threads
/// is alive (any of its threads, when none is exclusive). One that lost some exclusive
/// threads (a vCPU removed) still runs, and reconcile hands it back for a fresh plan
/// ([`crate::Reconciled::replan`]); one that lost them all has exited, and is released.
pub fn workload_runs(root: &Root, threads: &[TargetThread]) -> bool {
    let exclusive: Vec<&TargetThread> = threads.iter().filter(|t| t.exclusive).collect();
    match exclusive.is_empty() {
        true => threads.iter().any(|t| t.is_alive(root)),
        false => exclusive.iter().any(|t| t.is_alive(root)),
    }
}

/// The first of `threads` that is gone.
pub(crate) fn first_gone<'t>(root: &Root, threads: &'t [TargetThread]) -> Option<&'t TargetThread> {
    threads.iter().find(|t| !t.is_alive(root))
}
