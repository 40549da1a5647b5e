//! Tests of the `nearnative` binary as a user runs it, one module per command.

mod apply_live;
mod apply_refusals;
mod inspect;
mod inspect_vms;
mod lab_cmd;
mod plan_cmd;
mod probe_jitter;
mod probe_rtt;
mod usage;
