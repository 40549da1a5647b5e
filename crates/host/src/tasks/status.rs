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
}
