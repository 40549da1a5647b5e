//! The wake-up sources, live: an exec anywhere, a watched process's new thread, new child and
//! exit, a policy file written, a watched cgroup populated and emptied, the signals, and a
//! clean stop. Every process and cgroup here is the test's own.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use nearnative_daemon::events::{Events, Wake};
use nearnative_testkit::LineWorker;
use nix::sys::signal::{kill, raise, Signal};
use nix::unistd::Pid;

const WITHIN: Duration = Duration::from_secs(1);

/// Events on a policy directory of the test's own, and their receiver.
struct Harness {
    events: Events,
    rx: Receiver<Wake>,
    policy: tempfile::TempDir,
}

impl Harness {
    fn start() -> Harness {
        let policy = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel();
        let events = Events::start(tx, policy.path()).unwrap();
        Harness { events, rx, policy }
    }

    /// The first wake `want` accepts, skipping the others (every exec on the host comes too).
    fn wait_for(&self, what: &str, within: Duration, want: impl Fn(&Wake) -> bool) -> Wake {
        let deadline = Instant::now() + within;
        loop {
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(wake) if want(&wake) => return wake,
                Ok(_) => {}
                Err(error) => panic!("no {what} within {within:?}: {error}"),
            }
        }
    }

    fn assert_proc_connector(&self) {
        let notes = self.events.notes();
        assert!(
            !notes.iter().any(|note| note.contains("proc connector")),
            "needs root (CAP_NET_ADMIN) for the proc connector: {notes:?}"
        );
    }
}

/// Reads commands: `thread` starts a sleeping thread and answers its tid, `fork` forks a
/// sleeping child and answers its pid.
const WORKER: &str = r#"
import os, sys, threading, time
for line in sys.stdin:
    if line.strip() == "thread":
        thread = threading.Thread(target=time.sleep, args=(600,), daemon=True)
        thread.start()
        print(thread.native_id, flush=True)
    elif line.strip() == "fork":
        pid = os.fork()
        if pid == 0:
            time.sleep(600)
            os._exit(0)
        print(pid, flush=True)
"#;

/// The python worker and the children it forked; all killed on drop.
struct Worker {
    worker: LineWorker,
    forked: Vec<u32>,
}

impl Worker {
    fn start() -> Worker {
        let worker = LineWorker::spawn(
            Command::new("/usr/bin/python3").args(["-c", WORKER]),
            "needs /usr/bin/python3",
        );
        Worker {
            worker,
            forked: Vec::new(),
        }
    }

    fn ask(&mut self, command: &str) -> u32 {
        self.worker.ask(command).parse().unwrap()
    }

    fn pid(&self) -> u32 {
        self.worker.pid()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        for &pid in &self.forked {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

#[test]
#[ignore = "needs root: the proc connector needs CAP_NET_ADMIN"]
fn a_watched_process_exec_threads_children_and_exit_wake_the_loop() {
    let harness = Harness::start();
    harness.assert_proc_connector();
    let mut worker = Worker::start();
    let pid = worker.pid();
    harness.wait_for("exec of the worker", WITHIN, |wake| {
        *wake == Wake::Exec { pid }
    });

    harness.events.watch_processes(&BTreeSet::from([pid]));
    let tid = worker.ask("thread");
    harness.wait_for("its new thread", WITHIN, |wake| {
        *wake == Wake::Thread { tgid: pid, tid }
    });
    let child_pid = worker.ask("fork");
    worker.forked.push(child_pid);
    harness.wait_for("its new child", WITHIN, |wake| {
        *wake
            == Wake::Fork {
                parent_tgid: pid,
                child_pid,
            }
    });
    // The child is not watched: its exit says nothing.
    kill(Pid::from_raw(child_pid as i32), Signal::SIGKILL).unwrap();

    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    harness.wait_for("its exit", WITHIN, |wake| *wake == Wake::Exit { pid });
    let unwatched = harness.wait_for("any fork or exit", Duration::from_millis(300), |wake| {
        matches!(
            wake,
            Wake::Exit { .. } | Wake::Fork { .. } | Wake::Thread { .. }
        )
    });
    // The pidfd and the proc connector may both report the worker; nothing else may come.
    assert_eq!(unwatched, Wake::Exit { pid });
}

#[test]
#[ignore = "needs root: the proc connector needs CAP_NET_ADMIN"]
fn an_unwatched_process_new_threads_do_not_wake_the_loop() {
    let harness = Harness::start();
    harness.assert_proc_connector();
    let mut worker = Worker::start();
    let pid = worker.pid();
    harness.events.watch_processes(&BTreeSet::from([pid]));
    harness.events.watch_processes(&BTreeSet::new());
    worker.ask("thread");
    let deadline = Instant::now() + Duration::from_millis(500);
    while let Ok(wake) = harness
        .rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
    {
        assert!(
            matches!(wake, Wake::Exec { .. }),
            "only execs may come, not {wake:?}"
        );
    }
}

#[test]
fn a_policy_file_written_wakes_the_loop() {
    let harness = Harness::start();
    fs::write(harness.policy.path().join("vm.toml"), "[[workload]]\n").unwrap();
    harness.wait_for("policy change", WITHIN, |wake| *wake == Wake::PolicyDir);
    fs::remove_file(harness.policy.path().join("vm.toml")).unwrap();
    harness.wait_for("policy removal", WITHIN, |wake| *wake == Wake::PolicyDir);
}

#[test]
fn a_policy_directory_created_later_is_watched_from_then_on() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("workloads.d");
    let (tx, rx) = mpsc::channel();
    let events = Events::start(tx, &dir).unwrap();
    let harness = Harness {
        events,
        rx,
        policy: parent,
    };
    let notes = harness.events.notes();
    assert!(
        !notes.iter().any(|note| note.contains("policy directory")),
        "its parent is watched: {notes:?}"
    );
    fs::create_dir(&dir).unwrap();
    harness.wait_for("policy directory created", WITHIN, |wake| {
        *wake == Wake::PolicyDir
    });
    fs::write(dir.join("vm.toml"), "").unwrap();
    harness.wait_for("policy file in it", WITHIN, |wake| *wake == Wake::PolicyDir);
    fs::remove_file(dir.join("vm.toml")).unwrap();
    fs::remove_dir(&dir).unwrap();
    harness.wait_for("policy directory removed", WITHIN, |wake| {
        *wake == Wake::PolicyDir
    });
    drain(&harness.rx);
    fs::create_dir(&dir).unwrap();
    harness.wait_for("policy directory created again", WITHIN, |wake| {
        *wake == Wake::PolicyDir
    });
}

#[test]
fn a_cgroup_without_cgroup_events_is_left_to_the_sweep() {
    let harness = Harness::start();
    let v1_like = tempfile::tempdir().unwrap();
    harness.events.watch_cgroups(&[v1_like.path().to_owned()]);
    let notes = harness.events.notes();
    let expected = format!(
        "cgroup {} has no cgroup.events (cgroup v1, or gone): the sweep covers it",
        v1_like.path().display()
    );
    assert!(notes.contains(&expected), "{notes:?}");
    harness.events.watch_cgroups(&[]);
    assert!(!harness.events.notes().contains(&expected));
}

/// A v2 cgroup of the test's own, and the process moved into it; removed on drop.
struct TestCgroup {
    dir: PathBuf,
    sleeper: Child,
}

impl TestCgroup {
    fn create() -> TestCgroup {
        let dir = Path::new("/sys/fs/cgroup/unified")
            .join(format!("nn-events-test-{}", std::process::id()));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let sleeper = Command::new("/bin/sleep").arg("30").spawn().unwrap();
        TestCgroup { dir, sleeper }
    }

    fn move_sleeper(&self, to: &Path) {
        fs::write(to.join("cgroup.procs"), self.sleeper.id().to_string())
            .unwrap_or_else(|e| panic!("cannot move the sleeper to {}: {e}", to.display()));
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = self.sleeper.kill();
        let _ = self.sleeper.wait();
        // A killed process leaves its cgroup a moment after it is reaped.
        for _ in 0..50 {
            if fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The sleeper's own v2 cgroup, to move it back to.
fn v2_cgroup_of(pid: u32) -> PathBuf {
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = cgroups
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .expect("a cgroup v2 line");
    Path::new("/sys/fs/cgroup/unified").join(path.trim_start_matches('/'))
}

#[test]
#[ignore = "needs root: creates a cgroup under /sys/fs/cgroup/unified"]
fn a_watched_cgroup_populated_and_emptied_wakes_the_loop() {
    let harness = Harness::start();
    let cgroup = TestCgroup::create();
    let home = v2_cgroup_of(cgroup.sleeper.id());
    harness
        .events
        .watch_cgroups(std::slice::from_ref(&cgroup.dir));
    assert!(harness
        .events
        .notes()
        .iter()
        .all(|note| !note.contains("cgroup")));
    let changed = Wake::CgroupEvents {
        dir: cgroup.dir.clone(),
    };

    cgroup.move_sleeper(&cgroup.dir);
    harness.wait_for("populated", WITHIN, |wake| *wake == changed);
    cgroup.move_sleeper(&home);
    harness.wait_for("emptied", WITHIN, |wake| *wake == changed);
}

/// Set in the child process that runs one test alone.
const ALONE: &str = "NN_EVENTS_TEST_ALONE";

/// Whether this process is the one running `test` alone; if not, runs it alone in a child
/// process (this test binary, filtered to it) and asserts it passed. Signal handlers, threads
/// and descriptors are process-wide: the other tests, running in parallel, must not see them.
fn alone(test: &str) -> bool {
    if std::env::var(ALONE).is_ok_and(|value| value == test) {
        return true;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--include-ignored", "--test-threads=1"])
        .env(ALONE, test)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{test} alone: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    false
}

#[test]
fn signals_wake_the_loop() {
    if !alone("events::signals_wake_the_loop") {
        return;
    }
    let harness = Harness::start();
    for (signal, expected) in [
        (Signal::SIGHUP, Wake::Hangup),
        (Signal::SIGTERM, Wake::Terminate),
        (Signal::SIGINT, Wake::Terminate),
    ] {
        raise(signal).unwrap();
        harness.wait_for(signal.as_str(), WITHIN, |wake| *wake == expected);
    }
}

#[test]
fn dropping_events_ends_its_threads_and_closes_its_descriptors() {
    if !alone("events::dropping_events_ends_its_threads_and_closes_its_descriptors") {
        return;
    }
    let before = (
        count_entries("/proc/self/task"),
        count_entries("/proc/self/fd"),
    );
    let harness = Harness::start();
    harness
        .events
        .watch_processes(&BTreeSet::from([std::process::id()]));
    harness
        .events
        .watch_cgroups(&[harness.policy.path().to_owned()]);
    assert!(count_entries("/proc/self/task") > before.0);
    let Harness { events, rx, policy } = harness;
    drop(events);
    // Every thread held a sender: all gone means all ended.
    assert_eq!(
        drain(&rx),
        RecvTimeoutError::Disconnected,
        "a source's thread is still running"
    );
    drop(policy);
    let after = (
        count_entries("/proc/self/task"),
        count_entries("/proc/self/fd"),
    );
    assert_eq!(after, before, "(threads, descriptors) before and after");
}

/// Skips what is queued; returns why the channel has nothing more.
fn drain(rx: &Receiver<Wake>) -> RecvTimeoutError {
    loop {
        if let Err(error) = rx.recv_timeout(Duration::from_millis(100)) {
            return error;
        }
    }
}

fn count_entries(dir: &str) -> usize {
    fs::read_dir(dir).unwrap().count()
}
