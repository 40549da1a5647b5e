//! The whitelist of knobs nearnative may write, each a typed [`Knob`], and the [`Backend`]s
//! that carry a write to the live host or to a captured tree.
//!
//! The planner describes what to change as an ordered `Vec<`[`Step`]`>`; the executor in
//! nearnative-apply reads each step's knob fresh, journals the prior value, then writes. A
//! file knob's path, value type and kernel text form are defined once, in
//! `nearnative_host::kernel`, which inspect reads through too; no write is ever built from an
//! unchecked string.
//!
//! Families: [`exclusivity`] (thread affinity, scheduling policy, cpuset cgroups, IRQ
//! steering, housekeeping masks), [`bypass`] (PM QoS, cpufreq, KVM halt polling, busy polling,
//! NIC coalescing and offloads) and [`memory`] (THP, KSM, NUMA balancing).

pub mod backend;
pub mod bypass;
pub mod error;
pub mod exclusivity;
mod knob;
pub mod memory;
pub mod step;
pub mod values;

pub use backend::{Backend, LiveBackend, Offload, TaskId, TreeBackend};
pub use error::{Described, KnobError};
pub use knob::{Change, Knob};
pub use step::Step;
pub use values::{CgroupMount, CgroupPath};
