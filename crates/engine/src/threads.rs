//! The workload's own threads as they were at apply time, and whether they are still there.
//!
//! A thread is known by its id *and* its start time: a tid reused by a later thread is not
//! the thread that was made exclusive.

use nearnative_host::tasks::parse_stat;
use nearnative_host::{Host, ReadError, Root};
use nearnative_knob::Step;
use nearnative_plan::target::{resolve, ResolvedTarget};
use nearnative_plan::{PlanError, PlanRequest};
use nix::libc;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetThread {
    pub pid: u32,
    pub tid: u32,
    pub start_time: u64,
    /// True for a thread with an exclusive CPU, false for an I/O thread.
    pub exclusive: bool,
}

/// The exclusive and I/O threads of `request`'s target on `host`, as the planner resolves
/// them.
pub(crate) fn of_request(
    host: &Host,
    request: &PlanRequest,
) -> Result<Vec<TargetThread>, PlanError> {
    let resolved = resolve(
        host,
        &request.target,
        request.vcpus.as_ref(),
        request.threads.as_deref(),
    )?;
    Ok(of_target(&resolved))
}

/// The exclusive and I/O threads of a resolved target.
fn of_target(target: &ResolvedTarget) -> Vec<TargetThread> {
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
        is_alive(root, self.pid, self.tid, self.start_time)
    }
}

/// True while thread `tid` of process `pid`, started at `start_time`, exists and has not
/// exited: a tid reused by a later thread is another thread. Only a sure sign counts as gone
/// (no such file, ESRCH, another start time, a zombie); a read that fails otherwise (EACCES,
/// EMFILE, an odd line) says nothing, and a live workload must not be reverted over it.
pub(crate) fn is_alive(root: &Root, pid: u32, tid: u32, start_time: u64) -> bool {
    let path = format!("/proc/{pid}/task/{tid}/stat");
    let text = match root.read_to_string(&path) {
        Ok(text) => text,
        Err(ReadError::NotFound { .. }) => return false,
        Err(ReadError::Io { source, .. }) if source.raw_os_error() == Some(libc::ESRCH) => {
            return false
        }
        Err(_) => return true,
    };
    parse_stat(&text).map_or(true, |stat| {
        stat.start_time == start_time && !matches!(stat.state, 'Z' | 'X')
    })
}

/// True when a thread one of `steps` changes (its affinity, cgroup or scheduling policy) is
/// still alive.
pub(crate) fn any_step_thread_alive(root: &Root, steps: &[Step]) -> bool {
    steps.iter().any(|step| {
        let thread = match step {
            Step::ThreadAffinity(c) => (c.knob.pid, c.knob.tid, c.knob.start_time),
            Step::TaskCgroup(c) => (c.knob.pid, c.knob.tid, c.knob.start_time),
            Step::SchedPolicy(c) => (c.knob.pid, c.knob.tid, c.knob.start_time),
            _ => return false,
        };
        is_alive(root, thread.0, thread.1, thread.2)
    })
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
