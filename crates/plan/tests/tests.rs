//! Integration tests of the allocator, one binary with a module per area.

mod fixtures;
mod ledger;
mod properties;
mod rules;
mod support;
