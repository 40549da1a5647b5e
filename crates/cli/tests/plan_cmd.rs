//! `nearnative plan`, run as a user would: live with a real (paused) QEMU, on a snapshot with
//! `--root`, with a ledger in `--state-dir`, and its one-line refusals.

use std::process::Output;

use nearnative_plan::{allocate, AllocationRequest, Ledger, Level};
use nearnative_sys::durable;
use nearnative_testkit::PausedQemu;
use serde_json::Value;

use crate::nearnative;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json(output: &Output) -> Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
#[ignore = "needs QEMU (qemu-system-x86) and root for /dev/kvm"]
fn live_plan_gives_the_vcpu_cpu_1_and_keeps_cpu_0_needs_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let qemu = PausedQemu::start(dir.path(), "plan1");
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let plan = json(&nearnative(&[
        "plan",
        "vm:plan1",
        "--state-dir",
        state,
        "--json",
    ]));
    assert_eq!(plan["workload"], "vm:plan1");
    let allocation = &plan["allocation"];
    assert_eq!(
        allocation["slots"],
        serde_json::json!([{"thread": 0, "cpu": 1}])
    );
    assert_eq!(allocation["exclusive_cpus"], serde_json::json!([1]));
    let changes = plan["changes"].as_array().unwrap();
    let vcpu_pin = changes.iter().find(|c| {
        c["kind"] == "thread_affinity"
            && c["knob"]["pid"] == qemu.pid()
            && c["to"] == serde_json::json!([1])
    });
    assert!(
        vcpu_pin.is_some(),
        "the vCPU thread is pinned to CPU 1: {changes:#?}"
    );
    assert!(changes
        .iter()
        .all(|c| c["mechanism"].is_string() && c["reason"].is_string()));
    let advisories = plan["advisories"].as_array().unwrap();
    assert!(advisories.iter().any(|a| a["text"]
        .as_str()
        .unwrap()
        .contains("isolcpus=domain,managed_irq,1 nohz_full=1 rcu_nocbs=1 irqaffinity=0")));
    let text = nearnative(&["plan", "vm:plan1", "--state-dir", state]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("thread 0 -> CPU 1"), "{text}");
    assert!(text.contains("advisories ("), "{text}");
    drop(qemu);
}

#[test]
fn the_ledger_in_the_state_dir_keeps_another_workloads_cores() {
    let dir = tempfile::tempdir().unwrap();
    let host = nearnative_host::Host::read(&nearnative_host::Root::new("/"), &Default::default());
    let request = AllocationRequest::new("vm:other", 1, Level::High);
    let other = allocate(&host.topology, &Ledger::new(), &request)
        .unwrap_or_else(|e| panic!("needs a host with a core to spare beside CPU 0's: {e}"));
    let mut ledger = Ledger::new();
    ledger.record(other);
    durable::store(&dir.path().join("ledger.json"), 1, &ledger).unwrap();
    let me = format!("pid:{}", std::process::id());
    let state = dir.path().to_str().unwrap();
    let output = nearnative(&[
        "plan",
        &me,
        "--threads",
        &std::process::id().to_string(),
        "--state-dir",
        state,
        "--json",
    ]);
    match output.status.success() {
        true => {
            let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
            let held = ledger.held();
            let mine = plan["allocation"]["exclusive_cpus"].as_array().unwrap();
            assert!(mine
                .iter()
                .all(|c| !held.contains(c.as_u64().unwrap() as u32)));
        }
        false => {
            let err = stderr(&output);
            assert!(err.contains("free"), "refused for lack of cores: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
}

#[test]
fn plan_on_a_snapshot_root_and_its_refusals_are_one_line() {
    let root = nearnative_testkit::shared("16em64t-4s2c2t");
    let root = root.to_str().unwrap();
    let state = tempfile::tempdir().unwrap();
    let state = state.path().to_str().unwrap();
    let cases = [
        (
            "unknown VM lists the VMs",
            vec!["plan", "vm:nope", "--root", root],
            "no VM named \"nope\" on this host (VMs: none)",
        ),
        (
            "unknown process",
            vec!["plan", "pid:999999", "--root", root],
            "no process 999999",
        ),
        (
            "bad target",
            vec!["plan", "web1", "--root", root],
            "is not vm:NAME",
        ),
        (
            "bad scope",
            vec!["plan", "vm:x", "--scope", "/a", "--root", root],
            "expected cgroup:/PATH",
        ),
        (
            "unknown NIC",
            vec!["plan", "pid:1", "--nic", "nope0"],
            "--nic nope0: no such interface",
        ),
    ];
    for (what, mut args, message) in cases {
        args.extend(["--state-dir", state]);
        let output = nearnative(&args);
        assert_eq!(output.status.code(), Some(2), "{what}");
        let err = stderr(&output);
        assert!(err.contains(message), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
    }
}
