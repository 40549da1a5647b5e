//! cgroup v2 on a tree: a process moved whole through `cgroup.procs`, a thread alone into a
//! threaded cgroup, `cgroup.subtree_control` and `cgroup.type`, and the evacuation of a
//! threaded cgroup before it is removed.

use std::fs;
use std::path::Path;

use nearnative_knob::exclusivity::cgroup::{
    Cgroup, CgroupDir, CpusetPartition, Hierarchy, Partition, Presence, TaskCgroup,
};
use nearnative_knob::exclusivity::cgroup_v2::{
    CgroupKind, CgroupType, CpusetDistribution, SubtreeCpuset,
};
use nearnative_knob::{CgroupMount, CgroupPath, Knob, TreeBackend};
use tempfile::TempDir;

use crate::tree::{put, read};

const MOUNT: &str = "/sys/fs/cgroup";
const PID: u32 = 90;
const TIDS: [u32; 3] = [90, 91, 92];

fn stat(tid: u32) -> String {
    let mut fields: Vec<String> = (3..=52).map(|_| "0".to_owned()).collect();
    fields[22 - 3] = "700".to_owned();
    format!("{tid} (w) {}\n", fields.join(" "))
}

/// Process 90 (threads 90-92) alone in `/app`; the root enables cpuset for its children,
/// `/app` does not yet.
fn tree() -> (TempDir, TreeBackend) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, &format!("/proc/{PID}/cgroup"), "0::/app\n");
    for tid in TIDS {
        let task = format!("/proc/{PID}/task/{tid}");
        put(root, &format!("{task}/stat"), &stat(tid));
        put(root, &format!("{task}/cgroup"), "0::/app\n");
    }
    put(root, &format!("{MOUNT}/cgroup.controllers"), "cpuset cpu\n");
    put(
        root,
        &format!("{MOUNT}/cgroup.subtree_control"),
        "cpuset cpu\n",
    );
    put(root, &format!("{MOUNT}/cgroup.procs"), "1\n");
    put(root, &format!("{MOUNT}/cgroup.threads"), "1\n");
    let app = format!("{MOUNT}/app");
    put(root, &format!("{app}/cgroup.controllers"), "cpuset cpu\n");
    put(root, &format!("{app}/cgroup.subtree_control"), "\n");
    put(root, &format!("{app}/cgroup.type"), "domain\n");
    put(root, &format!("{app}/cgroup.procs"), &format!("{PID}\n"));
    put(root, &format!("{app}/cgroup.threads"), "90\n91\n92\n");
    put(root, &format!("{app}/cpuset.cpus"), "\n");
    let backend = TreeBackend::new(root);
    (dir, backend)
}

fn cgroup(path: &str) -> Cgroup {
    Cgroup {
        mount: CgroupMount::try_from(MOUNT).unwrap(),
        path: CgroupPath::try_from(path).unwrap(),
    }
}

fn path(text: &str) -> CgroupPath {
    CgroupPath::try_from(text).unwrap()
}

fn thread(tid: u32) -> TaskCgroup {
    TaskCgroup {
        pid: PID,
        tid,
        start_time: 700,
        hierarchy: Hierarchy::V2 {
            mount: CgroupMount::try_from(MOUNT).unwrap(),
        },
    }
}

/// `/app/t` made and typed threaded, with `/app` handing cpuset down first.
fn threaded_child(backend: &TreeBackend) -> Cgroup {
    let subtree = SubtreeCpuset {
        cgroup: cgroup("/app"),
    };
    subtree
        .write(backend, &CpusetDistribution::Enabled)
        .unwrap();
    let child = cgroup("/app/t");
    CgroupDir {
        cgroup: child.clone(),
    }
    .write(backend, &Presence::Present)
    .unwrap();
    let kind = CgroupType {
        cgroup: child.clone(),
    };
    assert_eq!(kind.read(backend).unwrap(), CgroupKind::Domain);
    kind.write(backend, &CgroupKind::Threaded).unwrap();
    child
}

#[test]
fn a_new_cgroup_has_cpuset_files_only_once_its_parent_hands_cpuset_down() {
    let (dir, backend) = tree();
    let early = CgroupDir {
        cgroup: cgroup("/app/early"),
    };
    early.write(&backend, &Presence::Present).unwrap();
    assert!(!dir
        .path()
        .join("sys/fs/cgroup/app/early/cpuset.cpus")
        .exists());
    early.write(&backend, &Presence::Absent).unwrap();

    let subtree = SubtreeCpuset {
        cgroup: cgroup("/app"),
    };
    assert_eq!(
        subtree.read(&backend).unwrap(),
        CpusetDistribution::Disabled
    );
    let child = threaded_child(&backend);
    assert_eq!(
        read(dir.path(), "/sys/fs/cgroup/app/cgroup.subtree_control"),
        "cpuset\n"
    );
    assert_eq!(
        read(dir.path(), "/sys/fs/cgroup/app/t/cgroup.controllers"),
        "cpuset\n"
    );
    assert_eq!(read(dir.path(), "/sys/fs/cgroup/app/t/cpuset.cpus"), "\n");
    assert_eq!(
        read(dir.path(), "/sys/fs/cgroup/app/t/cgroup.type"),
        "threaded\n"
    );

    let partition = CpusetPartition {
        cgroup: child.clone(),
    };
    partition.write(&backend, &Partition::Isolated).unwrap();
    assert_eq!(partition.read(&backend).unwrap(), Partition::Isolated);
    assert!(
        partition.best_effort(),
        "a refused partition leaves the cgroup's CPUs to fence"
    );

    let kind = CgroupType { cgroup: child };
    kind.write(&backend, &CgroupKind::Domain).unwrap();
    assert_eq!(
        kind.read(&backend).unwrap(),
        CgroupKind::Threaded,
        "the kernel never makes a threaded cgroup a domain again: writing domain writes nothing"
    );
}

#[test]
fn a_thread_moves_alone_and_a_process_moves_whole_then_all_comes_back() {
    let (dir, backend) = tree();
    let before = snapshot(dir.path());
    threaded_child(&backend);
    thread(91).write(&backend, &path("/app/t")).unwrap();
    assert_eq!(
        read(dir.path(), "/sys/fs/cgroup/app/t/cgroup.threads"),
        "91\n"
    );
    assert_eq!(
        read(dir.path(), "/sys/fs/cgroup/app/cgroup.threads"),
        "90\n92\n"
    );
    assert_eq!(
        read(dir.path(), "/sys/fs/cgroup/app/t/cgroup.procs"),
        "90\n"
    );
    assert_eq!(
        read(dir.path(), "/sys/fs/cgroup/app/cgroup.procs"),
        "90\n",
        "90, 92 stay"
    );
    assert_eq!(thread(91).read(&backend).unwrap(), path("/app/t"));
    assert_eq!(thread(92).read(&backend).unwrap(), path("/app"));

    // `/app` is not threaded: the move back goes through its cgroup.procs, whole process.
    thread(91).write(&backend, &path("/app")).unwrap();
    assert_eq!(read(dir.path(), "/sys/fs/cgroup/app/t/cgroup.threads"), "");
    assert_eq!(read(dir.path(), "/sys/fs/cgroup/app/t/cgroup.procs"), "");
    // The leader's move to the root shows in /proc/PID/cgroup too.
    thread(90).write(&backend, &path("/")).unwrap();
    for tid in TIDS {
        assert_eq!(thread(tid).read(&backend).unwrap(), path("/"), "{tid}");
    }
    assert_eq!(read(dir.path(), &format!("/proc/{PID}/cgroup")), "0::/\n");
    assert_eq!(read(dir.path(), "/sys/fs/cgroup/cgroup.procs"), "1\n90\n");
    assert_eq!(read(dir.path(), "/sys/fs/cgroup/app/cgroup.procs"), "");
    thread(90).write(&backend, &path("/app")).unwrap();

    CgroupDir {
        cgroup: cgroup("/app/t"),
    }
    .write(&backend, &Presence::Absent)
    .unwrap();
    SubtreeCpuset {
        cgroup: cgroup("/app"),
    }
    .write(&backend, &CpusetDistribution::Disabled)
    .unwrap();
    assert_eq!(snapshot(dir.path()), before, "every file as it was");
}

#[test]
fn a_threaded_cgroup_is_emptied_into_its_parent_thread_by_thread() {
    let (dir, backend) = tree();
    let child = threaded_child(&backend);
    thread(91).write(&backend, &path("/app/t")).unwrap();
    thread(92).write(&backend, &path("/app/t")).unwrap();
    let dir_knob = CgroupDir { cgroup: child };
    let busy = dir_knob.write(&backend, &Presence::Absent).unwrap_err();
    assert!(busy.is_refused(), "{busy}");
    let moved = dir_knob.evacuate(&backend, &|_| None).unwrap();
    let tids: Vec<(u32, u32)> = moved.iter().map(|t| (t.pid, t.tid)).collect();
    assert_eq!(tids, [(PID, 91), (PID, 92)], "each thread with its process");
    assert_eq!(
        read(dir.path(), "/sys/fs/cgroup/app/cgroup.threads"),
        "90\n91\n92\n"
    );
    assert_eq!(thread(92).read(&backend).unwrap(), path("/app"));
    dir_knob.write(&backend, &Presence::Absent).unwrap();
}

/// Every file under the tree with its content.
fn snapshot(root: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                files.push((name, fs::read_to_string(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}
