//! Which live workloads the policies ask for: every instance of the host a policy's pattern
//! matches, with the ledger key and the plan request the engine would use for it.
//!
//! Pure over a [`Host`] already read: the reconcile loop compares the result with the ledger
//! (applied but no longer desired: revert; desired but not applied: apply).
//!
//! The rules (docs/daemon.md, "Policy files"):
//! - `vm:GLOB` matches a VM's name and yields `vm:NAME`; `process:GLOB` matches a user
//!   process's `comm` (or, with [`desired_with_exe`], its executable's basename) and yields
//!   `pid:PID`; `cgroup:/GLOB` matches a cgroup of the cpuset hierarchy that holds a live user
//!   thread and yields `cgroup:/PATH`. The keys are the engine's own (`ResolvedTarget::key`).
//! - An instance is desired only when each of its processes lies within the daemon's scope
//!   and the policy's scope (its `scope` option, else the daemon's).
//! - The first policy that matches an instance wins it (file-name order, then table order).
//!   An instance is never desired twice, and no process belongs to two desired instances: a
//!   later instance sharing a process with an earlier one (a VM inside a cgroup target, a VM
//!   that a `process:` glob also matches) is left out, since the engine would refuse it.
//! - A policy whose own scope lies outside the daemon's is skipped here; [`PolicySet::confine`]
//!   reports it.
//! - An applied cgroup target's threads live in cgroups the plan made, `nearnative-<id>-*`
//!   (next to it under v1 cpusets, below it under v2): they still count as the target's, so
//!   an applied cgroup stays desired; those cgroups themselves never match.

use std::collections::{BTreeMap, BTreeSet};

use glob::MatchOptions;
use nearnative_host::cgroup::{is_within, parent_of};
use nearnative_host::tasks::{Process, ProcessCgroup};
use nearnative_host::{Host, Root};
use nearnative_plan::{PlanRequest, Target, WorkloadId, WorkloadKey};

use crate::policy::{Policy, PolicySet, TargetPattern};

/// One instance a policy asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// The ledger key, as the engine derives it for `request.target`.
    pub key: WorkloadKey,
    pub request: PlanRequest,
    /// Index into `PolicySet::policies`.
    pub policy: usize,
}

/// The prefix of every cgroup the plans make.
const OWN_CGROUP: &str = "nearnative-";

/// Every live instance the policies match on `host`, restricted to `scope` (the daemon's
/// `--scope`, a cgroup path in the cpuset hierarchy; `None`: the whole host). Processes match
/// by `comm` alone; see [`desired_with_exe`].
pub fn desired(host: &Host, policies: &PolicySet, scope: Option<&str>) -> Vec<Desired> {
    desired_with_exe(host, policies, scope, &BTreeMap::new())
}

/// As [`desired`], with each process's executable basename by pid (`exe`, read by the
/// caller from `/proc/PID/exe`), which `process:` patterns also match: `comm` is cut at 15
/// bytes and a process may rename itself.
pub fn desired_with_exe(
    host: &Host,
    policies: &PolicySet,
    scope: Option<&str>,
    exe: &BTreeMap<u32, String>,
) -> Vec<Desired> {
    let mut claimed = Claims::default();
    let mut desired = Vec::new();
    for (index, policy) in policies.policies.iter().enumerate() {
        if policy.check_scope(scope).is_err() {
            continue;
        }
        let within = Scopes {
            daemon: scope,
            policy: policy.effective_scope(scope),
        };
        for instance in instances(host, &policy.target, exe) {
            if !within.holds(host, &instance.pids) || !claimed.take(&instance) {
                continue;
            }
            desired.push(Desired {
                key: instance.key,
                request: request(policy, instance.target, scope),
                policy: index,
            });
        }
    }
    desired
}

/// The executable's basename of each live user process (`/proc/PID/exe`), for
/// [`desired_with_exe`]; read only when a policy has a `process:` pattern. A process that
/// exits meanwhile, or whose link cannot be read, is left out: its `comm` still matches.
pub fn exe_names(root: &Root, host: &Host, policies: &PolicySet) -> BTreeMap<u32, String> {
    let wanted = policies
        .policies
        .iter()
        .any(|p| matches!(p.target, TargetPattern::Process(_)));
    if !wanted {
        return BTreeMap::new();
    }
    let processes = host.tasks.processes.iter();
    processes
        .filter(|p| is_live_user_process(p))
        .filter_map(|p| {
            let target = root.read_link(format!("/proc/{}/exe", p.pid)).ok()?;
            Some((p.pid, basename(&target.to_string_lossy())?))
        })
        .collect()
}

/// `redis-server` for `/usr/bin/redis-server`, and for `/usr/bin/redis-server (deleted)`,
/// as the kernel shows a binary replaced by an upgrade while it runs.
fn basename(target: &str) -> Option<String> {
    let path = target.strip_suffix(" (deleted)").unwrap_or(target);
    let name = path.rsplit('/').next().filter(|n| !n.is_empty())?;
    Some(name.to_owned())
}

fn request(policy: &Policy, target: Target, daemon_scope: Option<&str>) -> PlanRequest {
    let mut request = policy.request(target);
    if request.scope.is_none() {
        request.scope = daemon_scope.map(str::to_owned);
    }
    request
}

/// A concrete workload a pattern matched: its target, its key, and its processes.
struct Instance {
    key: WorkloadKey,
    target: Target,
    pids: Vec<u32>,
}

/// The keys and processes already given to an instance.
#[derive(Default)]
struct Claims {
    keys: BTreeSet<WorkloadKey>,
    pids: BTreeSet<u32>,
}

impl Claims {
    /// Claims `instance` unless its key or one of its processes is taken already.
    fn take(&mut self, instance: &Instance) -> bool {
        let taken = self.keys.contains(&instance.key)
            || instance.pids.iter().any(|pid| self.pids.contains(pid));
        if !taken {
            self.keys.insert(instance.key.clone());
            self.pids.extend(&instance.pids);
        }
        !taken
    }
}

/// The cgroups an instance must lie in.
struct Scopes<'s> {
    daemon: Option<&'s str>,
    policy: Option<&'s str>,
}

impl Scopes<'_> {
    fn holds(&self, host: &Host, pids: &[u32]) -> bool {
        [self.daemon, self.policy]
            .into_iter()
            .flatten()
            .all(|scope| pids.iter().all(|&pid| in_scope(host, pid, scope)))
    }
}

/// Whether process `pid` lies in cgroup `scope` or below it, in the hierarchy the plan reads
/// the scope in.
fn in_scope(host: &Host, pid: u32, scope: &str) -> bool {
    let cgroup = host.tasks.process(pid).and_then(|p| p.cgroup.as_ref());
    scope == "/"
        || cgroup.is_some_and(|cgroup| cgroup_in_scope(cgroup, scope_hierarchy(host, scope), scope))
}

/// Whether a process with cgroups `cgroup` lies in `scope` or below it, read in `hierarchy`.
pub fn cgroup_in_scope(cgroup: &ProcessCgroup, hierarchy: Hierarchy, scope: &str) -> bool {
    scope == "/" || path_in(cgroup, hierarchy).is_some_and(|path| is_within(path, scope))
}

/// Whether a process with cgroups `cgroup` could belong to an instance of the `cgroup:`
/// pattern `glob`: its cgroup, or one above it (a plan's own cgroups lie below the
/// target's), matches.
pub fn cgroup_could_match(
    cgroup: &ProcessCgroup,
    hierarchy: Hierarchy,
    glob: &glob::Pattern,
) -> bool {
    let mut path = path_in(cgroup, hierarchy);
    while let Some(current) = path {
        if glob.matches_with(current, path_options()) {
            return true;
        }
        path = parent_of(current);
    }
    false
}

/// Which of a process's cgroup paths a comparison uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hierarchy {
    CpusetV1,
    #[default]
    Unified,
}

/// The hierarchies a host reads cgroup paths in, kept from one read so that a single process
/// can be judged without reading the whole host again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hierarchies {
    /// Where `cgroup:` targets are resolved.
    pub targets: Hierarchy,
    /// Where the daemon's scope is read.
    pub scope: Hierarchy,
}

impl Hierarchies {
    pub fn of(host: &Host, scope: Option<&str>) -> Hierarchies {
        let targets = target_hierarchy(host);
        Hierarchies {
            targets,
            scope: scope.map_or(targets, |scope| scope_hierarchy(host, scope)),
        }
    }
}

fn cgroup_of(process: &Process, hierarchy: Hierarchy) -> Option<&str> {
    path_in(process.cgroup.as_ref()?, hierarchy)
}

fn path_in(cgroup: &ProcessCgroup, hierarchy: Hierarchy) -> Option<&str> {
    match hierarchy {
        Hierarchy::CpusetV1 => cgroup.cpuset_v1.as_deref(),
        Hierarchy::Unified => cgroup.unified.as_deref(),
    }
}

/// The hierarchy `cgroup:` targets are resolved in: v1 cpusets where the host has them.
fn target_hierarchy(host: &Host) -> Hierarchy {
    match host.isolation.cgroups.cpuset_version {
        Some(1) => Hierarchy::CpusetV1,
        _ => Hierarchy::Unified,
    }
}

/// The hierarchy a scope is read in: as the plan's scope does, a path beside v1 cpusets that
/// only the unified hierarchy has is a unified path.
fn scope_hierarchy(host: &Host, scope: &str) -> Hierarchy {
    let cgroups = &host.isolation.cgroups;
    let in_v1 = cgroups.cpusets.iter().any(|c| c.path == scope);
    match target_hierarchy(host) {
        Hierarchy::CpusetV1 if !in_v1 && cgroups.unified_mount.is_some() => Hierarchy::Unified,
        hierarchy => hierarchy,
    }
}

fn instances(host: &Host, pattern: &TargetPattern, exe: &BTreeMap<u32, String>) -> Vec<Instance> {
    match pattern {
        TargetPattern::Vm(glob) => vm_instances(host, glob),
        TargetPattern::Cgroup(glob) => cgroup_instances(host, glob),
        TargetPattern::Process(glob) => process_instances(host, glob, exe),
    }
}

/// Names match as whole strings, `*` included: a VM name may hold `/`.
fn name_options() -> MatchOptions {
    MatchOptions::new()
}

/// `*` stays within one cgroup path component, as in a shell.
fn path_options() -> MatchOptions {
    MatchOptions {
        require_literal_separator: true,
        ..MatchOptions::new()
    }
}

/// One instance per matching VM name; two VMs sharing a name are one instance (the engine
/// refuses it as ambiguous, which the loop reports).
fn vm_instances(host: &Host, glob: &glob::Pattern) -> Vec<Instance> {
    let mut by_name: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for workload in &host.workloads {
        if glob.matches_with(&workload.name, name_options()) {
            by_name
                .entry(&workload.name)
                .or_default()
                .push(workload.pid);
        }
    }
    by_name
        .into_iter()
        .map(|(name, pids)| Instance {
            key: WorkloadKey(format!("vm:{name}")),
            target: Target::Vm(name.to_owned()),
            pids,
        })
        .collect()
}

/// A process a `pid:` or `cgroup:` target may hold: alive, with no kernel thread.
fn is_live_user_process(process: &Process) -> bool {
    let live = process.threads.iter().any(|t| !t.has_exited());
    live && !process.threads.iter().any(|t| t.kind.is_kernel())
}

fn process_instances(
    host: &Host,
    glob: &glob::Pattern,
    exe: &BTreeMap<u32, String>,
) -> Vec<Instance> {
    let named = |process: &Process| {
        let exe = exe.get(&process.pid).map(String::as_str);
        [Some(process.comm.as_str()), exe]
            .into_iter()
            .flatten()
            .any(|name| glob.matches_with(name, name_options()))
    };
    host.tasks
        .processes
        .iter()
        .filter(|p| is_live_user_process(p) && named(p))
        .map(|p| Instance {
            key: WorkloadKey(format!("pid:{}", p.pid)),
            target: Target::Pid(p.pid),
            pids: vec![p.pid],
        })
        .collect()
}

/// The cgroups that match and hold a live user process, directly or (once applied) through
/// the cgroups their plan made.
fn cgroup_instances(host: &Host, glob: &glob::Pattern) -> Vec<Instance> {
    let hierarchy = target_hierarchy(host);
    let members: Vec<(&str, u32)> = host
        .tasks
        .processes
        .iter()
        .filter(|p| is_live_user_process(p))
        .filter_map(|p| Some((cgroup_of(p, hierarchy)?, p.pid)))
        .collect();
    let mut candidates: BTreeSet<&str> = members.iter().map(|(path, _)| *path).collect();
    candidates.extend(members.iter().filter_map(|(path, _)| parent_of(path)));
    if host.isolation.cgroups.cpuset_version.is_some() {
        let cpusets = host.isolation.cgroups.cpusets.iter();
        candidates.extend(cpusets.map(|c| c.path.as_str()));
    }
    candidates
        .into_iter()
        .filter(|path| !made_by_a_plan(path) && glob.matches_with(path, path_options()))
        .filter_map(|path| {
            let own = plan_cgroup_prefix(path);
            let belongs = |member: &str| member == path || in_plan_cgroup(member, &own);
            let pids: Vec<u32> = members
                .iter()
                .filter(|(member, _)| belongs(member))
                .map(|(_, pid)| *pid)
                .collect();
            (!pids.is_empty()).then(|| Instance {
                key: WorkloadKey(format!("cgroup:{path}")),
                target: Target::Cgroup(path.to_owned()),
                pids,
            })
        })
        .collect()
}

/// Whether `path` is, or lies in, a cgroup a plan made.
fn made_by_a_plan(path: &str) -> bool {
    path.split('/').any(|part| part.starts_with(OWN_CGROUP))
}

/// `nearnative-<id>-`: the start of the names of the cgroups the plan of `cgroup:PATH` makes.
fn plan_cgroup_prefix(path: &str) -> String {
    let id = WorkloadId::of(&WorkloadKey(format!("cgroup:{path}")));
    format!("{OWN_CGROUP}{id}-")
}

fn in_plan_cgroup(path: &str, prefix: &str) -> bool {
    path.split('/').any(|part| part.starts_with(prefix))
}
