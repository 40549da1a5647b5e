//! `nearnative libvirt hook`, `install-hook` and `remove-hook` as libvirtd and a user run
//! them. The hook is the real binary with a domain's XML on stdin; its daemon is a real one of
//! the test's own (private state dir, socket and libvirt status dir, scoped to a v1 cpuset
//! cgroup of the test's own with both CPUs of this machine), so CPU 0's core stays
//! housekeeping and one core (CPU 1) is free for a domain. No libvirtd and no VM: admission
//! at `prepare` happens before QEMU exists.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::live_view::scope_cpuset;
use crate::nearnative;
use nearnative_testkit::{PausedQemu, QemuOptions};

/// A domain named `name` that starts with `vcpus` vCPUs and asks for level high.
fn domain_xml(name: &str, vcpus: u32) -> String {
    format!(
        "<domain type='kvm'>\n  <name>{name}</name>\n  <memory unit='MiB'>64</memory>\n  \
         <vcpu placement='static'>{vcpus}</vcpu>\n  <metadata><nn:latency \
         xmlns:nn=\"urn:nearnative:latency:1\" level=\"high\"/></metadata>\n  \
         <os><type arch='x86_64' machine='pc'>hvm</type></os>\n</domain>\n"
    )
}

/// Runs the hook as libvirtd does: GUEST OP SUBOP EXTRA, the XML on stdin.
fn hook(socket: &Path, guest: &str, op: &str, subop: &str, xml: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nearnative"))
        .args(["libvirt", "hook", "--control-socket"])
        .arg(socket)
        .args([guest, op, subop, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(xml.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The test's scope cgroup and daemon; on drop the daemon is killed, anything it held
/// reverted and the cgroup removed.
struct HookLab {
    tmp: tempfile::TempDir,
    scope_name: String,
    scope_dir: PathBuf,
    daemon: Option<Child>,
}

impl HookLab {
    fn new() -> HookLab {
        assert!(nix::unistd::geteuid().is_root(), "needs root");
        let (scope_name, scope_dir) = scope_cpuset("nn-libvirt-hook");
        let lab = HookLab {
            tmp: tempfile::tempdir().unwrap(),
            scope_name,
            scope_dir,
            daemon: None,
        };
        for dir in ["workloads.d", "libvirt-status"] {
            std::fs::create_dir(lab.path(dir)).unwrap();
        }
        lab
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn socket(&self) -> PathBuf {
        self.path("control.sock")
    }

    fn state(&self) -> String {
        self.path("state").to_str().unwrap().to_owned()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("daemon.log")).unwrap_or_default()
    }

    fn start_daemon(&mut self) {
        let log = File::create(self.path("daemon.log")).unwrap();
        let daemon = Command::new(env!("CARGO_BIN_EXE_nearnative"))
            .args(["daemon", "--metrics", "off", "--sweep", "1"])
            .arg(format!("--scope=cgroup:/{}", self.scope_name))
            .arg("--policy-dir")
            .arg(self.path("workloads.d"))
            .args(["--state-dir", &self.state()])
            .arg("--control-socket")
            .arg(self.socket())
            .arg("--libvirt-status-dir")
            .arg(self.path("libvirt-status"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(daemon);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.log().contains("workload(s) applied") {
            assert!(
                Instant::now() < deadline,
                "the daemon did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        while std::os::unix::net::UnixStream::connect(self.socket()).is_err() {
            assert!(
                Instant::now() < deadline,
                "no control socket: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HookLab {
    fn drop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
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

#[test]
#[ignore = "needs root: a nearnative daemon of its own in a v1 cpuset scope"]
fn prepare_admits_what_is_free_and_refuses_the_rest_with_one_line() {
    let mut lab = HookLab::new();
    let status = lab.path("libvirt-status");
    let running = domain_xml("nn-ghost", 1);
    let wrapped = format!("<domstatus state='running' pid='1'>\n{running}</domstatus>\n");
    std::fs::write(status.join("nn-ghost.xml"), wrapped).unwrap();
    lab.start_daemon();
    assert!(
        lab.log()
            .contains("vm:nn-ghost: adopted from libvirt's status"),
        "{}",
        lab.log()
    );
    let socket = lab.socket();

    let two = hook(
        &socket,
        "nn-two",
        "prepare",
        "begin",
        &domain_xml("nn-two", 2),
    );
    assert_eq!(two.status.code(), Some(1), "{}", stderr(&two));
    let line = stderr(&two);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.contains("vm:nn-two asks for 2 exclusive"),
        "the planner's line: {line}"
    );

    let one = hook(&socket, "nn-a", "prepare", "begin", &domain_xml("nn-a", 1));
    assert!(one.status.success(), "{}", stderr(&one));
    assert_eq!(stderr(&one), "");

    let b = domain_xml("nn-b", 1);
    let behind = hook(&socket, "nn-b", "prepare", "begin", &b);
    assert_eq!(
        behind.status.code(),
        Some(1),
        "nn-a's pending admission holds the only free core: {}",
        stderr(&behind)
    );
    assert!(stderr(&behind).contains("vm:nn-b asks for 1 exclusive"));

    let released = hook(&socket, "nn-a", "release", "end", &domain_xml("nn-a", 1));
    assert!(released.status.success(), "{}", stderr(&released));
    let again = hook(&socket, "nn-a", "release", "end", "");
    assert!(
        again.status.success(),
        "release is idempotent: {}",
        stderr(&again)
    );
    let after = hook(&socket, "nn-b", "prepare", "begin", &b);
    assert!(after.status.success(), "{}", stderr(&after));

    let bad = domain_xml("nn-c", 1).replace("level=\"high\"", "level=\"medium\"");
    let invalid = hook(&socket, "nn-c", "prepare", "begin", &bad);
    assert_eq!(invalid.status.code(), Some(1));
    assert!(stderr(&invalid).contains(r#"domain nn-c: <nn:latency level="medium">"#));

    let other = hook(&socket, "nn-b", "stopped", "end", &b);
    assert!(other.status.success());
    let ledger = nearnative(&["status", "--json", "--state-dir", &lab.state()]);
    assert!(ledger.status.success(), "{}", stderr(&ledger));
    let status: serde_json::Value = serde_json::from_slice(&ledger.stdout).unwrap();
    assert!(
        status["workloads"].as_array().is_none_or(Vec::is_empty),
        "admission holds no cores in the ledger: {status}"
    );
}

#[test]
#[ignore = "needs root and QEMU: a v1 cpuset hierarchy, qemu-system-x86 with /dev/kvm"]
fn started_applies_the_domain_at_once_and_release_reverts_it() {
    let _serial = crate::host_knobs_exclusively();
    let mut lab = HookLab::new();
    lab.start_daemon();
    let socket = lab.socket();
    let dir = lab.path("nn-started");
    std::fs::create_dir(&dir).unwrap();
    let procs = lab.scope_dir.join("cgroup.procs");
    let qemu = PausedQemu::start_in(&dir, "nn-started", QemuOptions::default(), Some(&procs));
    let xml = domain_xml("nn-started", 1);
    let prepared = hook(&socket, "nn-started", "prepare", "begin", &xml);
    assert!(prepared.status.success(), "{}", stderr(&prepared));
    let told = Instant::now();
    let started = hook(&socket, "nn-started", "started", "begin", &xml);
    assert!(started.status.success(), "{}", stderr(&started));
    assert!(
        told.elapsed() < Duration::from_secs(1),
        "the hook returns at once"
    );
    let applied = |lab: &HookLab| {
        let socket = lab.socket();
        let through = [
            "status",
            "--json",
            "--control-socket",
            socket.to_str().unwrap(),
        ];
        let output = nearnative(&through);
        let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let workloads = status["workloads"].as_array().cloned().unwrap_or_default();
        workloads
            .into_iter()
            .find(|w| w["workload"] == "vm:nn-started" && w["state"] == "applied")
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let workload = loop {
        if let Some(workload) = applied(&lab) {
            break workload;
        }
        assert!(Instant::now() < deadline, "not applied: {}", lab.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(workload["source"]["kind"], "libvirt", "{workload}");
    assert_eq!(workload["source"]["domain"], "nn-started", "{workload}");
    let released = hook(&socket, "nn-started", "release", "end", &xml);
    assert!(released.status.success(), "{}", stderr(&released));
    assert!(
        lab.log()
            .contains("vm:nn-started released at libvirt's release"),
        "reverted while the hook waited: {}",
        lab.log()
    );
    let direct = nearnative(&["status", "--json", "--state-dir", &lab.state()]);
    let held: serde_json::Value = serde_json::from_slice(&direct.stdout).unwrap();
    assert!(
        held["workloads"].as_array().is_none_or(Vec::is_empty),
        "released: {held}"
    );
    qemu.stop();
}

#[test]
fn without_a_daemon_the_hook_warns_and_lets_the_domain_start() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("control.sock");
    for (op, subop) in [
        ("prepare", "begin"),
        ("started", "begin"),
        ("release", "end"),
    ] {
        let output = hook(&socket, "nn1", op, subop, &domain_xml("nn1", 1));
        assert!(output.status.success(), "{op}: {}", stderr(&output));
        let line = stderr(&output);
        assert_eq!(line.lines().count(), 1, "{op}: {line}");
        assert!(
            line.contains("no nearnative daemon listens on"),
            "{op}: {line}"
        );
    }
    let ignored = hook(&socket, "nn1", "start", "begin", &domain_xml("nn1", 1));
    assert!(ignored.status.success());
    assert_eq!(
        stderr(&ignored),
        "",
        "an operation the daemon does not act on"
    );
}

#[test]
fn install_hook_writes_an_executable_script_and_remove_hook_takes_only_ours() {
    let hooks = tempfile::tempdir().unwrap();
    let dir = hooks.path().to_str().unwrap();
    let installed = nearnative(&[
        "libvirt",
        "install-hook",
        "--hooks-dir",
        dir,
        "--control-socket",
        "/tmp/nn-test.sock",
    ]);
    assert!(installed.status.success(), "{}", stderr(&installed));
    let said = String::from_utf8_lossy(&installed.stdout);
    assert!(said.contains("restart libvirtd"), "{said}");
    let path = hooks.path().join("qemu.d/nearnative");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755);
    let script = std::fs::read_to_string(&path).unwrap();
    assert!(
        script.contains(env!("CARGO_BIN_EXE_nearnative")),
        "{script}"
    );
    assert!(
        script.contains("--control-socket '/tmp/nn-test.sock'"),
        "{script}"
    );

    // The script runs: no daemon on that socket, so a start goes on with a warning.
    let run = Command::new(&path)
        .args(["nn1", "start", "begin", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));

    let removed = nearnative(&["libvirt", "remove-hook", "--hooks-dir", dir]);
    assert!(removed.status.success());
    assert!(!path.exists());
    let twice = nearnative(&["libvirt", "remove-hook", "--hooks-dir", dir]);
    assert!(twice.status.success(), "idempotent: {}", stderr(&twice));

    std::fs::write(&path, "#!/bin/sh\n").unwrap();
    let refused = nearnative(&["libvirt", "install-hook", "--hooks-dir", dir]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("not written by nearnative"));
    assert_eq!(stderr(&refused).lines().count(), 1);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "#!/bin/sh\n");
}
