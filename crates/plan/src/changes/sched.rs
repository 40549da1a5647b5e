//! `--rt PRIO`: SCHED_FIFO for the exclusive threads, after they are on their own CPUs.

use nearnative_host::tasks::SchedPolicy as HostPolicy;
use nearnative_host::tasks::Task;
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
        let Some(from) = policy_of(thread.task) else {
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

/// The knob's value for what the host shows; `None` for deadline and unknown policies.
pub fn policy_of(task: &Task) -> Option<Policy> {
    let nice = task.nice;
    let priority = task.rt_priority;
    match task.policy {
        HostPolicy::Other => Some(Policy::Other { nice }),
        HostPolicy::Batch => Some(Policy::Batch { nice }),
        HostPolicy::Idle => Some(Policy::Idle { nice }),
        HostPolicy::Fifo => Some(Policy::Fifo { priority }),
        HostPolicy::Rr => Some(Policy::Rr { priority }),
        HostPolicy::Deadline | HostPolicy::Unknown(_) => None,
    }
}
