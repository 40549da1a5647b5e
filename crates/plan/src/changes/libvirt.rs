//! Exclusivity for a libvirt domain under cgroup v1 cpusets: pin through libvirt, never
//! around it.
//!
//! libvirt keeps each of a domain's threads in a child of the domain's cgroup (`vcpuN`,
//! `emulator`, `iothreadN`, see [`nearnative_host::libvirt`]) and writes their cpusets
//! itself. Moving the threads into cgroups of ours would leave libvirt's record of the
//! pinning wrong, and a cpuset changed behind its back stays until its next pin call. So the
//! threads stay where libvirt put them and are pinned with `libvirt_pin` steps (`virsh
//! vcpupin/emulatorpin/iothreadpin --live`), in an order where every write is legal and the
//! revert, which runs backwards, restores the exact values:
//! 1. the emulator to the housekeeping CPUs;
//! 2. a thread in a `vcpuN` cgroup that is not vCPU N (the per-VM `kvm-nx-lpage-recovery`
//!    worker, which kernel 6.x starts inside QEMU in vcpu0's cgroup) moves to the emulator
//!    cgroup: its affinity first, within vcpuN's CPUs, then the move;
//! 3. each vCPU to its CPU (or the pool);
//! 4. each iothread to the I/O CPUs (`--io dedicated`) or the housekeeping ones.
//!
//! The domain's own cgroups and the chain above it keep every CPU, so libvirt can still
//! start or restart domains pinned to the exclusive CPUs; the other domains' cgroups beside
//! the chain shrink as any other cgroup there does.

use std::collections::{BTreeMap, BTreeSet};

use nearnative_host::libvirt::{libvirt_child, LibvirtChild, LibvirtDomain};
use nearnative_host::CpuSet;
use nearnative_knob::exclusivity::cgroup::Hierarchy;
use nearnative_knob::exclusivity::libvirt::LibvirtPin;
use nearnative_knob::{CgroupMount, CgroupPath, Change};

use super::exclusivity::{cgroup, task_cgroup_step, Destination, MECHANISM};
use super::{Changes, Context};
use crate::decisions::Note;
use crate::scope::Scope;
use crate::target::{ResolvedTarget, ThreadRef};

/// libvirt's default connection, when the request names none.
pub const DEFAULT_URI: &str = "qemu:///system";

/// A target recognised as a libvirt domain: its cgroup, and each of its user threads with
/// the child cgroup it is in.
#[derive(Debug, Clone)]
pub struct Domain<'h> {
    pub cgroup: LibvirtDomain,
    pub threads: Vec<(ThreadRef<'h>, LibvirtChild)>,
}

/// The target is a libvirt domain when it is a VM and every user thread of it sits in a
/// child cgroup of one domain's cgroup, in the scope's hierarchy.
pub fn recognise<'h>(scope: &Scope, target: &ResolvedTarget<'h>) -> Option<Domain<'h>> {
    target.workload?;
    let threads = target
        .exclusive
        .iter()
        .chain(&target.io)
        .chain(&target.rest)
        .filter(|t| !t.task.kind.is_kernel());
    let mut domain: Option<LibvirtDomain> = None;
    let mut placed = Vec::new();
    for thread in threads {
        let path = scope.thread_cgroup_of(thread)?;
        let (found, child) = libvirt_child(path)?;
        match &domain {
            Some(known) if *known != found => return None,
            Some(_) => {}
            None => domain = Some(found),
        }
        placed.push((*thread, child));
    }
    Some(Domain {
        cgroup: domain?,
        threads: placed,
    })
}

/// The domain's cgroups as the host shows them: kept whole, like the chain above them.
pub(super) fn domain_cgroups(context: &Context, domain: &Domain) -> BTreeSet<String> {
    let dir = &domain.cgroup.dir;
    let inside = |path: &str| path == dir || path.starts_with(&format!("{dir}/"));
    let cpusets = &context.host.isolation.cgroups.cpusets;
    let mut kept: BTreeSet<String> = cpusets
        .iter()
        .map(|c| c.path.clone())
        .filter(|p| inside(p))
        .collect();
    kept.insert(dir.clone());
    kept
}

/// The steps, in the order the module doc gives; `placed` is where each target thread goes.
pub(super) fn pin(
    context: &Context,
    domain: &Domain,
    mount: &CgroupMount,
    hierarchy: &Hierarchy,
    placed: &[(ThreadRef, Destination)],
    out: &mut Changes,
) {
    let uri = context
        .request
        .libvirt_uri
        .clone()
        .unwrap_or_else(|| DEFAULT_URI.to_owned());
    let pins = Pins {
        context,
        domain: &domain.cgroup,
        mount,
        uri,
    };
    pins.push(LibvirtChild::Emulator, &context.housekeeping, out);
    let stray = domain
        .threads
        .iter()
        .filter(|(thread, child)| is_stray(context, thread, *child));
    for (thread, child) in stray {
        move_to_emulator(context, domain, hierarchy, thread, *child, out);
    }
    let mut wanted: BTreeMap<LibvirtChild, CpuSet> = BTreeMap::new();
    for (thread, child) in &domain.threads {
        let own = match child {
            LibvirtChild::Vcpu(_) => !is_stray(context, thread, *child),
            LibvirtChild::Iothread(_) => true,
            LibvirtChild::Emulator => false,
        };
        let destination = placed
            .iter()
            .find(|(t, _)| t.pid() == thread.pid() && t.tid() == thread.tid());
        if let (true, Some((_, destination))) = (own, destination) {
            wanted.insert(*child, destination.cpus.clone());
        }
    }
    // BTreeMap order: vCPUs before iothreads, each by index.
    for (child, cpus) in &wanted {
        pins.push(*child, cpus, out);
    }
}

/// What every pin of the domain shares.
struct Pins<'c> {
    context: &'c Context<'c>,
    domain: &'c LibvirtDomain,
    mount: &'c CgroupMount,
    uri: String,
}

impl Pins<'_> {
    fn push(&self, which: LibvirtChild, to: &CpuSet, out: &mut Changes) {
        let path = self.domain.child_path(which);
        let cpusets = &self.context.host.isolation.cgroups.cpusets;
        let Some(from) = cpusets
            .iter()
            .find(|c| c.path == path)
            .and_then(|c| c.cpus.clone())
        else {
            return;
        };
        let Some(cgroup) = cgroup(self.mount, &path, out) else {
            return;
        };
        let knob = LibvirtPin {
            uri: self.uri.clone(),
            domain_id: self.domain.id,
            domain: self.domain.name.clone(),
            which,
            cgroup,
        };
        let why = format!(
            "libvirt pins the {} of {} to {to} (virsh --live), so libvirt knows where it runs",
            which.dir_name(),
            self.context.target.key
        );
        out.push(
            Change {
                knob,
                from,
                to: to.clone(),
            },
            MECHANISM,
            why,
        );
    }
}

/// A thread in a `vcpuN` cgroup that is not vCPU N.
fn is_stray(context: &Context, thread: &ThreadRef, child: LibvirtChild) -> bool {
    let LibvirtChild::Vcpu(index) = child else {
        return false;
    };
    let vcpus = context.target.workload.map(|w| w.vcpus.as_slice());
    !vcpus
        .unwrap_or_default()
        .iter()
        .any(|v| v.index == index && v.thread.tid == thread.tid())
}

/// A stray thread leaves `from`, the vCPU's cgroup, for the emulator's, on the housekeeping
/// CPUs. The move alone places it: a v1 cpuset gives a task that joins it the cpuset's CPUs
/// (the emulator's were pinned to housekeeping just before), and the move back at revert
/// gives it the vCPU cgroup's CPUs again, as libvirt left them. An affinity step would fail
/// for a thread born after the vCPU was pinned (KVM starts kvm-nx-lpage-recovery when the
/// guest first runs): it sits on the exclusive CPU, and the kernel refuses an affinity
/// outside the cpuset a thread is in.
fn move_to_emulator(
    context: &Context,
    domain: &Domain,
    hierarchy: &Hierarchy,
    thread: &ThreadRef,
    from: LibvirtChild,
    out: &mut Changes,
) {
    let why = format!(
        "{} ({}) of {} runs in {}'s cgroup but is not that vCPU: it joins the emulator on \
         the housekeeping CPUs",
        thread.tid(),
        thread.task.comm,
        context.target.key,
        from.dir_name()
    );
    if thread.task.affinity_fixed {
        return;
    }
    let (Ok(from), Ok(to)) = (
        CgroupPath::try_from(domain.cgroup.child_path(from)),
        CgroupPath::try_from(domain.cgroup.child_path(LibvirtChild::Emulator)),
    ) else {
        out.note(Note::CgroupNotPlain {
            pid: thread.pid(),
            tid: thread.tid(),
            cgroup: domain.cgroup.child_path(from),
        });
        return;
    };
    task_cgroup_step(thread, hierarchy, from, to, why, out);
}
