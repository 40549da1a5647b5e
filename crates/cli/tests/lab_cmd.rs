//! `nearnative lab` as a user runs it: one `--quick` run measures every cell, latency-sensitive
//! beats default under noise, and nothing is left behind, after a normal run, after SIGINT
//! mid-measurement, and after a `kill -9` followed by the next run's sweep.

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use nearnative_host::Root;
use nearnative_lab::leftovers::HostNames;
use nearnative_lab::report::{ls_vs, ls_vs_default, Condition, Config, LabReport};
use nearnative_lab::run_lock::RunLock;
use nearnative_lab::{sweep, Layer};
use nearnative_verify::ThreadClass;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::nearnative;

/// Serialises the lab tests (marked `#[ignore = "needs root: ..."]`) with the other tests that
/// change host-wide knobs; fails the test at once, in one line, when not root.
#[track_caller]
fn lab_test() -> MutexGuard<'static, ()> {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root: nearnative lab does"
    );
    crate::host_knobs_exclusively()
}

/// Everything a lab run could leave behind or change.
#[derive(Debug, PartialEq)]
struct HostState {
    names: HostNames,
    /// From `inspect --json`: each IRQ's affinity, the default IRQ affinity, the kernel
    /// knobs, and each CPU's PM QoS and cpufreq governor.
    knobs: Value,
}

fn host_state() -> HostState {
    let output = nearnative(&["inspect", "--json"]);
    assert!(output.status.success(), "{output:?}");
    let inspect: Value = serde_json::from_slice(&output.stdout).unwrap();
    let irqs: Vec<Value> = inspect["irqs"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| serde_json::json!([line["number"], line["affinity"]]))
        .collect();
    let power: Vec<Value> = inspect["power"]["cpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|cpu| serde_json::json!([cpu["resume_latency"], cpu["cpufreq_governor"]]))
        .collect();
    HostState {
        names: HostNames::read(&Root::default()).unwrap(),
        knobs: serde_json::json!({
            "irqs": irqs,
            "default_affinity": inspect["irqs"]["default_affinity"],
            "knobs": inspect["knobs"],
            "power": power,
        }),
    }
}

impl HostState {
    fn assert_restored(&self, before: &HostState, what: &str) {
        if let Err(difference) = self.names.restored_from(&before.names) {
            panic!("{what}: {difference}");
        }
        assert_eq!(self.knobs, before.knobs, "{what}: knobs");
    }
}

/// `lab` with its state, registries and report in `dir`, as the leader of its own process
/// group, so that anything it started can be found by group.
fn lab_command(dir: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nearnative"));
    command
        .arg("lab")
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("--html")
        .arg(dir.join("lab.html"))
        .args(extra)
        .process_group(0);
    command
}

/// Fails unless the engine's state holds no journal, no plan and an empty ledger.
fn assert_state_empty(state: &Path) {
    for dir in ["journals", "plans"] {
        let left: Vec<_> = std::fs::read_dir(state.join(dir))
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{dir} left: {left:?}");
    }
    let ledger = std::fs::read_to_string(state.join("ledger.json")).unwrap_or_default();
    let ledger: Value = serde_json::from_str(&ledger).unwrap_or(Value::Null);
    let allocations = &ledger["body"]["allocations"];
    assert!(
        allocations.is_null() || allocations.as_object().is_some_and(|a| a.is_empty()),
        "ledger not empty: {ledger}"
    );
}

/// Fails if any process of the group `pgid` (the lab and whatever it started) is alive.
fn assert_group_gone(pgid: u32) {
    let members: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            let fields: Vec<&str> = stat[stat.rfind(')').unwrap_or(0)..]
                .split_whitespace()
                .collect();
            fields.get(3).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
        })
        .collect();
    assert!(members.is_empty(), "still running: {members:?}");
}

/// Waits (at most `limit`) until no other test of this binary is running but the lab's own,
/// which wait for the lock. The apply fences only the lab's own threads: another test busy on
/// the CPUs meanwhile is load the kernel would pull onto the exclusive CPU once the noise
/// sits on the housekeeping one, and would be measured as the latency-sensitive tail.
fn wait_for_other_tests(limit: Duration) {
    let others = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.contains("::") && !comm.starts_with("lab_cmd::"))
            .count()
    };
    let until = Instant::now() + limit;
    while others() > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// On the shared exclusive core of a 2-CPU machine the two configurations part in the tail
/// (latency-sensitive ÷ default ≈ 0.03 at p99.9), while the medians sit within a few percent of
/// each other and swap places from run to run (0.6 to 1.56 in nine quick runs on 2026-12-03):
/// the median may not be materially worse, the tail must be better.
const P50_AT_MOST: f64 = 2.0;

#[test]
#[ignore = "needs root: network namespaces, cgroups and host-wide knobs"]
fn quick_lab_measures_every_cell_and_latency_sensitive_wins_under_noise_needs_root() {
    let _serial = lab_test();
    wait_for_other_tests(Duration::from_secs(300));
    let dir = tempfile::tempdir().unwrap();
    let before = host_state();
    let started = Instant::now();
    let output = lab_command(dir.path(), &["--quick", "--json"])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(output.status.success(), "{output:?}");
    assert!(took < Duration::from_secs(120), "took {took:?}");
    host_state().assert_restored(&before, "after a --quick run");
    assert_state_empty(&dir.path().join("state"));

    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    let rows = json["rows"].as_array().unwrap();
    let mut cells = BTreeSet::new();
    for row in rows {
        let keys: BTreeSet<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let expected = [
            "path",
            "condition",
            "config",
            "rtt_ns",
            "samples",
            "lost",
            "fixed_rate",
            "jitter",
            "spectrum",
            "interference",
        ];
        assert_eq!(keys, expected.into_iter().collect(), "{row}");
        let rtt: BTreeSet<&str> = row["rtt_ns"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(rtt, ["max", "p50", "p99", "p99_9", "p99_99"].into());
        assert!(row["samples"].as_u64().unwrap() > 0, "{}", row["path"]);
        assert!(row["fixed_rate"].is_object() && row["jitter"].is_object());
        let interference = &row["interference"];
        for key in ["irqs", "softirqs", "ipis", "threads"] {
            assert!(interference[key].is_array(), "{key}: {interference}");
        }
        assert!(interference["unexplained_ns"].is_u64(), "{interference}");
        cells.insert(format!(
            "{} {} {}",
            row["path"].as_str().unwrap(),
            row["condition"].as_str().unwrap(),
            row["config"].as_str().unwrap()
        ));
    }
    assert_eq!(rows.len(), 24);
    assert_eq!(cells.len(), 24, "{cells:?}");
    let configs: BTreeSet<&str> = rows.iter().filter_map(|r| r["config"].as_str()).collect();
    assert_eq!(configs, ["default", "latency-sensitive", "pinned"].into());
    assert!(json["placement"].as_str().unwrap().contains("exclusive"));

    let report: LabReport = serde_json::from_value(json).unwrap();
    let compared = ls_vs_default(&report, Condition::Noisy);
    assert_eq!(compared.len(), Layer::ALL.len(), "{compared:?}");
    for path in compared {
        assert!(path.beats_at_p99_9(), "{path:?}");
        assert!(path.beats_at_p99_99(), "{path:?}");
        assert!(path.p50_ratio < P50_AT_MOST, "{path:?}");
    }
    // Pinned shares the exclusive CPU with the hog on it under noise: its tail is the hog's
    // time slice.
    let compared = ls_vs(&report, Condition::Noisy, Config::Pinned);
    assert_eq!(compared.len(), Layer::ALL.len(), "{compared:?}");
    for path in compared {
        assert!(path.beats_at_p99_9(), "{path:?}");
    }
    let html = std::fs::read_to_string(dir.path().join("lab.html")).unwrap();
    assert!(html.contains("<svg"), "no plot in the HTML report");
    assert!(
        html.contains("top sources (share of stolen)"),
        "no interference table in the HTML report"
    );
}

/// A thread of this test process (outside the lab's cgroup, so outside the apply's scope)
/// pinned to `cpu`, busy 2 ms in every 10 until dropped.
struct Intruder {
    tid: u32,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const INTRUDER: &str = "nn-intruder";

impl Intruder {
    fn start(cpu: u32) -> Intruder {
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::clone(&stop);
        let (tid_sender, tid) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(INTRUDER.to_owned())
            .spawn(move || {
                nearnative_sys::pin::pin_current_thread(cpu).unwrap();
                tid_sender.send(nix::unistd::gettid().as_raw()).unwrap();
                while !running.load(Ordering::Relaxed) {
                    let busy_until = Instant::now() + Duration::from_millis(2);
                    while Instant::now() < busy_until {
                        std::hint::spin_loop();
                    }
                    std::thread::sleep(Duration::from_millis(8));
                }
            })
            .unwrap();
        Intruder {
            tid: tid.recv().unwrap().unsigned_abs(),
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Intruder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
#[ignore = "needs root: network namespaces, cgroups and host-wide knobs"]
fn an_intruder_on_the_exclusive_cpu_is_named_with_its_run_time_needs_root() {
    let _serial = lab_test();
    wait_for_other_tests(Duration::from_secs(300));
    let online = nearnative_host::cpus::online_cpus(&Root::default()).unwrap();
    assert!(online.len() >= 2, "needs two online CPUs, have {online}");
    // With --configs latency-sensitive alone on a 2-CPU host the plan makes the last CPU
    // exclusive; the report says which CPU it measured, checked below.
    let cpu = online.iter().last().unwrap();
    let intruder = Intruder::start(cpu);
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--quick",
        "--json",
        "--paths",
        "loopback",
        "--configs",
        "latency-sensitive",
    ];
    let output = lab_command(dir.path(), &args).output().unwrap();
    let tid = intruder.tid;
    drop(intruder);
    assert!(output.status.success(), "{output:?}");
    let report: LabReport = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report.rows.len(), 2, "quiet and noisy");
    for row in &report.rows {
        assert_eq!(row.config, Config::LatencySensitive);
        assert_eq!(row.jitter.map(|j| j.cpu), Some(cpu), "measured another CPU");
        let interference = row.interference.as_ref().expect("no interference recorded");
        let found = interference.threads.iter().find(|t| t.tid == tid);
        let found = found.unwrap_or_else(|| panic!("intruder {tid} not named: {interference:?}"));
        assert_eq!(found.comm, INTRUDER);
        assert_eq!(found.class, ThreadClass::OutsideScope);
        // About a fifth of a 0.4 s window: a tenth at least, never more than the window.
        assert!(
            found.ns > interference.window_ns / 10 && found.ns <= interference.window_ns,
            "{found:?} over {} ns",
            interference.window_ns
        );
        let top = interference.top(5).join(", ");
        assert!(
            top.contains(&format!("thread {INTRUDER} (tid {tid})")),
            "{top}"
        );
    }
}

/// Starts a slow lab and returns it once its first latency-sensitive apply has a journal.
fn lab_after_first_apply(dir: &Path) -> Child {
    let mut child = lab_command(dir, &["--paths", "loopback,veth", "--duration", "2s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let journals = dir.join("state").join("journals");
    let until = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_dir(&journals).is_ok_and(|mut entries| entries.next().is_some()) {
        if Instant::now() > until || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("the lab never applied: {:?}", child.wait_with_output());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Into the measurement under the apply.
    std::thread::sleep(Duration::from_millis(500));
    child
}

/// A process's CPU affinity and cgroups, as /proc shows them.
fn placement_of(pid: u32) -> (String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let affinity = status
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list:"))
        .unwrap_or_default()
        .to_owned();
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    (affinity, cgroups)
}

#[test]
#[ignore = "needs root: network namespaces, cgroups and host-wide knobs"]
fn lab_leaves_nothing_after_sigint_or_kill_9_mid_run_needs_root() {
    let _serial = lab_test();
    let before = host_state();
    // A process the lab did not start: the apply, scoped to the lab's cgroup, must leave it be.
    let mut bystander = Command::new("sleep").arg("300").spawn().unwrap();
    let bystander_before = placement_of(bystander.id());

    let dir = tempfile::tempdir().unwrap();
    let child = lab_after_first_apply(dir.path());
    let pid = child.id();
    let bystander_during = placement_of(bystander.id());
    let _ = bystander.kill();
    let _ = bystander.wait();
    assert_eq!(
        bystander_during, bystander_before,
        "the lab moved a process it did not start"
    );
    kill(Pid::from_raw(pid as i32), Signal::SIGINT).unwrap();
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(output.status.code(), Some(130), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_group_gone(pid);
    host_state().assert_restored(&before, "after SIGINT");
    assert_state_empty(&dir.path().join("state"));

    // Kept until the end: if an assertion fails, the registry and journal that name what the
    // killed run left stay for `nearnative lab --run-dir <it>/run` (or a revert) to clean.
    let dir = tempfile::tempdir().unwrap().keep();
    let mut child = lab_after_first_apply(&dir);
    let pid = child.id();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    let kept = format!("leftovers named in {}", dir.display());
    let journals = std::fs::read_dir(dir.join("state/journals")).unwrap();
    assert!(journals.count() > 0, "kill -9 left the apply in place");
    assert_ne!(host_state().knobs, before.knobs, "and its knobs");
    let swept = sweep(&dir.join("run"), &Root::default()).unwrap();
    assert_eq!(swept.swept.len(), 1, "{swept:?}; {kept}");
    assert!(swept.failed.is_empty(), "{swept:?}; {kept}");
    assert_group_gone(pid);
    host_state().assert_restored(&before, "after kill -9 and a sweep");
    assert_state_empty(&dir.join("state"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A change to the command a case runs.
type Configure = fn(&mut Command);

#[test]
#[ignore = "needs root: network namespaces, cgroups and host-wide knobs"]
fn lab_says_in_one_line_what_it_needs_and_creates_nothing_needs_root() {
    let _serial = lab_test();
    let cases: [(&str, Configure, &str); 2] = [
        (
            "not root",
            |c| {
                c.uid(65534).gid(65534);
            },
            "nearnative lab needs root",
        ),
        (
            "no ip on PATH",
            |c| {
                c.env("PATH", "/nonexistent");
            },
            "needs iproute2's `ip`",
        ),
    ];
    // The refused user could not write the temporary directory anyway: the host's own
    // namespaces, links, cgroups and knobs are what show that nothing was made.
    let before = host_state();
    for (what, configure, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut command = lab_command(dir.path(), &["--quick"]);
        configure(&mut command);
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{what}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
        assert!(stderr.contains(want), "{what}: {stderr}");
        let made: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(made.is_empty(), "{what}: made {made:?}");
        host_state().assert_restored(&before, what);
    }
}

#[test]
#[ignore = "needs root: network namespaces, cgroups and host-wide knobs"]
fn a_second_lab_on_the_same_run_dir_is_refused_and_makes_nothing_needs_root() {
    let _serial = lab_test();
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    std::fs::create_dir(&run_dir).unwrap();
    let _first = RunLock::acquire(&run_dir).unwrap();
    let before = host_state();
    let output = lab_command(dir.path(), &["--quick"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let holder = format!(
        "another nearnative lab is running (pid {}",
        std::process::id()
    );
    assert!(stderr.contains(&holder), "{stderr}");
    let made: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(made.len(), 1, "made {made:?}");
    let in_run_dir: Vec<_> = std::fs::read_dir(&run_dir).unwrap().collect();
    assert_eq!(in_run_dir.len(), 1, "made {in_run_dir:?}");
    host_state().assert_restored(&before, "after a refused second lab");
}

#[test]
#[ignore = "needs root: network namespaces, cgroups and host-wide knobs"]
fn lab_in_a_cgroup_v2_cgroup_runs_and_leaves_nothing_needs_root() {
    let _serial = lab_test();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mountinfo.contains(" - cgroup2 "),
        "needs a cgroup2 filesystem mounted"
    );
    let dir = tempfile::tempdir().unwrap();
    let before = host_state();
    let started = Instant::now();
    let args = [
        "--quick",
        "--paths",
        "loopback,veth",
        "--cgroup",
        "v2",
        "--json",
    ];
    let output = lab_command(dir.path(), &args).output().unwrap();
    let took = started.elapsed();
    host_state().assert_restored(&before, "after a --cgroup v2 run");
    assert_state_empty(&dir.path().join("state"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let v1_cpuset = mountinfo.lines().any(|line| {
        line.split(" - cgroup ")
            .nth(1)
            .is_some_and(|rest| rest.split([' ', ',']).any(|option| option == "cpuset"))
    });
    match output.status.code() == Some(2)
        && stderr.contains("does not exist in the cpuset hierarchy")
    {
        // The planner fences with a v1 cpuset hierarchy wherever there is one, and takes a
        // scope only from it; this lab's cgroup is in v2 (docs/lab.md, "Limits").
        true => {
            assert!(v1_cpuset, "refused without a v1 cpuset hierarchy: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
        }
        false => assert_v2_run_measured(&output, took),
    }
}

/// A `--cgroup v2` run that was not refused measured every cell and won under noise.
#[track_caller]
fn assert_v2_run_measured(output: &Output, took: Duration) {
    assert!(output.status.success(), "{output:?}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    let rows = json["rows"].as_array().unwrap();
    // Two paths, quiet and noisy, each in default, pinned and latency-sensitive.
    assert_eq!(rows.len(), 12, "{rows:?}");
    assert!(rows.iter().all(|row| row["samples"].as_u64() > Some(0)));
    let placement = json["placement"].as_str().unwrap();
    assert!(placement.contains("fenced by "), "{placement}");
    let scope = json["notes"][0].as_str().unwrap();
    assert!(scope.contains("in the cgroup v2 hierarchy"), "{scope}");
    // Fenced by affinity alone (this machine, with a planner that takes the v2 scope), the
    // noisy p99.9 was 1-1.5 % of the default's in three hand runs; p50 only 3-5 % lower, too
    // close to assert.
    let report: LabReport = serde_json::from_value(json).unwrap();
    let compared = ls_vs_default(&report, Condition::Noisy);
    assert_eq!(compared.len(), 2, "{compared:?}");
    for path in compared {
        assert!(path.beats_at_p99_9(), "{path:?}");
    }
}
