//! The cpuset rules the kernel enforces and the tree backend does not play, checked over a
//! plan's steps in apply order and then in revert order (backwards, each step undone): a
//! thread's new affinity must lie within the CPUs of the cpuset it is in at that moment
//! (`sched_setaffinity` keeps only those, and fails with EINVAL when none is left), and a v1
//! cpuset's CPUs must lie within its parent's and hold its children's (EACCES otherwise).
//! A plan that shrinks a target's own cgroup before pinning the target's threads fails here.

use std::collections::{BTreeMap, BTreeSet};

use nearnative_host::{CpuSet, Host};
use nearnative_knob::exclusivity::cgroup::Presence;
use nearnative_knob::exclusivity::cgroup_v2::CgroupKind;
use nearnative_knob::Step;
use nearnative_plan::{Fencing, Plan};

/// Where each thread is and what each cpuset holds, as the kernel would see them.
struct Kernel {
    v2: bool,
    online: CpuSet,
    /// `cpuset.cpus` of each cgroup (v2: empty inherits the parent's).
    cpus: BTreeMap<String, CpuSet>,
    threaded: BTreeSet<String>,
    /// tid → (pid, cgroup).
    threads: BTreeMap<u32, (u32, String)>,
}

/// Checks `plan`'s steps against the kernel's cpuset rules, applied and then reverted.
pub fn check(host: &Host, plan: &Plan) -> Result<(), String> {
    let v2 = match &plan.scope.fencing {
        Fencing::CpusetV1 { .. } => false,
        Fencing::CpusetV2 { .. } => true,
        Fencing::AffinityOnly { .. } => return Ok(()),
    };
    let mut kernel = Kernel::of(host, v2);
    let steps = plan.steps();
    for (i, step) in steps.iter().enumerate() {
        kernel
            .take(step, true)
            .map_err(|e| format!("apply step {i} ({}): {e}", step.describe()))?;
    }
    for (i, step) in steps.iter().enumerate().rev() {
        kernel
            .take(step, false)
            .map_err(|e| format!("revert of step {i} ({}): {e}", step.describe()))?;
    }
    Ok(())
}

impl Kernel {
    fn of(host: &Host, v2: bool) -> Kernel {
        let cpus = host.isolation.cgroups.cpusets.iter();
        let cpus = cpus.map(|c| (c.path.clone(), c.cpus.clone().unwrap_or_default()));
        let mut threads = BTreeMap::new();
        for process in &host.tasks.processes {
            for task in &process.threads {
                let cgroup = process.cgroup_of(task).and_then(|c| match v2 {
                    true => c.unified.clone(),
                    false => c.cpuset_v1.clone(),
                });
                if let Some(cgroup) = &cgroup {
                    threads.insert(task.tid, (process.pid, cgroup.clone()));
                }
            }
        }
        Kernel {
            v2,
            online: host.topology.online.clone(),
            cpus: cpus.collect(),
            threaded: BTreeSet::new(),
            threads,
        }
    }

    /// Takes `step` forward (apply) or backward (its revert).
    fn take(&mut self, step: &Step, forward: bool) -> Result<(), String> {
        match step {
            Step::CgroupDir(c) => {
                let path = c.knob.cgroup.path.to_string();
                match pick(forward, c.from, c.to) {
                    Presence::Present => self.make(path),
                    Presence::Absent => self.remove(&path),
                }
            }
            Step::CgroupType(c) if pick(forward, c.from, c.to) == CgroupKind::Threaded => {
                self.threaded.insert(c.knob.cgroup.path.to_string());
                Ok(())
            }
            Step::CpusetCpus(c) => {
                let path = c.knob.cgroup.path.to_string();
                self.set_cpus(path, pick(forward, &c.from, &c.to).clone())
            }
            Step::TaskCgroup(c) => {
                let to = pick(forward, &c.from, &c.to).to_string();
                self.move_task(c.knob.pid, c.knob.tid, to);
                Ok(())
            }
            Step::ThreadAffinity(c) => self.pin(c.knob.tid, pick(forward, &c.from, &c.to)),
            // libvirt writes the child cgroup's CPUs, then its threads' affinity to them.
            Step::LibvirtPin(c) => {
                let path = c.knob.cgroup.path.to_string();
                self.set_cpus(path, pick(forward, &c.from, &c.to).clone())
            }
            _ => Ok(()),
        }
    }

    fn make(&mut self, path: String) -> Result<(), String> {
        match self.cpus.insert(path.clone(), CpuSet::new()) {
            Some(_) => Err(format!("cgroup {path} exists already")),
            None => Ok(()),
        }
    }

    fn remove(&mut self, path: &str) -> Result<(), String> {
        let busy = self.threads.values().any(|(_, c)| c == path);
        if busy || self.children(path).next().is_some() {
            return Err(format!("cgroup {path} still holds tasks or children"));
        }
        self.cpus.remove(path);
        self.threaded.remove(path);
        Ok(())
    }

    fn children<'s>(&'s self, path: &'s str) -> impl Iterator<Item = (&'s String, &'s CpuSet)> {
        self.cpus
            .iter()
            .filter(move |(c, _)| parent(c) == Some(path))
    }

    fn set_cpus(&mut self, path: String, to: CpuSet) -> Result<(), String> {
        if !self.v2 {
            let parent = parent(&path).and_then(|p| self.cpus.get(p).map(|c| (p, c)));
            if let Some((parent, cpus)) = parent.filter(|(_, cpus)| !to.is_subset(cpus)) {
                return Err(format!("CPUs {to} of {path} not within {parent}'s {cpus}"));
            }
            let child = self.children(&path).find(|(_, c)| !c.is_subset(&to));
            if let Some((child, cpus)) = child {
                return Err(format!(
                    "{path} to {to} would leave out child {child}'s {cpus}"
                ));
            }
        }
        self.cpus.insert(path, to);
        Ok(())
    }

    /// A v1 move, or a v2 move into a threaded cgroup, takes the thread; any other v2 move
    /// goes through `cgroup.procs` and takes its whole process.
    fn move_task(&mut self, pid: u32, tid: u32, to: String) {
        let whole = self.v2 && !self.threaded.contains(&to);
        for (thread, (owner, cgroup)) in self.threads.iter_mut() {
            if *thread == tid || (whole && *owner == pid) {
                *cgroup = to.clone();
            }
        }
    }

    fn pin(&self, tid: u32, to: &CpuSet) -> Result<(), String> {
        let Some((_, cgroup)) = self.threads.get(&tid) else {
            return Ok(());
        };
        let allowed = self.effective(cgroup);
        match to.is_subset(&allowed) {
            true => Ok(()),
            false => Err(format!(
                "thread {tid} in {cgroup} (CPUs {allowed}) cannot be pinned to {to}"
            )),
        }
    }

    /// The CPUs a cgroup's tasks may use: v1 its own, v2 those of every non-empty
    /// `cpuset.cpus` from the root down to it.
    fn effective(&self, cgroup: &str) -> CpuSet {
        if !self.v2 {
            return self.cpus.get(cgroup).cloned().unwrap_or_default();
        }
        let mut allowed = self.online.clone();
        let mut at = Some(cgroup);
        while let Some(path) = at {
            if let Some(cpus) = self.cpus.get(path).filter(|c| !c.is_empty()) {
                allowed = allowed.intersection(cpus);
            }
            at = parent(path);
        }
        allowed
    }
}

/// A step's value after it is taken: its target, or its prior value when reverted.
fn pick<T>(forward: bool, from: T, to: T) -> T {
    match forward {
        true => to,
        false => from,
    }
}

fn parent(path: &str) -> Option<&str> {
    match path.rsplit_once('/') {
        _ if path == "/" => None,
        Some(("", _)) => Some("/"),
        Some((parent, _)) => Some(parent),
        None => None,
    }
}
