//! Where the lab's cgroup goes: which hierarchy (`--cgroup auto|v1|v2`) and under which
//! parent.
//!
//! `auto` prefers the cgroup v1 cpuset hierarchy, which the planner fences with whenever it
//! exists; the lab's cgroup is then a child of the process's cpuset cgroup. Otherwise the
//! cgroup v2 (unified) hierarchy: the lab's cgroup is a sibling of the process's cgroup C (a
//! child of C's parent), or a child of the root when C is the root. v2's "no internal
//! processes" rule decides this: C holds the process, so unless C is the root it cannot hand
//! any controller down to a child, and a child of C would never get cpuset files; C's parent
//! hands its children the controllers C has, cpuset included where the host enables it. A
//! parent that is not a plain domain (a threaded cgroup, or a thread root, whose new children
//! cannot take processes) is passed over for the root.

use nearnative_host::cgroup::{
    parent_of, path_in_table, CgroupLine, CgroupMount, Controller, Hierarchy,
};
use nearnative_host::isolation::{Isolation, WalkLimits};
use nearnative_host::Root;

use super::{is_plain_path, CgroupError, LabCgroup};

/// `--cgroup`: the hierarchy the lab's own cgroup goes in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CgroupChoice {
    /// The v1 cpuset hierarchy if there is one, else cgroup v2.
    #[default]
    Auto,
    V1,
    V2,
}

impl CgroupChoice {
    pub const ALL: [CgroupChoice; 3] = [CgroupChoice::Auto, CgroupChoice::V1, CgroupChoice::V2];

    pub fn name(self) -> &'static str {
        match self {
            CgroupChoice::Auto => "auto",
            CgroupChoice::V1 => "v1",
            CgroupChoice::V2 => "v2",
        }
    }

    /// The hierarchy the choice names, for messages.
    pub fn hierarchy(self) -> &'static str {
        match self {
            CgroupChoice::Auto => "any cgroup hierarchy",
            CgroupChoice::V1 => "the cgroup v1 cpuset hierarchy",
            CgroupChoice::V2 => "the cgroup v2 hierarchy",
        }
    }
}

impl std::fmt::Display for CgroupChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown cgroup hierarchy {given:?} (expected auto, v1 or v2)")]
pub struct UnknownChoice {
    pub given: String,
}

impl std::str::FromStr for CgroupChoice {
    type Err = UnknownChoice;

    fn from_str(text: &str) -> Result<CgroupChoice, UnknownChoice> {
        CgroupChoice::ALL
            .into_iter()
            .find(|choice| choice.name() == text)
            .ok_or_else(|| UnknownChoice {
                given: text.to_owned(),
            })
    }
}

/// Why a hierarchy cannot hold the lab's cgroup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("no mounted v1 hierarchy has the cpuset controller")]
    NoV1Cpuset,
    #[error("no cgroup2 filesystem is mounted")]
    NoUnified,
    #[error("/proc/self/cgroup names no cgroup of this process in it")]
    NoOrigin,
    #[error("{0}")]
    BadMount(String),
}

/// Where the lab's cgroup is made: its hierarchy, the cgroup this process is in now (it
/// returns there on cleanup) and the parent of the lab's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub hierarchy: Hierarchy,
    pub origin: LabCgroup,
    pub parent: LabCgroup,
}

/// Where `choice` puts the lab's cgroup on the host `root` shows, or one line saying why
/// nothing fits.
pub fn choose(root: &Root, choice: CgroupChoice) -> Result<Site, CgroupError> {
    let isolation = Isolation::read(root, WalkLimits::default(), &mut Vec::new());
    let forced =
        |site: Result<Site, Unusable>| site.map_err(|why| CgroupError::Unusable { choice, why });
    match choice {
        CgroupChoice::V1 => forced(v1_site(&isolation)),
        CgroupChoice::V2 => forced(v2_site(root, &isolation)),
        CgroupChoice::Auto => v1_site(&isolation).or_else(|v1| {
            v2_site(root, &isolation).map_err(|v2| CgroupError::NoHierarchy { v1, v2 })
        }),
    }
}

/// A child of this process's cpuset cgroup in the v1 cpuset hierarchy.
fn v1_site(isolation: &Isolation) -> Result<Site, Unusable> {
    let cgroups = &isolation.cgroups;
    let mount = match (cgroups.cpuset_version, &cgroups.cpuset_mount) {
        (Some(1), Some(mount)) => mount.clone(),
        _ => return Err(Unusable::NoV1Cpuset),
    };
    let origin = isolation
        .process_cpuset
        .as_ref()
        .ok_or(Unusable::NoOrigin)?;
    let hierarchy = Hierarchy::V1 {
        mount: CgroupMount::try_from(mount.clone()).map_err(Unusable::BadMount)?,
        controller: Controller::cpuset(),
    };
    let origin = LabCgroup {
        mount,
        path: origin.cgroup.clone(),
    };
    Ok(Site {
        hierarchy,
        parent: origin.clone(),
        origin,
    })
}

/// A sibling of this process's cgroup in the unified hierarchy, or a child of the root.
fn v2_site(root: &Root, isolation: &Isolation) -> Result<Site, Unusable> {
    let mount = isolation
        .cgroups
        .unified_mount
        .clone()
        .ok_or(Unusable::NoUnified)?;
    let hierarchy = Hierarchy::V2 {
        mount: CgroupMount::try_from(mount.clone()).map_err(Unusable::BadMount)?,
    };
    let origin = root
        .read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|text| parse_unified_cgroup(&text))
        .ok_or(Unusable::NoOrigin)?;
    let at = |path: &str| LabCgroup {
        mount: mount.clone(),
        path: path.to_owned(),
    };
    let parent = parent_of(&origin)
        .filter(|&parent| takes_process_children(root, &at(parent)))
        .unwrap_or("/");
    Ok(Site {
        hierarchy,
        parent: at(parent),
        origin: at(&origin),
    })
}

/// Whether a new child of v2 cgroup `parent` can take a process: the root, or a plain
/// `domain` (a threaded cgroup's or a thread root's new children cannot).
fn takes_process_children(root: &Root, parent: &LabCgroup) -> bool {
    parent.path == "/"
        || root
            .read_trimmed(parent.dir().join("cgroup.type"))
            .is_ok_and(|kind| kind == "domain")
}

/// This process's cgroup v2 path from `/proc/self/cgroup` (its `0::PATH` line); `None` when
/// there is none or it is not a plain absolute path (a removed cgroup reads `... (deleted)`).
pub fn parse_unified_cgroup(proc_cgroup: &str) -> Option<String> {
    path_in_table(proc_cgroup, &CgroupLine::V2)
        .map(str::trim_end)
        .filter(|path| is_plain_path(path) && !path.ends_with(" (deleted)"))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    /// A host tree with `mountinfo` and the given files (path, text).
    fn host(mountinfo: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let all = [("proc/self/mountinfo", mountinfo)];
        for (path, text) in all.iter().chain(files) {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        let root = Root::new(dir.path());
        (dir, root)
    }

    const V1: &str = "34 31 0:31 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n";
    const V2: &str = "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    const HYBRID: &str = "34 31 0:31 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n\
                          41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
    const SESSION: &str = "0::/user.slice/user-0.slice/session-3.scope\n";

    fn at(mount: &str, path: &str) -> LabCgroup {
        LabCgroup {
            mount: mount.into(),
            path: path.into(),
        }
    }

    fn v1(mount: &str) -> Hierarchy {
        Hierarchy::V1 {
            mount: CgroupMount::try_from(mount).unwrap(),
            controller: Controller::cpuset(),
        }
    }

    fn v2(mount: &str) -> Hierarchy {
        Hierarchy::V2 {
            mount: CgroupMount::try_from(mount).unwrap(),
        }
    }

    #[test]
    fn chooses_the_hierarchy_and_the_parent() {
        let v2_files = [
            ("proc/self/cgroup", SESSION),
            ("sys/fs/cgroup/cgroup.controllers", "cpuset cpu memory\n"),
            (
                "sys/fs/cgroup/user.slice/user-0.slice/cgroup.type",
                "domain\n",
            ),
        ];
        let cases = [
            (
                "auto prefers v1",
                host(
                    HYBRID,
                    &[
                        ("proc/self/cgroup", "3:cpuset:/machine\n0::/\n"),
                        ("sys/fs/cgroup/cpuset/machine/cpuset.cpus", "0-3\n"),
                    ],
                ),
                CgroupChoice::Auto,
                v1("/sys/fs/cgroup/cpuset"),
                at("/sys/fs/cgroup/cpuset", "/machine"),
                at("/sys/fs/cgroup/cpuset", "/machine"),
            ),
            (
                "v2 forced on a hybrid host: under the unified root",
                host(HYBRID, &[("proc/self/cgroup", "3:cpuset:/\n0::/\n")]),
                CgroupChoice::V2,
                v2("/sys/fs/cgroup/unified"),
                at("/sys/fs/cgroup/unified", "/"),
                at("/sys/fs/cgroup/unified", "/"),
            ),
            (
                "auto on v2 only: next to the session scope",
                host(V2, &v2_files),
                CgroupChoice::Auto,
                v2("/sys/fs/cgroup"),
                at("/sys/fs/cgroup", "/user.slice/user-0.slice/session-3.scope"),
                at("/sys/fs/cgroup", "/user.slice/user-0.slice"),
            ),
            (
                "a thread root parent: under the root",
                host(
                    V2,
                    &[
                        ("proc/self/cgroup", "0::/vm.scope/emulator\n"),
                        ("sys/fs/cgroup/vm.scope/cgroup.type", "domain threaded\n"),
                    ],
                ),
                CgroupChoice::V2,
                v2("/sys/fs/cgroup"),
                at("/sys/fs/cgroup", "/vm.scope/emulator"),
                at("/sys/fs/cgroup", "/"),
            ),
            (
                "a child of the root: under the root",
                host(V2, &[("proc/self/cgroup", "0::/init.scope\n")]),
                CgroupChoice::V2,
                v2("/sys/fs/cgroup"),
                at("/sys/fs/cgroup", "/init.scope"),
                at("/sys/fs/cgroup", "/"),
            ),
        ];
        for (what, (_dir, root), choice, hierarchy, origin, parent) in cases {
            let site = choose(&root, choice).unwrap();
            let want = Site {
                hierarchy,
                origin,
                parent,
            };
            assert_eq!(site, want, "{what}");
        }
    }

    #[test]
    fn says_in_one_line_what_is_missing() {
        let cases = [
            (
                "nothing mounted",
                host("22 1 0:21 / /proc rw - proc proc rw\n", &[]),
                CgroupChoice::Auto,
                "nearnative lab needs a cgroup hierarchy to run in: the cgroup v1 cpuset \
                 hierarchy (no mounted v1 hierarchy has the cpuset controller) or the cgroup \
                 v2 hierarchy (no cgroup2 filesystem is mounted)",
            ),
            (
                "v1 forced on v2",
                host(V2, &[("proc/self/cgroup", SESSION)]),
                CgroupChoice::V1,
                "--cgroup v1: the cgroup v1 cpuset hierarchy is not usable: no mounted v1 \
                 hierarchy has the cpuset controller",
            ),
            (
                "v2 forced on v1 only",
                host(V1, &[("proc/self/cgroup", "3:cpuset:/\n")]),
                CgroupChoice::V2,
                "--cgroup v2: the cgroup v2 hierarchy is not usable: no cgroup2 filesystem is \
                 mounted",
            ),
            (
                "v2 forced, no 0:: line",
                host(HYBRID, &[("proc/self/cgroup", "3:cpuset:/\n")]),
                CgroupChoice::V2,
                "--cgroup v2: the cgroup v2 hierarchy is not usable: /proc/self/cgroup names \
                 no cgroup of this process in it",
            ),
        ];
        for (what, (_dir, root), choice, want) in cases {
            let err = choose(&root, choice).unwrap_err().to_string();
            assert_eq!(err, want, "{what}");
        }
    }

    #[test]
    fn parses_the_unified_line_of_proc_self_cgroup() {
        let cases = [
            (
                "v2 only",
                "0::/system.slice/ssh.service\n",
                Some("/system.slice/ssh.service"),
            ),
            ("hybrid", "3:cpuset:/\n1:name=systemd:/\n0::/\n", Some("/")),
            ("v1 only", "3:cpuset:/\n", None),
            ("removed", "0::/gone (deleted)\n", None),
            ("relative", "0::gone\n", None),
            ("empty", "", None),
        ];
        for (what, text, want) in cases {
            assert_eq!(parse_unified_cgroup(text).as_deref(), want, "{what}");
        }
    }

    #[test]
    fn parses_the_choice() {
        for choice in CgroupChoice::ALL {
            assert_eq!(choice.name().parse::<CgroupChoice>().unwrap(), choice);
        }
        let err = "v3".parse::<CgroupChoice>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown cgroup hierarchy \"v3\" (expected auto, v1 or v2)"
        );
    }
}
