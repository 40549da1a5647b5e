//! The fence, as messages to the runtime (pure: no I/O). A latency-sensitive container runs
//! on its exclusive cores and their memory nodes; every other container runs on the online
//! CPUs no latency-sensitive container holds, and gets the cores back when it goes.

use nearnative_host::CpuSet;
use thiserror::Error;

use crate::api::{ContainerAdjustment, ContainerUpdate, LinuxResources};

/// What a latency-sensitive container was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Its exclusive CPUs: whole cores, every online CPU of each.
    pub cpus: CpuSet,
    /// The NUMA nodes of those cores, for its memory.
    pub mems: CpuSet,
}

/// Fencing that would leave the other containers nowhere to run.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("the exclusive CPUs {exclusive} would leave none of the online CPUs {online} to the other containers")]
pub struct NoSharedCpu {
    pub exclusive: CpuSet,
    pub online: CpuSet,
}

/// The cpuset of every container that is not latency-sensitive: `online` without
/// `exclusive`. Never empty: a container with an empty cpuset cannot run (and the runtime
/// would read an empty list as "leave it be").
pub fn shared_cpus(online: &CpuSet, exclusive: &CpuSet) -> Result<CpuSet, NoSharedCpu> {
    let shared = online.difference(exclusive);
    if shared.is_empty() {
        return Err(NoSharedCpu {
            exclusive: exclusive.clone(),
            online: online.clone(),
        });
    }
    Ok(shared)
}

/// The adjustment of an admitted latency-sensitive container being created.
pub fn exclusive_adjustment(grant: &Grant) -> ContainerAdjustment {
    ContainerAdjustment::resources(exclusive_resources(grant))
}

/// The same, for a latency-sensitive container that already exists (adopted, or its
/// resources being updated by someone else).
pub fn exclusive_update(id: &str, grant: &Grant) -> ContainerUpdate {
    ContainerUpdate::resources(id, exclusive_resources(grant))
}

/// The adjustment of any other container being created, kept off the exclusive cores.
pub fn shared_adjustment(shared: &CpuSet) -> ContainerAdjustment {
    ContainerAdjustment::resources(shared_resources(shared))
}

/// The updates that move each of the existing containers `others` onto `shared`: the fence
/// when a latency-sensitive container arrives, the give-back when one goes.
///
/// Each may fail without failing the call that carries it: a container on its way out
/// cannot be updated, and that must not fail another container's creation.
pub fn shared_updates<'a>(
    others: impl IntoIterator<Item = &'a str>,
    shared: &CpuSet,
) -> Vec<ContainerUpdate> {
    others
        .into_iter()
        .map(|id| ContainerUpdate {
            ignore_failure: true,
            ..ContainerUpdate::resources(id, shared_resources(shared))
        })
        .collect()
}

fn exclusive_resources(grant: &Grant) -> LinuxResources {
    let mems = grant.mems.to_list();
    LinuxResources::cpuset(
        &grant.cpus.to_list(),
        Some(mems.as_str()).filter(|m| !m.is_empty()),
    )
}

/// Only the CPUs: other containers keep the memory nodes they have.
fn shared_resources(shared: &CpuSet) -> LinuxResources {
    LinuxResources::cpuset(&shared.to_list(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(list: &str) -> CpuSet {
        CpuSet::parse_list(list).unwrap()
    }

    fn cpu_of(resources: Option<&LinuxResources>) -> (String, String) {
        let cpu = resources.and_then(|r| r.cpu.as_ref()).unwrap();
        (cpu.cpus.clone(), cpu.mems.clone())
    }

    fn adjusted(adjustment: &ContainerAdjustment) -> (String, String) {
        cpu_of(adjustment.linux.as_ref().and_then(|l| l.resources.as_ref()))
    }

    fn updated(update: &ContainerUpdate) -> (String, String) {
        cpu_of(update.linux.as_ref().and_then(|l| l.resources.as_ref()))
    }

    fn pair(cpus: &str, mems: &str) -> (String, String) {
        (cpus.to_owned(), mems.to_owned())
    }

    #[test]
    fn the_shared_cpus_are_the_online_ones_no_one_holds() {
        assert_eq!(
            shared_cpus(&set("0-7"), &set("2-3,6")),
            Ok(set("0-1,4-5,7"))
        );
        assert_eq!(shared_cpus(&set("0-3"), &CpuSet::new()), Ok(set("0-3")));
        assert_eq!(
            shared_cpus(&set("0-3"), &set("8-9")),
            Ok(set("0-3")),
            "a held CPU gone offline changes nothing"
        );
    }

    #[test]
    fn fencing_every_online_cpu_is_refused_with_both_sets() {
        let err = shared_cpus(&set("0-1"), &set("0-1,4")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the exclusive CPUs 0-1,4 would leave none of the online CPUs 0-1 to the other containers"
        );
    }

    #[test]
    fn an_admitted_container_gets_its_cores_and_their_nodes() {
        let grant = Grant {
            cpus: set("2-3,10-11"),
            mems: set("0"),
        };
        assert_eq!(
            adjusted(&exclusive_adjustment(&grant)),
            pair("2-3,10-11", "0")
        );
        let update = exclusive_update("ls", &grant);
        assert_eq!(update.container_id, "ls");
        assert!(
            !update.ignore_failure,
            "its own pinning must not fail silently"
        );
        assert_eq!(updated(&update), pair("2-3,10-11", "0"));
    }

    #[test]
    fn a_grant_without_nodes_leaves_the_memory_nodes_be() {
        let grant = Grant {
            cpus: set("1"),
            mems: CpuSet::new(),
        };
        assert_eq!(adjusted(&exclusive_adjustment(&grant)), pair("1", ""));
    }

    #[test]
    fn other_containers_get_the_shared_cpus_and_keep_their_nodes() {
        let shared = set("0,2-3");
        assert_eq!(adjusted(&shared_adjustment(&shared)), pair("0,2-3", ""));
        let updates = shared_updates(["a", "b"], &shared);
        assert_eq!(
            updates
                .iter()
                .map(|u| (u.container_id.as_str(), updated(u), u.ignore_failure))
                .collect::<Vec<_>>(),
            [
                ("a", pair("0,2-3", ""), true),
                ("b", pair("0,2-3", ""), true)
            ]
        );
    }

    #[test]
    fn the_give_back_is_the_fence_of_the_larger_shared_set() {
        let online = set("0-3");
        let fenced = shared_cpus(&online, &set("1")).unwrap();
        let given_back = shared_cpus(&online, &CpuSet::new()).unwrap();
        assert_eq!(
            updated(&shared_updates(["p"], &fenced)[0]),
            pair("0,2-3", "")
        );
        assert_eq!(
            updated(&shared_updates(["p"], &given_back)[0]),
            pair("0-3", "")
        );
    }
}
