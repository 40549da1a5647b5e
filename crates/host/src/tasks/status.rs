//! Parsing `/proc/PID/task/TID/status` for the one value stat lacks: the CPUs the thread may
//! run on (`Cpus_allowed_list`).

use crate::cpuset::CpuSetError;
use crate::CpuSet;

const CPUS_ALLOWED_LIST: &str = "Cpus_allowed_list";

/// The fields of a thread's status file that inspect keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStatus {
    pub cpus_allowed: CpuSet,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    #[error("no {CPUS_ALLOWED_LIST} line")]
    NoAffinity,
    #[error("{CPUS_ALLOWED_LIST} {value:?}: {source}")]
    BadAffinity {
        value: String,
        #[source]
        source: CpuSetError,
    },
}

/// Parses a status file. Lines are `Key:<tab>value`; unknown keys are ignored.
pub fn parse_status(text: &str) -> Result<TaskStatus, StatusError> {
    let value = text
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key == CPUS_ALLOWED_LIST).then_some(value.trim())
        })
        .ok_or(StatusError::NoAffinity)?;
    let cpus_allowed = CpuSet::parse_list(value).map_err(|source| StatusError::BadAffinity {
        value: value.to_owned(),
        source,
    })?;
    Ok(TaskStatus { cpus_allowed })
}

/// A thread's context switches since it started: `voluntary_ctxt_switches` (it blocked or
/// yielded) and `nonvoluntary_ctxt_switches` (it was preempted while runnable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContextSwitches {
    pub voluntary: u64,
    pub nonvoluntary: u64,
}

/// Parses the two context-switch lines of a status file; the error is the key of the first
/// one that is missing or not a number.
pub fn parse_context_switches(text: &str) -> Result<ContextSwitches, &'static str> {
    let value = |key: &'static str| {
        text.lines()
            .find_map(|line| {
                let (k, v) = line.split_once(':')?;
                (k == key).then(|| v.trim().parse::<u64>().ok())?
            })
            .ok_or(key)
    };
    Ok(ContextSwitches {
        voluntary: value("voluntary_ctxt_switches")?,
        nonvoluntary: value("nonvoluntary_ctxt_switches")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tCPU 0/KVM\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t15538\n\
        Kthread:\t0\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed_list:\t0\n";

    #[test]
    fn affinity_is_read_from_the_list_line() {
        let status = parse_status(STATUS).unwrap();
        assert_eq!(status.cpus_allowed, CpuSet::from_ids([0, 1]));
    }

    #[test]
    fn missing_or_bad_affinity_is_refused() {
        let cases = [
            ("empty file", "", "no Cpus_allowed_list"),
            (
                "mask line only",
                "Cpus_allowed:\t3\n",
                "no Cpus_allowed_list",
            ),
            (
                "garbage list",
                "Cpus_allowed_list:\tzz\n",
                "Cpus_allowed_list \"zz\"",
            ),
        ];
        for (what, text, expected) in cases {
            let err = parse_status(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{what}: {err}");
        }
    }

    #[test]
    fn context_switches_are_read_or_the_missing_key_named() {
        let text = "Name:\tx\nvoluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t3\n";
        let expected = ContextSwitches {
            voluntary: 12,
            nonvoluntary: 3,
        };
        let cases = [
            ("both lines", text, Ok(expected)),
            ("empty", "", Err("voluntary_ctxt_switches")),
            (
                "garbage count",
                "voluntary_ctxt_switches:\t1\nnonvoluntary_ctxt_switches:\tx\n",
                Err("nonvoluntary_ctxt_switches"),
            ),
        ];
        for (what, text, expected) in cases {
            assert_eq!(parse_context_switches(text), expected, "{what}");
        }
    }
}
