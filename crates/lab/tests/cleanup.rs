//! Nothing is left behind after SIGINT mid-run or mid-build, and a `kill -9`'s leftovers are
//! swept completely by the next run.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nearnative_host::Root;
use nearnative_lab::ip::ip;
use nearnative_lab::{sweep, Lab, Layer};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::child::child_command;
use crate::common::{net_state, root_test, NetState, Restored};

/// Starts the child in `mode` and returns it with its run id, read from its `READY` line.
fn start_child(mode: &str, run_dir: &Path) -> (Child, String) {
    let mut child = child_command(mode, run_dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let id = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find_map(|l| l.strip_prefix("READY ").map(str::to_owned))
        .expect("the child never got ready");
    // Keep reading, so the child's test harness never writes into a closed pipe.
    std::thread::Builder::new()
        .name("child-stdout".into())
        .spawn(move || lines.for_each(drop))
        .unwrap();
    (child, id)
}

fn signal(child: &Child, signal: Signal) {
    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
}

/// The child's hog, flood and tap forwarder threads still running.
fn lab_threads(child: &Child) -> Vec<String> {
    let tasks = format!("/proc/{}/task", child.id());
    std::fs::read_dir(tasks)
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|comm| comm.trim().to_owned())
        .filter(|comm| {
            comm.starts_with("nn-hog-") || comm.starts_with("nn-flood") || comm == "nn-lab-tapfwd"
        })
        .collect()
}

/// Waits up to 5 s for `done`.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

/// The registry files in `run_dir` (the lab lock stays there, as it must).
fn registry_files(run_dir: &Path) -> usize {
    std::fs::read_dir(run_dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .count()
}

/// Fails unless nothing of the run `id` is left: no namespace, interface or registry file.
fn assert_run_gone(id: &str, run_dir: &Path, before: &NetState) {
    let left = net_state().of_run(id);
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(registry_files(run_dir), 0, "registry left behind");
    net_state().assert_restored(before);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_signal_mid_measurement_cleans_up_while_the_main_thread_is_busy_needs_root() {
    let _serial = root_test();
    for (what, stop_signal) in [("Ctrl-C", Signal::SIGINT), ("kill", Signal::SIGTERM)] {
        let before = net_state();
        let run_dir = tempfile::tempdir().unwrap();
        let (mut child, id) = start_child("busy", run_dir.path());
        assert!(!net_state().of_run(&id).is_empty(), "{what}: paths built");
        assert!(
            !lab_threads(&child).is_empty(),
            "{what}: hogs and forwarder run"
        );
        std::thread::sleep(Duration::from_millis(300));
        signal(&child, stop_signal);
        // The watcher cleans up while the child's main thread goes on probing; the child is
        // only killed after the check (or the 5 s wait) is over.
        eventually(|| {
            net_state().of_run(&id).is_empty()
                && registry_files(run_dir.path()) == 0
                && lab_threads(&child).is_empty()
        });
        let left = net_state().of_run(&id);
        let running = lab_threads(&child);
        signal(&child, Signal::SIGKILL);
        child.wait().unwrap();
        assert!(left.is_empty(), "{what}: left behind: {left:?}");
        assert!(running.is_empty(), "{what}: still running: {running:?}");
        assert_run_gone(&id, run_dir.path(), &before);
    }
}

#[test]
#[ignore = "needs root: network namespaces"]
fn sigint_mid_build_leaves_nothing_needs_root() {
    let _serial = root_test();
    let before = net_state();
    let run_dir = tempfile::tempdir().unwrap();
    let (mut child, id) = start_child("builder", run_dir.path());
    signal(&child, Signal::SIGINT);
    let exited = eventually(|| child.try_wait().unwrap().is_some());
    if !exited {
        signal(&child, Signal::SIGKILL);
    }
    child.wait().unwrap();
    assert!(exited, "the child did not stop on SIGINT");
    assert_run_gone(&id, run_dir.path(), &before);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn kill_9_leftovers_are_swept_completely_needs_root() {
    let _serial = root_test();
    let before = net_state();
    // Kept until the end: if an assertion fails, the registry naming what the killed run
    // left stays for a sweep (`nearnative lab --run-dir <it>`).
    let run_dir = tempfile::tempdir().unwrap().keep();
    let (mut child, id) = start_child("busy", &run_dir);
    signal(&child, Signal::SIGKILL);
    child.wait().unwrap();
    let kept = format!("leftovers named in {}", run_dir.display());
    assert!(
        !net_state().of_run(&id).is_empty(),
        "kill -9 left namespaces"
    );
    assert_eq!(registry_files(&run_dir), 1, "and its registry");
    let report = sweep(&run_dir, &Root::default()).unwrap();
    assert_eq!(report.swept.len(), 1, "{report:?}; {kept}");
    assert!(report.failed.is_empty(), "{report:?}; {kept}");
    assert!(report.objects >= 6, "{report:?}; {kept}");
    assert_run_gone(&id, &run_dir, &before);
    std::fs::remove_dir_all(&run_dir).unwrap();
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_panic_while_building_leaves_nothing_needs_root() {
    let _serial = root_test();
    let before = net_state();
    let run_dir = tempfile::tempdir().unwrap();
    let id = std::sync::Mutex::new(String::new());
    let outcome = std::panic::catch_unwind(|| {
        let mut lab = Lab::create(run_dir.path()).unwrap();
        *id.lock().unwrap() = lab.tag().id();
        lab.build(Layer::Bridge).unwrap();
        panic!("a step after the build failed");
    });
    assert!(outcome.is_err());
    let id = id.into_inner().unwrap();
    assert_run_gone(&id, run_dir.path(), &before);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_failed_step_is_cleaned_up_and_a_foreign_object_is_never_taken_over_needs_root() {
    let _serial = root_test();
    let before = net_state();
    let run_dir = tempfile::tempdir().unwrap();
    let mut lab = Lab::create(run_dir.path()).unwrap();
    let id = lab.tag().id();
    // Someone else's namespace under the name the veth path's server side would get.
    let foreign = format!("nnlab-{id}-veth-s");
    ip(&["netns", "add", &foreign]).unwrap();
    let err = lab.build(Layer::Veth).unwrap_err();
    let message = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(message.contains(&foreign), "{message}");
    assert!(message.contains("already exists"), "{message}");
    assert!(net_state().netns.contains(&format!("nnlab-{id}-veth-c")));
    drop(lab);
    assert_eq!(
        net_state().of_run(&id),
        vec![foreign.clone()],
        "only the foreign one stays"
    );
    ip(&["netns", "delete", &foreign]).unwrap();
    net_state().assert_restored(&before);
}
