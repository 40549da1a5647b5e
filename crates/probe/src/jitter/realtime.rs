//! Giving the calling thread a SCHED_FIFO priority.
//!
//! nix has no wrapper for `sched_setscheduler`, so this is the one libc call of the probe.
//! A SCHED_FIFO thread that never sleeps is only held back by the kernel's real-time
//! throttling (`/proc/sys/kernel/sched_rt_runtime_us`); that pause shows up in a spin run as
//! one long gap per throttling period, which is exactly what such a run should reveal.

use nix::errno::Errno;
use nix::libc;

/// Switches the calling thread (not the process) to SCHED_FIFO at `priority`.
pub(super) fn set_fifo_priority(priority: u8) -> Result<(), Errno> {
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: `param` is a valid, initialised sched_param that outlives the call; pid 0 names
    // the calling thread, so no other task is affected.
    let ret = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    Errno::result(ret).map(drop)
}
