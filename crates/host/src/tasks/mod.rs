//! Every thread on the host: its process, name, affinity, scheduling class, last CPU, and
//! whether it is a kernel thread that is bound to one CPU or free to move.
//!
//! The planner needs this to know what runs where, what it may move (only threads without
//! `PF_NO_SETAFFINITY`), and which processes lie inside a cgroup scope. Reading costs two files
//! per thread (`stat`, `status`) plus `cgroup` per process; on the live host `status` is
//! replaced by one `sched_getaffinity` where that reads the same (see [`affinity`]); a thread that exits during the
//! read is skipped silently, since on a live host that is normal, not an error.

pub mod affinity;
mod cgroup;
mod parallel;
mod policy;
mod read;
mod stat;
mod status;

use serde::{Deserialize, Serialize};

use crate::CpuSet;

pub use crate::cgroup::CgroupError;
pub use cgroup::{parse_cgroup, ProcessCgroup};
pub use policy::Policy;
pub use read::{has_vanished, numeric_entries, read_tasks};
pub use stat::{parse_stat, SchedPolicy, StatError, TaskStat};
pub use status::{parse_context_switches, parse_status, ContextSwitches, StatusError, TaskStatus};

/// Whether a thread is a user thread, or a kernel thread and of which sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    User,
    /// A kernel thread the kernel has bound to one CPU (ksoftirqd/N, kworker/N:M,
    /// migration/N): it cannot be moved, so its CPU can never be fully exclusive of it.
    KernelPerCpu,
    /// Any other kernel thread (kworker/uN:M, rcu_preempt, irq/N-name, ...): it may run on
    /// several CPUs, or its placement follows a knob such as the workqueue cpumask or the
    /// affinity of its IRQ.
    KernelUnbound,
}

impl TaskKind {
    /// A kernel thread is per-CPU when the kernel forbids moving it and it is allowed on
    /// exactly one CPU; an unbound workqueue worker also has `PF_NO_SETAFFINITY`, but a
    /// multi-CPU mask.
    pub fn classify(stat: &TaskStat, affinity: &CpuSet) -> Self {
        if !stat.is_kernel_thread() {
            TaskKind::User
        } else if stat.affinity_is_fixed() && affinity.len() == 1 {
            TaskKind::KernelPerCpu
        } else {
            TaskKind::KernelUnbound
        }
    }

    pub fn is_kernel(self) -> bool {
        self != TaskKind::User
    }
}

/// One thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub tid: u32,
    pub comm: String,
    /// One letter from stat: R running, S sleeping, D disk wait, Z zombie, I idle, ...
    pub state: char,
    pub kind: TaskKind,
    /// The CPUs the thread may run on (`Cpus_allowed_list`).
    pub affinity: CpuSet,
    pub policy: SchedPolicy,
    /// 1-99 under a real-time policy, 0 otherwise.
    pub rt_priority: u32,
    /// -20 to 19; meaningful under the fair policies only.
    pub nice: i32,
    /// The CPU the thread last ran on.
    pub last_cpu: u32,
    /// Clock ticks after boot when the thread started: with the tid, the thread's identity.
    #[serde(default)]
    pub start_time: u64,
    /// `PF_NO_SETAFFINITY`: the kernel refuses any affinity change from user space.
    #[serde(default)]
    pub affinity_fixed: bool,
    /// The parent process's pid (`PPid`): who forked the thread's process, which a revert
    /// follows to find the mask a task born during an apply inherited.
    #[serde(default)]
    pub ppid: u32,
    /// The thread's own cgroups, read only where the threads of one process are known to sit
    /// in different cgroups: a libvirt domain's QEMU (see [`crate::libvirt`]). `None`: the
    /// same as its process's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<ProcessCgroup>,
}

impl Task {
    /// True for a zombie (`Z`) or dead (`X`) thread: it has exited and only waits to be reaped.
    pub fn has_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// One process (thread group) and the threads read from it, in thread-id order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// The thread-group id, which is also the main thread's id.
    pub pid: u32,
    /// The main thread's name (another thread's, if the main thread could not be read).
    pub comm: String,
    /// `None` when the cgroup file could not be read (the reason is among the unknowns).
    /// Read per process: cgroup v1 allows threads of one process in different cpusets, which
    /// this does not show.
    pub cgroup: Option<ProcessCgroup>,
    pub threads: Vec<Task>,
}

impl Process {
    pub fn thread(&self, tid: u32) -> Option<&Task> {
        self.threads
            .binary_search_by_key(&tid, |t| t.tid)
            .ok()
            .map(|i| &self.threads[i])
    }

    pub fn main_thread(&self) -> Option<&Task> {
        self.thread(self.pid)
    }

    /// The cgroups of thread `task` of this process: its own where they were read, else the
    /// process's.
    pub fn cgroup_of<'p>(&'p self, task: &'p Task) -> Option<&'p ProcessCgroup> {
        task.cgroup.as_ref().or(self.cgroup.as_ref())
    }
}

/// Every process on the host, in pid order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tasks {
    pub processes: Vec<Process>,
}

impl Tasks {
    pub fn process(&self, pid: u32) -> Option<&Process> {
        self.processes
            .binary_search_by_key(&pid, |p| p.pid)
            .ok()
            .map(|i| &self.processes[i])
    }

    /// Every thread with its process.
    pub fn threads(&self) -> impl Iterator<Item = (&Process, &Task)> {
        self.processes
            .iter()
            .flat_map(|p| p.threads.iter().map(move |t| (p, t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(flags: u64) -> TaskStat {
        TaskStat {
            tid: 9,
            comm: "x".into(),
            state: 'S',
            ppid: 2,
            flags,
            nice: 0,
            processor: 0,
            rt_priority: 0,
            policy: SchedPolicy::Other,
            start_time: 0,
        }
    }

    #[test]
    fn kernel_threads_are_classified_by_flags_and_mask() {
        let one = CpuSet::from_ids([3]);
        let two = CpuSet::from_ids([0, 1]);
        let cases = [
            ("user thread", 0x40, &one, TaskKind::User),
            ("ksoftirqd/3", 0x0420_8040, &one, TaskKind::KernelPerCpu),
            ("kworker/u8:0", 0x0420_8060, &two, TaskKind::KernelUnbound),
            (
                "irq thread on one CPU",
                0x0020_8040,
                &one,
                TaskKind::KernelUnbound,
            ),
            ("rcu_preempt", 0x0020_8040, &two, TaskKind::KernelUnbound),
        ];
        for (what, flags, affinity, expected) in cases {
            assert_eq!(
                TaskKind::classify(&stat(flags), affinity),
                expected,
                "{what}"
            );
        }
    }
}
