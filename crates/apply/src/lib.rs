//! The `apply` and `revert` stages: knobs written through a journal that survives a crash.
//!
//! Nothing here decides what to change; that is the planner's pure job. This crate only makes
//! changes durable-before-visible: a knob's prior value reaches the disk before the knob is
//! written, so `revert` can always put the host back.

pub mod durable;
pub mod lock;
