//! `nearnative inspect` on a host running a real QEMU (paused, never runs guest code), and
//! its `--qmp` option.

use std::path::Path;

use nearnative_testkit::{PausedQemu, QemuOptions};

use crate::nearnative;

/// Two vCPUs, unnamed threads and a QMP socket: inspect has to ask QMP.
#[track_caller]
fn paused_qemu(dir: &Path, name: &str) -> PausedQemu {
    let options = QemuOptions {
        vcpus: 2,
        debug_threads: false,
        qmp: true,
    };
    PausedQemu::start_with(dir, name, options)
}

#[test]
#[ignore = "needs QEMU (qemu-system-x86) and root for /dev/kvm"]
fn inspect_json_lists_a_running_qemu_with_its_vcpus_needs_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let qemu = paused_qemu(dir.path(), "cli1");
    let socket = dir.path().join("qmp.sock");
    for args in [
        vec!["inspect", "--json"],
        vec!["inspect", "--json", "--qmp", socket.to_str().unwrap()],
    ] {
        let output = nearnative(&args);
        assert!(output.status.success(), "{output:?}");
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let vms = json["workloads"].as_array().unwrap();
        let vm = vms
            .iter()
            .find(|vm| vm["pid"] == qemu.pid())
            .unwrap_or_else(|| panic!("{args:?}: QEMU missing from {vms:?}"));
        assert_eq!((&vm["kind"], &vm["name"]), (&"qemu".into(), &"cli1".into()));
        let vcpus = vm["vcpus"].as_array().unwrap();
        let indexes: Vec<_> = vcpus.iter().map(|v| v["index"].as_u64()).collect();
        assert_eq!(indexes, [Some(0), Some(1)], "{args:?}");
        for vcpu in vcpus {
            assert!(vcpu["tid"].as_u64().unwrap() > 0);
            assert!(!vcpu["affinity"].as_array().unwrap().is_empty(), "{vcpu}");
        }
    }
    let summary = String::from_utf8_lossy(&nearnative(&["inspect"]).stdout).into_owned();
    let workloads = summary.find("Workloads: ").expect("a workloads section");
    let topology = summary.find("Topology: ").unwrap();
    let findings = summary.find("Findings").unwrap();
    assert!(topology < workloads && workloads < findings, "{summary}");
    assert!(summary.contains("qemu cli1 (pid "), "{summary}");
}

#[test]
fn a_qmp_socket_that_does_not_answer_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.sock");
    let output = nearnative(&["inspect", "--qmp", missing.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("QMP socket {}: cannot connect", missing.display())),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}
