//! The kernel's part for cgroup v2, played on a tree: moving a whole process through
//! `cgroup.procs` or one thread through `cgroup.threads`, editing `cgroup.subtree_control`,
//! and what a new cgroup shows.
//!
//! The model: every thread's `/proc/PID/task/TID/cgroup` has a `0::` line; a cgroup's
//! `cgroup.threads` lists the threads directly in it and its `cgroup.procs` the processes with
//! a thread directly in it (the kernel lists a thread root's whole subtree there and refuses to
//! read it in a threaded cgroup, neither of which a revert's byte-for-byte check needs). The
//! leader's move also shows in `/proc/PID/cgroup`, as the kernel shows the leader's cgroup
//! there. A list file the tree lacks is left alone.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::tree::TreeBackend;
use nearnative_host::cgroup::path_in_table;

use super::tree_kernel::{id_list_with, table_with_path};
use super::{cgroup_dir, CgroupLine, TaskId, TaskMove};

/// The controllers in the order the kernel lists them (its subsystem ids).
const CONTROLLER_ORDER: &[&str] = &[
    "cpuset",
    "cpu",
    "cpuacct",
    "io",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
    "dmem",
];

/// `cgroup.subtree_control` after writing `+name`/`-name` edits: a name is added in the
/// kernel's order or removed, the others stay as they were.
pub fn subtree_control_after_write(current: &str, written: &str) -> String {
    let rank = |name: &str| CONTROLLER_ORDER.iter().position(|c| *c == name);
    let mut enabled: Vec<String> = current.split_whitespace().map(str::to_owned).collect();
    for edit in written.split_whitespace() {
        if let Some(name) = edit.strip_prefix('-') {
            enabled.retain(|c| c != name);
        } else if let Some(name) = edit.strip_prefix('+') {
            if enabled.iter().any(|c| c == name) {
                continue;
            }
            let at = enabled
                .iter()
                .position(|c| rank(c) > rank(name) || rank(c).is_none())
                .unwrap_or(enabled.len());
            enabled.insert(at, name.to_owned());
        }
    }
    format!("{}\n", enabled.join(" "))
}

/// Whether a cgroup whose parent has `parent_subtree` (`None`: a tree that does not model
/// the file) gets cpuset files.
pub fn gets_cpuset_files(parent_subtree: Option<&str>) -> bool {
    parent_subtree.map_or(true, |text| text.split_whitespace().any(|c| c == "cpuset"))
}

/// Moves `task_move`'s process (through `cgroup.procs`) or thread (any other file).
pub fn move_task(tree: &TreeBackend, task_move: &TaskMove) -> io::Result<()> {
    let target = task_move.target_file();
    tree.read(&target)?;
    let pid = task_move.task.pid;
    let moving = match task_move.file {
        "cgroup.procs" => threads_of(tree, pid).unwrap_or_else(|| vec![task_move.task]),
        _ => vec![task_move.task],
    };
    let mut left = Vec::new();
    for task in moving {
        let from = move_thread(tree, task, task_move)?;
        if from != task_move.to && !left.contains(&from) {
            left.push(from);
        }
    }
    let mount = &task_move.mount;
    update_list(
        tree,
        &cgroup_dir(mount, &task_move.to).join("cgroup.procs"),
        pid,
        true,
    )?;
    for from in left {
        if !threads_in(tree, pid, &from) {
            update_list(
                tree,
                &cgroup_dir(mount, &from).join("cgroup.procs"),
                pid,
                false,
            )?;
        }
    }
    Ok(())
}

/// Moves one thread's `0::` line and `cgroup.threads` entry; returns where it was.
fn move_thread(tree: &TreeBackend, task: TaskId, task_move: &TaskMove) -> io::Result<String> {
    let table_path = task.proc_dir().join("cgroup");
    let table = tree.read(&table_path)?;
    let from = path_in_table(&table, &CgroupLine::V2).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "task is not in the v2 hierarchy",
        )
    })?;
    if from != task_move.to {
        let threads = |path: &str| cgroup_dir(&task_move.mount, path).join("cgroup.threads");
        update_list(tree, &threads(from), task.tid, false)?;
        update_list(tree, &threads(&task_move.to), task.tid, true)?;
    }
    let updated = table_with_path(&table, &CgroupLine::V2, &task_move.to);
    tree.replace(&table_path, &updated)?;
    let process_table = PathBuf::from(format!("/proc/{}/cgroup", task.pid));
    if task.tid == task.pid && tree.resolve(&process_table)?.is_file() {
        let table = tree.read(&process_table)?;
        tree.replace(
            &process_table,
            &table_with_path(&table, &CgroupLine::V2, &task_move.to),
        )?;
    }
    Ok(from.to_owned())
}

/// Adds or removes `id` in a list file, if the tree has it.
fn update_list(tree: &TreeBackend, host_path: &Path, id: u32, present: bool) -> io::Result<()> {
    match tree.read(host_path) {
        Ok(list) => tree.replace(host_path, &id_list_with(&list, id, present)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// The threads under `/proc/PID/task`, `None` when the tree has no such directory.
fn threads_of(tree: &TreeBackend, pid: u32) -> Option<Vec<TaskId>> {
    let dir = tree.resolve(Path::new(&format!("/proc/{pid}/task"))).ok()?;
    let mut tids: Vec<u32> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Some(tids.into_iter().map(|tid| TaskId { pid, tid }).collect())
}

/// Whether a thread of `pid` is still directly in cgroup `path`.
fn threads_in(tree: &TreeBackend, pid: u32, path: &str) -> bool {
    threads_of(tree, pid)
        .unwrap_or_default()
        .iter()
        .any(|task| {
            tree.read(&task.proc_dir().join("cgroup"))
                .is_ok_and(|table| path_in_table(&table, &CgroupLine::V2) == Some(path))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtree_control_edits_keep_the_kernel_order() {
        let cases = [
            (
                "enable first",
                "cpu memory pids\n",
                "+cpuset",
                "cpuset cpu memory pids\n",
            ),
            (
                "enable in the middle",
                "cpuset memory\n",
                "+io",
                "cpuset io memory\n",
            ),
            ("enable twice", "cpuset\n", "+cpuset", "cpuset\n"),
            ("disable", "cpuset cpu\n", "-cpuset", "cpu\n"),
            ("disable the last", "cpuset\n", "-cpuset", "\n"),
            ("empty file", "\n", "+cpuset", "cpuset\n"),
        ];
        for (what, current, written, shown) in cases {
            assert_eq!(
                subtree_control_after_write(current, written),
                shown,
                "{what}"
            );
        }
    }

    #[test]
    fn cpuset_files_follow_the_parents_subtree_control() {
        assert!(gets_cpuset_files(Some("cpuset cpu\n")));
        assert!(!gets_cpuset_files(Some("cpu memory\n")));
        assert!(gets_cpuset_files(None), "a tree without the file");
    }
}
