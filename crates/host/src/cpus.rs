//! Which CPUs exist and which are online, from `/sys/devices/system/cpu`.

use crate::{CpuSet, ReadError, Root};

const ONLINE: &str = "/sys/devices/system/cpu/online";
const POSSIBLE: &str = "/sys/devices/system/cpu/possible";

/// The CPUs the kernel is scheduling on now.
pub fn online_cpus(root: &Root) -> Result<CpuSet, ReadError> {
    root.read_parsed(ONLINE, CpuSet::parse_list)
}

/// Every CPU id the kernel allows for (present or hot-pluggable).
pub fn possible_cpus(root: &Root) -> Result<CpuSet, ReadError> {
    root.read_parsed(POSSIBLE, CpuSet::parse_list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_online_list_under_root() {
        let dir = tempfile::tempdir().unwrap();
        let cpu = dir.path().join("sys/devices/system/cpu");
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::write(cpu.join("online"), "1-3\n").unwrap();
        let root = Root::new(dir.path());
        assert_eq!(online_cpus(&root).unwrap().to_list(), "1-3");
        assert!(possible_cpus(&root).unwrap_err().is_not_found());
    }
}
