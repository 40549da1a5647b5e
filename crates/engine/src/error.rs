//! Why an engine operation failed. Each message is one line naming the workload, file or knob.

use std::path::PathBuf;

use nearnative_apply::state::StateError;
use nearnative_apply::{ApplyError, RevertError};
use nearnative_plan::PlanError;
use nearnative_sys::durable::DurableError;
use nearnative_sys::lock::LockError;
use nearnative_verify::VerifyError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{operation} changes the live host and must run as root")]
    NotRoot { operation: &'static str },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Durable(#[from] DurableError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Revert(#[from] RevertError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("{workload} is already latency-sensitive ({path}); revert it before applying again")]
    AlreadyApplied { workload: String, path: PathBuf },
    #[error(
        "{workload}: thread {tid} of process {pid} already belongs to latency-sensitive \
         workload {holder}; revert {holder} first"
    )]
    ThreadTaken {
        workload: String,
        pid: u32,
        tid: u32,
        holder: String,
    },
    #[error(
        "{workload}: the plan does not pin thread {tid} of process {pid} (see the notes of \
         `nearnative plan`), so its core would be held for nothing; nothing was changed"
    )]
    NotPinned {
        workload: String,
        pid: u32,
        tid: u32,
    },
    #[error("{error}; the reservation could not be released either: {release}")]
    NotReleased {
        error: Box<EngineError>,
        release: Box<EngineError>,
    },
    #[error(
        "{workload}: thread {tid} of process {pid} exited during the apply; \
         rolled back {restored} change(s), the host is as it was"
    )]
    TargetExited {
        workload: String,
        pid: u32,
        tid: u32,
        restored: usize,
    },
    #[error("{reason}; nothing was reverted")]
    BadTarget { reason: String },
    #[error(
        "{target} names several plan records ({records}) in the state directory; nothing was \
         reverted"
    )]
    AmbiguousTarget { target: String, records: String },
    #[error("{target}: nothing is applied for it (applied: {applied})")]
    NotApplied { target: String, applied: String },
}
