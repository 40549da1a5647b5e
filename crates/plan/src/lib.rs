//! The `plan` stage: a pure function of (host, request, ledger) → plan. No I/O, no clock, no
//! randomness, and no hash-map order in any output, so the same inputs always give the same
//! plan.
//!
//! This crate holds the allocator with admission control: it gives a workload exclusive whole
//! cores, vSphere "latency sensitivity = high" style, or refuses with the numbers that explain
//! why. [`Ledger`] is the record of what is already given; [`Allocator::allocate`] reads it and
//! the [`Topology`](nearnative_host::topology::Topology) and returns an [`Allocation`] that the
//! caller then [`Ledger::record`]s.

mod allocation;
mod allocator;
mod availability;
mod error;
mod host_index;
mod ledger;
mod notes;
mod packing;
mod placement;
mod request;

pub use allocation::{Allocation, Slot};
pub use allocator::{allocate, Admission, Allocator};
pub use error::{AdmissionError, NodeCounts, NodeRole, Shortage};
pub use ledger::{Ledger, LedgerError};
pub use request::{AllocationRequest, IoPlacement, Level, NumaSpill, WorkloadKey};
