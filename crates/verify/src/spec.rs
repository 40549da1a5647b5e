//! What to sample: the exclusive CPUs, the workload's own threads, the scope nearnative was
//! allowed to act in, and the cadence and bounds of the sampler.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use nearnative_host::cgroup::{self, parse_scope};
use nearnative_host::tasks::ProcessCgroup;
use nearnative_host::{CpuSet, Root};
use serde::{Deserialize, Serialize};

use crate::VerifyError;

/// The longest sample accepted: verify is a check, not a monitor.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Below this the sampler would spend more time reading /proc than the CPUs run.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(1);

/// What [`crate::sample`] measures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleSpec {
    /// The exclusive CPUs whose activity is sampled. Never empty.
    pub cpus: CpuSet,
    /// Thread ids of the workload itself (vCPU, I/O threads): never reported as foreign.
    pub targets: BTreeSet<u32>,
    /// Where nearnative was allowed to move threads; `None` means everywhere.
    pub scope: Option<Scope>,
    /// How often every candidate thread's CPU time is read.
    pub poll_interval: Duration,
    /// How often `/proc` is listed again for new threads and changed affinities.
    pub rescan_interval: Duration,
    /// At most this many candidate threads are followed, which bounds memory and the cost of
    /// a round; further ones are counted in [`crate::SamplerCost::threads_not_followed`].
    pub max_threads: usize,
}

impl SampleSpec {
    /// A spec with the default cadence: poll every 10 ms, list `/proc` every 250 ms.
    pub fn new(cpus: CpuSet) -> Self {
        SampleSpec {
            cpus,
            targets: BTreeSet::new(),
            scope: None,
            poll_interval: Duration::from_millis(10),
            rescan_interval: Duration::from_millis(250),
            max_threads: 65_536,
        }
    }

    /// Refuses a spec the sampler cannot honour, naming the field.
    pub fn check(&self, duration: Duration) -> Result<(), VerifyError> {
        let refuse = |reason: String| Err(VerifyError::InvalidSpec { reason });
        if self.cpus.is_empty() {
            return refuse("the set of exclusive CPUs is empty".to_owned());
        }
        if duration.is_zero() || duration > MAX_DURATION {
            return refuse(format!(
                "sample duration {duration:?} is not within (0, {MAX_DURATION:?}]"
            ));
        }
        if self.poll_interval < MIN_POLL_INTERVAL {
            return refuse(format!(
                "poll interval {:?} is below {MIN_POLL_INTERVAL:?}",
                self.poll_interval
            ));
        }
        if self.rescan_interval < self.poll_interval {
            return refuse(format!(
                "rescan interval {:?} is shorter than the poll interval {:?}",
                self.rescan_interval, self.poll_interval
            ));
        }
        if self.max_threads == 0 {
            return refuse("max_threads is 0".to_owned());
        }
        Ok(())
    }
}

/// The part of the host nearnative was allowed to act in (`--scope cgroup:PATH`). Threads
/// outside it may run on the exclusive CPUs without failing the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// A cgroup path relative to its hierarchy's mount point (`/vms/web1`), matched against
    /// a thread's cgroup v1 cpuset path and its cgroup v2 path; descendants are inside.
    Cgroup(String),
}

/// Where the hierarchies a scope is matched against are mounted: cgroup v2 alone, or v1's
/// cpuset next to the v2 `unified` mount.
pub const CGROUP_MOUNTS: &[&str] = &[
    "/sys/fs/cgroup",
    "/sys/fs/cgroup/cpuset",
    "/sys/fs/cgroup/unified",
];

impl Scope {
    /// Refuses a scope whose cgroup exists in no hierarchy under `root`: a misspelt scope
    /// would put every thread outside it, and the verdict would pass on nothing.
    pub fn check_exists(&self, root: &Root) -> Result<(), VerifyError> {
        let Scope::Cgroup(path) = self;
        let relative = path.trim_start_matches('/');
        if CGROUP_MOUNTS
            .iter()
            .any(|mount| root.exists(format!("{mount}/{relative}")))
        {
            return Ok(());
        }
        Err(VerifyError::InvalidScope {
            text: self.to_string(),
            reason: format!("no such cgroup under {}", CGROUP_MOUNTS.join(", ")),
        })
    }

    /// True when a thread in `cgroup` lies inside the scope.
    pub fn contains(&self, cgroup: &ProcessCgroup) -> bool {
        let Scope::Cgroup(scope) = self;
        [&cgroup.cpuset_v1, &cgroup.unified]
            .into_iter()
            .flatten()
            .any(|path| is_within(path, scope))
    }
}

/// `path` is `scope` or below it; a trailing `/` on the scope is ignored.
fn is_within(path: &str, scope: &str) -> bool {
    match scope.trim_end_matches('/') {
        "" => true,
        scope => cgroup::is_within(path, scope),
    }
}

impl FromStr for Scope {
    type Err = VerifyError;

    /// Parses `cgroup:/PATH` ([`parse_scope`]).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let path = parse_scope(text).map_err(|e| VerifyError::InvalidScope {
            text: e.text,
            reason: e.reason.to_owned(),
        })?;
        Ok(Scope::Cgroup(path))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Scope::Cgroup(path) = self;
        write!(f, "cgroup:{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cgroup(cpuset_v1: Option<&str>, unified: Option<&str>) -> ProcessCgroup {
        ProcessCgroup {
            cpuset_v1: cpuset_v1.map(str::to_owned),
            unified: unified.map(str::to_owned),
        }
    }

    #[test]
    fn scope_contains_the_cgroup_and_its_descendants() {
        let scope: Scope = "cgroup:/vms/web1".parse().unwrap();
        let cases = [
            ("same v1 cpuset", cgroup(Some("/vms/web1"), None), true),
            ("child in v2", cgroup(None, Some("/vms/web1/vcpu0")), true),
            ("sibling prefix", cgroup(Some("/vms/web10"), None), false),
            ("parent", cgroup(Some("/vms"), Some("/")), false),
            ("nothing known", cgroup(None, None), false),
        ];
        for (what, cgroup, expected) in cases {
            assert_eq!(scope.contains(&cgroup), expected, "{what}");
        }
        let root: Scope = "cgroup:/".parse().unwrap();
        assert!(root.contains(&cgroup(Some("/any"), None)));
    }

    #[test]
    fn bad_scopes_are_refused_with_the_reason() {
        let cases = [
            ("no kind", "/vms", "expected cgroup:/PATH"),
            ("relative", "cgroup:vms", "expected cgroup:/PATH"),
            ("escapes", "cgroup:/a/../b", "has a .. component"),
        ];
        for (what, text, reason) in cases {
            let err = text.parse::<Scope>().unwrap_err().to_string();
            assert!(err.contains(reason) && err.contains(text), "{what}: {err}");
        }
        assert_eq!(
            "cgroup:/x".parse::<Scope>().unwrap().to_string(),
            "cgroup:/x"
        );
    }

    #[test]
    fn a_scope_must_name_an_existing_cgroup() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sys/fs/cgroup/cpuset/vms/web1")).unwrap();
        let root = Root::new(dir.path());
        let exists: Scope = "cgroup:/vms/web1".parse().unwrap();
        assert!(exists.check_exists(&root).is_ok());
        let typo: Scope = "cgroup:/vms/web2".parse().unwrap();
        let err = typo.check_exists(&root).unwrap_err().to_string();
        assert!(
            err.contains("cgroup:/vms/web2") && err.contains("no such cgroup"),
            "{err}"
        );
    }

    #[test]
    fn specs_are_checked() {
        let good = SampleSpec::new(CpuSet::from_ids([1]));
        let second = Duration::from_secs(1);
        assert!(good.check(second).is_ok());
        let cases = [
            ("no CPUs", SampleSpec::new(CpuSet::new()), second, "empty"),
            ("zero duration", good.clone(), Duration::ZERO, "duration"),
            ("too long", good.clone(), MAX_DURATION * 2, "duration"),
            (
                "tiny poll interval",
                SampleSpec {
                    poll_interval: Duration::from_micros(10),
                    ..good.clone()
                },
                second,
                "poll interval",
            ),
            (
                "rescan faster than poll",
                SampleSpec {
                    rescan_interval: Duration::from_millis(1),
                    ..good.clone()
                },
                second,
                "rescan interval",
            ),
            (
                "no threads",
                SampleSpec {
                    max_threads: 0,
                    ..good.clone()
                },
                second,
                "max_threads",
            ),
        ];
        for (what, spec, duration, needle) in cases {
            let err = spec.check(duration).unwrap_err().to_string();
            assert!(err.contains(needle), "{what}: {err}");
        }
    }
}
