//! What the live tests read of running threads in /proc (their CPUs, names and cpusets), and
//! the cpuset cgroup each lab makes for its scope.

use std::collections::BTreeSet;
use std::path::Path;

/// The names in `dir`; none when it cannot be read (a process that just exited).
pub fn list(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Thread `tid`'s `Cpus_allowed_list`; empty once it has exited.
pub fn affinity(tid: u32) -> BTreeSet<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).unwrap_or_default();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or("")
        .trim();
    let set: nearnative_host::CpuSet = list.parse().unwrap_or_default();
    set.iter().collect()
}

pub fn comm(tid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{tid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The cpuset cgroup of thread or process `tid`.
pub fn cpuset_of(tid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{tid}/cpuset"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The threads of process `pid`, by tid.
pub fn threads_of(pid: u32) -> Vec<u32> {
    let mut tids: Vec<u32> = list(Path::new(&format!("/proc/{pid}/task")))
        .iter()
        .filter_map(|t| t.parse().ok())
        .collect();
    tids.sort();
    tids
}

/// Makes a cgroup v1 cpuset named `PREFIX-PID-N` with every CPU and memory node, unique among
/// the tests running in parallel in this process: the scope a lab passes as `--scope`.
pub fn scope_cpuset(prefix: &str) -> (String, std::path::PathBuf) {
    const CPUSET: &str = "/sys/fs/cgroup/cpuset";
    assert!(
        Path::new(CPUSET).join("tasks").exists(),
        "needs a cgroup v1 cpuset hierarchy at {CPUSET}"
    );
    static LABS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let lab = LABS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{prefix}-{}-{lab}", std::process::id());
    let dir = Path::new(CPUSET).join(&name);
    std::fs::create_dir(&dir).unwrap();
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let parent = std::fs::read_to_string(Path::new(CPUSET).join(file)).unwrap();
        std::fs::write(dir.join(file), parent.trim()).unwrap();
    }
    (name, dir)
}
