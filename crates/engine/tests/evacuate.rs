//! A thread the workload starts after the apply lands in one of nearnative's cgroups, which
//! the journal does not know. Revert moves it to where its process was before the apply
//! (not merely to the parent), then removes the cgroups.

use std::fs;
use std::path::Path;

use nearnative_engine::RevertWhich;
use nearnative_testkit::tree::{add, cpus, stat_line, TreeImage, PID};

use crate::{worker_request, Bench};

/// The snapshot whose `/proc/mounts` has a v1 cpuset hierarchy, so the plan makes cgroups.
const CPUSET_SNAPSHOT: &str = "offline-cpu0-node0";
const LATE: u32 = 4009;

#[test]
fn a_thread_born_after_the_apply_is_moved_home_and_the_cgroups_go() {
    let bench = Bench::new(CPUSET_SNAPSHOT);
    let engine = bench.engine();
    let applied = engine.apply(&worker_request()).unwrap();
    let hk = format!("sys/fs/cgroup/cpuset/nearnative-{}-hk", applied.plan.id);
    assert!(bench.root().join(&hk).is_dir(), "the plan made {hk}");

    // The main thread (in -hk now) starts a thread: the kernel puts it in -hk too.
    let cpus = cpus(bench.root());
    let dir = format!("/proc/{PID}/task/{LATE}");
    add(bench.root(), &format!("{dir}/stat"), &stat_line(LATE));
    let status = format!(
        "Name:\tlate\nTgid:\t{PID}\nPid:\t{LATE}\nCpus_allowed_list:\t{}\n",
        cpus.online.to_list()
    );
    add(bench.root(), &format!("{dir}/status"), &status);
    // As the kernel does, /proc/TID answers for a thread though `ls /proc` does not list it.
    add(bench.root(), &format!("/proc/{LATE}/status"), &status);
    let hk_line = format!(
        "4:memory:/user\n3:cpuset:/nearnative-{}-hk\n0::/init.scope\n",
        applied.plan.id
    );
    add(bench.root(), &format!("{dir}/cgroup"), &hk_line);
    let tasks = bench.root().join(&hk).join("tasks");
    let listed = fs::read_to_string(&tasks).unwrap();
    fs::write(&tasks, format!("{listed}{LATE}\n")).unwrap();

    let reverted = engine
        .revert(&RevertWhich::Target(format!("pid:{PID}")))
        .unwrap();
    let moved = reverted.report.journals[0].restored.iter().any(|k| {
        k.object
            .contains(&format!("thread {LATE} of process {PID}"))
    });
    assert!(moved, "{:#?}", reverted.report);
    assert!(!bench.root().join(&hk).exists(), "{hk} removed");
    let cgroup = fs::read_to_string(bench.root().join(format!("proc/{PID}/task/{LATE}/cgroup")));
    assert!(
        cgroup.unwrap().contains("3:cpuset:/\n"),
        "the late thread is back home"
    );
    let root_tasks = bench.root().join("sys/fs/cgroup/cpuset/tasks");
    let home: Vec<String> = fs::read_to_string(&root_tasks)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        home.contains(&LATE.to_string()),
        "the root cpuset lists the late thread"
    );
    let diff: Vec<_> = TreeImage::take(bench.root())
        .diff(&bench.before)
        .into_iter()
        .filter(|p| {
            !p.starts_with(format!("proc/{PID}/task")) && !p.starts_with(format!("proc/{LATE}"))
        })
        .collect();
    let expected = [Path::new("proc"), Path::new("sys/fs/cgroup/cpuset/tasks")];
    assert!(
        diff.iter().all(|p| expected.contains(&p.as_path())),
        "beyond the late thread: {diff:?}"
    );
}
