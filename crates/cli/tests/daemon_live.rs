//! `nearnative daemon`, live and scoped (issue 10's acceptance 1 to 6): a daemon of the
//! test's own (private state dir, policy dir, control socket, metrics off or on a free
//! loopback port, a 1 s sweep) keeps
//! to a v1 cpuset cgroup of the test's own that holds both CPUs of this machine, so the
//! vCPU gets CPU 1 and the housekeeping keeps CPU 0. Real paused QEMUs (`-name
//! guest=nn-d-...,debug-threads=on`) are started inside that cgroup, exec and all.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::live_view::{affinity, comm, cpuset_of, list, scope_cpuset, threads_of};
use crate::{nearnative, restorable};
use nearnative_apply::journal::Journal;
use nearnative_apply::StateDir;
use nearnative_engine::{APPLIED_SCHEMA_VERSION, LEDGER_SCHEMA_VERSION};
use nearnative_sys::durable;
use nearnative_testkit::prometheus::{parse_exposition, value, workload_values, Sample};
use nearnative_testkit::{PausedQemu, QemuOptions};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// How long the daemon may take to notice and act: several sweeps.
const PATIENCE: Duration = Duration::from_secs(15);

fn succeeded(output: Output, what: &str) -> Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{what}: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

/// The test's scope cgroup, directories and daemon. On drop (also when the test fails) the
/// daemon and the VMs are stopped, everything is reverted and the cgroup removed.
struct DaemonLab {
    tmp: tempfile::TempDir,
    scope_name: String,
    scope_dir: PathBuf,
    daemon: Option<Child>,
    /// `--metrics`: `off` unless a test serves them.
    metrics: String,
    qemus: Vec<PausedQemu>,
    bystanders: Vec<Child>,
}

impl DaemonLab {
    /// A scope with every CPU and memory node, and `policy` as the one policy file.
    fn new(policy: &str) -> DaemonLab {
        assert!(nix::unistd::geteuid().is_root(), "needs root");
        let (scope_name, scope_dir) = scope_cpuset("nn-daemon");
        let lab = DaemonLab {
            tmp: tempfile::tempdir().unwrap(),
            scope_name,
            scope_dir,
            daemon: None,
            metrics: "off".to_owned(),
            qemus: Vec::new(),
            bystanders: Vec::new(),
        };
        std::fs::create_dir(lab.policy_dir()).unwrap();
        lab.write_policy(policy);
        lab
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn policy_dir(&self) -> PathBuf {
        self.path("workloads.d")
    }

    fn state(&self) -> String {
        self.path("state").to_str().unwrap().to_owned()
    }

    fn log(&self) -> PathBuf {
        self.path("daemon.log")
    }

    fn write_policy(&self, policy: &str) {
        std::fs::write(self.policy_dir().join("test.toml"), policy).unwrap();
    }

    /// Has the next daemon serve its metrics on a free loopback port; returns the address.
    fn serve_metrics(&mut self) -> SocketAddr {
        let free = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = free.local_addr().unwrap();
        self.metrics = addr.to_string();
        addr
    }

    /// Starts the daemon, its log appended to `daemon.log`.
    fn start_daemon(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let scope = format!("cgroup:/{}", self.scope_name);
        let daemon = Command::new(env!("CARGO_BIN_EXE_nearnative"))
            .args([
                "daemon",
                "--metrics",
                &self.metrics,
                "--sweep",
                "1",
                "--scope",
                &scope,
            ])
            .arg("--policy-dir")
            .arg(self.policy_dir())
            .args(["--state-dir", &self.state()])
            .arg("--control-socket")
            .arg(self.path("control.sock"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(daemon);
    }

    /// Stops the daemon with `signal` and waits for it; returns its exit status.
    fn stop_daemon(&mut self, signal: Signal) -> std::process::ExitStatus {
        let mut daemon = self.daemon.take().expect("a daemon runs");
        kill(Pid::from_raw(daemon.id() as i32), signal).unwrap();
        daemon.wait().unwrap()
    }

    fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    fn start_vm(&mut self, name: &str) -> u32 {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        let options = QemuOptions {
            qmp: true,
            ..QemuOptions::default()
        };
        let procs = self.scope_dir.join("cgroup.procs");
        let qemu = PausedQemu::start_in(&dir, name, options, Some(&procs));
        let pid = qemu.pid();
        self.qemus.push(qemu);
        pid
    }

    fn stop_vm(&mut self, pid: u32) {
        let at = self.qemus.iter().position(|q| q.pid() == pid).unwrap();
        self.qemus.remove(at).stop();
    }

    /// `sleep` started inside the scope.
    fn start_bystander(&mut self) -> u32 {
        let procs = self.scope_dir.join("cgroup.procs");
        let child = Command::new("sh")
            .args(["-c", "echo $$ > \"$0\" && exec sleep 600"])
            .arg(procs)
            .spawn()
            .unwrap();
        let pid = child.id();
        self.bystanders.push(child);
        // In the scope or below it: a daemon that already holds a VM may have fenced it into
        // its housekeeping cgroup by the time we look.
        let scope = format!("/{}", self.scope_name);
        wait_until("the bystander in the scope", || {
            let cpuset = cpuset_of(pid);
            (cpuset == scope || cpuset.starts_with(&format!("{scope}/"))).then_some(())
        });
        pid
    }

    /// `status --json`, read directly from the state directory.
    fn status(&self) -> Value {
        succeeded(
            nearnative(&["status", "--json", "--state-dir", &self.state()]),
            "status",
        )
    }

    /// `status --json` through the daemon's control socket: the daemon's own view.
    fn daemon_status(&self) -> Value {
        let socket = self.path("control.sock");
        succeeded(
            nearnative(&[
                "status",
                "--json",
                "--control-socket",
                socket.to_str().unwrap(),
            ]),
            "status through the daemon",
        )
    }

    /// The one workload applied for `key`, once it is applied with its journal complete.
    fn applied(&self, key: &str) -> Option<Value> {
        let status = self.status();
        let workloads = status["workloads"].as_array()?;
        let found = workloads.iter().find(|w| w["workload"] == key)?;
        (found["journal_status"] == "applied").then(|| found.clone())
    }

    /// Nothing of nearnative's is left: no ledger entry, plan, journal or cgroup.
    fn empty(&self) -> Result<(), String> {
        let status = self.status();
        let left = status["workloads"].as_array().map_or(0, Vec::len)
            + status["orphan_journals"].as_array().map_or(0, Vec::len);
        if left > 0 {
            return Err(format!("status: {status}"));
        }
        for dir in ["plans", "journals"] {
            let files = list(&Path::new(&self.state()).join(dir));
            if !files.is_empty() {
                return Err(format!("{dir}: {files:?}"));
            }
        }
        let cgroups: Vec<String> = list(&self.scope_dir)
            .into_iter()
            .filter(|name| name.starts_with("nearnative-"))
            .collect();
        match cgroups.is_empty() {
            true => Ok(()),
            false => Err(format!("cgroups left: {cgroups:?}")),
        }
    }

    /// Asserts the vCPU thread of VM `pid` alone may run on CPU 1, among all the scope's
    /// threads; returns its tid.
    fn assert_exclusive(&self, pid: u32) -> u32 {
        let vcpu = vcpu_thread(pid);
        assert_eq!(affinity(vcpu), BTreeSet::from([1]), "the vCPU's affinity");
        for tid in tasks_below(&self.scope_dir) {
            if tid != vcpu {
                assert!(
                    !affinity(tid).contains(&1),
                    "thread {tid} ({}) in the scope may run on CPU 1",
                    comm(tid)
                );
            }
        }
        vcpu
    }
}

impl Drop for DaemonLab {
    fn drop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let _ = kill(Pid::from_raw(daemon.id() as i32), Signal::SIGKILL);
            let _ = daemon.wait();
        }
        self.qemus.clear();
        for mut child in self.bystanders.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = nearnative(&["revert", "--all", "--state-dir", &self.state()]);
        for _ in 0..200 {
            if std::fs::remove_dir(&self.scope_dir).is_ok() || !self.scope_dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The daemon status's entry for workload `key`.
fn workload_of<'a>(status: &'a Value, key: &str) -> Option<&'a Value> {
    let workloads = status["workloads"].as_array()?;
    workloads.iter().find(|w| w["workload"] == key)
}

/// Polls `check` every 20 ms until it gives a value, failing the test after [`PATIENCE`].
#[track_caller]
fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn vcpu_thread(pid: u32) -> u32 {
    let vcpu = threads_of(pid)
        .into_iter()
        .find(|&t| comm(t) == "CPU 0/KVM");
    vcpu.unwrap_or_else(|| panic!("VM {pid} has no thread CPU 0/KVM"))
}

/// Every task in `dir` and the cpusets below it.
fn tasks_below(dir: &Path) -> Vec<u32> {
    let mut tasks: Vec<u32> = std::fs::read_to_string(dir.join("tasks"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            tasks.extend(tasks_below(&entry.path()));
        }
    }
    tasks
}

/// Sends one QMP command to the VM whose directory is `dir`, after the handshake.
fn qmp(dir: &Path, command: &str) -> Value {
    let stream = UnixStream::connect(dir.join("qmp.sock")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    writeln!(writer, r#"{{"execute":"qmp_capabilities"}}"#).unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    writeln!(writer, "{command}").unwrap();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let value: Value = serde_json::from_str(&line).unwrap();
        if value.get("event").is_none() {
            return value;
        }
    }
}

const POLICY: &str = "[[workload]]\ntarget = \"vm:nn-d-*\"\n";

/// How many start/stop cycles acceptance 1 runs.
const CYCLES: usize = 50;

#[test]
#[ignore = "needs root and QEMU: a v1 cpuset hierarchy, qemu-system-x86 with /dev/kvm"]
fn a_vm_is_applied_when_it_starts_and_released_when_it_stops_fifty_times_over() {
    let _serial = crate::host_knobs_exclusively();
    let mut lab = DaemonLab::new(POLICY);
    lab.start_daemon();
    for cycle in 0..CYCLES {
        let name = format!("nn-d-{cycle}");
        let pid = lab.start_vm(&name);
        let key = format!("vm:{name}");
        let applied = wait_until(&format!("{key} applied (cycle {cycle})"), || {
            lab.applied(&key)
        });
        assert_eq!(applied["exclusive_cpus"], serde_json::json!([1]), "{key}");
        wait_until(&format!("{key}'s vCPU alone on CPU 1"), || {
            (affinity(vcpu_thread(pid)) == BTreeSet::from([1])).then_some(())
        });
        lab.assert_exclusive(pid);
        lab.stop_vm(pid);
        let log = lab.daemon_log();
        wait_until(&format!("{key} released (cycle {cycle}): {log}"), || {
            lab.empty().ok()
        });
    }
    // The daemon logs a release once its revert is done: the state directory can be empty a
    // moment before the line is written.
    wait_until("a release logged for every cycle", || {
        (lab.daemon_log().matches(" released (").count() == CYCLES).then_some(())
    });
    let log = lab.daemon_log();
    assert_eq!(log.matches(" applied on CPUs 1 ").count(), CYCLES, "{log}");
    assert_eq!(log.matches(" released (").count(), CYCLES, "{log}");
    assert_eq!(lab.stop_daemon(Signal::SIGTERM).code(), Some(0), "{log}");
    lab.empty().unwrap();
}

/// A tiny generator for the kill moments: the test's pid and the clock seed it, and the
/// moments it picks are printed, so a failing run can be told apart.
struct Moments(u64);

impl Moments {
    fn next_below(&mut self, limit: Duration) -> Duration {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let fraction = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        limit.mul_f64(fraction)
    }
}

#[test]
#[ignore = "needs root and QEMU: a v1 cpuset hierarchy, qemu-system-x86 with /dev/kvm"]
fn a_daemon_killed_during_an_apply_is_adopted_and_the_vm_applied_exactly_once() {
    let _serial = crate::host_knobs_exclusively();
    let mut lab = DaemonLab::new(POLICY);
    let before = succeeded(nearnative(&["inspect", "--json"]), "inspect before");
    let pid = lab.start_vm("nn-d-kill");
    let seed = u64::from(std::process::id()) ^ Instant::now().elapsed().as_nanos() as u64;
    let mut moments = Moments(seed ^ 0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    lab.start_daemon();
    wait_until("the first apply", || lab.applied("vm:nn-d-kill"));
    let whole = started.elapsed();
    for round in 0..10 {
        assert_eq!(lab.stop_daemon(Signal::SIGTERM).code(), Some(0));
        succeeded(
            nearnative(&["revert", "--all", "--state-dir", &lab.state()]),
            "revert between rounds",
        );
        lab.empty().unwrap();
        let moment = moments.next_below(whole);
        lab.start_daemon();
        std::thread::sleep(moment);
        lab.stop_daemon(Signal::SIGKILL);
        lab.start_daemon();
        let when = format!("round {round}, killed {moment:?} into {whole:?}");
        wait_until(&format!("applied after a restart ({when})"), || {
            lab.applied("vm:nn-d-kill")
        });
        let status = lab.status();
        let entries = status["workloads"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{when}: {status}");
        let plans = list(&Path::new(&lab.state()).join("plans"));
        if plans.len() != 1 {
            std::thread::sleep(Duration::from_millis(500));
            let later = list(&Path::new(&lab.state()).join("plans"));
            let pid = lab.daemon.as_ref().map(|c| c.id());
            let log = std::fs::read_to_string(lab.log()).unwrap();
            panic!("{when}: {plans:?}, 500 ms later {later:?}, daemon {pid:?}\n{log}");
        }
        let journals = list(&Path::new(&lab.state()).join("journals"));
        assert_eq!(journals.len(), 1, "{when}: {journals:?}");
        lab.assert_exclusive(pid);
    }
    assert_eq!(lab.stop_daemon(Signal::SIGTERM).code(), Some(0));
    succeeded(
        nearnative(&["revert", "--all", "--state-dir", &lab.state()]),
        "final revert",
    );
    lab.empty().unwrap();
    let after = succeeded(nearnative(&["inspect", "--json"]), "inspect after");
    assert_restored(&before, &after, &[pid]);
}

/// Every IRQ's affinity, the default IRQ affinity, the kernel knobs, each CPU's power
/// settings and each thread of `pids` as `inspect --json` showed them before.
fn assert_restored(before: &Value, after: &Value, pids: &[u32]) {
    let (before, after) = (restorable(before, pids), restorable(after, pids));
    for (key, value) in &before {
        assert_eq!(after.get(key), Some(value), "{key} after the final revert");
    }
}

#[test]
#[ignore = "needs root and QEMU: a v1 cpuset hierarchy, qemu-system-x86 with /dev/kvm"]
fn a_hot_added_iothread_is_placed_and_a_new_bystander_stays_off_the_exclusive_cpu() {
    let _serial = crate::host_knobs_exclusively();
    let mut lab = DaemonLab::new(POLICY);
    lab.start_daemon();
    let pid = lab.start_vm("nn-d-grow");
    wait_until("applied", || lab.applied("vm:nn-d-grow"));
    let reply = qmp(
        &lab.path("nn-d-grow"),
        r#"{"execute":"object-add","arguments":{"qom-type":"iothread","id":"io1"}}"#,
    );
    assert!(reply.get("return").is_some(), "object-add: {reply}");
    let iothread = wait_until("the iothread's thread", || {
        threads_of(pid).into_iter().find(|&t| comm(t) == "IO io1")
    });
    let log = lab.daemon_log();
    wait_until(&format!("the iothread placed off CPU 1: {log}"), || {
        let cpus = affinity(iothread);
        (!cpus.is_empty() && !cpus.contains(&1)).then_some(())
    });
    let bystander = lab.start_bystander();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !affinity(bystander).contains(&1),
        "a new bystander in the scope may run on CPU 1"
    );
    lab.assert_exclusive(pid);
}

fn set_affinity(tid: u32, cpus: &[u32]) {
    let mut set = nix::sched::CpuSet::new();
    for &cpu in cpus {
        set.set(cpu as usize).unwrap();
    }
    nix::sched::sched_setaffinity(Pid::from_raw(tid as i32), &set).unwrap();
}

/// Widens the vCPU's affinity to every CPU behind the daemon's back, as another tool would:
/// a v1 cpuset bounds `sched_setaffinity` by the cpuset's CPUs, so the tool first moves the
/// thread out of nearnative's cgroup into the scope, then sets its affinity.
fn widen(lab: &DaemonLab, tid: u32) {
    std::fs::write(lab.scope_dir.join("tasks"), tid.to_string()).unwrap();
    set_affinity(tid, &[0, 1]);
    assert_eq!(affinity(tid), BTreeSet::from([0, 1]), "the vCPU widened");
}

#[test]
#[ignore = "needs root and QEMU: a v1 cpuset hierarchy, qemu-system-x86 with /dev/kvm"]
fn a_widened_vcpu_is_repaired_within_a_sweep_and_revert_still_restores_the_original() {
    let _serial = crate::host_knobs_exclusively();
    let mut lab = DaemonLab::new(POLICY);
    let pid = lab.start_vm("nn-d-drift");
    let vcpu = vcpu_thread(pid);
    let original = affinity(vcpu);
    lab.start_daemon();
    wait_until("applied", || lab.applied("vm:nn-d-drift"));
    lab.assert_exclusive(pid);
    widen(&lab, vcpu);
    let widened = Instant::now();
    // The knobs are written before the line is logged: wait for both.
    wait_until("the vCPU repaired, and said so", || {
        let repaired = affinity(vcpu) == BTreeSet::from([1]);
        let said = lab.daemon_log().contains("vm:nn-d-drift: drift repaired");
        (repaired && said).then_some(())
    });
    assert!(
        widened.elapsed() < Duration::from_secs(3),
        "repaired after {:?}, more than a sweep of 1 s and a round",
        widened.elapsed()
    );
    lab.assert_exclusive(pid);
    let status = lab.daemon_status();
    let counted = &status["counters"]["drift_repairs"];
    assert!(counted.as_u64() >= Some(1), "{status}");
    assert_eq!(lab.stop_daemon(Signal::SIGTERM).code(), Some(0));
    succeeded(
        nearnative(&["revert", "--all", "--state-dir", &lab.state()]),
        "revert",
    );
    assert_eq!(affinity(vcpu), original, "revert restores the first prior");
}

#[test]
#[ignore = "needs root and QEMU: a v1 cpuset hierarchy, qemu-system-x86 with /dev/kvm"]
fn under_report_a_widened_vcpu_is_only_reported() {
    let _serial = crate::host_knobs_exclusively();
    let mut lab = DaemonLab::new(&format!("{POLICY}on_drift = \"report\"\n"));
    let pid = lab.start_vm("nn-d-report");
    let vcpu = vcpu_thread(pid);
    let original = affinity(vcpu);
    lab.start_daemon();
    wait_until("applied", || lab.applied("vm:nn-d-report"));
    widen(&lab, vcpu);
    let log = wait_until("the drift reported", || {
        let log = lab.daemon_log();
        log.contains("vm:nn-d-report: drifted, reported only")
            .then_some(log)
    });
    assert_eq!(
        affinity(vcpu),
        BTreeSet::from([0, 1]),
        "left as widened: {log}"
    );
    let status = wait_until("status shows it drifted", || {
        let status = lab.daemon_status();
        (workload_of(&status, "vm:nn-d-report")?["state"] == "drifted").then_some(status)
    });
    let knobs = &workload_of(&status, "vm:nn-d-report").unwrap()["knobs"];
    assert!(knobs.as_array().is_some_and(|k| !k.is_empty()), "{status}");
    assert!(
        status["counters"]["drift_reports"].as_u64() >= Some(1),
        "{status}"
    );
    assert_eq!(status["counters"]["drift_repairs"], 0, "{status}");
    assert_eq!(lab.stop_daemon(Signal::SIGTERM).code(), Some(0));
    succeeded(
        nearnative(&["revert", "--all", "--state-dir", &lab.state()]),
        "revert",
    );
    assert_eq!(affinity(vcpu), original, "revert restores the first prior");
}

#[test]
#[ignore = "needs root: a state directory and a daemon of the test's own"]
fn a_second_daemon_on_the_same_state_dir_refuses_naming_the_first() {
    let _serial = crate::host_knobs_exclusively();
    let mut lab = DaemonLab::new(POLICY);
    lab.start_daemon();
    let first = lab.daemon.as_ref().unwrap().id();
    let state = lab.state();
    let lock = Path::new(&state).join("daemon.pid");
    wait_until("the first daemon's pid lock", || {
        (std::fs::read_to_string(&lock).ok()? == first.to_string()).then_some(())
    });
    let second = nearnative(&[
        "daemon",
        "--metrics",
        "off",
        "--state-dir",
        &state,
        "--policy-dir",
        lab.policy_dir().to_str().unwrap(),
        "--control-socket",
        lab.path("second.sock").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "another nearnative daemon runs on this state directory (pid {first})"
        )),
        "{stderr}"
    );
    assert_eq!(lab.stop_daemon(Signal::SIGTERM).code(), Some(0));
}

/// `GET /metrics` over plain HTTP/1.0; the body, after checking the status line.
fn get_metrics(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect(&response);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    body.to_owned()
}

/// The one sample of `name` with exactly `labels`' values among its labels, as an integer.
fn count(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> u64 {
    value(samples, name, labels) as u64
}

#[test]
#[ignore = "needs root and QEMU: a v1 cpuset hierarchy, qemu-system-x86 with /dev/kvm"]
fn metrics_parse_as_prometheus_text_and_match_the_status() {
    let _serial = crate::host_knobs_exclusively();
    let mut lab = DaemonLab::new(POLICY);
    let addr = lab.serve_metrics();
    lab.start_daemon();
    lab.start_vm("nn-d-metrics");
    // Applied, and sampled once, so that every family has its series.
    wait_until("applied and sampled", || {
        let status = lab.daemon_status();
        let workload = workload_of(&status, "vm:nn-d-metrics")?;
        (workload["state"] == "applied" && !workload["interference"].is_null()).then_some(())
    });
    let samples = parse_exposition(&get_metrics(addr));
    let status = lab.daemon_status();
    let workloads = status["workloads"].as_array().unwrap();
    for state in [
        "applied",
        "refused",
        "waiting_for_cores",
        "drifted",
        "failed",
    ] {
        let in_status = workloads.iter().filter(|w| w["state"] == state).count();
        let got = count(&samples, "nearnative_workloads", &[("state", state)]);
        assert_eq!(got, in_status as u64, "workloads {state}: {status}");
    }
    let free = status["free_cores_by_node"].as_object().unwrap();
    assert!(!free.is_empty(), "{status}");
    for (node, cores) in free {
        let got = count(
            &samples,
            "nearnative_free_exclusive_cores",
            &[("node", node)],
        );
        assert_eq!(Some(got), cores.as_u64(), "free cores of node {node}");
    }
    let nodes = samples
        .iter()
        .filter(|s| s.name == "nearnative_free_exclusive_cores");
    assert_eq!(nodes.count(), free.len(), "one series per node");
    for (counter, metric) in [
        ("applies", "nearnative_applies_total"),
        ("reverts", "nearnative_reverts_total"),
        ("refusals", "nearnative_refusals_total"),
        ("drift_repairs", "nearnative_drift_repairs_total"),
        ("drift_reports", "nearnative_drift_reports_total"),
    ] {
        let got = count(&samples, metric, &[]);
        assert_eq!(Some(got), status["counters"][counter].as_u64(), "{metric}");
    }
    assert_eq!(count(&samples, "nearnative_applies_total", &[]), 1);
    let applies = count(&samples, "nearnative_apply_duration_seconds_count", &[]);
    assert_eq!(applies, 1, "one apply observed");
    let errors = status["policy_errors"].as_array().unwrap().len() as u64;
    assert_eq!(count(&samples, "nearnative_policy_errors", &[]), errors);

    let exclusive: std::collections::BTreeMap<String, f64> = workloads
        .iter()
        .map(|w| {
            let cpus: nearnative_host::CpuSet =
                serde_json::from_value(w["exclusive_cpus"].clone()).unwrap();
            (
                w["workload"].as_str().unwrap().to_owned(),
                cpus.len() as f64,
            )
        })
        .collect();
    assert_eq!(
        workload_values(&samples, "nearnative_workload_exclusive_cpus"),
        exclusive
    );
    let info = [
        ("workload", "vm:nn-d-metrics"),
        ("source", "policy"),
        ("state", "applied"),
    ];
    assert_eq!(count(&samples, "nearnative_workload_info", &info), 1);
    // The interference counters only grow: the scrape came before the status.
    let interference = &workload_of(&status, "vm:nn-d-metrics").unwrap()["interference"];
    let label = [("workload", "vm:nn-d-metrics")];
    for (field, metric, scale) in [
        ("irqs", "nearnative_interference_irqs_total", 1.0),
        (
            "foreign_runtime_ns",
            "nearnative_interference_foreign_runtime_seconds_total",
            1e9,
        ),
        (
            "preemptions",
            "nearnative_interference_preemptions_total",
            1.0,
        ),
    ] {
        let scraped = value(&samples, metric, &label) * scale;
        let later = interference[field].as_f64().unwrap();
        assert!(scraped <= later + 0.5, "{metric}: {scraped} > {later}");
    }
}

/// A boot id no machine ever had.
const OTHER_BOOT: &str = "0f6c3b1e-3d52-4bd6-9a57-2f2b0d1c9e11";

/// The state files of an apply, taken before its revert: journals, plan records, ledger.
struct StateFiles {
    journals: Vec<(PathBuf, Journal)>,
    /// Durable envelopes: each path with its schema version and body.
    durables: Vec<(PathBuf, u32, Value)>,
}

impl StateFiles {
    fn take(state: &Path) -> StateFiles {
        let dir = StateDir::new(state);
        let journals = list(&dir.journals_dir())
            .into_iter()
            .map(|name| {
                let path = dir.journals_dir().join(name);
                let journal = Journal::load(&path).unwrap().unwrap();
                (path, journal)
            })
            .collect();
        let plans = list(&dir.plans_dir())
            .into_iter()
            .map(|name| (dir.plans_dir().join(name), APPLIED_SCHEMA_VERSION));
        let durables = plans
            .chain([(dir.ledger_path(), LEDGER_SCHEMA_VERSION)])
            .map(|(path, version)| {
                let body: Value = durable::load(&path, version).unwrap().unwrap();
                (path, version, body)
            })
            .collect();
        StateFiles { journals, durables }
    }

    /// Writes them back as if made in the boot `boot_id` names.
    fn restore_as_of(self, this_boot: &str, boot_id: &str) {
        for (path, mut journal) in self.journals {
            assert_eq!(journal.boot_id.as_deref(), Some(this_boot), "{path:?}");
            journal.boot_id = Some(boot_id.to_owned());
            journal.store(&path).unwrap();
        }
        for (path, version, body) in self.durables {
            let text = body.to_string();
            assert!(
                text.contains(this_boot),
                "{path:?} records the boot: {text}"
            );
            let body: Value = serde_json::from_str(&text.replace(this_boot, boot_id)).unwrap();
            durable::store(&path, version, &body).unwrap();
        }
    }
}

#[test]
#[ignore = "needs root: a v1 cpuset hierarchy, a state directory and a daemon of the test's own"]
fn entries_of_another_boot_are_closed_without_a_host_write_and_said_once() {
    let _serial = crate::host_knobs_exclusively();
    let mut lab = DaemonLab::new(POLICY);
    let bystander = lab.start_bystander();
    let before = succeeded(nearnative(&["inspect", "--json"]), "inspect before");
    let scope = format!("cgroup:/{}", lab.scope_name);
    let target = format!("pid:{bystander}");
    let state = lab.state();
    let apply = ["apply", &target, "--scope", &scope, "--state-dir", &state];
    succeeded(nearnative(&apply), "apply");
    let files = StateFiles::take(Path::new(&state));
    assert_eq!(files.journals.len(), 1);
    succeeded(
        nearnative(&["revert", "--all", "--state-dir", &state]),
        "revert",
    );
    let this_boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    files.restore_as_of(this_boot.trim(), OTHER_BOOT);
    let direct = lab.status();
    assert_eq!(
        direct["workloads"].as_array().map(Vec::len),
        Some(1),
        "{direct}"
    );
    // This boot's value, which a revert of the stale journal would overwrite with its prior.
    let original = affinity(bystander);
    set_affinity(bystander, &[0]);

    lab.start_daemon();
    wait_until("the entries closed", || lab.empty().ok());
    assert_eq!(affinity(bystander), BTreeSet::from([0]), "no host write");
    set_affinity(bystander, &original.iter().copied().collect::<Vec<_>>());
    // A few sweeps more: the closing is said once, not at every round.
    std::thread::sleep(Duration::from_secs(3));
    let log = lab.daemon_log();
    let said = format!(
        "closed what another boot left, without writing the host (a reboot resets the knobs \
         and ends the threads): {target} (journal "
    );
    assert_eq!(log.matches(&said).count(), 1, "{log}");
    assert!(log.contains(&format!("boot {OTHER_BOOT})")), "{log}");
    assert_eq!(log.matches("another boot").count(), 1, "{log}");
    let status = lab.daemon_status();
    assert_eq!(status["workloads"], serde_json::json!([]), "{status}");
    assert_eq!(lab.stop_daemon(Signal::SIGTERM).code(), Some(0));
    let after = succeeded(nearnative(&["inspect", "--json"]), "inspect after");
    assert_restored(&before, &after, &[bystander]);
}
