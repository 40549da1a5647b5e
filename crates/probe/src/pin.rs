//! Pinning the calling thread to CPUs, for probe threads that must not migrate.
//!
//! A probe pins *before* its warm-up so the caches, the branch predictors and the scheduler's
//! placement that the warm-up settles are the ones the measurement then runs on. The CPU list is
//! checked against the online CPUs first, so a typo fails with a message that names the CPU
//! instead of an opaque `EINVAL` from `sched_setaffinity`. Both `probe rtt` and `probe jitter`
//! pin this way.

use nearnative_host::cpus::online_cpus;
use nearnative_host::{CpuSet, ReadError, Root};
use nix::sched::{sched_setaffinity, CpuSet as AffinityMask};
use nix::unistd::Pid;

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("CPU list {text:?}: {reason}")]
    BadList { text: String, reason: String },
    #[error("CPU list {text:?} is empty")]
    Empty { text: String },
    #[error("CPU {cpu} is not online (online CPUs: {online})")]
    Offline { cpu: u32, online: CpuSet },
    #[error("cannot read the online CPUs")]
    Online(#[source] ReadError),
    #[error("cannot pin to CPUs {cpus}")]
    Affinity {
        cpus: CpuSet,
        #[source]
        source: nix::Error,
    },
}

/// Parses a CPU list such as `1`, `0-3` or `2,4`, refusing an empty one.
pub fn parse_cpu_list(text: &str) -> Result<CpuSet, PinError> {
    let cpus = CpuSet::parse_list(text).map_err(|e| PinError::BadList {
        text: text.to_owned(),
        reason: e.to_string(),
    })?;
    if cpus.is_empty() {
        return Err(PinError::Empty {
            text: text.to_owned(),
        });
    }
    Ok(cpus)
}

/// Fails unless every CPU of `cpus` is online under `root`, naming the first one that is not.
pub fn check_online(cpus: &CpuSet, root: &Root) -> Result<(), PinError> {
    let online = online_cpus(root).map_err(PinError::Online)?;
    match cpus.difference(&online).first() {
        Some(cpu) => Err(PinError::Offline { cpu, online }),
        None => Ok(()),
    }
}

/// Restricts the calling thread to `cpus`. Other threads of the process are left alone.
pub fn pin_current_thread(cpus: &CpuSet) -> Result<(), PinError> {
    let mut mask = AffinityMask::new();
    for cpu in cpus.iter() {
        mask.set(cpu as usize)
            .map_err(|source| PinError::Affinity {
                cpus: cpus.clone(),
                source,
            })?;
    }
    // Pid 0 is the calling thread, not the whole process.
    sched_setaffinity(Pid::from_raw(0), &mask).map_err(|source| PinError::Affinity {
        cpus: cpus.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with_online(list: &str) -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let cpu = dir.path().join("sys/devices/system/cpu");
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::write(cpu.join("online"), list).unwrap();
        let root = Root::new(dir.path());
        (dir, root)
    }

    #[test]
    fn parses_and_refuses_lists() {
        let cases = [
            ("single CPU", "1", Some("1")),
            ("range", "0-2", Some("0-2")),
            ("garbage", "0-x", None),
            ("empty", " ", None),
            ("backwards", "3-1", None),
        ];
        for (what, text, want) in cases {
            let got = parse_cpu_list(text).ok().map(|c| c.to_list());
            assert_eq!(got.as_deref(), want, "{what}");
        }
    }

    #[test]
    fn offline_cpu_is_named() {
        let (_dir, root) = root_with_online("0-1\n");
        check_online(&CpuSet::from_ids([1]), &root).unwrap();
        let err = check_online(&CpuSet::from_ids([0, 5]), &root).unwrap_err();
        assert_eq!(err.to_string(), "CPU 5 is not online (online CPUs: 0-1)");
    }

    #[test]
    fn pins_the_calling_thread_only() {
        let online = online_cpus(&Root::default()).unwrap();
        let target = CpuSet::from_ids([online.first().unwrap()]);
        let handle = std::thread::Builder::new()
            .name("pin-test".into())
            .spawn(move || {
                pin_current_thread(&target).unwrap();
                nix::sched::sched_getaffinity(Pid::from_raw(0)).unwrap()
            })
            .unwrap();
        let mask = handle.join().unwrap();
        let count = (0..AffinityMask::count())
            .filter(|&c| mask.is_set(c).unwrap())
            .count();
        assert_eq!(count, 1);
    }
}
