//! Knobs on this machine, as root, on a thread the test spawned: affinity and policy read back
//! as written, a task moves through a kept `tasks` file even after its cgroup was made again,
//! and a NIC without ethtool support (loopback) answers "not available".

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use nearnative_host::CpuSet;
use nearnative_knob::backend::{CgroupLine, TaskId, TaskMove};
use nearnative_knob::bypass::nic::{Interface, NicCoalesce, NicFeature};
use nearnative_knob::exclusivity::sched::{Policy, SchedPolicy};
use nearnative_knob::exclusivity::task::{parse_start_time, ThreadAffinity};
use nearnative_knob::{Backend, Knob, KnobError, LiveBackend, Offload};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
#[ignore = "needs root: to set SCHED_FIFO"]
fn own_thread_affinity_and_policy_read_back_as_written_needs_root() {
    assert!(is_root(), "needs root to set SCHED_FIFO");
    let (tid_tx, tid_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let worker = std::thread::Builder::new()
        .name("nn-knob-worker".into())
        .spawn(move || {
            // SAFETY: gettid has no preconditions and cannot fail.
            tid_tx.send(unsafe { libc::gettid() } as u32).unwrap();
            let _ = stop_rx.recv();
        })
        .unwrap();
    let tid = tid_rx.recv().unwrap();
    let pid = std::process::id();
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    let start_time = parse_start_time(&stat).unwrap();
    let backend = LiveBackend::new();

    let affinity = ThreadAffinity {
        pid,
        tid,
        start_time,
    };
    let original = affinity.read(&backend).unwrap();
    let one = CpuSet::from_ids([original.iter().last().unwrap()]);
    let task = TaskId { pid, tid };
    for wanted in [&one, &original] {
        affinity.write(&backend, wanted).unwrap();
        assert_eq!(&affinity.read(&backend).unwrap(), wanted);
        // The system call, where the backend uses it, reads what status shows.
        if let Some(quick) = backend.thread_affinity(task).unwrap() {
            assert_eq!(&quick, wanted);
        }
    }

    let policy = SchedPolicy {
        pid,
        tid,
        start_time,
    };
    let before = policy.read(&backend).unwrap();
    for wanted in [
        Policy::Fifo { priority: 3 },
        Policy::Other { nice: 5 },
        before,
    ] {
        policy.write(&backend, &wanted).unwrap();
        assert_eq!(policy.read(&backend).unwrap(), wanted);
    }
    let stale = ThreadAffinity {
        pid,
        tid,
        start_time: start_time + 1,
    };
    assert!(stale.write(&backend, &one).unwrap_err().is_gone());

    drop(stop_tx);
    worker.join().unwrap();
}

const CPUSET: &str = "/sys/fs/cgroup/cpuset";

/// A v1 cpuset cgroup with every CPU and memory node of the root.
fn make_cpuset(backend: &LiveBackend, dir: &Path) {
    backend.create_cgroup(dir).unwrap();
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let value = std::fs::read_to_string(Path::new(CPUSET).join(file)).unwrap();
        backend.write_file(&dir.join(file), value.trim()).unwrap();
    }
}

fn move_to(backend: &LiveBackend, pid: u32, to: &str) -> std::io::Result<()> {
    backend.move_task(&TaskMove {
        task: TaskId { pid, tid: pid },
        mount: PathBuf::from(CPUSET),
        line: CgroupLine::V1 {
            controller: "cpuset".to_owned(),
        },
        to: to.to_owned(),
        file: "tasks",
        id: pid,
    })
}

fn lists(dir: &Path, pid: u32) -> bool {
    let tasks = std::fs::read_to_string(dir.join("tasks")).unwrap();
    tasks.lines().any(|line| line == pid.to_string())
}

/// The backend keeps a cgroup's `tasks` file open across moves. A cgroup removed and made
/// again, by the backend or behind its back, still takes the next move: through a fresh open.
#[test]
#[ignore = "needs root: makes a v1 cpuset cgroup"]
fn a_move_into_a_cgroup_made_again_goes_through_a_fresh_open_needs_root() {
    assert!(is_root(), "needs root to make a cgroup");
    assert!(
        Path::new(CPUSET).join("tasks").exists(),
        "no v1 cpuset at {CPUSET}"
    );
    let backend = LiveBackend::new();
    let scope = format!("/nn-knob-kept-{}", std::process::id());
    let inner = format!("{scope}/a");
    let (scope_dir, inner_dir) = (
        Path::new(CPUSET).join(&scope[1..]),
        Path::new(CPUSET).join(&inner[1..]),
    );
    make_cpuset(&backend, &scope_dir);
    make_cpuset(&backend, &inner_dir);
    let mut child = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pid = child.id();
    move_to(&backend, pid, &scope).unwrap();
    move_to(&backend, pid, &inner).unwrap();
    assert!(lists(&inner_dir, pid));

    move_to(&backend, pid, &scope).unwrap();
    backend.remove_cgroup(&inner_dir).unwrap();
    make_cpuset(&backend, &inner_dir);
    move_to(&backend, pid, &inner).unwrap();
    assert!(lists(&inner_dir, pid), "after a remove through the backend");

    move_to(&backend, pid, &scope).unwrap();
    std::fs::remove_dir(&inner_dir).unwrap();
    std::fs::create_dir(&inner_dir).unwrap();
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let value = std::fs::read_to_string(scope_dir.join(file)).unwrap();
        std::fs::write(inner_dir.join(file), value.trim()).unwrap();
    }
    move_to(&backend, pid, &inner).unwrap();
    assert!(
        lists(&inner_dir, pid),
        "after a remove behind the backend's back"
    );

    child.kill().unwrap();
    child.wait().unwrap();
    backend.remove_cgroup(&inner_dir).unwrap();
    backend.remove_cgroup(&scope_dir).unwrap();
}

#[test]
fn loopback_coalescing_is_not_available_live() {
    let knob = NicCoalesce {
        iface: Interface::try_from("lo".to_owned()).unwrap(),
    };
    let err = knob.read(&LiveBackend::new()).unwrap_err();
    assert!(matches!(err, KnobError::NotAvailable { .. }), "{err}");
    assert!(err.to_string().contains("SIOCETHTOOL"), "{err}");
}

/// In a network namespace of its own (per thread: `unshare(CLONE_NEWNET)`), with a veth pair
/// made there, GRO is switched off and on through SFEATURES and LRO (fixed off on veth) is
/// refused; the namespace goes when the thread ends. No other interface is touched.
#[test]
#[ignore = "needs root: for a network namespace"]
fn veth_gro_switches_and_fixed_lro_is_refused_in_own_netns_needs_root() {
    assert!(is_root(), "needs root for a network namespace");
    let outcome = std::thread::Builder::new()
        .name("nn-netns".into())
        .spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let status = std::process::Command::new("ip")
                .args(["link", "add", "nn0", "type", "veth", "peer", "name", "nn1"])
                .status()
                .unwrap();
            assert!(status.success(), "ip link add veth");
            let backend = LiveBackend::new();
            let iface = Interface::try_from("nn0".to_owned()).unwrap();
            let gro = NicFeature {
                iface: iface.clone(),
                feature: Offload::Gro,
            };
            let original = gro.read(&backend).unwrap();
            for wanted in [!original, original] {
                gro.write(&backend, &wanted).unwrap();
                assert_eq!(gro.read(&backend).unwrap(), wanted);
            }
            let lro = NicFeature {
                iface,
                feature: Offload::Lro,
            };
            assert!(!lro.read(&backend).unwrap());
            let err = lro.write(&backend, &true).unwrap_err();
            assert!(err.is_refused(), "{err}");
        })
        .unwrap()
        .join();
    assert!(outcome.is_ok(), "netns thread panicked");
}
