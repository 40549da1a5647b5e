//! Integration tests of nearnative-host, one module per area.

mod capture;
mod fixtures;
mod inspect;
mod robustness;
mod topology;
