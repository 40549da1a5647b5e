//! Integration tests of the allocator, one binary with a module per area.

mod admit;
mod exact;
mod fixtures;
mod kernel_rules;
mod ledger;
mod plan_libvirt;
mod plan_live;
mod plan_nested;
mod plan_nested_tree;
mod plan_pool;
mod plan_rules;
mod plan_snapshots;
mod plan_support;
mod plan_v2;
mod plan_v2_tree;
mod properties;
mod rules;
mod support;
