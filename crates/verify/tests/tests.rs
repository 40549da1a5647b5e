//! Integration tests of nearnative-verify, one module per area.

mod live;
mod readback;
mod robustness;
mod verdicts;
