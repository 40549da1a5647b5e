//! Pinning the calling thread to one CPU.
//!
//! A measuring thread pins itself first thing after it starts, before it allocates or touches
//! the clock, so its memory is placed near that CPU and no sample is taken elsewhere. Only the
//! calling thread is affected: other threads and processes keep their affinity.

use nix::errno::Errno;
use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// Why the calling thread could not be pinned. The kernel answers `EINVAL` for a CPU that is
/// offline or outside the process's cpuset.
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
}

/// Restricts the calling thread to `cpu`.
pub fn pin_current_thread(cpu: u32) -> Result<(), PinError> {
    let mut set = CpuSet::new();
    set.set(cpu as usize).map_err(|_| PinError::OutOfRange {
        cpu,
        max: CpuSet::count() - 1,
    })?;
    // Pid 0 is the calling thread, not the whole process.
    sched_setaffinity(Pid::from_raw(0), &set)
        .map_err(|source| PinError::SetAffinity { cpu, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sched::sched_getaffinity;

    #[test]
    fn pins_only_the_calling_thread() {
        let allowed = sched_getaffinity(Pid::from_raw(0)).unwrap();
        let cpu = (0..CpuSet::count())
            .find(|&c| allowed.is_set(c).unwrap())
            .unwrap() as u32;
        let pinned = std::thread::spawn(move || {
            pin_current_thread(cpu).unwrap();
            sched_getaffinity(Pid::from_raw(0)).unwrap()
        })
        .join()
        .unwrap();
        assert!(pinned.is_set(cpu as usize).unwrap());
        let others = (0..CpuSet::count()).filter(|&c| pinned.is_set(c).unwrap());
        assert_eq!(others.count(), 1);
        assert_eq!(sched_getaffinity(Pid::from_raw(0)).unwrap(), allowed);
    }

    #[test]
    fn refuses_ids_beyond_cpu_set_t() {
        let err = pin_current_thread(1_000_000).unwrap_err();
        assert!(matches!(err, PinError::OutOfRange { .. }), "{err}");
    }
}
