//! Integration tests of nearnative-host: one module per inspect area.

mod irq;
mod knobs;
mod power;
mod sysfs_tree;
