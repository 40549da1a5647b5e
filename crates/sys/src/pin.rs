//! Thread affinity: pinning the calling thread to one CPU or a CPU list, checking a user's CPU
//! list first, and reading or setting the affinity of another thread of the host.
//!
//! A measuring thread pins itself first thing after it starts, before it allocates or touches
//! the clock, so its memory is placed near that CPU and no sample is taken elsewhere (`probe
//! rtt` pins before its warm-up for the same reason). Only the calling thread is affected:
//! other threads and processes keep their affinity. A user's list is checked against the online
//! CPUs before anything starts, so a typo fails with a message that names the CPU instead of an
//! opaque `EINVAL` from `sched_setaffinity`.

use nearnative_host::cpus::online_cpus;
use nearnative_host::{CpuSet as CpuList, ReadError, Root};
use nix::errno::Errno;
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// Why a CPU list was refused or the calling thread could not be pinned. The kernel answers
/// `EINVAL` for a CPU that is offline or outside the process's cpuset.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("CPU {cpu} is above the largest id a cpu_set_t holds ({max})")]
    OutOfRange { cpu: u32, max: usize },
    #[error("cannot pin this thread to CPU {cpu} (offline, or outside this process's cpuset?)")]
    SetAffinity {
        cpu: u32,
        #[source]
        source: Errno,
    },
    #[error("cannot pin this thread to CPUs {cpus} (outside this process's cpuset?)")]
    SetAffinityList {
        cpus: CpuList,
        #[source]
        source: Errno,
    },
    #[error("CPU list {text:?}: {reason}")]
    BadList { text: String, reason: String },
    #[error("CPU list {text:?} is empty")]
    Empty { text: String },
    #[error("CPU {cpu} is not online (online CPUs: {online})")]
    Offline { cpu: u32, online: CpuList },
    #[error("cannot read the online CPUs")]
    Online(#[source] ReadError),
}

/// Restricts the calling thread to `cpu`.
pub fn pin_current_thread(cpu: u32) -> Result<(), PinError> {
    let set = kernel_set([cpu])?;
    // Pid 0 is the calling thread, not the whole process.
    sched_setaffinity(Pid::from_raw(0), &set)
        .map_err(|source| PinError::SetAffinity { cpu, source })
}

/// Restricts the calling thread to the CPUs of `cpus`.
pub fn pin_current_thread_to(cpus: &CpuList) -> Result<(), PinError> {
    let set = kernel_set(cpus.iter())?;
    sched_setaffinity(Pid::from_raw(0), &set).map_err(|source| PinError::SetAffinityList {
        cpus: cpus.clone(),
        source,
    })
}

/// Restricts thread `tid` (of any process) to `cpus`, as `sched_setaffinity(2)` answers: a
/// CPU beyond a `cpu_set_t` is `EINVAL`, as the kernel itself would say.
pub fn set_thread_affinity(tid: u32, cpus: &CpuList) -> Result<(), Errno> {
    let set = kernel_set(cpus.iter()).map_err(|_| Errno::EINVAL)?;
    sched_setaffinity(pid_of(tid)?, &set)
}

/// The CPUs thread `tid` (of any process) may run on.
pub fn thread_affinity(tid: u32) -> Result<CpuList, Errno> {
    let set = sched_getaffinity(pid_of(tid)?)?;
    Ok((0..CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .filter_map(|cpu| u32::try_from(cpu).ok())
        .collect())
}

/// A tid the kernel could never have given (above `i32::MAX`) names no thread.
fn pid_of(tid: u32) -> Result<Pid, Errno> {
    i32::try_from(tid)
        .map(Pid::from_raw)
        .map_err(|_| Errno::ESRCH)
}

/// Plain ids, not a [`CpuList`]: building one panics on an id above its limit, where a
/// caller's typo must come back as [`PinError::OutOfRange`].
fn kernel_set(cpus: impl IntoIterator<Item = u32>) -> Result<CpuSet, PinError> {
    let mut set = CpuSet::new();
    for cpu in cpus {
        set.set(cpu as usize).map_err(|_| PinError::OutOfRange {
            cpu,
            max: CpuSet::count() - 1,
        })?;
    }
    Ok(set)
}

/// Parses a CPU list such as `1`, `0-3` or `2,4`, refusing an empty one.
pub fn parse_cpu_list(text: &str) -> Result<CpuList, PinError> {
    let cpus = CpuList::parse_list(text).map_err(|e| PinError::BadList {
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
pub fn check_online(cpus: &CpuList, root: &Root) -> Result<(), PinError> {
    let online = online_cpus(root).map_err(PinError::Online)?;
    match cpus.difference(&online).first() {
        Some(cpu) => Err(PinError::Offline { cpu, online }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_allowed_cpu() -> u32 {
        let allowed = sched_getaffinity(Pid::from_raw(0)).unwrap();
        (0..CpuSet::count())
            .find(|&c| allowed.is_set(c).unwrap())
            .unwrap() as u32
    }

    fn pinned_mask(pin: impl FnOnce() + Send + 'static) -> CpuSet {
        std::thread::Builder::new()
            .name("pin-test".into())
            .spawn(move || {
                pin();
                sched_getaffinity(Pid::from_raw(0)).unwrap()
            })
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn pins_only_the_calling_thread() {
        let allowed = sched_getaffinity(Pid::from_raw(0)).unwrap();
        let cpu = first_allowed_cpu();
        let pinned = pinned_mask(move || pin_current_thread(cpu).unwrap());
        assert!(pinned.is_set(cpu as usize).unwrap());
        let others = (0..CpuSet::count()).filter(|&c| pinned.is_set(c).unwrap());
        assert_eq!(others.count(), 1);
        assert_eq!(sched_getaffinity(Pid::from_raw(0)).unwrap(), allowed);
    }

    #[test]
    fn pins_to_a_list() {
        let cpu = first_allowed_cpu();
        let pinned = pinned_mask(move || {
            pin_current_thread_to(&CpuList::from_ids([cpu])).unwrap();
        });
        let set: Vec<usize> = (0..CpuSet::count())
            .filter(|&c| pinned.is_set(c).unwrap())
            .collect();
        assert_eq!(set, vec![cpu as usize]);
    }

    #[test]
    fn another_threads_affinity_is_read_and_set() {
        let cpu = first_allowed_cpu();
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("pin-target".into())
            .spawn(move || {
                tx.send(nix::unistd::gettid().as_raw() as u32).unwrap();
                done_rx.recv().unwrap();
            })
            .unwrap();
        let tid = rx.recv().unwrap();
        set_thread_affinity(tid, &CpuList::from_ids([cpu])).unwrap();
        assert_eq!(thread_affinity(tid).unwrap(), CpuList::from_ids([cpu]));
        assert_eq!(
            set_thread_affinity(u32::MAX, &CpuList::from_ids([cpu])),
            Err(Errno::ESRCH)
        );
        done_tx.send(()).unwrap();
        thread.join().unwrap();
    }

    #[test]
    fn refuses_ids_beyond_cpu_set_t() {
        let err = pin_current_thread(1_000_000).unwrap_err();
        assert!(matches!(err, PinError::OutOfRange { .. }), "{err}");
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
        let dir = tempfile::tempdir().unwrap();
        let cpu_dir = dir.path().join("sys/devices/system/cpu");
        std::fs::create_dir_all(&cpu_dir).unwrap();
        std::fs::write(cpu_dir.join("online"), "0-1\n").unwrap();
        let root = Root::new(dir.path());
        check_online(&CpuList::from_ids([1]), &root).unwrap();
        let err = check_online(&CpuList::from_ids([0, 5]), &root).unwrap_err();
        assert_eq!(err.to_string(), "CPU 5 is not online (online CPUs: 0-1)");
    }
}
