//! Acceptance 3, live and scoped: a paused QEMU (one vCPU, debug-threads) and an unrelated
//! shell in a cpuset cgroup of the test's own; `apply vm:NAME --scope cgroup:THAT` pins the
//! vCPU to CPU 1 and fences everything else in the scope (and every movable IRQ but the
//! default-route NIC's) off it, a child the shell spawns afterwards stays off it, `verify`
//! passes, and `revert` restores every affinity, IRQ and knob to what `inspect --json` showed
//! before. Nothing outside the scope is moved: PID 1 and the machine's processes belong to it.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::time::Duration;

use nearnative_testkit::{PausedQemu, QemuOptions};
use serde_json::Value;

use crate::{nearnative, restorable};

const CPUSET: &str = "/sys/fs/cgroup/cpuset";

fn succeeded(output: Output, what: &str) -> Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{what}: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

/// The scope cgroup with what the test started in it; on drop (also when the test fails)
/// everything is reverted, stopped and removed.
struct Scope {
    dir: PathBuf,
    state: PathBuf,
    qemu: Option<PausedQemu>,
    shell: Option<Child>,
    children: Vec<u32>,
}

impl Drop for Scope {
    fn drop(&mut self) {
        let state = self.state.to_str().unwrap_or_default().to_owned();
        let _ = nearnative(&["revert", "--all", "--state-dir", &state]);
        for pid in &self.children {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Some(mut shell) = self.shell.take() {
            let _ = shell.kill();
            let _ = shell.wait();
        }
        drop(self.qemu.take());
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn create_scope(name: &str, state: PathBuf) -> Scope {
    let dir = Path::new(CPUSET).join(name);
    std::fs::create_dir(&dir).unwrap();
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let parent = std::fs::read_to_string(Path::new(CPUSET).join(file)).unwrap();
        std::fs::write(dir.join(file), parent.trim()).unwrap();
    }
    Scope {
        dir,
        state,
        qemu: None,
        shell: None,
        children: Vec::new(),
    }
}

/// A shell that, for each line it reads, starts `sleep` in the background and prints its pid.
fn spawning_shell() -> (Child, ChildStdin, BufReader<ChildStdout>) {
    let mut shell = Command::new("sh")
        .args(["-c", "while read line; do sleep 300 & echo $!; done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = shell.stdin.take().unwrap();
    let stdout = BufReader::new(shell.stdout.take().unwrap());
    (shell, stdin, stdout)
}

fn spawn_child(stdin: &mut ChildStdin, stdout: &mut BufReader<ChildStdout>) -> u32 {
    writeln!(stdin, "go").unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    line.trim().parse().unwrap()
}

fn affinity(tid: u32) -> BTreeSet<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim();
    let set: nearnative_host::CpuSet = list.parse().unwrap();
    set.iter().collect()
}

/// The cpuset cgroup of a task.
fn cpuset_of(tid: u32) -> String {
    let cgroup = std::fs::read_to_string(format!("/proc/{tid}/cgroup")).unwrap();
    let line = cgroup.lines().find(|l| {
        l.split(':')
            .nth(1)
            .is_some_and(|c| c.split(',').any(|c| c == "cpuset"))
    });
    line.and_then(|l| l.splitn(3, ':').nth(2))
        .unwrap_or_default()
        .to_owned()
}

/// Every task id in the scope's cgroup subtree.
fn tasks_in(dir: &Path) -> Vec<u32> {
    let mut tids: Vec<u32> = std::fs::read_to_string(dir.join("tasks"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            tids.extend(tasks_in(&entry.path()));
        }
    }
    tids
}

/// The IRQs of the interfaces that carry a default route.
fn default_route_irqs(inspect: &Value) -> BTreeSet<u64> {
    let mut irqs = BTreeSet::new();
    for nic in inspect["nics"]["interfaces"].as_array().unwrap() {
        if nic["default_route"]
            .as_array()
            .is_some_and(|r| r.is_empty())
        {
            continue;
        }
        irqs.extend(
            nic["irqs"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|i| i["irq"].as_u64()),
        );
        for line in inspect["irqs"]["lines"].as_array().unwrap() {
            if !nic["bus_device"].is_null() && line["device"] == nic["bus_device"] {
                irqs.extend(line["number"].as_u64());
            }
        }
    }
    irqs
}

#[test]
#[ignore = "needs root: a v1 cpuset hierarchy and QEMU (qemu-system-x86) with /dev/kvm"]
fn scoped_apply_pins_the_vcpu_fences_the_scope_verifies_and_reverts_exactly_needs_root_qemu() {
    assert!(nix::unistd::geteuid().is_root(), "needs root");
    assert!(
        Path::new(CPUSET).join("tasks").exists(),
        "needs a cgroup v1 cpuset hierarchy at {CPUSET}"
    );
    let _serial = crate::host_knobs_exclusively();
    let dir = tempfile::tempdir().unwrap();
    let id = std::process::id();
    let name = format!("accept{id}");
    let scope_name = format!("nn-accept-{id}");
    let mut scope = create_scope(&scope_name, dir.path().join("state"));
    let options = QemuOptions {
        vcpus: 1,
        debug_threads: true,
        qmp: false,
    };
    let qemu = PausedQemu::start_with(dir.path(), &name, options);
    let qemu_pid = qemu.pid();
    scope.qemu = Some(qemu);
    let (shell, mut stdin, mut stdout) = spawning_shell();
    let shell_pid = shell.id();
    scope.shell = Some(shell);
    for pid in [qemu_pid, shell_pid] {
        std::fs::write(scope.dir.join("cgroup.procs"), pid.to_string()).unwrap();
    }
    let state = scope.state.to_str().unwrap().to_owned();
    let before = succeeded(nearnative(&["inspect", "--json"]), "inspect before");
    let machine_before = (affinity(1), cpuset_of(1));

    let scope_arg = format!("cgroup:/{scope_name}");
    let target = format!("vm:{name}");
    let applied = succeeded(
        nearnative(&[
            "apply",
            &target,
            "--scope",
            &scope_arg,
            "--state-dir",
            &state,
            "--json",
        ]),
        "apply",
    );
    let vcpu = applied["plan"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "thread_affinity" && c["to"] == serde_json::json!([1]))
        .and_then(|c| c["knob"]["tid"].as_u64())
        .expect("a step pins a thread to CPU 1") as u32;
    assert_eq!(
        affinity(vcpu),
        BTreeSet::from([1]),
        "the vCPU is pinned to CPU 1"
    );
    let comm = std::fs::read_to_string(format!("/proc/{vcpu}/comm")).unwrap();
    assert_eq!(comm.trim(), "CPU 0/KVM", "the pinned thread is the vCPU");
    let machine_now = (affinity(1), cpuset_of(1));
    assert_eq!(machine_now, machine_before, "PID 1 was not touched");
    for tid in tasks_in(&scope.dir).into_iter().filter(|t| *t != vcpu) {
        assert!(
            !affinity(tid).contains(&1),
            "thread {tid} in the scope may run on CPU 1"
        );
    }
    let unchangeable: BTreeSet<String> = applied["report"]["unchangeable"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["knob"]["location"].as_str().map(str::to_owned))
        .collect();
    let protected = default_route_irqs(&before);
    for line in before["irqs"]["lines"].as_array().unwrap() {
        let irq = line["number"].as_u64().unwrap();
        let file = format!("/proc/irq/{irq}/smp_affinity_list");
        let movable = line["affinity_settable"] == true && !unchangeable.contains(&file);
        if !movable || protected.contains(&irq) {
            continue;
        }
        let now = std::fs::read_to_string(&file).unwrap();
        let now: nearnative_host::CpuSet = now.trim().parse().unwrap();
        assert!(
            !now.contains(1),
            "IRQ {irq} may still fire on CPU 1 ({now})"
        );
    }
    let child = spawn_child(&mut stdin, &mut stdout);
    scope.children.push(child);
    assert!(
        !affinity(child).contains(&1),
        "a later child lands on CPU 1"
    );

    let verified = nearnative(&["verify", &target, "--sample", "2s", "--state-dir", &state]);
    let report = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "verify: {report}");

    succeeded(
        nearnative(&["revert", &target, "--state-dir", &state]),
        "revert",
    );
    let after = succeeded(nearnative(&["inspect", "--json"]), "inspect after");
    let pids = [qemu_pid, shell_pid];
    let (before, after) = (restorable(&before, &pids), restorable(&after, &pids));
    for (key, value) in &before {
        if let Some(now) = after.get(key) {
            assert_eq!(now, value, "{key} after revert");
        }
    }
    let missing: Vec<_> = before
        .keys()
        .filter(|k| k.starts_with("thread ") && !after.contains_key(*k))
        .collect();
    assert!(missing.is_empty(), "threads gone after revert: {missing:?}");
    let status = nearnative(&["status", "--state-dir", &state]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("no latency-sensitive workloads"));
}
