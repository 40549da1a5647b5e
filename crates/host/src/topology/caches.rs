//! CPU caches of level 2 and above, from `/sys/devices/system/cpu/cpuN/cache/indexM`.
//!
//! The kernel builds `shared_cpu_list` by comparing the same index across CPUs, so a CPU
//! already listed as sharing index M of another CPU has that very cache and is not read again.
//! Level-1 caches cost one read each and are skipped: they are private to a core.

use serde::{Deserialize, Serialize};

use super::parse;
use crate::{CpuSet, ReadError, Root, Unknown};

/// More cache indexes than any CPU has; bounds the loop on a garbled tree.
const MAX_INDEXES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheType {
    Data,
    Instruction,
    Unified,
}

impl CacheType {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "Data" => Ok(CacheType::Data),
            "Instruction" => Ok(CacheType::Instruction),
            "Unified" => Ok(CacheType::Unified),
            other => Err(format!("unknown cache type {other:?}")),
        }
    }

    /// Data and unified caches hold a workload's data; instruction caches are left out of the
    /// per-CPU L2/L3 groups.
    pub fn holds_data(self) -> bool {
        self != CacheType::Instruction
    }
}

/// One cache before numbering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCache {
    pub level: u8,
    pub cache_type: CacheType,
    pub size_kib: Option<u64>,
    pub cpus: CpuSet,
}

pub fn read(root: &Root, cpus: &CpuSet, unknowns: &mut Vec<Unknown>) -> Vec<RawCache> {
    let mut covered = vec![CpuSet::new(); MAX_INDEXES];
    let mut caches = Vec::new();
    let mut any_index = false;
    for cpu in cpus.iter() {
        for (index, covered) in covered.iter_mut().enumerate() {
            if covered.contains(cpu) {
                continue;
            }
            let dir = format!("/sys/devices/system/cpu/cpu{cpu}/cache/index{index}");
            match read_index(root, &dir, cpu, cpus) {
                Ok(Some(cache)) => {
                    any_index = true;
                    *covered = covered.union(&cache.cpus);
                    caches.push(cache);
                }
                Ok(None) => any_index = true,
                Err(err) if err.is_not_found() && !root.exists(&dir) => break,
                Err(err) => {
                    let object = format!("cache index{index} of cpu{cpu}");
                    unknowns.push(Unknown::from_error(object, &err));
                }
            }
        }
    }
    if let (false, Some(first)) = (any_index, cpus.first()) {
        unknowns.push(Unknown {
            object: "CPU caches".to_owned(),
            path: root.path(format!("/sys/devices/system/cpu/cpu{first}/cache")),
            reason: "no cache information".to_owned(),
        });
    }
    caches
}

/// One cache index of `cpu`, or `None` for a level-1 cache.
fn read_index(
    root: &Root,
    dir: &str,
    cpu: u32,
    cpus: &CpuSet,
) -> Result<Option<RawCache>, ReadError> {
    let level = root.read_parsed(format!("{dir}/level"), |s| s.parse::<u8>())?;
    if level < 2 {
        return Ok(None);
    }
    let shared = match root.read_parsed(format!("{dir}/shared_cpu_list"), CpuSet::parse_list) {
        Err(err) if err.is_not_found() => {
            root.read_parsed(format!("{dir}/shared_cpu_map"), CpuSet::parse_mask)?
        }
        other => other?,
    };
    let mut members = shared.intersection(cpus);
    members.insert(cpu);
    let cache_type = root.read_parsed(format!("{dir}/type"), CacheType::parse)?;
    let size_kib = match root.read_parsed(format!("{dir}/size"), parse::cache_size_kib) {
        Ok(size) => Some(size),
        Err(err) if err.is_not_found() => None,
        Err(err) => return Err(err),
    };
    Ok(Some(RawCache {
        level,
        cache_type,
        size_kib,
        cpus: members,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(dir: &std::path::Path, cpu: u32, index: u32, level: &str, kind: &str, shared: &str) {
        let base = dir.join(format!(
            "sys/devices/system/cpu/cpu{cpu}/cache/index{index}"
        ));
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(base.join("level"), level).unwrap();
        std::fs::write(base.join("type"), kind).unwrap();
        std::fs::write(base.join("shared_cpu_list"), shared).unwrap();
        std::fs::write(base.join("size"), "1024K\n").unwrap();
    }

    #[test]
    fn shared_caches_are_read_once_and_l1_skipped() {
        let dir = tempfile::tempdir().unwrap();
        for cpu in 0..4 {
            index(dir.path(), cpu, 0, "1", "Data", &cpu.to_string());
            let pair = if cpu < 2 { "0-1" } else { "2-3" };
            index(dir.path(), cpu, 1, "2", "Unified", pair);
            index(dir.path(), cpu, 2, "3", "Unified", "0-3");
        }
        let mut unknowns = Vec::new();
        let cpus = CpuSet::parse_list("0-3").unwrap();
        let caches = read(&Root::new(dir.path()), &cpus, &mut unknowns);
        let found: Vec<(u8, String)> = caches.iter().map(|c| (c.level, c.cpus.to_list())).collect();
        assert_eq!(
            found,
            [(2, "0-1".into()), (3, "0-3".into()), (2, "2-3".into())]
        );
        assert_eq!(caches[0].size_kib, Some(1024));
        assert!(unknowns.is_empty(), "{unknowns:?}");
    }

    #[test]
    fn no_cache_directory_is_one_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let mut unknowns = Vec::new();
        let cpus = CpuSet::parse_list("0-1").unwrap();
        assert!(read(&Root::new(dir.path()), &cpus, &mut unknowns).is_empty());
        assert_eq!(unknowns.len(), 1);
        assert_eq!(unknowns[0].object, "CPU caches");
    }
}
