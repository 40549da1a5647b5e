//! Integration tests of nearnative-host, one module per area.

mod capture;
mod fake_proc;
mod fixtures;
mod inspect;
mod robustness;
mod tasks;
mod topology;
mod workloads;
