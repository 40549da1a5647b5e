//! The two cgroup v2 settings a threaded layout needs besides the cpuset files: whether a
//! cgroup hands the cpuset controller to its children (`cgroup.subtree_control`), and whether
//! a cgroup is threaded (`cgroup.type`), so that one process's threads can sit in different
//! cpusets. Paths, value types and text forms are in [`nearnative_host::kernel::cgroup`].

use serde::{Deserialize, Serialize};

use super::cgroup::Cgroup;
use crate::backend::Backend;
use crate::error::{Described, KnobError};
use crate::knob::{described, file_knob, read_file, write_file, Knob};
use nearnative_host::kernel::cgroup::CgroupFile;

pub use nearnative_host::kernel::cgroup::{CgroupKind, CpusetDistribution};

/// `cgroup.subtree_control` as far as the cpuset controller goes: enabled, the cgroup's
/// children get `cpuset.*` files. The kernel refuses to disable it while a child still
/// enables it for its own children, so revert (newest first) disables it after the children
/// are gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtreeCpuset {
    pub cgroup: Cgroup,
}

file_knob!(SubtreeCpuset, CgroupFile<CpusetDistribution>, |this| this
    .cgroup
    .at()
    .subtree_cpuset());

/// `cgroup.type` of a cgroup nearnative creates. Planned `Domain → Threaded` right after the
/// `mkdir`, before anything joins. The kernel never turns a threaded cgroup back into a
/// domain, so writing `Domain` writes nothing: revert reaches this step just before the
/// [`super::cgroup::CgroupDir`] step that removes the directory, and the type goes with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupType {
    pub cgroup: Cgroup,
}

impl CgroupType {
    /// The kernel file this knob is.
    pub fn file(&self) -> CgroupFile<CgroupKind> {
        self.cgroup.at().kind()
    }
}

impl Knob for CgroupType {
    type Value = CgroupKind;

    fn describe(&self) -> Described {
        described(&self.file())
    }

    fn read(&self, backend: &dyn Backend) -> Result<CgroupKind, KnobError> {
        read_file(backend, &self.file())
    }

    fn write(&self, backend: &dyn Backend, kind: &CgroupKind) -> Result<(), KnobError> {
        match kind {
            CgroupKind::Threaded => write_file(backend, &self.file(), kind),
            CgroupKind::Domain => Ok(()),
        }
    }
}
