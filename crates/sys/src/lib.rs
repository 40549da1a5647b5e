//! The OS utilities every stage shares, and no pipeline logic: pinning a thread to CPUs, the
//! stop flag that SIGINT, SIGTERM and SIGHUP raise, durable files (written whole, fsync'd,
//! renamed), pid-recording file locks, and the trust rules for a directory root acts on (owned
//! by root, closed to others, no links). Nothing here knows about plans, journals or labs; a
//! stage crate (apply, verify, probe, lab, knob) calls these helpers instead of reaching into
//! another stage for them.
//!
//! Each utility is a module of its own with its own error type.

pub mod durable;
pub mod lock;
pub mod pin;
pub mod signal;
pub mod trust;
