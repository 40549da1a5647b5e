//! Integration tests of nearnative-host, one module per area.

mod capture;
mod captured_hosts;
mod fake_proc;
mod fixtures;
mod inspect;
mod irq;
mod knobs;
mod nic;
mod power;
mod robustness;
mod sysfs_tree;
mod tasks;
mod topology;
mod workloads;
