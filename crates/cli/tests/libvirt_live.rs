//! `nearnative` with a real libvirtd (issue 11's acceptance): a libvirtd and virtlogd of the
//! test's own ([`Libvirtd`]: private socket and configuration, in a cpuset of their own),
//! the qemu hook installed to talk to a daemon of the test's own (private state dir, policy
//! dir and control socket, `--scope cgroup:/machine`, `--libvirt-uri` the private socket),
//! and small KVM domains with no disk, started `--paused` (guest code is emulated here; the
//! threads are real). Everything is undone at the end, also when the test fails.
//!
//! This machine has 2 CPUs: CPU 0's core is housekeeping, so a latency-sensitive domain's one
//! vCPU gets CPU 1, and a second one asking for a core is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nearnative_testkit::libvirt::HOOKS_DIR;
use nearnative_testkit::{small_domain, Libvirtd};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::live_view::{affinity, comm, cpuset_of, list, threads_of};
use crate::{nearnative, restorable};

const MACHINE: &str = "/sys/fs/cgroup/cpuset/machine";
/// How long the daemon may take to act on a hook or a restart.
const PATIENCE: Duration = Duration::from_secs(15);
/// The switch, as `virsh metadata ... --set` would write it.
const SWITCH: &str = "<nn:latency xmlns:nn=\"urn:nearnative:latency:1\" level=\"high\"/>";
/// How many start/stop cycles acceptance 1 runs.
const CYCLES: usize = 20;

fn succeeded(output: Output, what: &str) -> Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{what}: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

/// The qemu hook, the daemon and their private directories. On drop (also when the test
/// fails) the daemon is killed, everything reverted and the hook removed; the [`Libvirtd`]
/// it holds then stops its domains and daemons.
struct HookLab {
    tmp: tempfile::TempDir,
    daemon: Option<Child>,
    /// `/etc/libvirt/hooks` and `qemu.d` below it, when the hook's installation made them.
    made_dirs: Vec<PathBuf>,
    libvirtd: Option<Libvirtd>,
}

impl HookLab {
    /// Installs the hook (before libvirtd starts: it finds hooks at start-up), then starts
    /// libvirtd.
    fn new() -> HookLab {
        let hooks = Path::new(HOOKS_DIR);
        let made_dirs = [hooks.join("qemu.d"), hooks.to_path_buf()]
            .into_iter()
            .filter(|dir| !dir.exists())
            .collect();
        let mut lab = HookLab {
            tmp: tempfile::tempdir().unwrap(),
            daemon: None,
            made_dirs,
            libvirtd: None,
        };
        std::fs::create_dir(lab.path("workloads.d")).unwrap();
        let socket = lab.socket();
        succeeded(
            nearnative(&["libvirt", "install-hook", "--control-socket", &socket]),
            "libvirt install-hook",
        );
        lab.libvirtd = Some(Libvirtd::start());
        lab
    }

    fn libvirtd(&self) -> &Libvirtd {
        self.libvirtd.as_ref().expect("libvirtd runs")
    }

    fn libvirtd_mut(&mut self) -> &mut Libvirtd {
        self.libvirtd.as_mut().expect("libvirtd runs")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn state(&self) -> String {
        self.path("state").to_str().unwrap().to_owned()
    }

    fn socket(&self) -> String {
        self.path("control.sock").to_str().unwrap().to_owned()
    }

    fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }

    /// Starts the daemon on libvirt's cgroup tree (which must exist: start a domain first).
    fn start_daemon(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.path("daemon.log"))
            .unwrap();
        let uri = self.libvirtd().uri();
        let daemon = Command::new(env!("CARGO_BIN_EXE_nearnative"))
            .args(["daemon", "--metrics", "off", "--sweep", "1"])
            .args(["--scope", "cgroup:/machine", "--libvirt-uri", &uri])
            .arg("--policy-dir")
            .arg(self.path("workloads.d"))
            .args([
                "--state-dir",
                &self.state(),
                "--control-socket",
                &self.socket(),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(daemon);
        wait_until("the daemon's control socket", || {
            let status = nearnative(&["status", "--json", "--control-socket", &self.socket()]);
            status.status.success().then_some(())
        });
    }

    fn kill_daemon(&mut self) {
        let mut daemon = self.daemon.take().expect("a daemon runs");
        kill(Pid::from_raw(daemon.id() as i32), Signal::SIGKILL).unwrap();
        daemon.wait().unwrap();
    }

    fn status(&self) -> Value {
        succeeded(
            nearnative(&["status", "--json", "--state-dir", &self.state()]),
            "status",
        )
    }

    /// Workload `key`, once applied with its journal complete.
    fn applied(&self, key: &str) -> Option<Value> {
        let status = self.status();
        let found = status["workloads"]
            .as_array()?
            .iter()
            .find(|w| w["workload"] == key)?;
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
        let ours = cgroups_below(Path::new(MACHINE))
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("nearnative-"))
            })
            .collect::<Vec<_>>();
        match ours.is_empty() {
            true => Ok(()),
            false => Err(format!("cgroups left: {ours:?}")),
        }
    }

    /// `verify vm:NAME` passes.
    fn verify(&self, name: &str) {
        let target = format!("vm:{name}");
        let verified = nearnative(&[
            "verify",
            &target,
            "--sample",
            "200ms",
            "--state-dir",
            &self.state(),
        ]);
        assert!(
            verified.status.success(),
            "verify {target}: {}{}",
            String::from_utf8_lossy(&verified.stdout),
            String::from_utf8_lossy(&verified.stderr)
        );
    }

    /// Every IRQ the applied plans steered is off `cpu` now.
    fn assert_irqs_off(&self, cpu: u32) {
        for plan in list(&Path::new(&self.state()).join("plans")) {
            let path = Path::new(&self.state()).join("plans").join(plan);
            let record: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            for irq in steered_irqs(&record) {
                let file = format!("/proc/irq/{irq}/smp_affinity_list");
                let now: nearnative_host::CpuSet = std::fs::read_to_string(&file)
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap();
                assert!(
                    !now.contains(cpu),
                    "IRQ {irq} may fire on CPU {cpu} ({now})"
                );
            }
        }
    }
}

impl Drop for HookLab {
    fn drop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let _ = kill(Pid::from_raw(daemon.id() as i32), Signal::SIGKILL);
            let _ = daemon.wait();
        }
        drop(self.libvirtd.take());
        let _ = nearnative(&["revert", "--all", "--state-dir", &self.state()]);
        let _ = nearnative(&["libvirt", "remove-hook"]);
        for dir in &self.made_dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The IRQ numbers of every `irq_affinity` change anywhere in `value`.
fn steered_irqs(value: &Value) -> Vec<u64> {
    match value {
        Value::Object(map) if map.get("kind") == Some(&Value::from("irq_affinity")) => {
            map["knob"]["irq"].as_u64().into_iter().collect()
        }
        Value::Object(map) => map.values().flat_map(steered_irqs).collect(),
        Value::Array(items) => items.iter().flat_map(steered_irqs).collect(),
        _ => Vec::new(),
    }
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

fn cgroups_below(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.push(entry.path());
            found.extend(cgroups_below(&entry.path()));
        }
    }
    found
}

/// The thread of process `pid` named `name`.
#[track_caller]
fn thread_named(pid: u32, name: &str) -> u32 {
    let found = threads_of(pid).into_iter().find(|&t| comm(t) == name);
    found.unwrap_or_else(|| panic!("QEMU {pid} has no thread {name:?}"))
}

/// Every task in `dir` and the cpusets below it.
fn tasks_below(dir: &Path) -> Vec<u32> {
    let mut tasks: Vec<u32> = std::fs::read_to_string(dir.join("tasks"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for cgroup in cgroups_below(dir) {
        tasks.extend(
            std::fs::read_to_string(cgroup.join("tasks"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse::<u32>().ok()),
        );
    }
    tasks
}

/// The vCPU of domain `name` alone may run on CPU 1 among every thread under libvirt's
/// `machine/`; returns the vCPU's tid.
#[track_caller]
fn assert_exclusive(libvirtd: &Libvirtd, name: &str) -> u32 {
    let pid = libvirtd.qemu_pid(name).expect("the domain runs");
    let vcpu = thread_named(pid, "CPU 0/KVM");
    assert_eq!(
        affinity(vcpu),
        BTreeSet::from([1]),
        "{name}'s vCPU affinity"
    );
    for tid in tasks_below(Path::new(MACHINE)) {
        if tid != vcpu {
            assert!(
                !affinity(tid).contains(&1),
                "thread {tid} ({}, {}) under machine/ may run on CPU 1",
                comm(tid),
                cpuset_of(tid)
            );
        }
    }
    vcpu
}

/// libvirt's cgroup values with each domain's start id (`qemu-ID-NAME`) left out, so a
/// domain restarted since compares with its former self.
fn machine_values() -> BTreeMap<String, String> {
    Libvirtd::machine_cpusets()
        .into_iter()
        .map(|(path, value)| (without_start_id(&path.display().to_string()), value))
        .collect()
}

fn without_start_id(path: &str) -> String {
    path.split('/')
        .map(
            |part| match part.strip_prefix("qemu-").and_then(|r| r.split_once('-')) {
                Some((id, name)) if id.chars().all(|c| c.is_ascii_digit()) => {
                    format!("qemu-N-{name}")
                }
                _ => part.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// The affinities of domain `name`'s threads, sorted: neither ids (they change on a restart)
/// nor names (QEMU's RCU thread renames itself to `call_rcu` a moment after it starts) are
/// stable enough to key them by.
fn domain_affinities(libvirtd: &Libvirtd, name: &str) -> Vec<BTreeSet<u32>> {
    let pid = libvirtd.qemu_pid(name).expect("the domain runs");
    let mut affinities: Vec<BTreeSet<u32>> = threads_of(pid).into_iter().map(affinity).collect();
    affinities.sort();
    affinities
}

/// `nearnative libvirt xml NAME` through `virt-xml-validate`, which must say it validates;
/// returns the XML.
#[track_caller]
fn validated_xml(libvirtd: &Libvirtd, name: &str, state: &str, dir: &Path) -> String {
    let uri = libvirtd.uri();
    let output = nearnative(&[
        "libvirt",
        "xml",
        name,
        "--connect",
        &uri,
        "--state-dir",
        state,
    ]);
    assert!(
        output.status.success(),
        "libvirt xml {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let xml = String::from_utf8(output.stdout).unwrap();
    let file = dir.join(format!("{name}-merged.xml"));
    std::fs::write(&file, &xml).unwrap();
    let validated = Command::new("virt-xml-validate")
        .arg(&file)
        .arg("domain")
        .output()
        .unwrap_or_else(|e| {
            panic!("needs virt-xml-validate (libvirt-clients) and xmllint (libxml2-utils): {e}")
        });
    assert!(
        validated.status.success(),
        "virt-xml-validate of `libvirt xml {name}`: {}{}\n{xml}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );
    xml
}

#[test]
#[ignore = "needs root, libvirt and QEMU: libvirtd, virtlogd, virsh, /dev/kvm, a v1 cpuset hierarchy, xmllint"]
fn libvirt_xml_of_a_running_domain_merges_its_pinning_and_validates() {
    let _serial = crate::host_knobs_exclusively();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").to_str().unwrap().to_owned();
    let mut libvirtd = Libvirtd::start();
    libvirtd.define("nn-x1", &small_domain("nn-x1", 1, 1, Some(SWITCH)));
    libvirtd.start_paused("nn-x1").unwrap();

    // libvirt's layout here: each thread in its own cgroup under machine/.
    let pid = libvirtd
        .qemu_pid("nn-x1")
        .expect("libvirt's pid file for nn-x1");
    let domain_cgroup = cpuset_of(pid);
    assert!(
        domain_cgroup.starts_with("/machine/qemu-")
            && domain_cgroup.ends_with("-nn-x1.libvirt-qemu/emulator"),
        "the main thread's cpuset: {domain_cgroup}"
    );
    let base = domain_cgroup.trim_end_matches("/emulator");
    assert_eq!(
        cpuset_of(thread_named(pid, "CPU 0/KVM")),
        format!("{base}/vcpu0")
    );
    assert_eq!(
        cpuset_of(thread_named(pid, "IO iothread1")),
        format!("{base}/iothread1")
    );

    let xml = validated_xml(&libvirtd, "nn-x1", &state, dir.path());
    assert!(xml.contains("<vcpupin vcpu='0' cpuset='1'/>"), "{xml}");
    assert!(xml.contains("<emulatorpin cpuset='0'/>"), "{xml}");
    assert!(
        xml.contains("<iothreadpin iothread='1' cpuset='0'/>"),
        "{xml}"
    );
    assert!(xml.contains("<hint-dedicated state='on'/>"), "{xml}");
    assert!(
        xml.contains("<nosharepages/>") && xml.contains("<locked/>"),
        "{xml}"
    );
    assert!(
        xml.contains("urn:nearnative:latency:1"),
        "the switch is kept: {xml}"
    );
    // libvirt itself takes it as the persistent definition (starting it would fail here:
    // <locked/> needs CAP_SYS_RESOURCE this sandbox lacks).
    let merged = dir.path().join("nn-x1-merged.xml");
    libvirtd.virsh_ok(&["define", merged.to_str().unwrap()]);
    assert!(libvirtd
        .virsh_ok(&["dumpxml", "--inactive", "nn-x1"])
        .contains("<vcpupin vcpu='0' cpuset='1'/>"));
    assert!(
        Path::new(&state).join("ledger.json").metadata().is_err(),
        "a dry-run plan reserves nothing"
    );

    let missing = nearnative(&[
        "libvirt",
        "xml",
        "nn-absent",
        "--connect",
        &libvirtd.uri(),
        "--state-dir",
        &state,
    ]);
    let error = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert_eq!(error.trim().lines().count(), 1, "one line: {error}");
    assert!(error.contains("nn-absent: virsh dumpxml:"), "{error}");
    libvirtd.destroy("nn-x1");
}

#[test]
#[ignore = "needs root, libvirt and QEMU: libvirtd, virtlogd, virsh, /dev/kvm, a v1 cpuset hierarchy, xmllint"]
fn a_domain_with_the_switch_is_admitted_applied_released_and_adopted_under_a_real_libvirtd() {
    let _serial = crate::host_knobs_exclusively();
    let before_host = succeeded(nearnative(&["inspect", "--json"]), "inspect before");
    let mut lab = HookLab::new();
    let plain = small_domain("nn-plain", 1, 1, None);
    lab.libvirtd_mut().define("nn-plain", &plain);
    lab.libvirtd().start_paused("nn-plain").unwrap();
    let before_machine = machine_values();
    let before_plain = domain_affinities(lab.libvirtd(), "nn-plain");
    lab.start_daemon();
    let latency = small_domain("nn-lat", 1, 1, Some(SWITCH));
    lab.libvirtd_mut().define("nn-lat", &latency);

    // 1 and 2: twenty cycles of the domain with the switch; the plain one restarts meanwhile.
    for cycle in 0..CYCLES {
        lab.libvirtd().start_paused("nn-lat").unwrap_or_else(|e| {
            panic!(
                "cycle {cycle}: virsh start: {e}\ndaemon:\n{}",
                lab.daemon_log()
            )
        });
        // virsh start returns once libvirt has run the `started` hook.
        let started = Instant::now();
        let applied = wait_until(&format!("vm:nn-lat applied (cycle {cycle})"), || {
            lab.applied("vm:nn-lat")
        });
        assert_eq!(applied["exclusive_cpus"], serde_json::json!([1]));
        wait_until(
            &format!("nn-lat's vCPU alone on CPU 1 (cycle {cycle})"),
            || {
                let pid = lab.libvirtd().qemu_pid("nn-lat")?;
                (affinity(thread_named(pid, "CPU 0/KVM")) == BTreeSet::from([1])).then_some(())
            },
        );
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "cycle {cycle}: applied {took:?} after the started hook"
        );
        assert_exclusive(lab.libvirtd(), "nn-lat");
        lab.assert_irqs_off(1);
        lab.verify("nn-lat");
        if cycle % 10 == 5 {
            lab.libvirtd().destroy("nn-plain");
            lab.libvirtd().start_paused("nn-plain").unwrap();
            wait_until("the restarted nn-plain off CPU 1", || {
                let pid = lab.libvirtd().qemu_pid("nn-plain")?;
                threads_of(pid)
                    .iter()
                    .all(|&t| !affinity(t).contains(&1))
                    .then_some(())
            });
            assert_exclusive(lab.libvirtd(), "nn-lat");
        }
        lab.libvirtd().destroy("nn-lat");
        wait_until(&format!("nn-lat released (cycle {cycle})"), || {
            lab.empty().ok()
        });
    }

    // 3: a domain asking for more cores than are free is refused with the daemon's reason.
    lab.libvirtd().start_paused("nn-lat").unwrap();
    wait_until("vm:nn-lat applied", || lab.applied("vm:nn-lat"));
    let greedy = small_domain("nn-greedy", 1, 0, Some(SWITCH));
    lab.libvirtd_mut().define("nn-greedy", &greedy);
    let refused = lab
        .libvirtd()
        .start_paused("nn-greedy")
        .expect_err("nn-greedy is refused");
    assert!(
        refused.contains("vm:nn-greedy asks for") && refused.contains("free"),
        "virsh start's error carries nearnative's reason: {refused}"
    );
    assert!(
        lab.libvirtd().qemu_pid("nn-greedy").is_none(),
        "nn-greedy does not run"
    );
    let status = lab.status();
    let holders: Vec<&Value> = status["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["workload"])
        .collect();
    assert_eq!(
        holders,
        [&Value::from("vm:nn-lat")],
        "no cores held for nn-greedy"
    );

    // 4: libvirtd restarted: reconnect keeps it applied; the daemon killed: it adopts it.
    lab.libvirtd_mut().restart();
    wait_until("the reconnect hook handled", || {
        lab.daemon_log()
            .to_lowercase()
            .contains("reconnect")
            .then_some(())
    });
    assert!(
        lab.applied("vm:nn-lat").is_some(),
        "still applied after libvirtd's restart"
    );
    assert_exclusive(lab.libvirtd(), "nn-lat");
    lab.verify("nn-lat");
    lab.kill_daemon();
    lab.start_daemon();
    wait_until("the new daemon holds vm:nn-lat", || {
        let status = nearnative(&["status", "--json", "--control-socket", &lab.socket()]);
        let status: Value = serde_json::from_slice(&status.stdout).ok()?;
        let held = status["workloads"]
            .as_array()?
            .iter()
            .any(|w| w["workload"] == "vm:nn-lat");
        held.then_some(())
    });
    assert_exclusive(lab.libvirtd(), "nn-lat");
    lab.verify("nn-lat");

    // The guest runs (emulated, on its own exclusive CPU): KVM starts its per-VM
    // kvm-nx-lpage-recovery thread inside QEMU, in vcpu0's cgroup with vcpu0's CPU. The
    // daemon moves it to the emulator's cgroup, on housekeeping.
    lab.libvirtd().virsh_ok(&["resume", "nn-lat"]);
    let pid = lab.libvirtd().qemu_pid("nn-lat").expect("nn-lat runs");
    wait_until("kvm-nx-lpage-recovery in nn-lat on housekeeping", || {
        let thread = threads_of(pid)
            .into_iter()
            .find(|&t| comm(t).starts_with("kvm-nx-lpage"))?;
        let placed =
            affinity(thread) == BTreeSet::from([0]) && cpuset_of(thread).ends_with("/emulator");
        placed.then_some(())
    });
    // Paused again for verify: the scope fences only the scope's threads, and a running
    // vCPU here is preempted by the host's own unbound kernel threads outside it.
    lab.libvirtd().virsh_ok(&["suspend", "nn-lat"]);
    assert_exclusive(lab.libvirtd(), "nn-lat");
    lab.verify("nn-lat");
    let xml = validated_xml(lab.libvirtd(), "nn-lat", &lab.state(), lab.tmp.path());
    assert!(
        xml.contains("<vcpupin vcpu='0' cpuset='1'/>"),
        "the applied allocation: {xml}"
    );
    lab.libvirtd().destroy("nn-lat");
    wait_until("nn-lat released by the adopting daemon", || {
        lab.empty().ok()
    });

    // 5: everything as before: libvirt's own cgroups, the plain domain's threads, the host.
    succeeded(
        nearnative(&["revert", "--all", "--state-dir", &lab.state()]),
        "revert --all",
    );
    assert_eq!(machine_values(), before_machine, "libvirt's cgroup values");
    assert_eq!(
        domain_affinities(lab.libvirtd(), "nn-plain"),
        before_plain,
        "nn-plain's threads"
    );
    lab.libvirtd().destroy("nn-plain");
    let after_host = succeeded(nearnative(&["inspect", "--json"]), "inspect after");
    let after_host = restorable(&after_host, &[]);
    for (key, value) in restorable(&before_host, &[]) {
        if let Some(now) = after_host.get(&key) {
            assert_eq!(now, &value, "{key} after the test");
        }
    }
    drop(lab);
    assert!(
        !Path::new(HOOKS_DIR).join("qemu.d/nearnative").exists(),
        "the hook is removed"
    );
}
