//! A thread's scheduling policy and priority (`sched_setscheduler`, plus `setpriority` for the
//! nice value of the normal policies), read back from `/proc/PID/task/TID/stat`.

use nearnative_host::tasks::{parse_stat, SchedPolicy as Kernel};
use serde::{Deserialize, Serialize};

use super::task::{check_same_thread, gone_if_exited};
use crate::backend::{Backend, TaskId};
use crate::error::{Described, KnobError, Object};
use crate::knob::Knob;

/// The policies a thread can be restored to. SCHED_DEADLINE is not among them: its runtime,
/// deadline and period are not in `/proc`, so it could not be restored exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "policy")]
pub enum Policy {
    Other { nice: i32 },
    Batch { nice: i32 },
    Idle { nice: i32 },
    Fifo { priority: u32 },
    Rr { priority: u32 },
}

impl Policy {
    /// The `SCHED_*` constant.
    pub fn linux_policy(self) -> i32 {
        match self {
            Policy::Other { .. } => libc::SCHED_OTHER,
            Policy::Fifo { .. } => libc::SCHED_FIFO,
            Policy::Rr { .. } => libc::SCHED_RR,
            Policy::Batch { .. } => libc::SCHED_BATCH,
            Policy::Idle { .. } => libc::SCHED_IDLE,
        }
    }

    /// `sched_priority`: 1..=99 for the real-time policies, 0 otherwise.
    pub fn rt_priority(self) -> u32 {
        match self {
            Policy::Fifo { priority } | Policy::Rr { priority } => priority,
            _ => 0,
        }
    }

    /// The nice value, for the policies that have one.
    pub fn nice(self) -> Option<i32> {
        match self {
            Policy::Other { nice } | Policy::Batch { nice } | Policy::Idle { nice } => Some(nice),
            Policy::Fifo { .. } | Policy::Rr { .. } => None,
        }
    }

    fn check(self) -> Result<(), String> {
        match (self.nice(), self.rt_priority()) {
            (Some(nice), _) if !(-20..=19).contains(&nice) => {
                Err(format!("nice {nice} is outside -20..19"))
            }
            (None, priority) if !(1..=99).contains(&priority) => {
                Err(format!("real-time priority {priority} is outside 1..99"))
            }
            _ => Ok(()),
        }
    }

    /// Policy, rt_priority and nice from a stat line (inspect's parser).
    pub fn parse_stat(stat: &str) -> Result<Policy, String> {
        let stat = parse_stat(stat).map_err(|e| e.to_string())?;
        let (nice, priority) = (stat.nice, stat.rt_priority);
        match stat.policy {
            Kernel::Other => Ok(Policy::Other { nice }),
            Kernel::Fifo => Ok(Policy::Fifo { priority }),
            Kernel::Rr => Ok(Policy::Rr { priority }),
            Kernel::Batch => Ok(Policy::Batch { nice }),
            Kernel::Idle => Ok(Policy::Idle { nice }),
            other => Err(format!("{other:?} cannot be restored exactly")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedPolicy {
    pub pid: u32,
    pub tid: u32,
    pub start_time: u64,
}

impl SchedPolicy {
    fn task(&self) -> TaskId {
        TaskId {
            pid: self.pid,
            tid: self.tid,
        }
    }
}

impl Knob for SchedPolicy {
    type Value = Policy;

    fn describe(&self) -> Described {
        Described::new(
            format!(
                "scheduling policy of thread {} of process {}",
                self.tid, self.pid
            ),
            format!("{}/stat", self.task().proc_dir().display()),
        )
    }

    fn read(&self, backend: &dyn Backend) -> Result<Policy, KnobError> {
        let knob = self.describe();
        check_same_thread(backend, &knob, self.task(), self.start_time)?;
        backend
            .root()
            .read_parsed(self.task().proc_dir().join("stat"), Policy::parse_stat)
            .map_err(|e| KnobError::from_read(knob, Object::Task, e))
    }

    fn write(&self, backend: &dyn Backend, policy: &Policy) -> Result<(), KnobError> {
        let knob = self.describe();
        policy.check().map_err(|reason| KnobError::Invalid {
            knob: knob.clone(),
            value: format!("{policy:?}"),
            reason,
        })?;
        check_same_thread(backend, &knob, self.task(), self.start_time)?;
        backend
            .set_sched_policy(self.task(), *policy)
            .map_err(|e| KnobError::from_write(knob, Object::Task, e))
            .map_err(|e| gone_if_exited(backend, self.task(), self.start_time, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(nice: &str, rt: &str, policy: &str) -> String {
        let mut fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        fields[19 - 3] = nice.into();
        fields[40 - 3] = rt.into();
        fields[41 - 3] = policy.into();
        format!("9 (t) {}\n", fields.join(" "))
    }

    #[test]
    fn policies_parse_from_stat() {
        let cases = [
            (
                "normal niced",
                stat("-5", "0", "0"),
                Ok(Policy::Other { nice: -5 }),
            ),
            (
                "fifo",
                stat("0", "50", "1"),
                Ok(Policy::Fifo { priority: 50 }),
            ),
            ("rr", stat("0", "2", "2"), Ok(Policy::Rr { priority: 2 })),
            ("idle", stat("0", "0", "5"), Ok(Policy::Idle { nice: 0 })),
        ];
        for (what, text, expected) in cases {
            assert_eq!(Policy::parse_stat(&text), expected, "{what}");
        }
        assert!(Policy::parse_stat(&stat("0", "0", "6")).is_err());
        assert!(Policy::parse_stat("9 (t) S").is_err());
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert!(Policy::Fifo { priority: 0 }.check().is_err());
        assert!(Policy::Other { nice: 20 }.check().is_err());
        assert!(Policy::Rr { priority: 99 }.check().is_ok());
    }
}
