//! Integration tests of nearnative-host: one module per inspect area.

mod irq;
mod knobs;
mod nic;
mod power;
mod sysfs_tree;
