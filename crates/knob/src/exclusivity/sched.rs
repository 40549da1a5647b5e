//! A thread's scheduling policy and priority (`sched_setscheduler`, plus `setpriority` for the
//! nice value of the normal policies), read back from `/proc/PID/task/TID/stat` through
//! [`Policy::parse_stat`], the parser inspect's stat reading shares.

use serde::{Deserialize, Serialize};

use super::task::{check_same_thread, gone_if_exited};
use crate::backend::{Backend, TaskId};
use crate::error::{Described, KnobError, Object};
use crate::knob::Knob;

/// The value type, defined once with the stat parser it is read from.
pub use nearnative_host::tasks::Policy;

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
