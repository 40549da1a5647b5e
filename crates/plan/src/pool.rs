//! A pool (`--cores N`) as the plan reports it: the target threads that share N exclusive
//! whole cores, kubelet static-CPU-manager style, instead of a CPU each.

use nearnative_host::CpuSet;
use serde::{Deserialize, Serialize};

use crate::changes::{exclusivity, Context};
use crate::scope::Fencing;

/// Which threads share which CPUs. Every thread in `tids` gets affinity `cpus` and, under
/// cpuset fencing, moves into `cgroup`, whose `cpuset.cpus` is `cpus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// The whole cores of the pool (`--cores N`).
    pub cores: u32,
    /// The CPUs the threads may run on: one CPU of each core at level `high` (its siblings
    /// are the allocation's `reserved_idle`), every online CPU of each core at `high-ht`.
    pub cpus: CpuSet,
    /// The target threads that share them, by thread id, in the target's order.
    pub tids: Vec<u32>,
    /// The pool's cpuset, `SCOPE/nearnative-<id>-pool` (cgroup v2: a threaded child of the
    /// target's cgroup); `None` when thread affinity alone fences the CPUs.
    pub cgroup: Option<String>,
}

/// The pool of the plan in `context`, when the request asked for one.
pub(crate) fn pool(context: &Context) -> Option<Pool> {
    let allocation = context.allocation;
    let cores = allocation.request.cores?;
    let cgroup = match context.scope.fencing {
        Fencing::CpusetV1 { .. } | Fencing::CpusetV2 { .. } => {
            Some(exclusivity::cgroup_path(context, exclusivity::POOL))
        }
        Fencing::AffinityOnly { .. } => None,
    };
    Some(Pool {
        cores,
        cpus: allocation.thread_cpus(),
        tids: context.target.exclusive.iter().map(|t| t.tid()).collect(),
        cgroup,
    })
}
