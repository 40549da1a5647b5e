//! The OS utilities every stage shares, and no pipeline logic: pinning a thread to CPUs, and
//! the stop flag that SIGINT, SIGTERM and SIGHUP raise. Nothing here knows about plans,
//! journals or labs; a stage crate (verify, probe, lab, knob) calls these helpers instead of
//! reaching into another stage for them.
//!
//! Each utility is a module of its own with its own error type, so another one (durable files,
//! file locks) drops in beside them without touching the rest.

pub mod pin;
pub mod signal;
