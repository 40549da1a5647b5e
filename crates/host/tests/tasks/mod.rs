//! The task table: parsers under random and hostile text, synthetic trees, and this machine.

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nearnative_host::tasks::{parse_stat, parse_status, read_tasks, SchedPolicy, TaskKind, Tasks};
use nearnative_host::{CpuSet, Root, Unknown};
use proptest::prelude::*;

use crate::fake_proc::{FakeProc, ThreadSpec, PF_NO_SETAFFINITY};

/// A stat line that ends at the last field parsed (policy); the kernel prints more after it.
fn stat_up_to_policy(comm: &str) -> String {
    format!(
        "42 ({comm}) R 1 42 42 0 -1 4194368 0 0 0 0 0 0 0 0 20 -5 1 0 9 0 0 \
         18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0"
    )
}

fn stat_with_comm(comm: &str) -> String {
    format!("{} 0 0 0 0 0 0 0 0 0 0 0 0 0\n", stat_up_to_policy(comm))
}

proptest! {
    #[test]
    fn stat_parser_never_panics_on_random_text(text in "\\PC{0,300}") {
        let _ = parse_stat(&text);
    }

    #[test]
    fn status_parser_never_panics_on_random_text(text in "(\\PC{0,40}\n){0,12}") {
        let _ = parse_status(&text);
    }

    #[test]
    fn any_comm_survives_the_stat_line(comm in "[ -~]{0,15}") {
        let stat = parse_stat(&stat_with_comm(&comm)).unwrap();
        prop_assert_eq!(stat.comm, comm);
        prop_assert_eq!((stat.tid, stat.nice, stat.processor), (42, -5, 1));
    }

    #[test]
    fn truncated_stat_lines_are_errors(cut in 0usize..200) {
        let line = stat_up_to_policy("a) (b");
        prop_assert!(parse_stat(&line[..cut % line.len()]).is_err());
    }

    #[test]
    fn status_lists_round_trip(ids in proptest::collection::btree_set(0u32..512, 0..40),
                               junk in "[A-Za-z_]{1,12}") {
        let set = CpuSet::from_ids(ids);
        let text = format!("{junk}:\t1\nCpus_allowed_list:\t{}\n", set.to_list());
        prop_assert_eq!(parse_status(&text).unwrap().cpus_allowed, set);
    }
}

fn read(root: &Root) -> (Tasks, Vec<Unknown>) {
    let mut unknowns = Vec::new();
    let tasks = read_tasks(root, &mut unknowns);
    (tasks, unknowns)
}

fn fake_host() -> FakeProc {
    let host = FakeProc::new();
    host.kernel_thread(2, &ThreadSpec::kernel("kthreadd", "0-3", 0))
        .kernel_thread(
            13,
            &ThreadSpec::kernel("ksoftirqd/1", "1", PF_NO_SETAFFINITY),
        )
        .kernel_thread(
            14,
            &ThreadSpec::kernel("migration/1", "1", PF_NO_SETAFFINITY).fifo(99),
        )
        .kernel_thread(
            40,
            &ThreadSpec::kernel("kworker/u8:0-events", "0-3", PF_NO_SETAFFINITY),
        )
        .process(300, &["/usr/bin/trader", "--fast"], "/trading")
        .thread(300, 300, &ThreadSpec::user("trader", "0-3"))
        .thread(300, 301, &ThreadSpec::user("md (feed) 1", "2").fifo(50));
    host
}

#[test]
fn synthetic_tree_gives_every_thread_with_its_kind() {
    let (tasks, unknowns) = read(&fake_host().root());
    assert!(unknowns.is_empty(), "{unknowns:?}");
    let kinds: Vec<(u32, &str, TaskKind)> = tasks
        .threads()
        .map(|(_, t)| (t.tid, t.comm.as_str(), t.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            (2, "kthreadd", TaskKind::KernelUnbound),
            (13, "ksoftirqd/1", TaskKind::KernelPerCpu),
            (14, "migration/1", TaskKind::KernelPerCpu),
            (40, "kworker/u8:0-events", TaskKind::KernelUnbound),
            (300, "trader", TaskKind::User),
            (301, "md (feed) 1", TaskKind::User),
        ]
    );
    let trader = tasks.process(300).unwrap();
    assert_eq!(trader.comm, "trader");
    let cgroup = trader.cgroup.as_ref().unwrap();
    assert_eq!(cgroup.cpuset_v1.as_deref(), Some("/trading"));
    assert_eq!(cgroup.unified.as_deref(), Some("/"));
    let feed = trader.thread(301).unwrap();
    assert_eq!(feed.affinity, CpuSet::from_ids([2]));
    assert_eq!((feed.policy, feed.rt_priority), (SchedPolicy::Fifo, 50));
}

#[test]
fn missing_empty_or_malformed_files_become_unknowns_with_their_path() {
    let host = fake_host();
    let cases = [
        ("missing stat", "/proc/40/task/40/stat", None),
        ("empty status", "/proc/300/task/300/status", Some("")),
        (
            "malformed stat",
            "/proc/13/task/13/stat",
            Some("13 (ksoftirqd/1) S 2"),
        ),
        ("malformed cgroup", "/proc/300/cgroup", Some("nonsense")),
    ];
    for (_, path, content) in &cases {
        match content {
            None => fs::remove_file(host.path(path)).unwrap(),
            Some(text) => fs::write(host.path(path), text).unwrap(),
        }
    }
    let (tasks, unknowns) = read(&host.root());
    for (what, path, _) in cases {
        assert!(
            unknowns.iter().any(|u| u.path == host.path(path)),
            "{what}: {unknowns:?}"
        );
    }
    assert_eq!(unknowns.len(), 4, "{unknowns:?}");
    let trader = tasks.process(300).unwrap();
    assert!(trader.cgroup.is_none());
    assert_eq!(
        trader.comm, "md (feed) 1",
        "named after the thread that could be read"
    );
    assert_eq!(
        tasks.threads().count(),
        3,
        "the three unbroken threads remain"
    );
}

#[test]
fn a_tree_without_proc_is_one_unknown_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (tasks, unknowns) = read(&Root::new(dir.path()));
    assert!(tasks.processes.is_empty());
    assert_eq!(unknowns.len(), 1);
    assert!(unknowns[0].path.ends_with("proc"));
}

#[test]
fn tasks_serialise_with_affinity_as_a_list() {
    let (tasks, _) = read(&fake_host().root());
    let json = serde_json::to_value(&tasks).unwrap();
    let feed = &json["processes"][4]["threads"][1];
    assert_eq!(feed["affinity"], serde_json::json!([2]));
    assert_eq!(feed["policy"], "fifo");
    assert_eq!(json["processes"][1]["threads"][0]["kind"], "kernel_per_cpu");
    let back: Tasks = serde_json::from_value(json).unwrap();
    assert_eq!(back, tasks);
}

#[test]
fn live_host_shows_this_thread_with_an_odd_name_and_its_affinity() {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let worker = std::thread::Builder::new()
        .name("nn t) (x".into())
        .spawn(move || {
            let tid = nix::unistd::gettid().as_raw() as u32;
            ready_tx.send(tid).unwrap();
            done_rx.recv().ok();
        })
        .unwrap();
    let tid = ready_rx.recv().unwrap();
    let (tasks, _) = read(&Root::default());
    let allowed = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(tid as i32)).unwrap();
    done_tx.send(()).unwrap();
    worker.join().unwrap();

    let me = tasks.process(std::process::id()).expect("this process");
    let thread = me.thread(tid).expect("the named thread");
    assert_eq!(thread.comm, "nn t) (x");
    assert_eq!(thread.kind, TaskKind::User);
    let expected: CpuSet = (0..nix::sched::CpuSet::count() as u32)
        .filter(|&cpu| allowed.is_set(cpu as usize).unwrap_or(false))
        .collect();
    assert_eq!(thread.affinity, expected);
    let kthreadd = tasks.process(2).expect("kthreadd");
    assert!(kthreadd.threads[0].kind.is_kernel());
    let ksoftirqd0 = tasks.threads().find(|(_, t)| t.comm == "ksoftirqd/0");
    assert_eq!(
        ksoftirqd0.map(|(_, t)| t.kind),
        Some(TaskKind::KernelPerCpu)
    );
}

#[test]
fn live_threads_that_exit_mid_read_are_skipped_silently() {
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("nn-churn".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let short: Vec<_> = (0..16)
                        .map(|_| std::thread::spawn(|| std::hint::black_box(())))
                        .collect();
                    short.into_iter().for_each(|t| t.join().unwrap());
                }
            })
            .unwrap()
    };
    let mut seen_processes = 0;
    for _ in 0..20 {
        let (tasks, unknowns) = read(&Root::default());
        let mine: Vec<_> = unknowns
            .iter()
            .filter(|u| u.path.starts_with(format!("/proc/{}", std::process::id())))
            .collect();
        assert!(mine.is_empty(), "vanished threads reported: {mine:?}");
        seen_processes = tasks.processes.len();
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    assert!(seen_processes > 1);
}
