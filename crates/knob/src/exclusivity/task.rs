//! A thread's CPU affinity, and the start-time guard every per-thread knob uses: a tid can be
//! reused by a new thread after the old one exits, so each knob also names the thread's start
//! time (field 22 of `/proc/PID/task/TID/stat`) and treats a mismatch as "gone".

use nearnative_host::CpuSet;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, TaskId};
use crate::error::{Described, KnobError, Object};
use crate::knob::Knob;

/// Field 22 of a stat line, `starttime`, in clock ticks since boot (inspect's parser).
pub fn parse_start_time(stat: &str) -> Result<u64, String> {
    nearnative_host::tasks::parse_stat(stat)
        .map(|s| s.start_time)
        .map_err(|e| e.to_string())
}

/// Fails with [`KnobError::Gone`] unless the thread exists and is the one that started at
/// `start_time`.
pub fn check_same_thread(
    backend: &dyn Backend,
    knob: &Described,
    task: TaskId,
    start_time: u64,
) -> Result<(), KnobError> {
    let found = backend
        .root()
        .read_parsed(task.proc_dir().join("stat"), parse_start_time)
        .map_err(|e| KnobError::from_read(knob.clone(), Object::Task, e))?;
    match found == start_time {
        true => Ok(()),
        false => Err(KnobError::Gone {
            knob: knob.clone(),
            reason: format!("tid reused: started at tick {found}, not {start_time}"),
        }),
    }
}

/// `err` from a write to a task, or [`KnobError::Gone`] when the task has exited meanwhile:
/// the kernel answers a write to an exiting thread with EINVAL (its cpuset is already gone)
/// or ESRCH, and only a second look at the task tells that from a real refusal.
pub fn gone_if_exited(
    backend: &dyn Backend,
    task: TaskId,
    start_time: u64,
    err: KnobError,
) -> KnobError {
    if err.is_gone() {
        return err;
    }
    let knob = err.knob().clone();
    let state = check_same_thread(backend, &knob, task, start_time).and_then(|()| {
        backend
            .root()
            .read_parsed(task.proc_dir().join("stat"), parse_state)
            .map_err(|e| KnobError::from_read(knob.clone(), Object::Task, e))
    });
    match state {
        Err(gone) if gone.is_gone() => gone,
        Ok(state @ ('Z' | 'X')) => KnobError::Gone {
            knob,
            reason: format!("exited (state {state}) during the write: {err}"),
        },
        _ => err,
    }
}

/// Field 3 of a stat line, the task's state letter.
fn parse_state(stat: &str) -> Result<char, String> {
    let (_, tail) = stat
        .rsplit_once(')')
        .ok_or_else(|| "no \"(comm)\" in the stat line".to_owned())?;
    tail.split_whitespace()
        .next()
        .and_then(|field| field.chars().next())
        .ok_or_else(|| "stat line too short".to_owned())
}

/// The CPUs a thread may run on (`sched_setaffinity`), read back from `Cpus_allowed_list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadAffinity {
    pub pid: u32,
    pub tid: u32,
    pub start_time: u64,
}

impl ThreadAffinity {
    fn task(&self) -> TaskId {
        TaskId {
            pid: self.pid,
            tid: self.tid,
        }
    }
}

/// The `Cpus_allowed_list` line of a status file (inspect's parser).
pub fn parse_allowed_list(status: &str) -> Result<CpuSet, String> {
    nearnative_host::tasks::parse_status(status)
        .map(|s| s.cpus_allowed)
        .map_err(|e| e.to_string())
}

impl Knob for ThreadAffinity {
    type Value = CpuSet;

    fn describe(&self) -> Described {
        Described::new(
            format!("affinity of thread {} of process {}", self.tid, self.pid),
            format!("{}/status", self.task().proc_dir().display()),
        )
    }

    fn read(&self, backend: &dyn Backend) -> Result<CpuSet, KnobError> {
        let knob = self.describe();
        check_same_thread(backend, &knob, self.task(), self.start_time)?;
        let status = backend
            .root()
            .read_to_string(self.task().proc_dir().join("status"))
            .map_err(|e| KnobError::from_read(knob.clone(), Object::Task, e))?;
        parse_allowed_list(&status).map_err(|reason| KnobError::Parse {
            knob,
            value: "Cpus_allowed_list".to_owned(),
            reason,
        })
    }

    fn write(&self, backend: &dyn Backend, cpus: &CpuSet) -> Result<(), KnobError> {
        let knob = self.describe();
        if cpus.is_empty() {
            return Err(KnobError::Invalid {
                knob,
                value: String::new(),
                reason: "a thread needs at least one CPU".to_owned(),
            });
        }
        check_same_thread(backend, &knob, self.task(), self.start_time)?;
        backend
            .set_thread_affinity(self.task(), cpus)
            .map_err(|e| KnobError::from_write(knob, Object::Task, e))
            .map_err(|e| gone_if_exited(backend, self.task(), self.start_time, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22_even_with_odd_comm() {
        let mut fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        fields[22 - 3] = "987654".into();
        let stat = format!("7 (a) b (c)) {}\n", fields.join(" "));
        assert_eq!(parse_start_time(&stat), Ok(987654));
        assert!(parse_start_time("7 (x) S 1").is_err());
        assert!(parse_start_time("garbage").is_err());
    }

    #[test]
    fn state_is_field_3() {
        assert_eq!(parse_state("7 (a b) Z 1 2"), Ok('Z'));
        assert!(parse_state("7 (a)").is_err());
    }

    #[test]
    fn allowed_list_is_read_from_status() {
        let status = "Name:\tx\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\n";
        assert_eq!(parse_allowed_list(status), Ok(CpuSet::from_ids([0, 1])));
        assert!(parse_allowed_list("Name:\tx\n").is_err());
    }
}
