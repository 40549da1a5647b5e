//! The kernel's part, played on a tree: what `/proc` and cgroupfs show after a write, so a
//! knob read back from a [`TreeBackend`] sees what it would on a live host. Pure text
//! transforms are kept apart from the few functions that touch the tree.

use std::fs;
use std::io;
use std::path::Path;

use nearnative_host::cgroup::path_in_table;
use nearnative_host::CpuSet;

use super::tree::TreeBackend;
use super::tree_cgroup_v2;
use super::{cgroup_dir, CgroupLine, TaskMove};
use crate::exclusivity::sched::Policy;

/// A sysfs selector (`always [madvise] never`) moves its brackets to the word written; any
/// other file shows the value written, one line.
pub fn shown_after_write(current: &str, written: &str) -> String {
    let words: Vec<&str> = current.split_whitespace().collect();
    let bare = |w: &str| w.trim_start_matches('[').trim_end_matches(']').to_owned();
    let is_selector = words.iter().filter(|w| w.starts_with('[')).count() == 1;
    if is_selector && words.iter().any(|w| bare(w) == written) {
        let shown: Vec<String> = words
            .iter()
            .map(|w| match bare(w) == written {
                true => format!("[{}]", bare(w)),
                false => bare(w),
            })
            .collect();
        return format!("{}\n", shown.join(" "));
    }
    format!("{written}\n")
}

/// `/proc/PID/task/TID/status` after `sched_setaffinity`: both `Cpus_allowed` (mask, as wide
/// as before) and `Cpus_allowed_list`.
pub fn status_with_affinity(status: &str, cpus: &CpuSet) -> String {
    let mut out = String::with_capacity(status.len());
    for line in status.split_inclusive('\n') {
        let newline = if line.ends_with('\n') { "\n" } else { "" };
        if let Some(mask) = line.strip_prefix("Cpus_allowed:\t") {
            let words = mask.trim().split(',').count();
            out.push_str(&format!("Cpus_allowed:\t{}{newline}", cpus.to_mask(words)));
        } else if line.starts_with("Cpus_allowed_list:\t") {
            out.push_str(&format!("Cpus_allowed_list:\t{}{newline}", cpus.to_list()));
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Indexes into the fields after `(comm)` of a stat line: field N of proc(5) is N - 3.
const PRIORITY: usize = 18 - 3;
const NICE: usize = 19 - 3;
const RT_PRIORITY: usize = 40 - 3;
const POLICY: usize = 41 - 3;

/// `/proc/PID/task/TID/stat` after `sched_setscheduler` (and `setpriority` for the normal
/// policies): priority, nice, rt_priority and policy. `None` for a line too short.
pub fn stat_with_policy(stat: &str, policy: Policy) -> Option<String> {
    let close = stat.rfind(')')?;
    let (head, tail) = stat.split_at(close + 1);
    let newline = if tail.ends_with('\n') { "\n" } else { "" };
    let mut fields: Vec<String> = tail.split_whitespace().map(str::to_owned).collect();
    if fields.len() <= POLICY {
        return None;
    }
    let nice = match policy.nice() {
        Some(nice) => nice,
        None => fields[NICE].parse().ok()?,
    };
    let priority = match policy.nice() {
        Some(_) => 20 + nice,
        None => -1 - policy.rt_priority() as i32,
    };
    fields[PRIORITY] = priority.to_string();
    fields[NICE] = nice.to_string();
    fields[RT_PRIORITY] = policy.rt_priority().to_string();
    fields[POLICY] = policy.class().number().to_string();
    Some(format!("{head} {}{newline}", fields.join(" ")))
}

/// The table with `line`'s path replaced by `to`.
pub fn table_with_path(table: &str, line: &CgroupLine, to: &str) -> String {
    let mut out = String::with_capacity(table.len());
    for entry in table.split_inclusive('\n') {
        let newline = if entry.ends_with('\n') { "\n" } else { "" };
        let mut fields = entry.trim_end_matches('\n').splitn(3, ':');
        let (id, controllers) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        match line.matches(id, controllers) {
            true => out.push_str(&format!("{id}:{controllers}:{to}{newline}")),
            false => out.push_str(entry),
        }
    }
    out
}

/// A cgroup id-list file (`tasks`, `cgroup.procs`) with `id` added or removed, sorted as the
/// kernel's pid lists are.
pub fn id_list_with(list: &str, id: u32, present: bool) -> String {
    let mut ids: Vec<u32> = list
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .filter(|&i| i != id)
        .collect();
    if present {
        ids.push(id);
    }
    ids.sort_unstable();
    ids.iter().map(|i| format!("{i}\n")).collect()
}

pub fn move_task(tree: &TreeBackend, task_move: &TaskMove) -> io::Result<()> {
    if task_move.line == CgroupLine::V2 {
        return tree_cgroup_v2::move_task(tree, task_move);
    }
    let table_path = task_move.task.proc_dir().join("cgroup");
    let table = tree.read(&table_path)?;
    let from = path_in_table(&table, &task_move.line).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, "task is not in this hierarchy")
    })?;
    let target = task_move.target_file();
    let target_list = tree.read(&target)?;
    tree.replace(&target, &id_list_with(&target_list, task_move.id, true))?;
    if from != task_move.to {
        let source = cgroup_dir(&task_move.mount, from).join(task_move.file);
        if let Ok(list) = tree.read(&source) {
            tree.replace(&source, &id_list_with(&list, task_move.id, false))?;
        }
    }
    let updated = table_with_path(&table, &task_move.line, &task_move.to);
    tree.replace(&table_path, &updated)
}

/// What a new v1 cpuset shows.
const NEW_V1_FILES: &[(&str, &str)] = &[
    ("cgroup.procs", ""),
    ("tasks", ""),
    ("cpuset.cpus", "\n"),
    ("cpuset.mems", "\n"),
    ("cpuset.cpu_exclusive", "0\n"),
];

/// What a new v2 cgroup shows, and its cpuset files when its parent enables the controller.
const NEW_V2_FILES: &[(&str, &str)] = &[
    ("cgroup.procs", ""),
    ("cgroup.threads", ""),
    ("cgroup.type", "domain\n"),
    ("cgroup.subtree_control", "\n"),
];
const NEW_V2_CPUSET_FILES: &[(&str, &str)] = &[
    ("cpuset.cpus", "\n"),
    ("cpuset.mems", "\n"),
    ("cpuset.cpus.partition", "member\n"),
];

/// A new cgroup is v2 when its parent has `cgroup.controllers`; its own `cgroup.controllers`
/// is what the parent's `cgroup.subtree_control` enables.
pub fn create_cgroup(tree: &TreeBackend, host_dir: &Path) -> io::Result<()> {
    let dir = tree.resolve(host_dir)?;
    let parent = dir.parent().map(Path::to_path_buf).unwrap_or_default();
    let v2 = parent.join("cgroup.controllers").is_file();
    let parent_subtree = fs::read_to_string(parent.join("cgroup.subtree_control")).ok();
    fs::create_dir(&dir)?;
    let mut files: Vec<(&str, String)> = Vec::new();
    match v2 {
        false => files.extend(NEW_V1_FILES.iter().map(|(n, c)| (*n, (*c).to_owned()))),
        true => {
            files.extend(NEW_V2_FILES.iter().map(|(n, c)| (*n, (*c).to_owned())));
            let controllers = parent_subtree.clone().unwrap_or_default();
            files.push(("cgroup.controllers", controllers));
            if tree_cgroup_v2::gets_cpuset_files(parent_subtree.as_deref()) {
                files.extend(
                    NEW_V2_CPUSET_FILES
                        .iter()
                        .map(|(n, c)| (*n, (*c).to_owned())),
                );
            }
        }
    }
    for (name, content) in files {
        fs::write(dir.join(name), content)?;
    }
    Ok(())
}

pub fn remove_cgroup(tree: &TreeBackend, host_dir: &Path) -> io::Result<()> {
    let dir = tree.resolve(host_dir)?;
    let mut files = Vec::new();
    for entry in fs::read_dir(&dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        files.push(entry.path());
    }
    for name in ["tasks", "cgroup.procs", "cgroup.threads"] {
        let ids = fs::read_to_string(dir.join(name)).unwrap_or_default();
        if !ids.trim().is_empty() {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
    }
    for file in files {
        fs::remove_file(file)?;
    }
    fs::remove_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_moves_its_brackets() {
        let cases = [
            (
                "thp",
                "always [madvise] never\n",
                "never",
                "always madvise [never]\n",
            ),
            ("plain value", "3\n", "0", "0\n"),
            ("word not a choice", "[a] b\n", "c", "c\n"),
        ];
        for (what, current, written, shown) in cases {
            assert_eq!(shown_after_write(current, written), shown, "{what}");
        }
    }

    #[test]
    fn status_affinity_keeps_mask_width() {
        let status = "Name:\tx\nCpus_allowed:\tff,ffffffff\nCpus_allowed_list:\t0-39\nX:\t1\n";
        let out = status_with_affinity(status, &CpuSet::from_ids([1, 2]));
        assert_eq!(
            out,
            "Name:\tx\nCpus_allowed:\t00000000,00000006\nCpus_allowed_list:\t1-2\nX:\t1\n"
        );
    }

    #[test]
    fn stat_policy_fields_follow_the_kernel() {
        let mut fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        fields[NICE] = "0".into();
        let stat = format!("42 (a b) c) {}\n", fields.join(" "));
        let fifo = stat_with_policy(&stat, Policy::Fifo { priority: 10 }).unwrap();
        let tail: Vec<&str> = fifo
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        assert_eq!(
            (tail[PRIORITY], tail[NICE], tail[RT_PRIORITY], tail[POLICY]),
            ("-11", "0", "10", "1")
        );
        let back = stat_with_policy(&fifo, Policy::Other { nice: 5 }).unwrap();
        assert!(back.starts_with("42 (a b) c) 3 "), "{back}");
        assert!(back.ends_with('\n'));
        assert_eq!(
            stat_with_policy("1 (x) S 2\n", Policy::Idle { nice: 0 }),
            None
        );
    }

    #[test]
    fn cgroup_tables_and_lists_update() {
        let table = "4:memory:/m\n3:cpuset:/\n0::/user\n";
        let line = CgroupLine::V1 {
            controller: "cpuset".into(),
        };
        assert_eq!(path_in_table(table, &line), Some("/"));
        assert_eq!(
            table_with_path(table, &line, "/nn"),
            "4:memory:/m\n3:cpuset:/nn\n0::/user\n"
        );
        assert_eq!(path_in_table(table, &CgroupLine::V2), Some("/user"));
        assert_eq!(id_list_with("1\n30\n", 7, true), "1\n7\n30\n");
        assert_eq!(id_list_with("1\n7\n", 7, false), "1\n");
    }
}
