//! Integration tests of nearnative-host: one module per inspect area.

mod captured_hosts;
mod irq;
mod knobs;
mod nic;
mod power;
mod sysfs_tree;
