//! The `apply` and `revert` stages: knobs written through a journal that survives a crash.
//!
//! Nothing here decides what to change; that is the planner's pure job, which hands over an
//! ordered `Vec<nearnative_knob::Step>`. This crate only makes changes durable-before-visible:
//! a knob's prior value reaches the disk before the knob is written, so `revert` can always put
//! the host back.

pub mod apply;
pub mod boot;
mod compact;
pub mod fault;
mod handover;
pub mod journal;
mod journal_log;
mod restore;
pub mod revert;
pub mod state;
mod threads;
pub mod validate;
mod waves;

pub use apply::{apply, apply_locked, extend_locked, ApplyError, ApplyReport, Rollback};
#[cfg(feature = "fault-injection")]
pub use apply::{apply_locked_with_crash, apply_with_crash};
pub use boot::{Boot, ThisBoot};
#[cfg(feature = "fault-injection")]
pub use fault::{Crash, CrashPoint};
pub use handover::HandedOver;
#[cfg(feature = "fault-injection")]
pub use handover::HandoverCrash;
pub use journal::{Journal, JournalStatus, Unchangeable, JOURNAL_SCHEMA_VERSION};
pub use restore::{in_created_cgroup, Restored};
#[cfg(feature = "fault-injection")]
pub use revert::revert_with_crash;
pub use revert::{revert, revert_locked, JournalReverted, RevertError, RevertReport, RevertTarget};
pub use state::{JournalId, StateDir, DEFAULT_STATE_DIR};
pub use validate::{validate_steps, HostBounds, InvalidStep};
