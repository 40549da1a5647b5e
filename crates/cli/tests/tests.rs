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
mod libvirt_hook;
mod libvirt_live;
mod live_view;
mod nri_live;
mod package;
mod plan_cmd;
mod probe_jitter;
mod probe_rtt;
mod revert_cmd;
mod state_trust;
mod untrusted_root;
mod usage;
mod watchdog_live;

use std::collections::BTreeMap;
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

/// What revert must restore, from `inspect --json`: every IRQ's affinity, the default IRQ
/// affinity, the kernel knobs, each CPU's PM QoS and governor, and the affinity, policy and
/// cgroup of every thread of `pids`.
pub fn restorable(
    inspect: &serde_json::Value,
    pids: &[u32],
) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for line in inspect["irqs"]["lines"].as_array().unwrap() {
        out.insert(format!("irq {}", line["number"]), line["affinity"].clone());
    }
    out.insert(
        "default irq affinity".into(),
        inspect["irqs"]["default_affinity"].clone(),
    );
    out.insert("knobs".into(), inspect["knobs"].clone());
    for cpu in inspect["power"]["cpus"].as_array().unwrap() {
        let value = serde_json::json!([cpu["resume_latency"], cpu["cpufreq_governor"]]);
        out.insert(format!("power of cpu {}", cpu["cpu"]), value);
    }
    for process in inspect["tasks"]["processes"].as_array().unwrap() {
        if !pids.iter().any(|p| process["pid"] == *p) {
            continue;
        }
        for thread in process["threads"].as_array().unwrap() {
            let value = serde_json::json!([
                thread["affinity"],
                thread["policy"],
                thread["rt_priority"],
                process["cgroup"]
            ]);
            out.insert(format!("thread {}", thread["tid"]), value);
        }
    }
    out
}
