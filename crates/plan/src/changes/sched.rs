//! `--rt PRIO`: SCHED_FIFO for the exclusive threads, after they are on their own CPUs.

use nearnative_host::Mechanism;
use nearnative_knob::exclusivity::sched::{Policy, SchedPolicy};
use nearnative_knob::Change;

use super::{Changes, Context};
use crate::decisions::Note;

pub fn plan(context: &Context, out: &mut Changes) {
    let Some(priority) = context.request.rt else {
        return;
    };
    for thread in &context.target.exclusive {
        let task = thread.task;
        let Some(from) = Policy::of(task.policy, task.nice, task.rt_priority) else {
            out.note(Note::PolicyKept {
                pid: thread.pid(),
                tid: thread.tid(),
                policy: format!("{:?}", thread.task.policy),
            });
            continue;
        };
        out.push(
            Change {
                knob: SchedPolicy {
                    pid: thread.pid(),
                    tid: thread.tid(),
                    start_time: thread.task.start_time,
                },
                from,
                to: Policy::Fifo { priority },
            },
            Mechanism::Exclusivity,
            format!(
                "SCHED_FIFO {priority}: {} preempts any fair-class task that still reaches its CPU",
                thread.task.comm
            ),
        );
    }
}
