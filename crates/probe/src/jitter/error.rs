//! Why a jitter run was refused or failed. Each message names the CPU or the value at fault.

use std::time::Duration;

use nearnative_host::{CpuSet, ReadError};
use nix::errno::Errno;

use super::config::{MAX_INTERVAL, MIN_INTERVAL};
use nearnative_sys::pin::PinError;

#[derive(Debug, thiserror::Error)]
pub enum JitterError {
    #[error("the CPU list is empty: give at least one CPU")]
    NoCpus,
    #[error("CPU {cpus} is not online (online: {online})")]
    NotOnline { cpus: CpuSet, online: CpuSet },
    #[error("cannot tell which CPUs are online")]
    Online(#[source] ReadError),
    #[error("duration {0:?} is out of range: give more than 0 and at most 24 h")]
    Duration(Duration),
    #[error(
        "threshold {0} ns is out of range: give at least 1 ns, at most 1 s, and less than the duration"
    )]
    Threshold(u64),
    #[error("real-time priority {0} is out of range: SCHED_FIFO takes 1 to 99")]
    RtPriority(u8),
    #[error(
        "timer interval {0:?} is out of range: give {MIN_INTERVAL:?} to {MAX_INTERVAL:?}, and no more than the duration"
    )]
    Interval(Duration),
    #[error("cannot start the measuring thread for CPU {cpu}")]
    Spawn {
        cpu: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("measuring thread for CPU {cpu}")]
    Pin {
        cpu: u32,
        #[source]
        source: PinError,
    },
    #[error("cannot give the measuring thread for CPU {cpu} SCHED_FIFO priority {priority}")]
    Realtime {
        cpu: u32,
        priority: u8,
        #[source]
        source: Errno,
    },
    #[error("the wake-up timer on CPU {cpu} failed")]
    Timer {
        cpu: u32,
        #[source]
        source: Errno,
    },
    #[error("the measuring thread for CPU {cpu} panicked")]
    Panicked { cpu: u32 },
    #[error("not run: the measuring thread for another CPU failed to start")]
    PeerFailed,
}
