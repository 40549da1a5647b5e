//! The files of one cgroup directory that nearnative reads and writes: the cpuset files (CPUs,
//! memory nodes, effective CPUs, v1 exclusivity and load balancing, the v2 partition) and the
//! two v2 files a threaded layout needs (`cgroup.subtree_control`, `cgroup.type`).
//!
//! v1 cpuset files are taken to carry the `cpuset.` prefix (no `noprefix` mount option, as
//! systemd and every distribution mount it).

use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{KernelFile, KernelValue};
use crate::CpuSet;

/// One cgroup directory: `dir` as a host path, `path` its name inside the hierarchy (`/a/b`),
/// which messages use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupAt {
    pub dir: PathBuf,
    pub path: String,
}

impl CgroupAt {
    pub fn new(dir: impl Into<PathBuf>, path: impl Into<String>) -> Self {
        CgroupAt {
            dir: dir.into(),
            path: path.into(),
        }
    }

    /// `cpuset.cpus`: the CPUs the cgroup's tasks may use.
    pub fn cpus(&self) -> CgroupFile<CpuSet> {
        self.file("cpuset.cpus", "CPUs")
    }

    /// `cpuset.mems`: the memory nodes the cgroup's tasks may allocate from.
    pub fn mems(&self) -> CgroupFile<CpuSet> {
        self.file("cpuset.mems", "memory nodes")
    }

    /// v1 `cpuset.effective_cpus`. Read only.
    pub fn effective_cpus_v1(&self) -> CgroupFile<CpuSet> {
        self.file("cpuset.effective_cpus", "effective CPUs")
    }

    /// v2 `cpuset.cpus.effective`. Read only.
    pub fn effective_cpus_v2(&self) -> CgroupFile<CpuSet> {
        self.file("cpuset.cpus.effective", "effective CPUs")
    }

    /// v1 `cpuset.cpu_exclusive`: no sibling cgroup may share these CPUs.
    pub fn cpu_exclusive(&self) -> CgroupFile<bool> {
        self.file("cpuset.cpu_exclusive", "CPU exclusivity")
    }

    /// v1 `cpuset.sched_load_balance`.
    pub fn sched_load_balance(&self) -> CgroupFile<bool> {
        self.file("cpuset.sched_load_balance", "load balancing")
    }

    /// v2 `cpuset.cpus.partition`.
    pub fn partition(&self) -> CgroupFile<Partition> {
        self.file("cpuset.cpus.partition", "partition type")
    }

    /// v2 `cgroup.subtree_control`, as far as the cpuset controller goes.
    pub fn subtree_cpuset(&self) -> CgroupFile<CpusetDistribution> {
        self.file("cgroup.subtree_control", "cpuset for the children")
    }

    /// v2 `cgroup.type`.
    pub fn kind(&self) -> CgroupFile<CgroupKind> {
        self.file("cgroup.type", "type")
    }

    fn file<V>(&self, name: &'static str, words: &'static str) -> CgroupFile<V> {
        CgroupFile {
            cgroup: self.clone(),
            name,
            words,
            value: PhantomData,
        }
    }
}

/// One file of a cgroup directory, holding a [`KernelValue`].
#[derive(Debug, Clone)]
pub struct CgroupFile<V> {
    cgroup: CgroupAt,
    name: &'static str,
    words: &'static str,
    value: PhantomData<fn() -> V>,
}

impl<V: KernelValue> KernelFile for CgroupFile<V> {
    type Value = V;

    fn path(&self) -> PathBuf {
        self.cgroup.dir.join(self.name)
    }

    fn object(&self) -> String {
        format!("{} of cgroup {}", self.words, self.cgroup.path)
    }

    fn parse(&self, text: &str) -> Result<V, String> {
        V::parse(text)
    }

    fn format(&self, value: &V) -> String {
        value.format()
    }
}

/// A v2 cpuset partition state, as `cpuset.cpus.partition` shows it. The kernel shows
/// `root invalid (reason)` or `isolated invalid (reason)` for a partition it had to give up
/// (its parent stopped being a partition root, its CPUs went away); such a cgroup is no
/// partition, but writing the requested type again asks the kernel to try once more, so the
/// invalid states are kept apart from [`Partition::Member`] and from the valid ones, and are
/// written (restored) as the type they request. Two states are equal when type and validity
/// agree: the reason is the kernel's commentary. Serialized as the text the kernel shows.
#[derive(Debug, Clone, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Partition {
    Member,
    Root,
    Isolated,
    InvalidRoot { reason: Option<String> },
    InvalidIsolated { reason: Option<String> },
}

impl Partition {
    /// True for a partition the kernel honours: a valid root or isolated partition.
    pub fn is_valid_partition(&self) -> bool {
        matches!(self, Partition::Root | Partition::Isolated)
    }

    fn requested(&self) -> &'static str {
        match self {
            Partition::Member => "member",
            Partition::Root | Partition::InvalidRoot { .. } => "root",
            Partition::Isolated | Partition::InvalidIsolated { .. } => "isolated",
        }
    }

    fn reason(&self) -> Option<&str> {
        match self {
            Partition::InvalidRoot { reason } | Partition::InvalidIsolated { reason } => {
                Some(reason.as_deref().unwrap_or(""))
            }
            _ => None,
        }
    }
}

impl PartialEq for Partition {
    fn eq(&self, other: &Partition) -> bool {
        self.requested() == other.requested() && self.reason().is_some() == other.reason().is_some()
    }
}

impl KernelValue for Partition {
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (head, reason) = match text.split_once(" (") {
            Some((head, rest)) => (head, rest.strip_suffix(')').map(str::to_owned)),
            None => (text, None),
        };
        match head {
            "member" => Ok(Partition::Member),
            "root" => Ok(Partition::Root),
            "isolated" => Ok(Partition::Isolated),
            "root invalid" => Ok(Partition::InvalidRoot { reason }),
            "isolated invalid" => Ok(Partition::InvalidIsolated { reason }),
            _ => Err("not member, root or isolated, valid or invalid".to_owned()),
        }
    }

    /// The type to write: an invalid partition is restored by requesting its type again.
    fn format(&self) -> String {
        self.requested().to_owned()
    }
}

impl fmt::Display for Partition {
    /// The text the kernel shows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.requested())?;
        match self.reason() {
            None => Ok(()),
            Some("") => f.write_str(" invalid"),
            Some(reason) => write!(f, " invalid ({reason})"),
        }
    }
}

impl TryFrom<String> for Partition {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Partition::parse(&text)
    }
}

impl std::str::FromStr for Partition {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        <Partition as KernelValue>::parse(text)
    }
}

impl From<Partition> for String {
    fn from(partition: Partition) -> String {
        partition.to_string()
    }
}

/// Whether `cpuset` is among the controllers a v2 cgroup gives its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpusetDistribution {
    Enabled,
    Disabled,
}

impl KernelValue for CpusetDistribution {
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

/// What `cgroup.type` says, as far as thread placement goes. `domain threaded` (a thread
/// root) and `domain invalid` read as [`CgroupKind::Domain`]: the kernel decides between
/// them, nobody writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupKind {
    Domain,
    Threaded,
}

impl KernelValue for CgroupKind {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::tests::round_trip;

    fn cgroup() -> CgroupAt {
        CgroupAt::new("/sys/fs/cgroup/nearnative/vm", "/nearnative/vm")
    }

    #[test]
    fn partition_states_keep_validity_and_write_the_requested_type() {
        let file = cgroup().partition();
        let cases = [
            ("member", "member\n", Partition::Member, "member"),
            ("valid root", "root\n", Partition::Root, "root"),
            ("isolated", "isolated\n", Partition::Isolated, "isolated"),
            (
                "invalid root, 6.x",
                "root invalid (Parent is not a partition root)\n",
                Partition::InvalidRoot { reason: None },
                "root",
            ),
            (
                "invalid isolated",
                "isolated invalid (Cpu list in cpuset.cpus not exclusive)\n",
                Partition::InvalidIsolated { reason: None },
                "isolated",
            ),
            (
                "invalid root, 5.x",
                "root invalid\n",
                Partition::InvalidRoot { reason: None },
                "root",
            ),
        ];
        for (what, text, value, written) in cases {
            let parsed = round_trip(&file, text, written);
            assert_eq!(parsed, value, "{what}");
            assert_eq!(
                parsed.to_string(),
                text.trim(),
                "{what}: shown as the kernel shows it"
            );
        }
        let invalid = file.parse("root invalid (Cpu list empty)").unwrap();
        assert!(!invalid.is_valid_partition());
        assert_ne!(invalid, Partition::Root, "an invalid root is not a root");
        assert_ne!(invalid, Partition::Member, "nor a member");
        assert!(file.parse("bogus").is_err());
        assert_eq!(file.object(), "partition type of cgroup /nearnative/vm");
    }

    #[test]
    fn partition_serializes_as_kernel_text_and_reads_old_journal_values() {
        let old: Partition = serde_json::from_str("\"root\"").unwrap();
        assert_eq!(old, Partition::Root);
        let invalid = Partition::InvalidRoot {
            reason: Some("Cpu list empty".to_owned()),
        };
        let json = serde_json::to_string(&invalid).unwrap();
        assert_eq!(json, "\"root invalid (Cpu list empty)\"");
        assert_eq!(serde_json::from_str::<Partition>(&json).unwrap(), invalid);
        assert!(serde_json::from_str::<Partition>("\"rooted\"").is_err());
    }

    #[test]
    fn v2_layout_files_read_as_the_kernel_shows_them() {
        let subtree = cgroup().subtree_cpuset();
        let distribution = [
            ("enabled among others", "cpu cpuset memory\n", "enabled"),
            ("absent", "cpu memory\n", "disabled"),
            ("empty", "\n", "disabled"),
            ("a longer name is not cpuset", "cpusetx\n", "disabled"),
        ];
        for (what, text, expected) in distribution {
            let parsed = subtree.parse(text).unwrap();
            assert_eq!(
                serde_json::to_value(parsed).unwrap(),
                serde_json::json!(expected),
                "{what}"
            );
        }
        assert_eq!(subtree.format(&CpusetDistribution::Enabled), "+cpuset");
        let kind = cgroup().kind();
        let kinds = [
            ("threaded", "threaded\n", Ok(CgroupKind::Threaded)),
            ("thread root", "domain threaded\n", Ok(CgroupKind::Domain)),
            ("invalid", "domain invalid\n", Ok(CgroupKind::Domain)),
            ("garbage", "weird\n", Err(())),
        ];
        for (what, text, expected) in kinds {
            assert_eq!(kind.parse(text).map_err(|_| ()), expected, "{what}");
        }
        assert_eq!(
            round_trip(&kind, "threaded", "threaded"),
            CgroupKind::Threaded
        );
        assert_eq!(
            kind.path(),
            PathBuf::from("/sys/fs/cgroup/nearnative/vm/cgroup.type")
        );
    }

    #[test]
    fn cpuset_files_round_trip() {
        let cpus = round_trip(&cgroup().cpus(), "0-1,4\n", "0-1,4");
        assert_eq!(cpus, CpuSet::from_ids([0, 1, 4]));
        assert!(round_trip(&cgroup().cpu_exclusive(), "1\n", "1"));
        assert_eq!(
            cgroup().mems().object(),
            "memory nodes of cgroup /nearnative/vm"
        );
    }
}
