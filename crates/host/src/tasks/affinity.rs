//! A live thread's affinity through `sched_getaffinity(2)`, one system call where reading it
//! from `status` costs an open and the formatting of forty lines.
//!
//! The call answers the affinity masked by the active CPUs, where `status` shows the whole
//! mask (`Cpus_allowed_list`). The two agree when every possible CPU is online and the mask
//! fits the call's fixed-size set; only then is the call used, so what is read stays the
//! same either way.

use std::io;

use nix::errno::Errno;
use nix::sched::{sched_getaffinity, CpuSet as KernelSet};
use nix::unistd::Pid;

use crate::{CpuSet, Root};

/// True when [`thread_affinity`] answers exactly what `status` shows, on the live `root`.
pub fn getaffinity_is_exact(root: &Root) -> bool {
    if !root.is_live() {
        return false;
    }
    let read = |file: &str| {
        root.read_to_string(format!("/sys/devices/system/cpu/{file}"))
            .ok()
            .and_then(|text| CpuSet::parse_list(text.trim()).ok())
    };
    match (read("possible"), read("online")) {
        (Some(possible), Some(online)) => {
            let fits = possible
                .iter()
                .all(|cpu| (cpu as usize) < KernelSet::count());
            fits && !possible.is_empty() && possible == online
        }
        _ => false,
    }
}

/// The CPUs thread `tid` may run on; ESRCH once it has exited.
pub fn thread_affinity(tid: u32) -> io::Result<CpuSet> {
    let pid = i32::try_from(tid)
        .map(Pid::from_raw)
        .map_err(|_| io::Error::from_raw_os_error(Errno::ESRCH as i32))?;
    let set = sched_getaffinity(pid).map_err(|e| io::Error::from_raw_os_error(e as i32))?;
    Ok(CpuSet::from_ids(
        (0..KernelSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .filter_map(|cpu| u32::try_from(cpu).ok()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_root_never_uses_the_call() {
        assert!(!getaffinity_is_exact(&Root::new("/nonexistent-snapshot")));
    }

    #[test]
    fn this_thread_reads_as_its_status_says_when_exact() {
        let root = Root::default();
        let status = root.read_to_string("/proc/thread-self/status").unwrap();
        let shown = crate::tasks::parse_status(&status).unwrap().cpus_allowed;
        let tid = nix::unistd::gettid().as_raw() as u32;
        let read = thread_affinity(tid).unwrap();
        match getaffinity_is_exact(&root) {
            true => assert_eq!(read, shown),
            false => assert!(read.is_subset(&shown), "{read:?} not within {shown:?}"),
        }
    }
}
