//! Parsing `/proc/PID/task/TID/schedstat`: a thread's CPU time in nanoseconds.
//!
//! The file holds three numbers: time on the CPU (`se.sum_exec_runtime`, ns), time spent
//! runnable but waiting (ns), and the number of times the thread was put on a CPU. It needs
//! `CONFIG_SCHED_INFO`, which Debian, Fedora and Ubuntu kernels enable. The CPU time is brought
//! up to date at every tick and context switch, so it lags a running thread by under a tick.

use serde::{Deserialize, Serialize};

/// One thread's scheduler statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedStat {
    /// Time spent running, in nanoseconds.
    pub runtime_ns: u64,
    /// Time spent runnable on a run queue, waiting for a CPU, in nanoseconds.
    pub wait_ns: u64,
    /// How many times the thread was switched onto a CPU.
    pub timeslices: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedStatError {
    #[error("expected 3 numbers, found {0:?}")]
    Malformed(String),
}

pub fn parse_schedstat(text: &str) -> Result<SchedStat, SchedStatError> {
    let bad = || SchedStatError::Malformed(text.chars().take(60).collect());
    let numbers: Vec<u64> = text
        .split_ascii_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    match numbers[..] {
        [runtime_ns, wait_ns, timeslices] => Ok(SchedStat {
            runtime_ns,
            wait_ns,
            timeslices,
        }),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        let cases = [
            (
                "real line",
                "108151 547401 2\n",
                Ok(SchedStat {
                    runtime_ns: 108151,
                    wait_ns: 547401,
                    timeslices: 2,
                }),
            ),
            ("empty", "", Err(())),
            ("two numbers", "1 2", Err(())),
            ("negative", "-1 2 3", Err(())),
            ("four numbers", "1 2 3 4", Err(())),
        ];
        for (what, text, expected) in cases {
            assert_eq!(parse_schedstat(text).map_err(|_| ()), expected, "{what}");
        }
    }
}
