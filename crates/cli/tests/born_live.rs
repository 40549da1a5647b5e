//! Tasks born during an apply, live and scoped: after `apply pid:T --scope`, the target starts
//! 50 threads and a bystander forks 200 children, each inheriting the mask the apply gave its
//! creator. After `revert --all` every one of them has its creator's pre-apply mask, except
//! the two whose masks the test set on purpose meanwhile, which keep them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use nearnative_testkit::LineWorker;
use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;

use crate::nearnative;

/// Reads commands: `threads N` starts N sleeping threads, `fork N` forks N children that
/// sleep; each answers with one line (the children's pids for `fork`).
const WORKER: &str = r#"
use threads;
$| = 1;
while (my $line = <STDIN>) {
    my ($what, $n) = split ' ', $line;
    if ($what eq 'threads') {
        threads->create(sub { sleep 600 })->detach for 1 .. $n;
        print "ok\n";
    } elsif ($what eq 'fork') {
        my @kids;
        for (1 .. $n) {
            my $pid = fork();
            if ($pid == 0) { exec 'sleep', '600'; exit 1 }
            push @kids, $pid;
        }
        print "@kids\n";
    }
}
"#;

/// A perl interpreter running [`WORKER`].
fn start_worker() -> LineWorker {
    LineWorker::spawn(
        Command::new("perl").args(["-e", WORKER]),
        "needs perl with threads (Debian's perl)",
    )
}

/// The scope cgroup and everything the test started; on drop (also when the test fails)
/// everything is reverted, stopped and removed.
struct Scope {
    dir: PathBuf,
    state: PathBuf,
    workers: Vec<LineWorker>,
    children: Vec<u32>,
}

impl Drop for Scope {
    fn drop(&mut self) {
        let state = self.state.to_str().unwrap_or_default().to_owned();
        let _ = nearnative(&["revert", "--all", "--state-dir", &state]);
        for pid in &self.children {
            let _ = nix::sys::signal::kill(
                Pid::from_raw(*pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        for worker in &mut self.workers {
            worker.kill();
        }
        for _ in 0..200 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn succeeded(output: Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{what}: {stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn affinity(pid: u32, tid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_owned()
}

fn threads_of(pid: u32) -> Vec<u32> {
    let mut tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort();
    tids
}

fn pin(tid: u32, cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu).unwrap();
    sched_setaffinity(Pid::from_raw(tid as i32), &set).unwrap();
}

/// `hierarchy`: the cgroup mount the scope is made in. The v1 cpuset hierarchy fences with
/// cpusets; the unified one (no cpuset controller here) with affinity alone.
fn born_tasks_get_their_creators_prior_mask(hierarchy: &str, on_purpose: bool) {
    assert!(
        Path::new(hierarchy).join("cgroup.procs").exists(),
        "needs a cgroup hierarchy at {hierarchy}"
    );
    let _serial = crate::host_knobs_exclusively();
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("nn-born-{}", std::process::id());
    let dir = Path::new(hierarchy).join(&name);
    std::fs::create_dir(&dir).unwrap();
    let mut scope = Scope {
        dir: dir.clone(),
        state: tmp.path().join("state"),
        workers: vec![start_worker(), start_worker()],
        children: Vec::new(),
    };
    if hierarchy.ends_with("cpuset") {
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let parent = std::fs::read_to_string(Path::new(hierarchy).join(file)).unwrap();
            std::fs::write(dir.join(file), parent.trim()).unwrap();
        }
    }
    let (target, bystander) = (scope.workers[0].pid(), scope.workers[1].pid());
    for pid in [target, bystander] {
        std::fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
    }
    let before = affinity(target, target);
    assert_eq!(affinity(bystander, bystander), before);
    let state = scope.state.to_str().unwrap().to_owned();
    let scope_arg = format!("cgroup:/{name}");
    succeeded(
        nearnative(&[
            "apply",
            &format!("pid:{target}"),
            "--scope",
            &scope_arg,
            "--state-dir",
            &state,
        ]),
        "apply",
    );
    let exclusive = affinity(target, target);
    assert_ne!(exclusive, before, "the apply pins the target");

    assert_eq!(scope.workers[0].ask("threads 50"), "ok");
    let kids = scope.workers[1].ask("fork 200");
    scope.children = kids
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(scope.children.len(), 200);
    let born_threads: Vec<u32> = threads_of(target)
        .into_iter()
        .filter(|&t| t != target)
        .collect();
    assert_eq!(born_threads.len(), 50);
    assert!(born_threads
        .iter()
        .all(|&t| affinity(target, t) == exclusive));
    let fenced = affinity(bystander, bystander);
    assert!(scope.children.iter().all(|&k| affinity(k, k) == fenced));
    let (kept_thread, kept_child) = (born_threads[0], scope.children[0]);
    if on_purpose {
        pin(kept_thread, 0);
        pin(kept_child, 1);
    }

    let out = succeeded(
        nearnative(&["revert", "--all", "--state-dir", &state]),
        "revert",
    );
    for &tid in &born_threads {
        let expected = match on_purpose && tid == kept_thread {
            true => "0".to_owned(),
            false => before.clone(),
        };
        assert_eq!(affinity(target, tid), expected, "thread {tid} ({out})");
    }
    for &kid in &scope.children {
        let expected = match on_purpose && kid == kept_child {
            true => "1".to_owned(),
            false => before.clone(),
        };
        assert_eq!(affinity(kid, kid), expected, "child {kid} ({out})");
    }
    assert_eq!(affinity(target, target), before);
    assert_eq!(affinity(bystander, bystander), before);
}

#[test]
#[ignore = "needs root, perl and this machine's cgroup v1 cpuset hierarchy"]
fn tasks_born_during_an_apply_fenced_by_cpusets_get_their_prior_mask_on_revert() {
    born_tasks_get_their_creators_prior_mask("/sys/fs/cgroup/cpuset", false);
}

#[test]
#[ignore = "needs root, perl and this machine's cgroup v2 hierarchy at /sys/fs/cgroup/unified"]
fn tasks_born_during_an_apply_fenced_by_affinity_get_their_prior_mask_unless_set_since() {
    born_tasks_get_their_creators_prior_mask("/sys/fs/cgroup/unified", true);
}
