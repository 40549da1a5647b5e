//! Integration tests of the probe crate, one module per area.

mod rtt;
