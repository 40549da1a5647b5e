//! Integration tests of the host crate: one binary, a module per area.

mod fake_proc;
mod tasks;
mod workloads;
