//! `nearnative inspect` on a host running a real QEMU (paused, never runs guest code), and
//! its `--qmp` option.

use std::path::Path;
use std::process::{Command, Output};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const QEMU: &str = "qemu-system-x86_64";

fn nearnative(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nearnative"))
        .args(args)
        .output()
        .unwrap()
}

/// A daemonized QEMU without debug-threads, killed on drop even when the test fails.
struct PausedQemu(Pid);

impl PausedQemu {
    fn start(dir: &Path, name: &str) -> Option<Self> {
        let socket = dir.join("qmp.sock");
        let pidfile = dir.join("qemu.pid");
        let qmp = format!("unix:{},server=on,wait=off", socket.display());
        let output = Command::new(QEMU)
            .args([
                "-enable-kvm",
                "-S",
                "-display",
                "none",
                "-M",
                "microvm",
                "-smp",
                "2",
            ])
            .args(["-m", "64", "-qmp", &qmp, "-name", &format!("guest={name}")])
            .args(["-daemonize", "-pidfile"])
            .arg(&pidfile)
            .output();
        let output = match output {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                eprintln!(
                    "!!!! SKIPPED: {QEMU} is not installed (apt-get install qemu-system-x86)"
                );
                return None;
            }
            other => other.unwrap(),
        };
        let pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|p| p.trim().parse().ok());
        match pid.filter(|_| output.status.success()) {
            Some(pid) => Some(PausedQemu(Pid::from_raw(pid))),
            None => panic!("{QEMU} failed: {}", String::from_utf8_lossy(&output.stderr)),
        }
    }
}

impl Drop for PausedQemu {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGKILL);
    }
}

#[test]
fn inspect_json_lists_a_running_qemu_with_its_vcpus_needs_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let Some(qemu) = PausedQemu::start(dir.path(), "cli1") else {
        return;
    };
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
            .find(|vm| vm["pid"] == qemu.0.as_raw())
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
