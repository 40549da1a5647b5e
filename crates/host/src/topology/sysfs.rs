//! Reading the per-CPU files under `/sys/devices/system/cpu`: which CPUs exist and are online,
//! and the sibling masks that define cores, packages, dies and clusters.
//!
//! Like hwloc, a group is taken from the mask of its lowest online CPU and CPUs already in a
//! group are not read again, which keeps a 128-CPU machine to a few hundred small reads.

use std::cell::Cell;

use super::parse;
use crate::{CpuSet, ReadError, Root, Unknown};

const CPU_DIR: &str = "/sys/devices/system/cpu";

/// A sibling mask, in the forms kernels have offered over time, best first: the list forms
/// since 2.6.27 and the `core_cpus`/`package_cpus` names since 5.1.
struct MaskFiles {
    what: &'static str,
    candidates: &'static [&'static str],
    /// The candidate that worked last, tried first for the next CPU.
    chosen: Cell<usize>,
}

const CORE_FILES: &[&str] = &[
    "core_cpus_list",
    "thread_siblings_list",
    "core_cpus",
    "thread_siblings",
];
const PACKAGE_FILES: &[&str] = &[
    "package_cpus_list",
    "core_siblings_list",
    "package_cpus",
    "core_siblings",
];
const DIE_FILES: &[&str] = &["die_cpus_list", "die_cpus"];
const CLUSTER_FILES: &[&str] = &["cluster_cpus_list", "cluster_cpus"];
const CORE_ID: IdFile = IdFile::Required("core_id");

impl MaskFiles {
    fn new(what: &'static str, candidates: &'static [&'static str]) -> Self {
        MaskFiles {
            what,
            candidates,
            chosen: Cell::new(0),
        }
    }

    /// The mask for `cpu`, from the first candidate file that exists.
    fn read(&self, root: &Root, cpu: u32) -> Result<CpuSet, ReadError> {
        let first = self.chosen.get();
        let order =
            std::iter::once(first).chain((0..self.candidates.len()).filter(|&i| i != first));
        let mut first_error = None;
        for index in order {
            let name = self.candidates[index];
            let path = format!("{CPU_DIR}/cpu{cpu}/topology/{name}");
            let parsed = if name.ends_with("_list") {
                root.read_parsed(&path, CpuSet::parse_list)
            } else {
                root.read_parsed(&path, CpuSet::parse_mask)
            };
            match parsed {
                Ok(set) => {
                    self.chosen.set(index);
                    return Ok(set);
                }
                Err(err) if err.is_not_found() => {
                    first_error.get_or_insert(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(first_error.unwrap_or_else(|| ReadError::NotFound {
            path: root.path(format!("{CPU_DIR}/cpu{cpu}/topology")),
        }))
    }
}

/// A group of CPUs read from one sibling mask, before logical numbering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawGroup {
    pub os_id: Option<i64>,
    pub cpus: CpuSet,
}

/// What the per-CPU files say, before it is put in order.
#[derive(Debug, Clone, Default)]
pub struct RawCpus {
    /// Every CPU with a `cpuN` directory or listed online.
    pub known: CpuSet,
    pub online: CpuSet,
    /// Online CPUs whose `topology/` directory exists: the CPUs groups are made of.
    pub with_topology: CpuSet,
    pub cores: Vec<RawGroup>,
    pub packages: Vec<RawGroup>,
    pub dies: Vec<RawGroup>,
    pub clusters: Vec<RawGroup>,
}

pub fn read_cpus(root: &Root, unknowns: &mut Vec<Unknown>) -> RawCpus {
    let listed = list_cpu_dirs(root, unknowns);
    let online = read_online(root, &listed, unknowns);
    let known = listed.union(&online);
    let with_topology = cpus_with_topology(root, &online, unknowns);
    let cpus = &with_topology;
    let amd = AmdComputeUnits::default();
    let mut groups = |what, files, id_file, amd| {
        let files = MaskFiles::new(what, files);
        read_groups(root, cpus, &files, id_file, amd, unknowns)
    };
    let cores = groups("core", CORE_FILES, CORE_ID, Some(&amd));
    let packages = groups(
        "package",
        PACKAGE_FILES,
        IdFile::Required("physical_package_id"),
        None,
    );
    let dies = groups("die", DIE_FILES, IdFile::Optional("die_id"), None);
    let clusters = groups(
        "cluster",
        CLUSTER_FILES,
        IdFile::Optional("cluster_id"),
        None,
    );
    RawCpus {
        known,
        online,
        with_topology,
        cores,
        packages,
        dies,
        clusters,
    }
}

/// The `cpuN` directories. Without them, `possible` stands in for the list.
fn list_cpu_dirs(root: &Root, unknowns: &mut Vec<Unknown>) -> CpuSet {
    match root.list_dir(CPU_DIR) {
        Ok(names) => names
            .iter()
            .filter_map(|name| parse::numbered_dir(name, "cpu"))
            .collect(),
        Err(err) => {
            unknowns.push(Unknown::from_error("list of CPUs", &err));
            crate::cpus::possible_cpus(root).unwrap_or_default()
        }
    }
}

/// The `online` list, or else each CPU's own `online` file. A CPU without one cannot be
/// hot-unplugged (often CPU 0 on x86) and is online.
fn read_online(root: &Root, listed: &CpuSet, unknowns: &mut Vec<Unknown>) -> CpuSet {
    match crate::cpus::online_cpus(root) {
        Ok(online) => return online,
        Err(err) if !err.is_not_found() => {
            unknowns.push(Unknown::from_error("online CPUs", &err));
        }
        Err(_) => {}
    }
    listed
        .iter()
        .filter(|cpu| {
            let path = format!("{CPU_DIR}/cpu{cpu}/online");
            match root.read_parsed(&path, parse::int) {
                Ok(flag) => flag != 0,
                Err(err) if err.is_not_found() => true,
                Err(err) => {
                    unknowns.push(Unknown::from_error(
                        format!("online state of cpu{cpu}"),
                        &err,
                    ));
                    true
                }
            }
        })
        .collect()
}

/// Online CPUs with a `topology/` directory. Old kernels, some containers and some
/// architectures have none; those CPUs get no core or package, and one Unknown says so.
fn cpus_with_topology(root: &Root, online: &CpuSet, unknowns: &mut Vec<Unknown>) -> CpuSet {
    let (with, without): (Vec<u32>, Vec<u32>) = online
        .iter()
        .partition(|cpu| root.exists(format!("{CPU_DIR}/cpu{cpu}/topology")));
    if let Some(&first) = without.first() {
        let without = CpuSet::from_ids(without);
        unknowns.push(Unknown {
            object: format!("core and package of CPUs {without}"),
            path: root.path(format!("{CPU_DIR}/cpu{first}/topology")),
            reason: "no topology directory".to_owned(),
        });
    }
    CpuSet::from_ids(with)
}

/// How a group's own number is read, and whether its absence is worth an Unknown.
#[derive(Clone, Copy)]
enum IdFile {
    /// `core_id`, `physical_package_id`: present on every kernel with a topology directory.
    Required(&'static str),
    /// `die_id` (5.2) and `cluster_id` (5.16): missing on older kernels.
    Optional(&'static str),
}

/// Groups from one mask kind: the mask of each CPU not yet grouped, limited to `cpus`.
fn read_groups(
    root: &Root,
    cpus: &CpuSet,
    files: &MaskFiles,
    id_file: IdFile,
    amd: Option<&AmdComputeUnits>,
    unknowns: &mut Vec<Unknown>,
) -> Vec<RawGroup> {
    let mut grouped = CpuSet::new();
    let mut groups = Vec::new();
    for cpu in cpus.iter() {
        if grouped.contains(cpu) {
            continue;
        }
        let mut members = match files.read(root, cpu) {
            Ok(mask) => group_members(&mask, cpus, &grouped, cpu),
            Err(err) => {
                if matches!(id_file, IdFile::Required(_)) || !err.is_not_found() {
                    let object = format!("{} of cpu{cpu}", files.what);
                    unknowns.push(Unknown::from_error(object, &err));
                }
                continue;
            }
        };
        let os_id = read_id(root, cpu, id_file, unknowns);
        if let Some(amd) = amd.filter(|_| members.len() > 1) {
            if amd.splits(root, cpu, &members, os_id, unknowns) {
                members = CpuSet::from_ids([cpu]);
            }
        }
        grouped = grouped.union(&members);
        groups.push(RawGroup {
            os_id,
            cpus: members,
        });
    }
    groups
}

/// The CPUs a mask puts in `cpu`'s group: limited to the CPUs being grouped, without those
/// already in another group, and always holding `cpu` itself.
fn group_members(mask: &CpuSet, cpus: &CpuSet, grouped: &CpuSet, cpu: u32) -> CpuSet {
    let mut members = mask.intersection(cpus).difference(grouped);
    members.insert(cpu);
    members
}

fn read_id(root: &Root, cpu: u32, id_file: IdFile, unknowns: &mut Vec<Unknown>) -> Option<i64> {
    let (IdFile::Required(name) | IdFile::Optional(name)) = id_file;
    let path = format!("{CPU_DIR}/cpu{cpu}/topology/{name}");
    match root.read_parsed(&path, parse::int) {
        Ok(id) => Some(id),
        Err(err) if matches!(id_file, IdFile::Optional(_)) && err.is_not_found() => None,
        Err(err) => {
            unknowns.push(Unknown::from_error(format!("{name} of cpu{cpu}"), &err));
            None
        }
    }
}

/// AMD families 0x15 and 0x16 pair two cores in a compute unit and some kernels report the
/// pair as SMT siblings with distinct `core_id`s. hwloc counts them as two cores; so do we.
#[derive(Default)]
struct AmdComputeUnits {
    checked: Cell<Option<bool>>,
}

impl AmdComputeUnits {
    /// True when `cpu`'s sibling mask is a compute unit to split into one core per CPU.
    fn splits(
        &self,
        root: &Root,
        cpu: u32,
        members: &CpuSet,
        core_id: Option<i64>,
        unknowns: &mut Vec<Unknown>,
    ) -> bool {
        if !self.present(root) {
            return false;
        }
        let sibling = members.iter().find(|&c| c != cpu);
        let sibling_id = sibling.and_then(|s| read_id(root, s, CORE_ID, unknowns));
        sibling_id != core_id
    }

    fn present(&self, root: &Root) -> bool {
        if let Some(known) = self.checked.get() {
            return known;
        }
        let present = root
            .read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| parse::cpuinfo_vendor_family(&text))
            .is_some_and(|(vendor, family)| {
                vendor == "AuthenticAMD" && (family == 0x15 || family == 0x16)
            });
        self.checked.set(Some(present));
        present
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, rel: &str, text: &str) {
        let path = dir.join(rel.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn cpu_files(dir: &std::path::Path, cpu: u32, core: &str, package: &str, core_id: i64) {
        let base = format!("{CPU_DIR}/cpu{cpu}/topology");
        write(dir, &format!("{base}/thread_siblings_list"), core);
        write(dir, &format!("{base}/core_siblings"), package);
        write(dir, &format!("{base}/core_id"), &core_id.to_string());
        write(dir, &format!("{base}/physical_package_id"), "0");
    }

    #[test]
    fn old_file_names_and_offline_cpu0_are_handled() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "/sys/devices/system/cpu/online", "1-3\n");
        std::fs::create_dir_all(dir.path().join("sys/devices/system/cpu/cpu0")).unwrap();
        cpu_files(dir.path(), 1, "1,3", "0000000e", 0);
        cpu_files(dir.path(), 2, "2", "0000000e", 1);
        cpu_files(dir.path(), 3, "1,3", "0000000e", 0);
        let mut unknowns = Vec::new();
        let raw = read_cpus(&Root::new(dir.path()), &mut unknowns);
        assert_eq!(raw.known.to_list(), "0-3");
        assert_eq!(raw.online.to_list(), "1-3");
        let cores: Vec<String> = raw.cores.iter().map(|c| c.cpus.to_list()).collect();
        assert_eq!(cores, ["1,3", "2"]);
        assert_eq!(raw.packages.len(), 1);
        assert_eq!(raw.packages[0].cpus.to_list(), "1-3");
        assert!(raw.dies.is_empty() && unknowns.is_empty(), "{unknowns:?}");
    }

    #[test]
    fn missing_topology_and_garbled_masks_become_unknowns() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "/sys/devices/system/cpu/online", "0-2\n");
        cpu_files(dir.path(), 0, "zz", "1", 0);
        cpu_files(dir.path(), 1, "1", "1", 0);
        std::fs::create_dir_all(dir.path().join("sys/devices/system/cpu/cpu2")).unwrap();
        let mut unknowns = Vec::new();
        let raw = read_cpus(&Root::new(dir.path()), &mut unknowns);
        assert_eq!(raw.with_topology.to_list(), "0-1");
        assert_eq!(raw.cores.len(), 1);
        let objects: Vec<&str> = unknowns.iter().map(|u| u.object.as_str()).collect();
        assert!(objects.contains(&"core of cpu0"), "{objects:?}");
        assert!(
            objects.contains(&"core and package of CPUs 2"),
            "{objects:?}"
        );
        assert!(unknowns.iter().all(|u| u.path.starts_with(dir.path())));
    }
}
