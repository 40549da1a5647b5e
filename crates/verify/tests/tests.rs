//! Integration tests of nearnative-verify, one module per area.

mod live;
mod robustness;
mod verdicts;
