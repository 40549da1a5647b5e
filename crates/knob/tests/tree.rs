//! Knob edge cases on a tree: missing files, reused tids, v2 cgroup moves, governors the kernel
//! lacks, busy cgroups, ioctls that a tree cannot answer.

use std::fs;
use std::path::Path;

use nearnative_host::nic::Coalescing;
use nearnative_knob::bypass::nic::{Interface, NicCoalesce, NicFeature};
use nearnative_knob::bypass::power::{CpufreqGovernor, Governor};
use nearnative_knob::bypass::sysctl::BusyPoll;
use nearnative_knob::exclusivity::cgroup::{Cgroup, CgroupDir, Hierarchy, Presence, TaskCgroup};
use nearnative_knob::exclusivity::irq::DefaultSmpAffinity;
use nearnative_knob::exclusivity::sched::{Policy, SchedPolicy};
use nearnative_knob::exclusivity::task::ThreadAffinity;
use nearnative_knob::{CgroupMount, CgroupPath, Knob, KnobError, Offload, TreeBackend};
use tempfile::TempDir;

pub fn put(root: &Path, path: &str, content: &str) {
    let real = root.join(path.trim_start_matches('/'));
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    fs::write(real, content).unwrap();
}

pub fn read(root: &Path, path: &str) -> String {
    fs::read_to_string(root.join(path.trim_start_matches('/'))).unwrap()
}

fn stat(start_time: u64) -> String {
    let mut fields: Vec<String> = (3..=52).map(|_| "0".to_owned()).collect();
    fields[22 - 3] = start_time.to_string();
    format!("77 (w) {}\n", fields.join(" "))
}

/// A tree with thread 77/78 started at tick 500, in cgroup v2 `/` with a domain child `d` and
/// a threaded child `t`.
fn tree() -> (TempDir, TreeBackend) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, "/proc/77/task/78/stat", &stat(500));
    put(
        root,
        "/proc/77/task/78/status",
        "Cpus_allowed:\t3\nCpus_allowed_list:\t0-1\n",
    );
    put(root, "/proc/77/task/78/cgroup", "0::/\n");
    let v2 = "/sys/fs/cgroup";
    put(root, &format!("{v2}/cgroup.controllers"), "cpuset\n");
    put(root, &format!("{v2}/cgroup.procs"), "77\n");
    put(root, &format!("{v2}/cgroup.threads"), "77\n78\n");
    for (child, kind) in [("d", "domain"), ("t", "threaded")] {
        put(
            root,
            &format!("{v2}/{child}/cgroup.type"),
            &format!("{kind}\n"),
        );
        put(root, &format!("{v2}/{child}/cgroup.procs"), "");
        put(root, &format!("{v2}/{child}/cgroup.threads"), "");
    }
    let backend = TreeBackend::new(root);
    (dir, backend)
}

fn v2_task() -> TaskCgroup {
    TaskCgroup {
        pid: 77,
        tid: 78,
        start_time: 500,
        hierarchy: Hierarchy::V2 {
            mount: CgroupMount::try_from("/sys/fs/cgroup").unwrap(),
        },
    }
}

#[test]
fn missing_file_is_missing_and_named() {
    let (_dir, backend) = tree();
    let err = BusyPoll.read(&backend).unwrap_err();
    assert!(matches!(err, KnobError::Missing { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "net.core.busy_poll (/proc/sys/net/core/busy_poll): does not exist on this host"
    );
}

#[test]
fn reused_tid_is_gone_for_reads_and_writes() {
    let (_dir, backend) = tree();
    let stale = ThreadAffinity {
        pid: 77,
        tid: 78,
        start_time: 499,
    };
    let err = stale.read(&backend).unwrap_err();
    assert!(
        err.is_gone() && err.to_string().contains("tid reused"),
        "{err}"
    );
    let policy = SchedPolicy {
        pid: 77,
        tid: 78,
        start_time: 499,
    };
    assert!(policy
        .write(&backend, &Policy::Fifo { priority: 5 })
        .unwrap_err()
        .is_gone());
    let exited = ThreadAffinity {
        pid: 77,
        tid: 79,
        start_time: 500,
    };
    assert!(exited.read(&backend).unwrap_err().is_gone());
}

#[test]
fn v2_moves_a_thread_alone_into_a_threaded_cgroup_and_a_process_into_a_domain() {
    let (dir, backend) = tree();
    let knob = v2_task();
    knob.write(&backend, &CgroupPath::try_from("/t").unwrap())
        .unwrap();
    assert_eq!(read(dir.path(), "/sys/fs/cgroup/t/cgroup.threads"), "78\n");
    assert_eq!(read(dir.path(), "/sys/fs/cgroup/cgroup.threads"), "77\n");
    assert_eq!(knob.read(&backend).unwrap().as_str(), "/t");
    knob.write(&backend, &CgroupPath::try_from("/d").unwrap())
        .unwrap();
    assert_eq!(read(dir.path(), "/sys/fs/cgroup/d/cgroup.procs"), "77\n");
    assert_eq!(knob.read(&backend).unwrap().as_str(), "/d");
    let err = knob
        .write(&backend, &CgroupPath::try_from("/absent").unwrap())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("/sys/fs/cgroup/absent/cgroup.procs"),
        "{err}"
    );
}

#[test]
fn new_v2_cgroup_gets_v2_files_and_busy_cgroup_is_not_removed() {
    let (dir, backend) = tree();
    let knob = CgroupDir {
        cgroup: Cgroup {
            mount: CgroupMount::try_from("/sys/fs/cgroup").unwrap(),
            path: CgroupPath::try_from("/nn").unwrap(),
        },
    };
    assert_eq!(knob.read(&backend).unwrap(), Presence::Absent);
    knob.write(&backend, &Presence::Present).unwrap();
    assert_eq!(
        read(dir.path(), "/sys/fs/cgroup/nn/cpuset.cpus.partition"),
        "member\n"
    );
    put(dir.path(), "/sys/fs/cgroup/nn/cgroup.procs", "77\n");
    let err = knob.write(&backend, &Presence::Absent).unwrap_err();
    assert!(err.is_refused(), "{err}");
    put(dir.path(), "/sys/fs/cgroup/nn/cgroup.procs", "");
    knob.write(&backend, &Presence::Absent).unwrap();
    assert_eq!(knob.read(&backend).unwrap(), Presence::Absent);
}

#[test]
fn governor_the_kernel_lacks_is_refused_with_the_choices() {
    let (dir, backend) = tree();
    let cpufreq = "/sys/devices/system/cpu/cpu0/cpufreq";
    put(
        dir.path(),
        &format!("{cpufreq}/scaling_governor"),
        "schedutil\n",
    );
    put(
        dir.path(),
        &format!("{cpufreq}/scaling_available_governors"),
        "schedutil powersave\n",
    );
    let knob = CpufreqGovernor { cpu: 0 };
    let wanted = Governor::try_from("performance".to_owned()).unwrap();
    let err = knob.write(&backend, &wanted).unwrap_err();
    assert!(err.to_string().contains("(schedutil powersave)"), "{err}");
    assert_eq!(
        read(dir.path(), &format!("{cpufreq}/scaling_governor")),
        "schedutil\n"
    );
}

#[test]
fn mask_knobs_keep_the_kernel_width_and_refuse_an_empty_mask() {
    let (dir, backend) = tree();
    put(
        dir.path(),
        "/proc/irq/default_smp_affinity",
        "ffffffff,ffffffff\n",
    );
    let one = nearnative_host::CpuSet::from_ids([1]);
    DefaultSmpAffinity.write(&backend, &one).unwrap();
    assert_eq!(
        read(dir.path(), "/proc/irq/default_smp_affinity"),
        "00000000,00000002\n"
    );
    let empty = nearnative_host::CpuSet::new();
    let err = DefaultSmpAffinity.write(&backend, &empty).unwrap_err();
    assert!(matches!(err, KnobError::Invalid { .. }), "{err}");
}

#[test]
fn nic_knobs_are_not_available_on_a_tree() {
    let (_dir, backend) = tree();
    let iface = Interface::try_from("eth9".to_owned()).unwrap();
    let coalesce = NicCoalesce {
        iface: iface.clone(),
    };
    let err = coalesce.read(&backend).unwrap_err();
    assert!(matches!(err, KnobError::NotAvailable { .. }), "{err}");
    assert!(coalesce.write(&backend, &Coalescing::default()).is_err());
    let lro = NicFeature {
        iface,
        feature: Offload::Lro,
    };
    assert!(matches!(
        lro.read(&backend),
        Err(KnobError::NotAvailable { .. })
    ));
}
