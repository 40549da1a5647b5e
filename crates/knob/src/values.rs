//! The validated names (cgroup paths, mount points) that knobs build paths from. Nothing here
//! reads or writes; the kernel text forms of values are in `nearnative_host::kernel`.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use nearnative_host::cgroup::CgroupMount;

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
    }
}
