//! Parsing `/proc/PID/task/TID/stat`: the one line that holds a thread's name, state, flags,
//! nice value, last CPU and scheduling policy.
//!
//! The name (`comm`) is printed raw between parentheses and may itself contain spaces, `(` and
//! `)`, so the line is split at the first `(` and the LAST `)`; the fields after it are
//! space-separated numbers whose positions proc(5) fixes.

use serde::{Deserialize, Serialize};

/// `PF_KTHREAD` from include/linux/sched.h: the task is a kernel thread.
const PF_KTHREAD: u64 = 0x0020_0000;
/// `PF_NO_SETAFFINITY`: userland may not change the affinity (kthread_bind, workqueue workers).
const PF_NO_SETAFFINITY: u64 = 0x0400_0000;

/// Positions, counted from the state field (field 3 in proc(5)), of the fields we keep.
const STATE: usize = 0;
const PPID: usize = 1;
const FLAGS: usize = 6;
const NICE: usize = 16;
const START_TIME: usize = 19;
const PROCESSOR: usize = 36;
const RT_PRIORITY: usize = 37;
const POLICY: usize = 38;

/// A scheduling policy, as the `policy` field of stat numbers it (SCHED_* in sched.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedPolicy {
    /// SCHED_OTHER (SCHED_NORMAL): the fair class.
    Other,
    Fifo,
    /// SCHED_RR: round-robin real-time.
    Rr,
    Batch,
    Idle,
    Deadline,
    /// A number this build does not know, kept rather than guessed.
    Unknown(u32),
}

impl SchedPolicy {
    pub fn from_number(number: u32) -> Self {
        match number {
            0 => SchedPolicy::Other,
            1 => SchedPolicy::Fifo,
            2 => SchedPolicy::Rr,
            3 => SchedPolicy::Batch,
            5 => SchedPolicy::Idle,
            6 => SchedPolicy::Deadline,
            other => SchedPolicy::Unknown(other),
        }
    }

    /// The `SCHED_*` number, as `sched_setscheduler` takes it.
    pub fn number(self) -> u32 {
        match self {
            SchedPolicy::Other => 0,
            SchedPolicy::Fifo => 1,
            SchedPolicy::Rr => 2,
            SchedPolicy::Batch => 3,
            SchedPolicy::Idle => 5,
            SchedPolicy::Deadline => 6,
            SchedPolicy::Unknown(number) => number,
        }
    }

    /// True for the real-time classes that preempt every fair-class task.
    pub fn is_realtime(self) -> bool {
        matches!(
            self,
            SchedPolicy::Fifo | SchedPolicy::Rr | SchedPolicy::Deadline
        )
    }
}

/// The fields of one thread's stat line that inspect keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStat {
    pub tid: u32,
    pub comm: String,
    /// One letter: R, S, D, Z, T, I, ...
    pub state: char,
    pub ppid: u32,
    /// The kernel's PF_* task flags.
    pub flags: u64,
    pub nice: i32,
    /// The CPU the thread last ran on.
    pub processor: u32,
    /// 1-99 under a real-time policy, 0 otherwise.
    pub rt_priority: u32,
    pub policy: SchedPolicy,
    /// Clock ticks after boot when the thread started (field 22): with the tid, it tells a
    /// thread from a later one that reused its id.
    pub start_time: u64,
}

impl TaskStat {
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }

    /// True when the kernel forbids changing the affinity from user space.
    pub fn affinity_is_fixed(&self) -> bool {
        self.flags & PF_NO_SETAFFINITY != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatError {
    #[error("no \"(comm)\" in the line")]
    NoComm,
    #[error("thread id {0:?} is not a number")]
    BadTid(String),
    #[error("only {found} fields after the name, need {needed}")]
    TooFewFields { found: usize, needed: usize },
    #[error("field {name} is {value:?}, not a number")]
    BadField { name: &'static str, value: String },
}

/// Parses one stat line.
pub fn parse_stat(text: &str) -> Result<TaskStat, StatError> {
    let open = text.find('(').ok_or(StatError::NoComm)?;
    let close = text
        .rfind(')')
        .filter(|&c| c > open)
        .ok_or(StatError::NoComm)?;
    let tid_text = text[..open].trim();
    let tid = tid_text
        .parse()
        .map_err(|_| StatError::BadTid(tid_text.to_owned()))?;
    let comm = text[open + 1..close].to_owned();
    let fields: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();
    if fields.len() <= POLICY {
        return Err(StatError::TooFewFields {
            found: fields.len(),
            needed: POLICY + 1,
        });
    }
    let state_text = fields[STATE];
    let mut state_chars = state_text.chars();
    let state = match (state_chars.next(), state_chars.next()) {
        (Some(letter), None) => letter,
        _ => {
            return Err(StatError::BadField {
                name: "state",
                value: state_text.to_owned(),
            })
        }
    };
    Ok(TaskStat {
        tid,
        comm,
        state,
        ppid: number(&fields, PPID, "ppid")?,
        flags: number(&fields, FLAGS, "flags")?,
        nice: number(&fields, NICE, "nice")?,
        processor: number(&fields, PROCESSOR, "processor")?,
        rt_priority: number(&fields, RT_PRIORITY, "rt_priority")?,
        policy: SchedPolicy::from_number(number(&fields, POLICY, "policy")?),
        start_time: number(&fields, START_TIME, "starttime")?,
    })
}

fn number<T: std::str::FromStr>(
    fields: &[&str],
    index: usize,
    name: &'static str,
) -> Result<T, StatError> {
    let value = fields.get(index).copied().unwrap_or_default();
    value.parse().map_err(|_| StatError::BadField {
        name,
        value: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line from this machine's kthreadd (flags 0x208040: PF_KTHREAD set).
    const KTHREADD: &str = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 25 0 0 \
        18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
    /// migration/1: SCHED_FIFO 99, bound to CPU 1 (PF_KTHREAD | PF_NO_SETAFFINITY).
    const MIGRATION: &str = "21 (migration/1) S 2 0 0 0 -1 69238849 0 0 0 0 0 5 0 0 -100 0 1 0 \
        30 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 17 1 99 1 0 0 0 0 0 0 0 0 0 \
        0 0\n";

    #[test]
    fn real_lines_parse() {
        let kthreadd = parse_stat(KTHREADD).unwrap();
        assert_eq!((kthreadd.tid, kthreadd.comm.as_str()), (2, "kthreadd"));
        assert!(kthreadd.is_kernel_thread() && !kthreadd.affinity_is_fixed());
        assert_eq!(kthreadd.policy, SchedPolicy::Other);
        assert_eq!(kthreadd.start_time, 25);

        let migration = parse_stat(MIGRATION).unwrap();
        assert_eq!(migration.ppid, 2);
        assert!(migration.is_kernel_thread() && migration.affinity_is_fixed());
        assert_eq!(
            (migration.processor, migration.rt_priority, migration.policy),
            (1, 99, SchedPolicy::Fifo)
        );
    }

    #[test]
    fn odd_names_split_at_the_last_parenthesis() {
        let cases = [
            ("spaces", "CPU 0/KVM"),
            ("closing parenthesis and space", "a) S 1 (b"),
            ("only parentheses", ")()("),
            ("empty", ""),
            ("newline", "x\ny"),
        ];
        for (what, comm) in cases {
            let line = KTHREADD.replacen("kthreadd", comm, 1);
            let stat = parse_stat(&line).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(stat.comm, comm, "{what}");
            assert_eq!(stat.state, 'S', "{what}");
        }
    }

    #[test]
    fn malformed_lines_are_refused_with_the_reason() {
        let cases = [
            ("empty", "", "no \"(comm)\""),
            ("no parentheses", "1 init S 0", "no \"(comm)\""),
            ("closing before opening", "1 )x( S", "no \"(comm)\""),
            ("truncated", "1 (init) S 0 1 1", "only 4 fields"),
            (
                "bad tid",
                &KTHREADD.replacen('2', "x", 1),
                "thread id \"x\"",
            ),
            ("bad flags", &KTHREADD.replace("2129984", "-7"), "flags"),
            (
                "two-letter state",
                &KTHREADD.replace(") S ", ") SS "),
                "state",
            ),
        ];
        for (what, line, expected) in cases {
            let err = parse_stat(line).unwrap_err().to_string();
            assert!(err.contains(expected), "{what}: {err}");
        }
    }

    #[test]
    fn policies_map_from_kernel_numbers() {
        assert_eq!(SchedPolicy::from_number(2), SchedPolicy::Rr);
        assert_eq!(SchedPolicy::from_number(4), SchedPolicy::Unknown(4));
        assert!(SchedPolicy::Deadline.is_realtime() && !SchedPolicy::Batch.is_realtime());
    }
}
