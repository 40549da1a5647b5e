//! The kernel text forms of the plain values file knobs hold, and the validated names
//! (cgroup paths, mount points) that knobs build paths from. Nothing here reads or writes.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use nearnative_host::CpuSet;
use serde::{Deserialize, Serialize};

use crate::knob::FileValue;

/// CPU (or NUMA node) sets in list form: `0-3,8`.
impl FileValue for CpuSet {
    fn parse(text: &str) -> Result<Self, String> {
        CpuSet::parse_list(text).map_err(|e| e.to_string())
    }
    fn format(&self) -> String {
        self.to_list()
    }
}

/// Flags written `0` or `1`.
impl FileValue for bool {
    fn parse(text: &str) -> Result<Self, String> {
        nearnative_host::knobs::parse_flag(text)
    }
    fn format(&self) -> String {
        u8::from(*self).to_string()
    }
}

impl FileValue for u32 {
    fn parse(text: &str) -> Result<Self, String> {
        text.parse()
            .map_err(|_| "not an unsigned 32-bit number".to_owned())
    }
    fn format(&self) -> String {
        self.to_string()
    }
}

/// A cgroup's path inside its hierarchy: `/` or `/a/b`. Invariant: absolute, no empty, `.` or
/// `..` component, no NUL or newline, so it can never name a directory outside the hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CgroupPath(String);

impl CgroupPath {
    pub fn root() -> Self {
        CgroupPath("/".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CgroupPath {
    type Error = String;
    fn try_from(path: String) -> Result<Self, String> {
        if path == "/" {
            return Ok(CgroupPath(path));
        }
        let bad = |why: &str| Err(format!("cgroup path {path:?} {why}"));
        let Some(rest) = path.strip_prefix('/') else {
            return bad("is not absolute");
        };
        if path.contains(['\0', '\n']) {
            return bad("contains NUL or a newline");
        }
        match rest
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            true => bad("has an empty, \".\" or \"..\" component"),
            false => Ok(CgroupPath(path)),
        }
    }
}

impl TryFrom<&str> for CgroupPath {
    type Error = String;
    fn try_from(path: &str) -> Result<Self, String> {
        CgroupPath::try_from(path.to_owned())
    }
}

impl From<CgroupPath> for String {
    fn from(path: CgroupPath) -> String {
        path.0
    }
}

impl fmt::Display for CgroupPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FileValue for CgroupPath {
    fn parse(text: &str) -> Result<Self, String> {
        CgroupPath::try_from(text)
    }
    fn format(&self) -> String {
        self.0.clone()
    }
}

/// Where a cgroup hierarchy is mounted, as a host path. Invariant: absolute, without `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "PathBuf", into = "PathBuf")]
pub struct CgroupMount(PathBuf);

impl CgroupMount {
    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

impl TryFrom<PathBuf> for CgroupMount {
    type Error = String;
    fn try_from(path: PathBuf) -> Result<Self, String> {
        let clean = path.is_absolute() && path.components().all(|c| c != Component::ParentDir);
        match clean {
            true => Ok(CgroupMount(path)),
            false => Err(format!(
                "cgroup mount {} must be absolute without \"..\"",
                path.display()
            )),
        }
    }
}

impl TryFrom<&str> for CgroupMount {
    type Error = String;
    fn try_from(path: &str) -> Result<Self, String> {
        CgroupMount::try_from(PathBuf::from(path))
    }
}

impl From<CgroupMount> for PathBuf {
    fn from(mount: CgroupMount) -> PathBuf {
        mount.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_paths_are_validated() {
        let cases = [
            ("root", "/", true),
            ("nested", "/nearnative/vm-1", true),
            ("relative", "a/b", false),
            ("dot-dot", "/a/../b", false),
            ("trailing slash", "/a/", false),
            ("newline", "/a\n", false),
        ];
        for (what, path, ok) in cases {
            assert_eq!(CgroupPath::try_from(path).is_ok(), ok, "{what}");
        }
        assert!(serde_json::from_str::<CgroupPath>("\"/../x\"").is_err());
        assert!(CgroupMount::try_from("/sys/fs/cgroup/../x").is_err());
        assert!(CgroupMount::try_from("sys").is_err());
    }

    #[test]
    fn plain_values_round_trip_in_kernel_form() {
        assert_eq!(<bool as FileValue>::parse("1"), Ok(true));
        assert_eq!(false.format(), "0");
        assert_eq!(CpuSet::from_ids([0, 1, 2, 5]).format(), "0-2,5");
        assert!(<u32 as FileValue>::parse("-1").is_err());
    }
}
