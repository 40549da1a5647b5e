//! The pipeline's driver: what `nearnative apply`, `revert`, `status` and `verify` do, as a
//! library the CLI and the lab share.
//!
//! The stages below it stay single-purpose: the planner is pure, the executor only writes
//! steps through a journal. What ties them together lives here, under one state lock: the
//! host is read, the plan is made against the admission ledger, the allocation and the plan
//! are recorded durably *before* the first knob is written (so a crash leaves the cores
//! reserved and the plan findable by `revert`), the steps are applied, and the workload's own
//! threads are checked to have outlived the apply. Revert undoes the journal and then gives
//! the cores back.
//!
//! ```no_run
//! use nearnative_engine::{Engine, RevertWhich};
//! use nearnative_plan::PlanRequest;
//! let engine = Engine::live("/var/lib/nearnative");
//! let applied = engine.apply(&PlanRequest::new("vm:web1".parse()?))?;
//! println!("{} changes", applied.report.changed.len());
//! engine.revert(&RevertWhich::Target("vm:web1".to_owned()))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod admit;
mod applied;
mod boots;
mod born;
mod engine;
mod error;
mod ledger_file;
mod reconcile;
mod revert;
mod status;
mod threads;
mod verify;

pub use applied::{AppliedPlan, APPLIED_SCHEMA_VERSION};
pub use boots::ClosedEntry;
pub use born::BornReverted;
pub use engine::{Applied, Engine};
pub use error::EngineError;
pub use ledger_file::{load_ledger, LEDGER_SCHEMA_VERSION};
pub use nearnative_apply::boot::Boot;
pub use reconcile::{DriftMode, Reconciled};
pub use revert::{RevertWhich, Reverted};
pub use status::{Status, StatusEntry};
pub use threads::{workload_runs, TargetThread};
pub use verify::{VerifyOptions, VerifyReport};
