//! Furnishing an extracted snapshot with what it lacks (fake tasks, a v1 cpuset tree, a v2
//! cgroup, IRQs, sysctls, power and memory knobs), and comparing whole trees byte for byte.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use nearnative_host::cpus::online_cpus;
use nearnative_host::{CpuSet, Root};

/// The fake process and its two threads.
pub const PID: u32 = 4000;
pub const TIDS: [u32; 2] = [4000, 4001];
pub const START_TIME: u64 = 123_456;
pub const IRQS: [u32; 2] = [24, 25];
/// A cgroup2 mount made for the partition knob.
pub const V2_MOUNT: &str = "/sys/fs/cgroup/unified-test";

/// Every file and symlink under a directory (bytes, or the link target) and every directory's
/// sorted listing.
#[derive(Debug, PartialEq, Eq)]
pub struct TreeImage {
    entries: BTreeMap<PathBuf, Entry>,
}

#[derive(Debug, PartialEq, Eq)]
enum Entry {
    File(Vec<u8>),
    Link(PathBuf),
    Dir(Vec<String>),
}

impl TreeImage {
    pub fn take(dir: &Path) -> TreeImage {
        let mut entries = BTreeMap::new();
        walk(dir, dir, &mut entries);
        TreeImage { entries }
    }

    /// The paths that differ, for a readable assertion message.
    pub fn diff(&self, other: &TreeImage) -> Vec<PathBuf> {
        let keys: std::collections::BTreeSet<_> =
            self.entries.keys().chain(other.entries.keys()).collect();
        keys.into_iter()
            .filter(|k| self.entries.get(*k) != other.entries.get(*k))
            .cloned()
            .collect()
    }
}

fn walk(base: &Path, dir: &Path, entries: &mut BTreeMap<PathBuf, Entry>) {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        names.push(entry.file_name().into_string().unwrap());
        let kind = entry.file_type().unwrap();
        let rel = path.strip_prefix(base).unwrap().to_owned();
        if kind.is_symlink() {
            entries.insert(rel, Entry::Link(fs::read_link(&path).unwrap()));
        } else if kind.is_dir() {
            walk(base, &path, entries);
        } else {
            entries.insert(rel, Entry::File(fs::read(&path).unwrap()));
        }
    }
    names.sort();
    let rel = dir.strip_prefix(base).unwrap().to_owned();
    entries.insert(rel, Entry::Dir(names));
}

/// Writes `content` at host path `path` under `root` unless something is there already.
pub fn add(root: &Path, path: &str, content: &str) {
    let real = Root::new(root).path(path);
    if fs::symlink_metadata(&real).is_ok() {
        return;
    }
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    fs::write(real, content).unwrap();
}

/// Adds `ids` to a cgroup id list, creating it if needed, sorted as the kernel lists them
/// (a snapshot's own root cpuset lists its real tasks, not our fake ones).
pub fn list_ids(root: &Path, path: &str, ids: &[u32]) {
    let real = Root::new(root).path(path);
    let mut all: Vec<u32> = fs::read_to_string(&real)
        .unwrap_or_default()
        .split_whitespace()
        .map(|id| id.parse().unwrap())
        .chain(ids.iter().copied())
        .collect();
    all.sort_unstable();
    all.dedup();
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    fs::write(
        real,
        all.iter().map(|id| format!("{id}\n")).collect::<String>(),
    )
    .unwrap();
}

/// A stat line with the fields the knobs read (starttime 22, nice 19, rt_priority 40,
/// policy 41) set for a normal thread.
pub fn stat_line(tid: u32) -> String {
    let mut fields: Vec<String> = (3..=52).map(|_| "0".to_owned()).collect();
    fields[0] = "S".into();
    fields[18 - 3] = "20".into();
    fields[22 - 3] = START_TIME.to_string();
    format!("{tid} (fake worker) {}\n", fields.join(" "))
}

/// The CPUs the furnished files use: the snapshot's online CPUs, with the first two picked
/// out for per-CPU knobs.
pub struct Cpus {
    pub online: CpuSet,
    pub first: u32,
    pub second: u32,
    pub mask_words: usize,
}

pub fn cpus(root: &Path) -> Cpus {
    let online = online_cpus(&Root::new(root)).unwrap_or_else(|_| cpu_dirs(root));
    let ids: Vec<u32> = online.iter().collect();
    let first = ids[0];
    let second = *ids.get(1).unwrap_or(&first);
    let highest = online.iter().last().unwrap();
    Cpus {
        mask_words: highest as usize / 32 + 1,
        online,
        first,
        second,
    }
}

/// The `cpuN` directories, for the older snapshots without an `online` file.
fn cpu_dirs(root: &Path) -> CpuSet {
    let names = Root::new(root).list_dir("/sys/devices/system/cpu").unwrap();
    names
        .iter()
        .filter_map(|n| n.strip_prefix("cpu")?.parse().ok())
        .collect()
}

/// Adds a fake user process `pid` with threads `tids` (`pid` first), allowed on every CPU,
/// in the root cpuset: its task files, its process-level cgroup, and the cpuset's lists.
pub fn add_process(root: &Path, pid: u32, tids: &[u32], cpus: &Cpus) {
    let all = cpus.online.to_list();
    let mask = cpus.online.to_mask(cpus.mask_words);
    let cgroup = "4:memory:/user\n3:cpuset:/\n0::/init.scope\n";
    for &tid in tids {
        let dir = format!("/proc/{pid}/task/{tid}");
        add(root, &format!("{dir}/stat"), &stat_line(tid));
        let status = format!(
            "Name:\tfake worker\nPid:\t{tid}\nCpus_allowed:\t{mask}\nCpus_allowed_list:\t{all}\nvoluntary_ctxt_switches:\t3\n"
        );
        add(root, &format!("{dir}/status"), &status);
        add(root, &format!("{dir}/cgroup"), cgroup);
    }
    add(root, &format!("/proc/{pid}/cgroup"), cgroup);
    let cg = "/sys/fs/cgroup/cpuset";
    list_ids(root, &format!("{cg}/tasks"), tids);
    list_ids(root, &format!("{cg}/cgroup.procs"), &[pid]);
}

/// Adds the fake objects every knob kind needs, leaving whatever the snapshot already has.
pub fn furnish(root: &Path) -> Cpus {
    let cpus = cpus(root);
    let all = cpus.online.to_list();
    let mask = cpus.online.to_mask(cpus.mask_words);
    add_process(root, PID, &TIDS, &cpus);
    let cg = "/sys/fs/cgroup/cpuset";
    add(root, &format!("{cg}/cpuset.cpus"), &format!("{all}\n"));
    add(root, &format!("{cg}/cpuset.mems"), "0\n");
    add(root, &format!("{cg}/cpuset.cpu_exclusive"), "1\n");
    add(root, &format!("{V2_MOUNT}/cgroup.controllers"), "cpuset\n");
    add(
        root,
        &format!("{V2_MOUNT}/nn/cpuset.cpus.partition"),
        "member\n",
    );
    for irq in IRQS {
        add(
            root,
            &format!("/proc/irq/{irq}/smp_affinity_list"),
            &format!("{all}\n"),
        );
    }
    add(root, "/proc/irq/default_smp_affinity", &format!("{mask}\n"));
    add(
        root,
        "/sys/devices/virtual/workqueue/cpumask",
        &format!("{mask}\n"),
    );
    add(
        root,
        "/proc/sys/kernel/watchdog_cpumask",
        &format!("{all}\n"),
    );
    add(root, "/proc/sys/kernel/timer_migration", "1\n");
    add(root, "/proc/sys/kernel/numa_balancing", "1\n");
    add(root, "/proc/sys/net/core/busy_poll", "0\n");
    add(root, "/proc/sys/net/core/busy_read", "0\n");
    add(root, "/sys/module/kvm/parameters/halt_poll_ns", "200000\n");
    let cpu_dir = format!("/sys/devices/system/cpu/cpu{}", cpus.second);
    add(
        root,
        &format!("{cpu_dir}/power/pm_qos_resume_latency_us"),
        "0\n",
    );
    add(
        root,
        &format!("{cpu_dir}/cpufreq/scaling_governor"),
        "powersave\n",
    );
    add(
        root,
        &format!("{cpu_dir}/cpufreq/scaling_available_governors"),
        "performance powersave\n",
    );
    let thp = "/sys/kernel/mm/transparent_hugepage";
    add(root, &format!("{thp}/enabled"), "[always] madvise never\n");
    add(
        root,
        &format!("{thp}/defrag"),
        "always defer defer+madvise [madvise] never\n",
    );
    add(root, "/sys/kernel/mm/ksm/run", "1\n");
    cpus
}

/// CPUs as on any snapshot with two or more online CPUs: only the plan's length depends on
/// them, which is the same everywhere.
pub fn cpus_of_any() -> Cpus {
    Cpus {
        online: CpuSet::from_ids([0, 1]),
        first: 0,
        second: 1,
        mask_words: 1,
    }
}

/// Adds a fake user process `pid` with one thread, allowed on every CPU, in cgroup `path` of
/// the v1 cpuset hierarchy (so use a snapshot that mounts one), creating the cgroup and its
/// ancestors with every CPU.
pub fn add_process_in(root: &Path, pid: u32, path: &str) {
    let cpus = cpus(root);
    let all = cpus.online.to_list();
    let mask = cpus.online.to_mask(cpus.mask_words);
    let cgroup = format!("4:memory:/user\n3:cpuset:{path}\n0::/init.scope\n");
    let dir = format!("/proc/{pid}/task/{pid}");
    add(root, &format!("{dir}/stat"), &stat_line(pid));
    let status = format!(
        "Name:\tfake worker\nPid:\t{pid}\nCpus_allowed:\t{mask}\nCpus_allowed_list:\t{all}\nvoluntary_ctxt_switches:\t3\n"
    );
    add(root, &format!("{dir}/status"), &status);
    add(root, &format!("{dir}/cgroup"), &cgroup);
    add(root, &format!("/proc/{pid}/cgroup"), &cgroup);
    let mut at = String::new();
    for part in path.trim_start_matches('/').split('/') {
        at = format!("{at}/{part}");
        let cg = format!("/sys/fs/cgroup/cpuset{at}");
        add(root, &format!("{cg}/cpuset.cpus"), &format!("{all}\n"));
        add(root, &format!("{cg}/cpuset.mems"), "0\n");
        add(root, &format!("{cg}/cpuset.cpu_exclusive"), "0\n");
        list_ids(root, &format!("{cg}/tasks"), &[]);
        list_ids(root, &format!("{cg}/cgroup.procs"), &[]);
    }
    let cg = format!("/sys/fs/cgroup/cpuset{path}");
    list_ids(root, &format!("{cg}/tasks"), &[pid]);
    list_ids(root, &format!("{cg}/cgroup.procs"), &[pid]);
}
