//! The two cgroup v2 settings a threaded layout needs besides the cpuset files: whether a
//! cgroup hands the cpuset controller to its children (`cgroup.subtree_control`), and whether
//! a cgroup is threaded (`cgroup.type`), so that one process's threads can sit in different
//! cpusets.

use serde::{Deserialize, Serialize};

use super::cgroup::Cgroup;
use crate::backend::Backend;
use crate::error::{Described, KnobError, Object};
use crate::knob::{file_knob, read_file, write_file, FileValue, Knob};

/// Whether `cpuset` is among the controllers a v2 cgroup gives its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpusetDistribution {
    Enabled,
    Disabled,
}

impl FileValue for CpusetDistribution {
    fn parse(text: &str) -> Result<Self, String> {
        match text.split_whitespace().any(|c| c == "cpuset") {
            true => Ok(CpusetDistribution::Enabled),
            false => Ok(CpusetDistribution::Disabled),
        }
    }

    /// The kernel takes `+name`/`-name` edits, leaving the other controllers as they are.
    fn format(&self) -> String {
        match self {
            CpusetDistribution::Enabled => "+cpuset",
            CpusetDistribution::Disabled => "-cpuset",
        }
        .to_owned()
    }
}

/// `cgroup.subtree_control` as far as the cpuset controller goes: enabled, the cgroup's
/// children get `cpuset.*` files. The kernel refuses to disable it while a child still
/// enables it for its own children, so revert (newest first) disables it after the children
/// are gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtreeCpuset {
    pub cgroup: Cgroup,
}

file_knob!(
    SubtreeCpuset,
    CpusetDistribution,
    |this| format!("cpuset for the children of cgroup {}", this.cgroup.path),
    this.cgroup.file("cgroup.subtree_control")
);

/// What `cgroup.type` says, as far as thread placement goes. `domain threaded` (a thread
/// root) and `domain invalid` read as [`CgroupKind::Domain`]: the kernel decides between
/// them, nobody writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupKind {
    Domain,
    Threaded,
}

impl FileValue for CgroupKind {
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "threaded" => Ok(CgroupKind::Threaded),
            other if other.starts_with("domain") => Ok(CgroupKind::Domain),
            _ => Err("not domain, domain threaded, domain invalid or threaded".to_owned()),
        }
    }

    fn format(&self) -> String {
        match self {
            CgroupKind::Domain => "domain",
            CgroupKind::Threaded => "threaded",
        }
        .to_owned()
    }
}

/// `cgroup.type` of a cgroup nearnative creates. Planned `Domain → Threaded` right after the
/// `mkdir`, before anything joins. The kernel never turns a threaded cgroup back into a
/// domain, so writing `Domain` writes nothing: revert reaches this step just before the
/// [`super::cgroup::CgroupDir`] step that removes the directory, and the type goes with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupType {
    pub cgroup: Cgroup,
}

impl CgroupType {
    fn path(&self) -> std::path::PathBuf {
        self.cgroup.file("cgroup.type")
    }
}

impl Knob for CgroupType {
    type Value = CgroupKind;

    fn describe(&self) -> Described {
        Described::new(
            format!("type of cgroup {}", self.cgroup.path),
            self.path().display().to_string(),
        )
    }

    fn read(&self, backend: &dyn Backend) -> Result<CgroupKind, KnobError> {
        read_file(backend, self.describe(), Object::File, &self.path())
    }

    fn write(&self, backend: &dyn Backend, kind: &CgroupKind) -> Result<(), KnobError> {
        match kind {
            CgroupKind::Threaded => write_file(backend, self.describe(), &self.path(), kind),
            CgroupKind::Domain => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_the_kernel_shows_them() {
        let distribution = [
            ("enabled among others", "cpu cpuset memory\n", "enabled"),
            ("absent", "cpu memory\n", "disabled"),
            ("empty", "\n", "disabled"),
            ("a longer name is not cpuset", "cpusetx\n", "disabled"),
        ];
        for (what, text, expected) in distribution {
            let parsed = CpusetDistribution::parse(text).unwrap();
            assert_eq!(
                serde_json::to_value(parsed).unwrap(),
                serde_json::json!(expected),
                "{what}"
            );
        }
        assert_eq!(CpusetDistribution::Enabled.format(), "+cpuset");
        let kinds = [
            ("threaded", "threaded\n", Ok(CgroupKind::Threaded)),
            ("thread root", "domain threaded\n", Ok(CgroupKind::Domain)),
            ("invalid", "domain invalid\n", Ok(CgroupKind::Domain)),
            ("garbage", "weird\n", Err(())),
        ];
        for (what, text, expected) in kinds {
            assert_eq!(CgroupKind::parse(text).map_err(|_| ()), expected, "{what}");
        }
    }
}
