//! The `plan` stage: a pure function of (host, request, ledger) → plan. No I/O, no clock, no
//! randomness, and no hash-map order in any output, so the same inputs always give the same
//! plan.
//!
//! This crate holds the allocator with admission control: it gives a workload exclusive whole
//! cores, vSphere "latency sensitivity = high" style, or refuses with the numbers that explain
//! why. [`Ledger`] is the record of what is already given; [`Allocator::allocate`] reads it and
//! the [`Topology`](nearnative_host::topology::Topology) and returns an [`Allocation`] that the
//! caller then [`Ledger::record`]s.
//!
//! [`plan`] builds on it: it resolves the target's threads in the [`Host`](nearnative_host::Host),
//! allocates, and emits the ordered `nearnative_knob::Step`s with a mechanism and reason each,
//! plus advisories. It only constructs steps; it never calls a knob's `read` or `write`.

mod admit;
mod advisories;
mod allocation;
mod allocator;
mod availability;
pub mod changes;
mod decisions;
mod error;
mod host_index;
mod ledger;
mod notes;
mod packing;
mod placement;
mod plan;
mod plan_error;
mod plan_request;
mod pool;
mod request;
pub mod scope;
mod scope_v2;
pub mod target;
mod workload_id;

pub use admit::admit;
pub use advisories::Topic;
pub use allocation::{Allocation, Slot};
pub use allocator::{allocate, Admission, Allocator};
pub use decisions::{Note, ProtectedIrq};
pub use error::{AdmissionError, NodeCounts, NodeRole, Shortage};
pub use ledger::{Ledger, LedgerError};
pub use notes::{NodeCores, PlacementNote};
pub use plan::{plan, replan, Advisory, Plan, PlannedChange};
pub use plan_error::PlanError;
pub use plan_request::PlanRequest;
pub use pool::Pool;
pub use request::{AllocationRequest, IoPlacement, Level, NumaSpill, WorkloadKey};
pub use scope::{Fencing, Scope};
pub use target::Target;
pub use workload_id::{BadWorkloadId, WorkloadId};
