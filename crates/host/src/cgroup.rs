//! Cgroup hierarchies, named once for every stage: which hierarchy a cgroup lives in (a v1
//! hierarchy by a controller it carries, or the v2 unified one) and where it is mounted; the
//! `/proc/PID/cgroup` table that says which cgroup of each hierarchy a task is in; and the
//! path arithmetic inside a hierarchy (`is_within`, `parent_of`).
//!
//! Inspect reads tables through [`entries`], the knobs find and move a task's cgroup through
//! [`path_in_table`], the planner and the lab walk paths with [`parent_of`]: there is one parser
//! of the table and one spelling of a hierarchy.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

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

/// A v1 controller name: lowercase letters and `_`, so it can only name a `/proc` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Controller(String);

impl Controller {
    /// The controller that places tasks on CPUs.
    pub fn cpuset() -> Self {
        Controller("cpuset".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Controller {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        match ok {
            true => Ok(Controller(name)),
            false => Err(format!("{name:?} is not a cgroup controller name")),
        }
    }
}

impl From<Controller> for String {
    fn from(controller: Controller) -> String {
        controller.0
    }
}

/// A cgroup hierarchy a thread can be placed in, with its mount point. Journals and plans
/// store it, so its serialised form (`{"version":"v1","mount":…,"controller":…}`) is fixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "version")]
pub enum Hierarchy {
    /// A v1 hierarchy with `controller` (`cpuset`): threads move one by one through `tasks`.
    V1 {
        mount: CgroupMount,
        controller: Controller,
    },
    /// The v2 hierarchy: a thread moves alone through `cgroup.threads` into a threaded
    /// cgroup, or with its whole process through `cgroup.procs`.
    V2 { mount: CgroupMount },
}

impl Hierarchy {
    pub fn mount(&self) -> &CgroupMount {
        match self {
            Hierarchy::V1 { mount, .. } | Hierarchy::V2 { mount } => mount,
        }
    }

    /// Its line in a `/proc/PID/cgroup` table.
    pub fn line(&self) -> CgroupLine {
        match self {
            Hierarchy::V1 { controller, .. } => CgroupLine::V1 {
                controller: controller.0.clone(),
            },
            Hierarchy::V2 { .. } => CgroupLine::V2,
        }
    }
}

impl fmt::Display for Hierarchy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hierarchy::V1 { controller, .. } => {
                write!(f, "the cgroup v1 {} hierarchy", controller.0)
            }
            Hierarchy::V2 { .. } => f.write_str("the cgroup v2 hierarchy"),
        }
    }
}

/// Which line of a `/proc/PID/cgroup` table a hierarchy is: the v1 line naming a controller,
/// or the v2 `0::` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLine {
    V1 { controller: String },
    V2,
}

impl CgroupLine {
    /// Whether the line with hierarchy id `id` and controller list `controllers` is this one.
    pub fn matches(&self, id: &str, controllers: &str) -> bool {
        match self {
            CgroupLine::V1 { controller } => controllers.split(',').any(|c| c == controller),
            CgroupLine::V2 => id == "0" && controllers.is_empty(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CgroupError {
    #[error("line {0:?} is not ID:CONTROLLERS:PATH")]
    BadLine(String),
}

/// One line of a `/proc/PID/cgroup` table: `hierarchy-ID:controller,...:path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupEntry<'a> {
    pub id: &'a str,
    pub controllers: &'a str,
    /// Inside the hierarchy; it may itself contain `:`.
    pub path: &'a str,
}

impl CgroupEntry<'_> {
    pub fn is(&self, line: &CgroupLine) -> bool {
        line.matches(self.id, self.controllers)
    }
}

/// The lines of a `/proc/PID/cgroup` table, blank ones skipped. Each is split at its first two
/// colons only, since a path may contain `:`.
pub fn entries(table: &str) -> impl Iterator<Item = Result<CgroupEntry<'_>, CgroupError>> {
    table.lines().filter(|line| !line.is_empty()).map(|line| {
        let mut parts = line.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(controllers), Some(path)) => Ok(CgroupEntry {
                id,
                controllers,
                path,
            }),
            _ => Err(CgroupError::BadLine(line.to_owned())),
        }
    })
}

/// The path of `line`'s hierarchy in a table: its first well-formed line with an absolute
/// path. A malformed line elsewhere does not hide it.
pub fn path_in_table<'a>(table: &'a str, line: &CgroupLine) -> Option<&'a str> {
    entries(table)
        .filter_map(Result::ok)
        .find(|entry| entry.is(line) && entry.path.starts_with('/'))
        .map(|entry| entry.path)
}

/// Why a scope was refused: `"TEXT": reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?}: {reason}")]
pub struct ScopeError {
    pub text: String,
    pub reason: &'static str,
}

/// The cgroup path of a scope written `cgroup:/PATH` (`--scope`, a policy's `scope`, a
/// verify spec): `/`, or `/` and cgroup names. An empty, `.` or `..` component is refused:
/// [`is_within`] compares paths as strings, so `/machine/../x` would pass for a cgroup
/// within `/machine`.
pub fn parse_scope(text: &str) -> Result<String, ScopeError> {
    let refused = |reason| ScopeError {
        text: text.to_owned(),
        reason,
    };
    let path = text
        .strip_prefix("cgroup:")
        .filter(|path| path.starts_with('/'))
        .ok_or_else(|| refused("expected cgroup:/PATH"))?;
    if path == "/" {
        return Ok(path.to_owned());
    }
    for component in path[1..].split('/') {
        match component {
            "" => {
                return Err(refused(
                    "the cgroup path has an empty component (// or a trailing /)",
                ))
            }
            "." => return Err(refused("the cgroup path has a . component")),
            ".." => return Err(refused("the cgroup path has a .. component")),
            _ => {}
        }
    }
    Ok(path.to_owned())
}

/// `path` is `scope` or below it.
pub fn is_within(path: &str, scope: &str) -> bool {
    scope == "/"
        || path == scope
        || path
            .strip_prefix(scope)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The parent of cgroup `path`: `/a` for `/a/b`, `/` for `/a`, none for `/`.
pub fn parent_of(path: &str) -> Option<&str> {
    match path.rsplit_once('/') {
        _ if path == "/" => None,
        Some(("", _)) => Some("/"),
        Some((parent, _)) => Some(parent),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_is_a_clean_absolute_cgroup_path() {
        for (text, path) in [("cgroup:/", "/"), ("cgroup:/machine/vm1", "/machine/vm1")] {
            assert_eq!(parse_scope(text), Ok(path.to_owned()), "{text}");
        }
        let refused = [
            ("/machine", "expected cgroup:/PATH"),
            ("cgroup:machine", "expected cgroup:/PATH"),
            ("cgroup:/machine/../x", "a .. component"),
            ("cgroup:/machine/./x", "a . component"),
            ("cgroup:/machine//x", "an empty component"),
            ("cgroup:/machine/", "an empty component"),
            ("cgroup://", "an empty component"),
        ];
        for (text, reason) in refused {
            let err = parse_scope(text).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{text:?}: ")), "{err}");
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn tables_give_each_hierarchy_its_path() {
        let table = "12:cpu,cpuacct:/user\n\ngarbage\n3:cpuset:/docker/abc\n0::/system.slice/x:y\n";
        let cpuset = CgroupLine::V1 {
            controller: "cpuset".into(),
        };
        assert_eq!(path_in_table(table, &cpuset), Some("/docker/abc"));
        assert_eq!(
            path_in_table(table, &CgroupLine::V2),
            Some("/system.slice/x:y")
        );
        assert_eq!(path_in_table("1:cpuset:\n", &cpuset), None);
        let bad: Vec<_> = entries(table).filter_map(Result::err).collect();
        assert_eq!(bad, vec![CgroupError::BadLine("garbage".into())]);
    }

    #[test]
    fn hierarchies_keep_their_serialised_form_and_name() {
        let v1 = Hierarchy::V1 {
            mount: CgroupMount::try_from("/sys/fs/cgroup/cpuset").unwrap(),
            controller: Controller::cpuset(),
        };
        let json = r#"{"version":"v1","mount":"/sys/fs/cgroup/cpuset","controller":"cpuset"}"#;
        assert_eq!(serde_json::to_string(&v1).unwrap(), json);
        assert_eq!(serde_json::from_str::<Hierarchy>(json).unwrap(), v1);
        assert_eq!(v1.to_string(), "the cgroup v1 cpuset hierarchy");
        let v2 = Hierarchy::V2 {
            mount: CgroupMount::try_from("/sys/fs/cgroup").unwrap(),
        };
        assert_eq!(v2.to_string(), "the cgroup v2 hierarchy");
        assert_eq!(v2.line(), CgroupLine::V2);
        assert!(Controller::try_from("cpu-set".to_owned()).is_err());
    }

    #[test]
    fn mounts_are_validated() {
        assert!(CgroupMount::try_from("/sys/fs/cgroup/../x").is_err());
        assert!(CgroupMount::try_from("sys").is_err());
    }

    #[test]
    fn parents_and_paths_within_a_scope() {
        assert_eq!(parent_of("/"), None);
        assert_eq!(parent_of("/a"), Some("/"));
        assert_eq!(parent_of("/a/b"), Some("/a"));
        let cases = [
            ("root holds everything", "/a/b", "/", true),
            ("itself", "/a", "/a", true),
            ("child", "/a/b", "/a", true),
            ("prefix is not a child", "/ab", "/a", false),
            ("parent", "/", "/a", false),
        ];
        for (what, path, scope, expected) in cases {
            assert_eq!(is_within(path, scope), expected, "{what}");
        }
    }
}
