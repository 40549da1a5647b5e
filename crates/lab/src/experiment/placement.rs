//! Where the measured threads run: read back from the kernel after the latency-sensitive
//! apply (each thread's affinity), then used unchanged by the pinned configuration (the same
//! CPUs by affinity alone), so both measure on the same CPU numbers and only the rest of the
//! protection differs. The default configuration leaves the threads where the scheduler puts
//! them; its jitter run still measures the same CPU.
//!
//! The wait strategy follows the placement: with a core of its own, each end spins on its
//! socket (the wake-up leaves every round trip); when client and server share one CPU, as on
//! a 2-CPU host where only one core can be exclusive, both block, since a spinner would keep
//! the other end off the CPU until the scheduler preempts it. The default configuration
//! always blocks, as an untuned application does.

use nearnative_host::CpuSet;
use nearnative_plan::{Fencing, Plan};
use nearnative_probe::rtt::Wait;
use nearnative_sys::pin;
use nix::errno::Errno;

use crate::report::Config;

#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("cannot read the affinity of thread {tid}")]
    Read {
        tid: u32,
        #[source]
        source: Errno,
    },
    #[error("cannot pin thread {tid} to CPUs {cpus}")]
    Write {
        tid: u32,
        cpus: CpuSet,
        #[source]
        source: Errno,
    },
    #[error("after the apply, thread {tid} ({name}) may run on CPUs {cpus}, not only on the exclusive CPUs {exclusive}")]
    NotExclusive {
        tid: u32,
        name: &'static str,
        cpus: CpuSet,
        exclusive: CpuSet,
    },
}

/// The lab's measured threads, by thread id.
#[derive(Debug, Clone)]
pub struct Measured {
    pub client: u32,
    pub server: u32,
    /// One per tap path.
    pub forwarders: Vec<u32>,
}

impl Measured {
    /// Every measured thread, as the apply's `threads` takes them.
    pub fn tids(&self) -> Vec<u32> {
        let mut tids = vec![self.client, self.server];
        tids.extend(&self.forwarders);
        tids
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub client: CpuSet,
    pub server: CpuSet,
    /// One per tap forwarder, in [`Measured::forwarders`] order.
    pub forwarders: Vec<CpuSet>,
    /// The CPUs the apply made exclusive.
    pub exclusive: CpuSet,
    /// The scope's other CPUs, where everything else of the lab ran.
    pub housekeeping: CpuSet,
    /// `Some(n)`: the threads share a pool of n whole cores; `None`: a CPU each.
    pub pool: Option<u32>,
    /// How the plan kept everything else off the exclusive CPUs, in words.
    pub fencing: String,
}

impl Placement {
    /// The CPUs each measured thread may run on now that `plan` is applied; every one must
    /// lie within the plan's exclusive CPUs.
    pub fn read(measured: &Measured, plan: &Plan) -> Result<Placement, PlacementError> {
        let exclusive = plan.allocation.exclusive_cpus.clone();
        let checked = |tid: u32, name: &'static str| {
            let cpus = thread_affinity(tid)?;
            match !cpus.is_empty() && cpus.is_subset(&exclusive) {
                true => Ok(cpus),
                false => Err(PlacementError::NotExclusive {
                    tid,
                    name,
                    cpus,
                    exclusive: exclusive.clone(),
                }),
            }
        };
        Ok(Placement {
            client: checked(measured.client, "client")?,
            server: checked(measured.server, "server")?,
            forwarders: measured
                .forwarders
                .iter()
                .map(|&tid| checked(tid, "tap forwarder"))
                .collect::<Result<_, _>>()?,
            housekeeping: plan.scope.cpus.difference(&exclusive),
            exclusive,
            pool: plan.pool.as_ref().map(|pool| pool.cores),
            fencing: fencing_named(&plan.scope.fencing),
        })
    }

    /// True when two measured threads may run on the same CPU.
    pub fn shared(&self) -> bool {
        let sets: Vec<&CpuSet> = self.sets().collect();
        sets.iter()
            .enumerate()
            .any(|(i, a)| sets[i + 1..].iter().any(|b| !a.is_disjoint(b)))
    }

    /// Where the threads go when no latency-sensitive session ran (`--configs` without it):
    /// every measured thread on the highest online CPU, the rest housekeeping, as the planner
    /// places them on a 2-CPU host.
    pub fn unplanned(measured: &Measured, online: &CpuSet) -> Option<Placement> {
        let last = CpuSet::from_ids([online.iter().last()?]);
        Some(Placement {
            client: last.clone(),
            server: last.clone(),
            forwarders: vec![last.clone(); measured.forwarders.len()],
            housekeeping: online.difference(&last),
            exclusive: last,
            pool: None,
            fencing: "nothing (no latency-sensitive session ran)".to_owned(),
        })
    }

    /// The CPUs the client pins itself to in `config`; `None`: it stays unpinned.
    pub fn client_cpus(&self, config: Config) -> Option<CpuSet> {
        (config != Config::Default).then(|| self.client.clone())
    }

    /// The CPUs the server pins itself to in `config`; `None`: it stays unpinned.
    pub fn server_cpus(&self, config: Config) -> Option<CpuSet> {
        (config != Config::Default).then(|| self.server.clone())
    }

    /// How client and server wait for a message in `config`.
    pub fn wait(&self, config: Config) -> Wait {
        match config {
            Config::LatencySensitive if !self.shared() => Wait::Spin,
            _ => Wait::Block,
        }
    }

    /// The CPU the jitter run measures: the client's (its first, in a pool).
    pub fn jitter_cpu(&self) -> u32 {
        self.client.first().unwrap_or_default()
    }

    /// Pins the tap forwarders to their CPUs (the client and server pin themselves per run).
    pub fn pin_forwarders(&self, measured: &Measured) -> Result<(), PlacementError> {
        for (&tid, cpus) in measured.forwarders.iter().zip(&self.forwarders) {
            set_thread_affinity(tid, cpus)?;
        }
        Ok(())
    }

    /// Lets every measured thread run on any of `online`, as a thread of an untuned process
    /// may: an earlier pinned run or the revert of an apply may have left them pinned.
    pub fn unpin(measured: &Measured, online: &CpuSet) -> Result<(), PlacementError> {
        measured
            .tids()
            .into_iter()
            .try_for_each(|tid| set_thread_affinity(tid, online))
    }

    /// The placement and waits in words, for the report.
    pub fn describe(&self) -> String {
        let wait = |config| match self.wait(config) {
            Wait::Block => "blocking waits",
            _ => "spinning waits",
        };
        let threads = match self.forwarders.is_empty() {
            true => "client and server",
            false => "client, server and tap forwarder",
        };
        let where_ = match (self.shared(), self.pool) {
            (true, Some(cores)) => format!(
                "{threads} share exclusive {} ({})",
                cpus_named(&self.exclusive),
                count(cores, "whole core", "whole cores")
            ),
            (true, None) => format!("{threads} share exclusive {}", cpus_named(&self.exclusive)),
            (false, _) => {
                let mut each = format!(
                    "client on exclusive {}, server on {}",
                    cpus_named(&self.client),
                    cpus_named(&self.server)
                );
                for cpus in &self.forwarders {
                    each.push_str(&format!(", tap forwarder on {}", cpus_named(cpus)));
                }
                each
            }
        };
        let why_block = match self.shared() {
            true => " (spinners sharing a CPU would starve each other)",
            false => "",
        };
        format!(
            "latency-sensitive: {where_}, {} housekeeping, fenced by {}, {}{why_block}; \
             pinned: the same CPUs by affinity alone, {}; default: unpinned, {}",
            cpus_named(&self.housekeeping),
            self.fencing,
            wait(Config::LatencySensitive),
            wait(Config::Pinned),
            wait(Config::Default),
        )
    }

    fn sets(&self) -> impl Iterator<Item = &CpuSet> {
        [&self.client, &self.server]
            .into_iter()
            .chain(&self.forwarders)
    }
}

/// How `fencing` keeps other threads off the exclusive CPUs, in words.
pub fn fencing_named(fencing: &Fencing) -> String {
    match fencing {
        Fencing::CpusetV1 { .. } => "cgroup v1 cpusets".to_owned(),
        Fencing::CpusetV2 { thread_root, .. } => {
            format!("cgroup v2 cpusets (threaded cgroups under {thread_root})")
        }
        Fencing::AffinityOnly { why } => format!(
            "thread affinity alone ({why}; threads started later by processes outside the \
             plan are not fenced)"
        ),
    }
}

/// `CPU 1` or `CPUs 2-3`.
pub(super) fn cpus_named(cpus: &CpuSet) -> String {
    match cpus.len() {
        1 => format!("CPU {cpus}"),
        _ => format!("CPUs {cpus}"),
    }
}

/// `1 whole core`, `2 whole cores`.
fn count(n: u32, one: &str, many: &str) -> String {
    match n {
        1 => format!("1 {one}"),
        _ => format!("{n} {many}"),
    }
}

/// The CPUs thread `tid` may run on.
pub fn thread_affinity(tid: u32) -> Result<CpuSet, PlacementError> {
    pin::thread_affinity(tid).map_err(|source| PlacementError::Read { tid, source })
}

/// Restricts this process's thread `tid` to `cpus`.
fn set_thread_affinity(tid: u32, cpus: &CpuSet) -> Result<(), PlacementError> {
    pin::set_thread_affinity(tid, cpus).map_err(|source| PlacementError::Write {
        tid,
        cpus: cpus.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpus(list: &str) -> CpuSet {
        list.parse().unwrap()
    }

    fn placement(client: &str, server: &str, forwarders: &[&str], pool: Option<u32>) -> Placement {
        Placement {
            client: cpus(client),
            server: cpus(server),
            forwarders: forwarders.iter().map(|f| cpus(f)).collect(),
            exclusive: cpus(client).union(&cpus(server)),
            housekeeping: cpus("0"),
            pool,
            fencing: "cgroup v1 cpusets".to_owned(),
        }
    }

    #[test]
    fn waits_block_when_threads_share_a_cpu_and_spin_with_a_core_each() {
        let cases = [
            ("2-CPU pool", placement("1", "1", &[], Some(1)), true),
            (
                "pool with forwarder",
                placement("1", "1", &["1"], Some(1)),
                true,
            ),
            ("a core each", placement("2", "3", &[], None), false),
            (
                "forwarder on the client's CPU",
                placement("2", "3", &["2"], None),
                true,
            ),
            (
                "forwarder on its own",
                placement("2", "3", &["4"], None),
                false,
            ),
        ];
        for (what, placement, shared) in cases {
            assert_eq!(placement.shared(), shared, "{what}");
            let ls = placement.wait(Config::LatencySensitive);
            assert_eq!(ls == Wait::Block, shared, "{what}");
            assert_eq!(placement.wait(Config::Default), Wait::Block, "{what}");
            assert_eq!(placement.wait(Config::Pinned), Wait::Block, "{what}");
        }
    }

    #[test]
    fn only_default_leaves_client_and_server_unpinned() {
        let placement = placement("1", "1", &[], Some(1));
        assert_eq!(placement.client_cpus(Config::Default), None);
        assert_eq!(placement.server_cpus(Config::Default), None);
        for config in [Config::Pinned, Config::LatencySensitive] {
            assert_eq!(placement.client_cpus(config), Some(cpus("1")));
            assert_eq!(placement.server_cpus(config), Some(cpus("1")));
        }
    }

    #[test]
    fn without_an_apply_the_threads_go_to_the_last_online_cpu() {
        let measured = Measured {
            client: 1,
            server: 2,
            forwarders: vec![3],
        };
        let got = Placement::unplanned(&measured, &cpus("0-3")).unwrap();
        assert_eq!(got.client, cpus("3"));
        assert_eq!(got.forwarders, [cpus("3")]);
        assert_eq!(got.housekeeping, cpus("0-2"));
        assert!(Placement::unplanned(&measured, &CpuSet::default()).is_none());
    }

    #[test]
    fn names_each_fencing() {
        let cases = [
            (
                "v1",
                Fencing::CpusetV1 {
                    mount: "/sys/fs/cgroup/cpuset".into(),
                },
                "cgroup v1 cpusets",
            ),
            (
                "v2",
                Fencing::CpusetV2 {
                    mount: "/sys/fs/cgroup".into(),
                    thread_root: "/nearnative-lab-1aa".into(),
                },
                "cgroup v2 cpusets (threaded cgroups under /nearnative-lab-1aa)",
            ),
            (
                "affinity",
                Fencing::AffinityOnly {
                    why: "no cpuset".into(),
                },
                "thread affinity alone (no cpuset; threads started later by processes outside \
                 the plan are not fenced)",
            ),
        ];
        for (what, fencing, want) in cases {
            assert_eq!(fencing_named(&fencing), want, "{what}");
        }
    }

    #[test]
    fn describes_the_placement_and_the_waits() {
        let shared = placement("1", "1", &["1"], Some(1)).describe();
        assert_eq!(
            shared,
            "latency-sensitive: client, server and tap forwarder share exclusive CPU 1 \
             (1 whole core), CPU 0 housekeeping, fenced by cgroup v1 cpusets, blocking waits \
             (spinners sharing a CPU \
             would starve each other); pinned: the same CPUs by affinity alone, blocking \
             waits; default: unpinned, blocking waits"
        );
        let own = placement("2", "3", &[], None).describe();
        assert!(
            own.contains("client on exclusive CPU 2, server on CPU 3"),
            "{own}"
        );
        assert!(own.contains("spinning waits; pinned"), "{own}");
    }

    #[test]
    fn reads_this_threads_affinity() {
        let tid = nix::unistd::gettid().as_raw().unsigned_abs();
        assert!(!thread_affinity(tid).unwrap().is_empty());
    }
}
