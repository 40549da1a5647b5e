//! Acceptance 4, live on this machine as root: thread affinity and policy on threads the test
//! spawned, a v1 cpuset cgroup the test creates, a CPU's PM QoS limit and net.core.busy_poll,
//! all applied through the journal and restored by revert. Nothing else is touched.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use nearnative_apply::{apply, revert, RevertTarget, StateDir};
use nearnative_host::power::ResumeLatency;
use nearnative_host::CpuSet;
use nearnative_knob::bypass::power::PmQosResumeLatency;
use nearnative_knob::bypass::sysctl::BusyPoll;
use nearnative_knob::exclusivity::cgroup::{
    CgroupDir, CpusetCpus, CpusetMems, Presence, TaskCgroup,
};
use nearnative_knob::exclusivity::sched::{Policy, SchedPolicy};
use nearnative_knob::exclusivity::task::{parse_start_time, ThreadAffinity};
use nearnative_knob::{Backend, Knob, LiveBackend, Step};

use crate::id;
use crate::steps::{change, cpuset_hierarchy, v1_cgroup, CPUSET_MOUNT};

/// A thread this test spawned, parked until dropped.
struct Worker {
    tid: u32,
    start_time: u64,
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    fn spawn() -> Worker {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("nn-live-worker".into())
            .spawn(move || {
                tid_tx.send(nix::unistd::gettid().as_raw() as u32).unwrap();
                let _ = stop_rx.recv();
            })
            .unwrap();
        let tid = tid_rx.recv().unwrap();
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        Worker {
            tid,
            start_time: parse_start_time(&stat).unwrap(),
            stop: Some(stop_tx),
            handle: Some(handle),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Removes the test's cgroup however the test ends: our threads go back to the root cpuset
/// first (only ours: each tid is checked to be in this process), then the directory goes.
struct CgroupGuard {
    dir: PathBuf,
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        let tasks = std::fs::read_to_string(self.dir.join("tasks")).unwrap_or_default();
        for tid in tasks.split_whitespace() {
            if Path::new(&format!("/proc/self/task/{tid}")).exists() {
                let _ = std::fs::write(Path::new(CPUSET_MOUNT).join("tasks"), tid);
            }
        }
        if self.dir.exists() {
            if let Err(err) = std::fs::remove_dir(&self.dir) {
                eprintln!(
                    "!!! could not remove test cgroup {}: {err}",
                    self.dir.display()
                );
            }
        }
    }
}

/// Reverts whatever the test's journal still lists if the test ends early, so a failed
/// assertion never leaves busy_poll or a CPU's PM QoS limit changed. Declared after the
/// cgroup guard, so it runs first: the cgroup is emptied before it is removed.
struct RevertGuard<'a> {
    state: &'a StateDir,
}

impl Drop for RevertGuard<'_> {
    fn drop(&mut self) {
        if let Err(err) = revert(self.state, &RevertTarget::All, &LiveBackend::new()) {
            eprintln!("!!! live test could not revert its journal: {err}");
        }
    }
}

#[test]
#[ignore = "needs root: a v1 cpuset hierarchy, PM QoS and sysctls"]
fn live_thread_cgroup_power_and_sysctl_knobs_apply_and_revert_needs_root() {
    assert!(nix::unistd::geteuid().is_root(), "needs root");
    assert!(
        Path::new(CPUSET_MOUNT).join("cpuset.cpus").exists(),
        "needs a cgroup v1 cpuset hierarchy at {CPUSET_MOUNT}"
    );
    let backend = LiveBackend::new();
    let online = nearnative_host::cpus::online_cpus(backend.root()).unwrap();
    let cpu = online.iter().last().unwrap();
    let worker = Worker::spawn();
    let pid = std::process::id();
    let name = format!("/nearnative-test-{pid}");
    let cgroup = v1_cgroup(&name);
    let _guard = CgroupGuard { dir: cgroup.dir() };
    let exclusive = CpuSet::from_ids([cpu]);
    let task = |tid| (pid, tid, worker.start_time);
    let (p, t, s) = task(worker.tid);
    let affinity = ThreadAffinity {
        pid: p,
        tid: t,
        start_time: s,
    };
    let policy = SchedPolicy {
        pid: p,
        tid: t,
        start_time: s,
    };
    let moved = TaskCgroup {
        pid: p,
        tid: t,
        start_time: s,
        hierarchy: cpuset_hierarchy(),
    };
    let steps: Vec<Step> = vec![
        change(
            CgroupDir {
                cgroup: cgroup.clone(),
            },
            Presence::Present,
        ),
        change(
            CpusetCpus {
                cgroup: cgroup.clone(),
            },
            exclusive.clone(),
        ),
        change(
            CpusetMems {
                cgroup: cgroup.clone(),
            },
            CpuSet::from_ids([0]),
        ),
        change(moved.clone(), cgroup.path.clone()),
        change(affinity, exclusive.clone()),
        change(policy, Policy::Fifo { priority: 1 }),
        change(PmQosResumeLatency { cpu }, ResumeLatency::Microseconds(7)),
        change(BusyPoll, 37),
    ];
    let before: Vec<String> = steps.iter().map(|s| read_now(s, &backend)).collect();
    let state_dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(state_dir.path());
    let _revert_on_failure = RevertGuard { state: &state };

    apply(&steps, &backend, &state, &id("live")).unwrap();
    for step in &steps {
        assert!(
            step.holds_target(&backend).unwrap(),
            "{} after apply",
            step.describe()
        );
    }
    let tasks = std::fs::read_to_string(cgroup.dir().join("tasks")).unwrap();
    assert_eq!(tasks.trim(), worker.tid.to_string());

    revert(&state, &RevertTarget::One(id("live")), &backend).unwrap();
    let after: Vec<String> = steps.iter().map(|s| read_now(s, &backend)).collect();
    assert_eq!(after, before);
    assert!(
        !cgroup.dir().exists(),
        "revert removes the cgroup it created"
    );
    assert_eq!(moved.read(&backend).unwrap().as_str(), "/");
}

/// A knob's value now as text (steps hold different value types), or why it has none (the
/// test's cgroup files do not exist before apply or after revert).
fn read_now(step: &Step, backend: &LiveBackend) -> String {
    match step.with_current(backend) {
        Ok(current) => current.values().0,
        Err(err) => err.to_string(),
    }
}

/// A thread that drops its effective uid (raw `setresuid` changes only the calling thread's
/// credentials) must be refused by both apply and revert before anything is read or written.
#[test]
#[ignore = "needs root: to drop to another uid"]
fn apply_and_revert_refuse_the_live_host_without_root_needs_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root to drop to another uid"
    );
    let state_dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(state_dir.path().join("state"));
    let outcome = std::thread::Builder::new()
        .name("nn-unprivileged".into())
        .spawn(move || {
            let keep = libc::uid_t::MAX;
            // SAFETY: a raw setresuid with plain integers changes only this thread's effective
            // uid (the glibc wrapper would change every thread's); the thread ends right after.
            let rc = unsafe { libc::syscall(libc::SYS_setresuid, keep, 65534, keep) };
            assert_eq!(rc, 0, "setresuid");
            let backend = LiveBackend::new();
            let steps = vec![change(BusyPoll, 37)];
            let err = apply(&steps, &backend, &state, &id("x")).unwrap_err();
            assert!(err.to_string().contains("must run as root"), "{err}");
            let err = revert(&state, &RevertTarget::All, &backend).unwrap_err();
            assert!(err.to_string().contains("must run as root"), "{err}");
            assert!(!state.dir().exists(), "nothing may be created");
        })
        .unwrap()
        .join();
    assert!(outcome.is_ok(), "unprivileged thread panicked");
}
