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

/// The CPUs [`thread_affinity`] must look at to answer exactly what `status` shows, on the
/// live `root`: all the possible ones (`0..n`), when every one is online; `None` otherwise,
/// and when `root` records a capture, which must hold each thread's `status`.
pub fn exact_getaffinity_span(root: &Root) -> Option<u32> {
    if !root.is_live() || root.is_recording() {
        return None;
    }
    let read = |file: &str| {
        root.read_to_string(format!("/sys/devices/system/cpu/{file}"))
            .ok()
            .and_then(|text| CpuSet::parse_list(text.trim()).ok())
    };
    let (possible, online) = (read("possible")?, read("online")?);
    let span = possible.iter().max()? + 1;
    let fits = (span as usize) <= KernelSet::count();
    (fits && possible == online).then_some(span)
}

/// The CPUs below `span` thread `tid` may run on; ESRCH once it has exited.
pub fn thread_affinity(tid: u32, span: u32) -> io::Result<CpuSet> {
    let pid = i32::try_from(tid)
        .map(Pid::from_raw)
        .map_err(|_| io::Error::from_raw_os_error(Errno::ESRCH as i32))?;
    let set = sched_getaffinity(pid).map_err(|e| io::Error::from_raw_os_error(e as i32))?;
    Ok(CpuSet::from_ids(
        (0..span).filter(|&cpu| set.is_set(cpu as usize).unwrap_or(false)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_root_never_uses_the_call() {
        assert_eq!(
            exact_getaffinity_span(&Root::new("/nonexistent-snapshot")),
            None
        );
    }

    #[test]
    fn a_recording_root_never_uses_the_call_so_the_capture_keeps_every_status() {
        let (recording, _recorder) = Root::default().recording(1 << 20);
        assert_eq!(exact_getaffinity_span(&recording), None);
    }

    #[test]
    fn this_thread_reads_as_its_status_says_when_exact() {
        let root = Root::default();
        let status = root.read_to_string("/proc/thread-self/status").unwrap();
        let shown = crate::tasks::parse_status(&status).unwrap().cpus_allowed;
        let tid = nix::unistd::gettid().as_raw() as u32;
        match exact_getaffinity_span(&root) {
            Some(span) => assert_eq!(thread_affinity(tid, span).unwrap(), shown),
            None => {
                let read = thread_affinity(tid, KernelSet::count() as u32).unwrap();
                assert!(read.is_subset(&shown), "{read:?} not within {shown:?}");
            }
        }
    }
}
