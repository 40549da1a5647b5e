//! Tests of the `nearnative` binary as a user runs it, one module per command.

mod apply_live;
mod apply_nested;
mod apply_refusals;
mod assets;
mod born_live;
mod control_socket;
mod daemon_live;
mod inspect;
mod inspect_vms;
mod killed_live;
mod lab_cmd;
mod package;
mod plan_cmd;
mod probe_jitter;
mod probe_rtt;
mod revert_cmd;
mod state_trust;
mod untrusted_root;
mod usage;
mod watchdog_live;

use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

/// Runs the binary under test with `args` and waits for it.
pub fn nearnative(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nearnative"))
        .args(args)
        .output()
        .unwrap()
}

/// Tests that change host-wide knobs (IRQ affinities, sysctls, PM QoS) and compare the host
/// before and after run one at a time: the lab runs and the live apply.
static HOST_KNOBS: Mutex<()> = Mutex::new(());

pub fn host_knobs_exclusively() -> MutexGuard<'static, ()> {
    HOST_KNOBS.lock().unwrap_or_else(|e| e.into_inner())
}
