//! Tasks born while an apply was in force. The kernel copies a thread's requested affinity
//! into every thread and process it creates, so a task that a pinned thread started during
//! the apply carries the pinned mask; the journal never knew it, and moving it back to its
//! cgroup does not widen it again. After a journal is restored, each such task gets the mask
//! it would have had without the apply: its creator's prior mask.
//!
//! A task is widened only when all of these hold, which keeps a mask someone set on purpose
//! since:
//! - it started after the apply began (its start time against the journal's);
//! - its mask is exactly the one the apply gave its creator: a thread of a journaled process,
//!   or of a process whose ancestors up to a journaled process (by `PPid`) were all born
//!   during the apply too. That creator's prior mask is what it gets.
//! - failing that (its parent exited and it was re-parented), it lies in the plan's scope and
//!   its mask is exactly one the apply imposed: it gets its cgroup's CPUs.
//!
//! A mask set on purpose to exactly the imposed one cannot be told apart, and is widened.

use std::collections::HashSet;

use nearnative_apply::boot::boot_time_s;
use nearnative_apply::journal::Journal;
use nearnative_host::tasks::{read_tasks, Process, Task, Tasks};
use nearnative_host::{CpuSet, Root};
use nearnative_knob::exclusivity::task::ThreadAffinity;
use nearnative_knob::{Change, Described, Knob, KnobError, Step};
use nearnative_plan::scope::{Fencing, Scope};
use serde::Serialize;

use crate::engine::Engine;

/// What giving born tasks their masks back came to.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub struct BornReverted {
    /// Widened to their creator's prior mask.
    pub widened: Vec<Described>,
    /// Could not be: each with the reason (the journal is already restored, so this is told,
    /// not retried).
    pub failed: Vec<String>,
}

impl Engine {
    /// Gives every task born during `journal`'s apply the mask it would have had without it.
    pub(crate) fn widen_born(
        &self,
        journal: &Journal,
        scope: Option<&Scope>,
        out: &mut BornReverted,
    ) {
        let since_tick = match start_tick(&self.root, journal.started_unix_ms) {
            Ok(tick) => tick,
            Err(reason) => {
                out.failed.push(format!(
                    "tasks born during journal {}: {reason}; their masks are left as they are",
                    journal.id
                ));
                return;
            }
        };
        let tasks = read_tasks(&self.root, &mut Vec::new());
        let born = BornSince::new(&journal.changes, since_tick, scope);
        let cgroup_cpus = |process: &Process| cpuset_cpus(&self.root, scope?, process);
        for change in born.widenings(&tasks, &cgroup_cpus) {
            let knob = change.knob.describe();
            match Step::ThreadAffinity(change).write_target(&*self.backend) {
                Ok(()) => out.widened.push(knob),
                Err(err) if err.is_gone() => {}
                Err(err) => out.failed.push(born_failure(&err)),
            }
        }
    }
}

fn born_failure(err: &KnobError) -> String {
    format!("{err} (a task born during the apply)")
}

/// The clock tick after boot when the apply that began at `unix_ms` did.
fn start_tick(root: &Root, unix_ms: u64) -> Result<u64, String> {
    let btime = boot_time_s(root).map_err(|e| e.to_string())?;
    let ticks_per_s = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|hz| u64::try_from(hz).ok())
        .filter(|&hz| hz > 0)
        .ok_or("sysconf(_SC_CLK_TCK) gave no clock rate")?;
    Ok(tick_at(unix_ms, btime, ticks_per_s))
}

/// The CPUs of `process`'s v1 cpuset, when the scope fences with one.
fn cpuset_cpus(root: &Root, scope: &Scope, process: &Process) -> Option<CpuSet> {
    let Fencing::CpusetV1 { mount } = &scope.fencing else {
        return None;
    };
    let cgroup = scope.cgroup_of(process)?.trim_start_matches('/');
    root.read_parsed(
        mount.join(cgroup).join("cpuset.effective_cpus"),
        CpuSet::parse_list,
    )
    .ok()
}

/// How far up the `PPid` chain a creator is looked for: deeper than any real fork chain
/// born in one apply, and a bound on a cycle in a captured tree.
const MAX_ANCESTORS: usize = 64;

/// init, to which the kernel re-parents an orphan: reaching it means the creator is gone.
const INIT: u32 = 1;

/// Where a task's mask came from.
enum Creator {
    /// A journaled thread's imposed mask: its prior is the task's.
    Pinned(CpuSet),
    /// A process the apply did not pin, or a mask it did not impose: not ours to change.
    NotUs,
    /// The chain broke (a parent exited): only the scope can say.
    Gone,
}

/// A thread the journal pinned.
struct Pinned<'j> {
    pid: u32,
    tid: u32,
    prior: &'j CpuSet,
    imposed: &'j CpuSet,
}

/// What a journal says about the tasks it pinned, and where its workload lived.
pub(crate) struct BornSince<'j> {
    pinned: Vec<Pinned<'j>>,
    /// Clock ticks after boot (the unit of a task's start time) when the apply began.
    since_tick: u64,
    scope: Option<&'j Scope>,
}

impl<'j> BornSince<'j> {
    pub(crate) fn new(changes: &'j [Step], since_tick: u64, scope: Option<&'j Scope>) -> Self {
        let pinned = changes
            .iter()
            .filter_map(|step| match step {
                Step::ThreadAffinity(c) => Some(Pinned {
                    pid: c.knob.pid,
                    tid: c.knob.tid,
                    prior: &c.from,
                    imposed: &c.to,
                }),
                _ => None,
            })
            .collect();
        BornSince {
            pinned,
            since_tick,
            scope,
        }
    }

    /// The affinity changes that give each task born during the apply the mask it would have
    /// had without it. `cgroup_cpus` gives a process's cgroup's CPUs, for a task whose
    /// creator is gone.
    pub(crate) fn widenings(
        &self,
        tasks: &Tasks,
        cgroup_cpus: &dyn Fn(&Process) -> Option<CpuSet>,
    ) -> Vec<Change<ThreadAffinity>> {
        let journaled: HashSet<(u32, u32)> = self.pinned.iter().map(|p| (p.pid, p.tid)).collect();
        tasks
            .threads()
            .filter(|(p, t)| self.is_born(t) && !journaled.contains(&(p.pid, t.tid)))
            .filter_map(|(process, task)| {
                let prior = match self.creator(tasks, process, &task.affinity) {
                    Creator::Pinned(prior) => prior,
                    Creator::NotUs => return None,
                    Creator::Gone => self.scope_prior(process, &task.affinity, cgroup_cpus)?,
                };
                (prior != task.affinity).then(|| Change {
                    knob: ThreadAffinity {
                        pid: process.pid,
                        tid: task.tid,
                        start_time: task.start_time,
                    },
                    from: task.affinity.clone(),
                    to: prior,
                })
            })
            .collect()
    }

    fn is_born(&self, task: &Task) -> bool {
        task.start_time >= self.since_tick && !task.kind.is_kernel() && !task.has_exited()
    }

    /// Who gave `mask` to a task of `process`: a journaled thread of `process`, else of its
    /// nearest journaled ancestor, through ancestors born since.
    fn creator(&self, tasks: &Tasks, process: &Process, mask: &CpuSet) -> Creator {
        let mut current = process;
        for _ in 0..MAX_ANCESTORS {
            let mut candidates = self
                .pinned
                .iter()
                .filter(|p| p.pid == current.pid && p.imposed == mask);
            let leader_first = candidates.clone().find(|p| p.tid == p.pid);
            if let Some(pinned) = leader_first.or_else(|| candidates.next()) {
                return Creator::Pinned(pinned.prior.clone());
            }
            if self.pinned.iter().any(|p| p.pid == current.pid) {
                return Creator::NotUs;
            }
            let Some(main) = current.main_thread() else {
                return Creator::Gone;
            };
            if !self.is_born(main) {
                return Creator::NotUs;
            }
            match tasks.process(main.ppid) {
                Some(parent) if parent.pid > INIT => current = parent,
                _ => return Creator::Gone,
            }
        }
        Creator::Gone
    }

    /// A task in the scope whose creator is gone, holding exactly a mask the apply imposed.
    fn scope_prior(
        &self,
        process: &Process,
        mask: &CpuSet,
        cgroup_cpus: &dyn Fn(&Process) -> Option<CpuSet>,
    ) -> Option<CpuSet> {
        let scope = self.scope?;
        let imposed = self.pinned.iter().any(|p| p.imposed == mask);
        match imposed && scope.holds(process) {
            true => cgroup_cpus(process).or_else(|| Some(scope.cpus.clone())),
            false => None,
        }
    }
}

/// The clock tick after boot at `unix_ms`, one second early: `btime` is whole seconds, and a
/// task started in that second is counted as born since rather than missed.
pub(crate) fn tick_at(unix_ms: u64, btime_s: u64, ticks_per_s: u64) -> u64 {
    let since_boot_ms = unix_ms.saturating_sub(btime_s.saturating_mul(1000));
    since_boot_ms.saturating_sub(1000) * ticks_per_s / 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use nearnative_host::tasks::{SchedPolicy, TaskKind};
    use nearnative_plan::scope::Fencing;

    fn cpus(list: &str) -> CpuSet {
        CpuSet::parse_list(list).unwrap()
    }

    fn task(tid: u32, ppid: u32, mask: &str, start_time: u64) -> Task {
        Task {
            tid,
            comm: format!("t{tid}"),
            state: 'S',
            kind: TaskKind::User,
            affinity: cpus(mask),
            policy: SchedPolicy::Other,
            rt_priority: 0,
            nice: 0,
            last_cpu: 0,
            start_time,
            affinity_fixed: false,
            ppid,
            cgroup: None,
        }
    }

    fn process(pid: u32, cgroup: &str, threads: Vec<Task>) -> Process {
        Process {
            pid,
            comm: format!("p{pid}"),
            cgroup: Some(nearnative_host::tasks::ProcessCgroup {
                cpuset_v1: Some(cgroup.to_owned()),
                unified: Some(cgroup.to_owned()),
            }),
            threads,
        }
    }

    fn pin(pid: u32, tid: u32, from: &str, to: &str) -> Step {
        Step::ThreadAffinity(Change {
            knob: ThreadAffinity {
                pid,
                tid,
                start_time: 1,
            },
            from: cpus(from),
            to: cpus(to),
        })
    }

    fn scope() -> Scope {
        Scope {
            path: "/S".into(),
            cpus: cpus("0-3"),
            mems: cpus("0"),
            cpu_exclusive: false,
            fencing: Fencing::AffinityOnly { why: "test".into() },
        }
    }

    /// Target 100 (pinned to 3 from 0-3), bystander 200 (pinned to 0-2 from 0-3) with its
    /// thread 201 set to 1 on purpose before the apply; the apply began at tick 50.
    fn journal() -> Vec<Step> {
        vec![
            pin(100, 100, "0-3", "3"),
            pin(200, 200, "0-3", "0-2"),
            pin(200, 201, "1", "0-2"),
        ]
    }

    fn widened(tasks: Vec<Process>) -> Vec<(u32, String)> {
        let mut tasks = Tasks { processes: tasks };
        tasks.processes.sort_by_key(|p| p.pid);
        let changes = journal();
        let scope = scope();
        let born = BornSince::new(&changes, 50, Some(&scope));
        born.widenings(&tasks, &|_| Some(cpus("0-1")))
            .into_iter()
            .map(|c| (c.knob.tid, c.to.to_list()))
            .collect()
    }

    /// What, the host's processes, and the (tid, mask) widenings expected.
    type Case = (&'static str, Vec<Process>, Vec<(u32, &'static str)>);

    #[test]
    fn each_born_task_gets_its_creators_prior_mask_and_nothing_else_moves() {
        let cases: [Case; 9] = [
            (
                "a thread the target started",
                vec![process(
                    100,
                    "/S",
                    vec![task(100, 1, "3", 10), task(105, 1, "3", 60)],
                )],
                vec![(105, "0-3")],
            ),
            (
                "a thread the target started and then pinned elsewhere on purpose",
                vec![process(
                    100,
                    "/S",
                    vec![task(100, 1, "3", 10), task(105, 1, "2", 60)],
                )],
                vec![],
            ),
            (
                "a thread that started before the apply and was never journaled",
                vec![process(
                    100,
                    "/S",
                    vec![task(100, 1, "3", 10), task(105, 1, "3", 40)],
                )],
                vec![],
            ),
            (
                "a bystander's forked child and grandchild",
                vec![
                    process(200, "/S", vec![task(200, 1, "0-2", 10)]),
                    process(300, "/S", vec![task(300, 200, "0-2", 70)]),
                    process(301, "/S", vec![task(301, 300, "0-2", 80)]),
                ],
                vec![(300, "0-3"), (301, "0-3")],
            ),
            (
                "the leader's prior wins over another thread's with the same imposed mask",
                vec![
                    process(200, "/S", vec![task(200, 1, "0-2", 10)]),
                    process(310, "/S", vec![task(310, 200, "0-2", 70)]),
                ],
                vec![(310, "0-3")],
            ),
            (
                "a child of a process that existed before the apply but was not journaled",
                vec![
                    process(400, "/S", vec![task(400, 1, "0-2", 10)]),
                    process(401, "/S", vec![task(401, 400, "0-2", 70)]),
                ],
                vec![],
            ),
            (
                "an orphan in the scope with an imposed mask gets its cgroup's CPUs",
                vec![process(502, "/S/x", vec![task(502, 1, "3", 70)])],
                vec![(502, "0-1")],
            ),
            (
                "an orphan outside the scope with an imposed mask",
                vec![process(500, "/elsewhere", vec![task(500, 1, "3", 70)])],
                vec![],
            ),
            (
                "an orphan in the scope with a mask the apply never imposed",
                vec![process(501, "/S/x", vec![task(501, 1, "1", 70)])],
                vec![],
            ),
        ];
        for (what, tasks, expected) in cases {
            let expected: Vec<(u32, String)> = expected
                .into_iter()
                .map(|(t, m)| (t, m.to_owned()))
                .collect();
            assert_eq!(widened(tasks), expected, "{what}");
        }
    }

    #[test]
    fn a_ppid_cycle_in_a_captured_tree_ends() {
        let tasks = vec![
            process(600, "/elsewhere", vec![task(600, 601, "3", 70)]),
            process(601, "/elsewhere", vec![task(601, 600, "3", 70)]),
        ];
        assert_eq!(widened(tasks), vec![]);
    }

    #[test]
    fn the_start_tick_is_a_second_early_and_never_underflows() {
        assert_eq!(tick_at(1_000_010_000, 1_000_000, 100), 900);
        assert_eq!(tick_at(500, 1_000_000, 100), 0);
    }
}
