//! How many bytes a read of each family of host files may return.
//!
//! The kernel bounds what these files can hold; a captured tree does not, so a larger file
//! is refused rather than read. The caps, most specific first:
//!
//! | files | cap | why |
//! |---|---|---|
//! | `/proc/interrupts`, `/proc/stat`, `/proc/softirqs` | 64 MiB | a column per CPU, a row per IRQ |
//! | `/proc/*/mountinfo`, `/proc/mounts` | 16 MiB | a line per mount, thousands on container hosts |
//! | `/proc/PID/cmdline`, `/proc/PID/environ` | 8 MiB | bounded by the exec argument limit |
//! | `tasks`, `cgroup.procs`, `cgroup.threads` under `/sys/fs/cgroup` | 32 MiB | a line per pid, up to `pid_max` (4M) |
//! | other `/proc/PID/…` files (`status`, `stat`, `comm`, `cgroup`) | 64 KiB | a page or two of fields |
//! | other `/sys` files | 256 KiB | a page (up to 64 KiB), but binary cpumap attributes such as `thread_siblings_list` outgrow it on very large machines |
//! | other files | 1 MiB | `/proc/cmdline`, `/proc/cpuinfo`, `/proc/sys/…` |

use std::path::{Component, Path};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// The most bytes a read of `host_path` (an absolute host path) may return.
pub(super) fn cap(host_path: &Path) -> u64 {
    let names: Vec<&str> = host_path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => name.to_str(),
            _ => None,
        })
        .collect();
    let last = names.last().copied().unwrap_or("");
    match names.as_slice() {
        ["proc", "interrupts" | "stat" | "softirqs"] => 64 * MIB,
        ["proc", "mounts"] => 16 * MIB,
        ["proc", .., "mountinfo" | "mounts"] => 16 * MIB,
        ["proc", pid, ..] if is_process(pid) => match last {
            "cmdline" | "environ" => 8 * MIB,
            _ => 64 * KIB,
        },
        ["sys", "fs", "cgroup", ..]
            if matches!(last, "tasks" | "cgroup.procs" | "cgroup.threads") =>
        {
            32 * MIB
        }
        ["sys", ..] => 256 * KIB,
        _ => MIB,
    }
}

fn is_process(name: &str) -> bool {
    matches!(name, "self" | "thread-self") || name.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_has_its_cap() {
        let cases = [
            (
                "sysfs attribute",
                "/sys/devices/system/cpu/online",
                256 * KIB,
            ),
            ("interrupt table", "/proc/interrupts", 64 * MIB),
            ("process status", "/proc/42/status", 64 * KIB),
            ("thread stat", "/proc/42/task/43/stat", 64 * KIB),
            ("own mountinfo", "/proc/self/mountinfo", 16 * MIB),
            ("command line", "/proc/42/cmdline", 8 * MIB),
            ("cgroup pids", "/sys/fs/cgroup/cpuset/rt/tasks", 32 * MIB),
            ("kernel command line", "/proc/cmdline", MIB),
        ];
        for (what, path, expected) in cases {
            assert_eq!(cap(Path::new(path)), expected, "{what}: {path}");
        }
    }
}
