//! What lab runs have on the host right now, by name: network namespaces, host-namespace
//! interfaces, and the lab's cgroups in the v1 cpuset hierarchy and in the unified one (with
//! the plan cgroups an apply makes inside them). A run that cleaned up leaves none of its own; comparing a listing taken before a
//! run with one taken after shows whether anything was left behind.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use nearnative_host::isolation::{Isolation, WalkLimits};
use nearnative_host::Root;

use crate::ip::{ip, parse_link_names, parse_netns_names, IpError};
use crate::names::{CGROUP_PREFIX, LINK_PREFIX, NETNS_PREFIX};

/// Bounds of the walk for lab cgroups: as deep as inspect walks cpusets, and no further than
/// a systemd host's few thousand cgroups.
const MAX_DEPTH: usize = 8;
const MAX_CGROUPS: usize = 8192;

/// The host's namespaces and host-namespace interfaces (all of them), and the directories of
/// the cgroups that lie in a lab's cgroup, in either hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNames {
    pub netns: BTreeSet<String>,
    pub links: BTreeSet<String>,
    pub cgroups: BTreeSet<String>,
}

impl HostNames {
    /// Lists them now.
    pub fn read(root: &Root) -> Result<HostNames, IpError> {
        let isolation = Isolation::read(root, WalkLimits::default(), &mut Vec::new());
        let cgroups = isolation.cgroups;
        let mounts: BTreeSet<&PathBuf> = cgroups
            .cpuset_mount
            .iter()
            .chain(&cgroups.unified_mount)
            .collect();
        Ok(HostNames {
            netns: parse_netns_names(&ip(&["netns", "list"])?)
                .into_iter()
                .collect(),
            links: parse_link_names(&ip(&["-o", "link"])?)
                .into_iter()
                .collect(),
            cgroups: mounts
                .into_iter()
                .flat_map(|mount| lab_cgroups(root, mount))
                .collect(),
        })
    }

    /// Names belonging to the run `id` (from `RunTag::id`).
    pub fn of_run(&self, id: &str) -> Vec<String> {
        let netns = format!("{NETNS_PREFIX}{id}-");
        let link = format!("{LINK_PREFIX}{id}");
        let cgroup = format!("/{CGROUP_PREFIX}{id}");
        let netns = self.netns.iter().filter(|n| n.starts_with(&netns));
        let links = self.links.iter().filter(|l| l.starts_with(&link));
        let cgroups = self.cgroups.iter().filter(|c| c.contains(&cgroup));
        netns.chain(links).chain(cgroups).cloned().collect()
    }

    /// `Ok` when nothing a lab names was added or removed since `before` and nothing that was
    /// there before is gone (other software may add its own meanwhile); else what differs.
    pub fn restored_from(&self, before: &HostNames) -> Result<(), String> {
        let lab = |set: &BTreeSet<String>| -> BTreeSet<String> {
            set.iter()
                .filter(|n| n.starts_with(LINK_PREFIX))
                .cloned()
                .collect()
        };
        let checks = [
            ("lab namespaces", lab(&self.netns), lab(&before.netns)),
            ("lab interfaces", lab(&self.links), lab(&before.links)),
            ("lab cgroups", self.cgroups.clone(), before.cgroups.clone()),
        ];
        for (what, now, then) in checks {
            if now != then {
                return Err(format!("{what}: now {now:?}, before {then:?}"));
            }
        }
        if !before.netns.is_subset(&self.netns) || !before.links.is_subset(&self.links) {
            return Err("a namespace or interface that was there before is gone".into());
        }
        Ok(())
    }
}

/// The directories under `mount` that lie in a lab cgroup, as host paths.
fn lab_cgroups(root: &Root, mount: &Path) -> Vec<String> {
    let lab_cgroup = format!("/{CGROUP_PREFIX}");
    let mut found = Vec::new();
    let mut seen = 0;
    let mut level = vec![mount.to_owned()];
    for _ in 0..=MAX_DEPTH {
        let mut next = Vec::new();
        for dir in level {
            for child in subdirectories(root, &dir) {
                seen += 1;
                if seen > MAX_CGROUPS {
                    return found;
                }
                let path = child.display().to_string();
                if path.contains(&lab_cgroup) {
                    found.push(path);
                }
                next.push(child);
            }
        }
        level = next;
    }
    found
}

fn subdirectories(root: &Root, dir: &Path) -> Vec<PathBuf> {
    root.list_dir(dir)
        .unwrap_or_default()
        .into_iter()
        .map(|name| dir.join(name))
        .filter(|child| root.path(child).is_dir())
        .collect()
}
