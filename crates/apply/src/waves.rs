//! Batches of independent steps, so that one fsync covers many knob writes.
//!
//! A plan moves thousands of threads with a few steps each (affinity, then cgroup). Steps of
//! different threads do not touch each other, so within a run of consecutive per-thread steps
//! the executor may reorder across threads as long as each thread's own steps keep their
//! order. The run is cut into waves: wave k holds the k-th step of every thread in the run.
//! No two steps of one wave touch the same thread, so their priors can all be read, made
//! durable in one journal record, and then all written.
//!
//! Only knobs that touch exactly one thread take part: thread affinity, scheduling policy,
//! and a move in a v1 hierarchy (`tasks`). A v2 move may go through `cgroup.procs` and carry
//! the whole process, and resets its threads' affinities, so it is a wave of its own, as is
//! every knob that is not a thread's.

use std::collections::HashMap;

use nearnative_knob::exclusivity::cgroup::Hierarchy;
use nearnative_knob::Step;

/// `steps` cut into waves, in the order they are to run; every step appears once.
pub(crate) fn waves(steps: &[Step]) -> Vec<Vec<&Step>> {
    let mut out = Vec::new();
    let mut run: Vec<((u32, u32), &Step)> = Vec::new();
    for step in steps {
        match thread_of(step) {
            Some(thread) => run.push((thread, step)),
            None => {
                flush(&mut run, &mut out);
                out.push(vec![step]);
            }
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Cuts a run of per-thread steps into waves and appends them to `out`.
fn flush<'s>(run: &mut Vec<((u32, u32), &'s Step)>, out: &mut Vec<Vec<&'s Step>>) {
    let mut seen: HashMap<(u32, u32), usize> = HashMap::new();
    let mut waves: Vec<Vec<&Step>> = Vec::new();
    for (thread, step) in run.drain(..) {
        let wave = seen.entry(thread).or_insert(0);
        if *wave == waves.len() {
            waves.push(Vec::new());
        }
        waves[*wave].push(step);
        *wave += 1;
    }
    out.extend(waves);
}

/// The (pid, tid) a step touches alone, for the kinds that touch exactly one thread.
fn thread_of(step: &Step) -> Option<(u32, u32)> {
    match step {
        Step::ThreadAffinity(c) => Some((c.knob.pid, c.knob.tid)),
        Step::SchedPolicy(c) => Some((c.knob.pid, c.knob.tid)),
        Step::TaskCgroup(c) => match c.knob.hierarchy {
            Hierarchy::V1 { .. } => Some((c.knob.pid, c.knob.tid)),
            Hierarchy::V2 { .. } => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nearnative_host::CpuSet;
    use nearnative_knob::exclusivity::irq::IrqAffinity;
    use nearnative_knob::exclusivity::sched::{Policy, SchedPolicy};
    use nearnative_knob::exclusivity::task::ThreadAffinity;
    use nearnative_knob::Change;

    fn affinity(tid: u32) -> Step {
        Step::from(Change {
            knob: ThreadAffinity {
                pid: 1,
                tid,
                start_time: 0,
            },
            from: CpuSet::from_ids([0, 1]),
            to: CpuSet::from_ids([0]),
        })
    }

    fn policy(tid: u32) -> Step {
        let policy = Policy::Fifo { priority: 1 };
        Step::from(Change {
            knob: SchedPolicy {
                pid: 1,
                tid,
                start_time: 0,
            },
            from: policy,
            to: policy,
        })
    }

    fn irq() -> Step {
        Step::from(Change {
            knob: IrqAffinity { irq: 9 },
            from: CpuSet::from_ids([0, 1]),
            to: CpuSet::from_ids([0]),
        })
    }

    #[test]
    fn each_thread_keeps_its_order_and_a_wave_touches_a_thread_once() {
        let steps = vec![
            affinity(1),
            policy(1),
            affinity(2),
            policy(2),
            affinity(3),
            irq(),
            affinity(4),
            policy(4),
        ];
        let got = waves(&steps);
        let expected = vec![
            vec![&steps[0], &steps[2], &steps[4]],
            vec![&steps[1], &steps[3]],
            vec![&steps[5]],
            vec![&steps[6]],
            vec![&steps[7]],
        ];
        assert_eq!(got, expected);
    }
}
