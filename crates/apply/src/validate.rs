//! Checking a journal read back from disk against what nearnative could have written into it,
//! before `revert` writes anything from it.
//!
//! The owner and mode checks of [`nearnative_sys::trust`] are the defence against a planted journal;
//! this is the second line, for one that gets past them (a restored backup, a hand edit): it
//! keeps every write on nearnative's own kind of objects. A cgroup must sit in a cgroup
//! hierarchy this host has mounted (its mount table, read through the backend's root), with a
//! controller the step needs; a cgroup nearnative removes on revert must bear its
//! `nearnative-` name; CPU lists must be non-empty where a thread or IRQ needs a CPU and within
//! the CPUs the host can have; thread ids are never 0; scheduling values are within the
//! kernel's ranges, and the target of a policy step is SCHED_FIFO, the only one the planner
//! sets. Values that a real journal may hold (a thread that was already SCHED_FIFO 99) pass:
//! telling them from a forged one is the owner check's job.

use nearnative_host::cpus::possible_cpus;
use nearnative_host::isolation::mounts::{self, Mount};
use nearnative_host::libvirt::libvirt_child;
use nearnative_host::{CpuSet, Root};
use nearnative_knob::exclusivity::cgroup::{Cgroup, Hierarchy, Presence};
use nearnative_knob::exclusivity::libvirt::LibvirtPin;
use nearnative_knob::exclusivity::sched::Policy;
use nearnative_knob::{CgroupMount, Step};

/// A journal step nearnative could not have written, by its place in the journal and the
/// field at fault.
#[derive(Debug, thiserror::Error)]
#[error("change {index} ({kind}): {field} {reason}")]
pub struct InvalidStep {
    /// 1-based, in journal order.
    pub index: usize,
    pub kind: &'static str,
    pub field: &'static str,
    pub reason: String,
}

/// What the host allows a journal to name: its cgroup mounts and the CPUs it can have.
#[derive(Debug, Clone)]
pub struct HostBounds {
    mounts: Vec<Mount>,
    /// `None` when the host does not say (a captured tree without the file).
    possible: Option<CpuSet>,
    /// A captured tree, where a cgroup hierarchy may also be recognised by its files.
    tree: Option<Root>,
}

/// The kind of hierarchy a step needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// A v1 hierarchy with the cpuset controller, or the v2 one.
    Cpuset,
    V1Cpuset,
    V2,
}

impl HostBounds {
    /// Reads the mount table and the possible CPUs through `root`. An unreadable mount table
    /// trusts no mount.
    pub fn read(root: &Root) -> HostBounds {
        HostBounds {
            mounts: mounts::read_table(root).unwrap_or_default(),
            possible: possible_cpus(root).ok(),
            tree: (!root.is_live()).then(|| root.clone()),
        }
    }

    /// Whether `mount` is a hierarchy of the kind `needs`. In a captured tree, which often
    /// has no mount table, a directory holding a hierarchy root's own files counts too: the
    /// tree backend writes only inside the tree.
    fn is_hierarchy(&self, mount: &CgroupMount, needs: Needs) -> bool {
        let listed = self
            .mounts
            .iter()
            .filter(|m| m.mount_point == mount.as_path())
            .any(|m| match needs {
                Needs::Cpuset => m.is_cgroup1_with("cpuset") || m.is_cgroup2(),
                Needs::V1Cpuset => m.is_cgroup1_with("cpuset"),
                Needs::V2 => m.is_cgroup2(),
            });
        listed || self.tree_has(mount, needs)
    }

    fn tree_has(&self, mount: &CgroupMount, needs: Needs) -> bool {
        let Some(root) = &self.tree else {
            return false;
        };
        let has = |name: &str| root.exists(mount.as_path().join(name));
        let v1 = has("tasks") && has("cpuset.cpus");
        let v2 = has("cgroup.controllers");
        match needs {
            Needs::Cpuset => v1 || v2,
            Needs::V1Cpuset => v1,
            Needs::V2 => v2,
        }
    }

    fn cpus_ok(&self, cpus: &CpuSet) -> Result<(), String> {
        match &self.possible {
            Some(possible) if !cpus.is_subset(possible) => Err(format!(
                "{} is not within the host's possible CPUs {}",
                cpus.to_list(),
                possible.to_list()
            )),
            _ => Ok(()),
        }
    }
}

/// Checks every step of a journal; the first step at fault is the error.
pub fn validate_steps(steps: &[Step], bounds: &HostBounds) -> Result<(), InvalidStep> {
    for (i, step) in steps.iter().enumerate() {
        check_step(step, bounds).map_err(|(field, reason)| InvalidStep {
            index: i + 1,
            kind: step.kind(),
            field,
            reason,
        })?;
    }
    Ok(())
}

type Fault = (&'static str, String);

fn check_step(step: &Step, b: &HostBounds) -> Result<(), Fault> {
    match step {
        Step::ThreadAffinity(c) => {
            check_thread(c.knob.pid, c.knob.tid)?;
            check_some_cpus("from", &c.from, b)
        }
        Step::TaskCgroup(c) => {
            check_thread(c.knob.pid, c.knob.tid)?;
            check_hierarchy(&c.knob.hierarchy, b)
        }
        Step::SchedPolicy(c) => {
            check_thread(c.knob.pid, c.knob.tid)?;
            check_policy(&c.from).map_err(|r| ("from", r))?;
            match c.to {
                Policy::Fifo { .. } => check_policy(&c.to).map_err(|r| ("to", r)),
                _ => Err((
                    "to",
                    "is not SCHED_FIFO, the only policy nearnative sets".into(),
                )),
            }
        }
        Step::CgroupDir(c) => {
            check_cgroup(&c.knob.cgroup, Needs::Cpuset, b)?;
            check_own_cgroup(&c.knob.cgroup)?;
            match c.to {
                Presence::Present => Ok(()),
                Presence::Absent => {
                    Err(("to", "is absent: nearnative only creates cgroups".into()))
                }
            }
        }
        Step::CpusetCpus(c) => {
            check_cgroup(&c.knob.cgroup, Needs::Cpuset, b)?;
            b.cpus_ok(&c.from).map_err(|r| ("from", r))
        }
        Step::CpusetMems(c) => check_cgroup(&c.knob.cgroup, Needs::Cpuset, b),
        Step::CpusetCpuExclusive(c) => check_cgroup(&c.knob.cgroup, Needs::V1Cpuset, b),
        Step::CpusetPartition(c) => check_cgroup(&c.knob.cgroup, Needs::V2, b),
        Step::CgroupType(c) => check_cgroup(&c.knob.cgroup, Needs::V2, b),
        Step::SubtreeCpuset(c) => check_cgroup(&c.knob.cgroup, Needs::V2, b),
        Step::LibvirtPin(c) => {
            check_cgroup(&c.knob.cgroup, Needs::Cpuset, b)?;
            check_libvirt_pin(&c.knob)?;
            check_some_cpus("from", &c.from, b)
        }
        Step::IrqAffinity(c) => check_some_cpus("from", &c.from, b),
        Step::DefaultSmpAffinity(c) => check_some_cpus("from", &c.from, b),
        Step::WorkqueueCpumask(c) => check_some_cpus("from", &c.from, b),
        // Empty is the kernel's "watch no CPU", a state a host may be in.
        Step::WatchdogCpumask(c) => b.cpus_ok(&c.from).map_err(|r| ("from", r)),
        Step::PmQosResumeLatency(c) => check_cpu(c.knob.cpu, b),
        Step::CpufreqGovernor(c) => check_cpu(c.knob.cpu, b),
        // Their values are typed and checked by their knobs; nothing in them names a path.
        Step::TimerMigration(_)
        | Step::KvmHaltPollNs(_)
        | Step::BusyPoll(_)
        | Step::BusyRead(_)
        | Step::NicCoalesce(_)
        | Step::NicFeature(_)
        | Step::ThpEnabled(_)
        | Step::ThpDefrag(_)
        | Step::KsmRun(_)
        | Step::NumaBalancing(_) => Ok(()),
    }
}

/// virsh is handed the URI as an argument: it must read as one, and the cgroup must be the
/// libvirt child of the domain ID and role the step names, so a journal pins nothing else.
fn check_libvirt_pin(pin: &LibvirtPin) -> Result<(), Fault> {
    let uri_ok = !pin.uri.is_empty()
        && !pin.uri.starts_with('-')
        && pin.uri.chars().all(|c| c.is_ascii_graphic());
    if !uri_ok {
        return Err((
            "knob.uri",
            format!("{:?} is not a libvirt connection URI", pin.uri),
        ));
    }
    match libvirt_child(pin.cgroup.path.as_str()) {
        Some((domain, which)) if domain.id == pin.domain_id && which == pin.which => Ok(()),
        _ => Err((
            "knob.cgroup.path",
            format!(
                "{} is not libvirt's {} cgroup of domain id {}",
                pin.cgroup.path,
                pin.which.dir_name(),
                pin.domain_id
            ),
        )),
    }
}

fn check_thread(pid: u32, tid: u32) -> Result<(), Fault> {
    match (pid, tid) {
        (0, _) => Err(("knob.pid", "is 0, which names no process".into())),
        (_, 0) => Err(("knob.tid", "is 0, which names no thread".into())),
        _ => Ok(()),
    }
}

fn check_some_cpus(field: &'static str, cpus: &CpuSet, b: &HostBounds) -> Result<(), Fault> {
    if cpus.is_empty() {
        return Err((field, "is empty; it must hold at least one CPU".into()));
    }
    b.cpus_ok(cpus).map_err(|r| (field, r))
}

fn check_cpu(cpu: u32, b: &HostBounds) -> Result<(), Fault> {
    b.cpus_ok(&CpuSet::from_ids([cpu]))
        .map_err(|r| ("knob.cpu", r))
}

fn check_policy(policy: &Policy) -> Result<(), String> {
    match (policy.nice(), policy.rt_priority()) {
        (Some(nice), _) if !(-20..=19).contains(&nice) => {
            Err(format!("has nice {nice}, outside -20..19"))
        }
        (None, priority) if !(1..=99).contains(&priority) => {
            Err(format!("has real-time priority {priority}, outside 1..99"))
        }
        _ => Ok(()),
    }
}

fn check_cgroup(cgroup: &Cgroup, needs: Needs, b: &HostBounds) -> Result<(), Fault> {
    check_mount("knob.cgroup.mount", &cgroup.mount, needs, b)
}

fn check_hierarchy(hierarchy: &Hierarchy, b: &HostBounds) -> Result<(), Fault> {
    let needs = match hierarchy {
        Hierarchy::V1 { controller, .. } if String::from(controller.clone()) != "cpuset" => {
            return Err((
                "knob.hierarchy.controller",
                "is not cpuset, the only v1 controller nearnative moves threads in".into(),
            ))
        }
        Hierarchy::V1 { .. } => Needs::V1Cpuset,
        Hierarchy::V2 { .. } => Needs::V2,
    };
    check_mount("knob.hierarchy.mount", hierarchy.mount(), needs, b)
}

fn check_mount(
    field: &'static str,
    mount: &CgroupMount,
    needs: Needs,
    b: &HostBounds,
) -> Result<(), Fault> {
    match b.is_hierarchy(mount, needs) {
        true => Ok(()),
        false => Err((
            field,
            format!(
                "{} is not a {} mounted on this host",
                mount.as_path().display(),
                match needs {
                    Needs::Cpuset => "cgroup v1 cpuset or cgroup v2 hierarchy",
                    Needs::V1Cpuset => "cgroup v1 cpuset hierarchy",
                    Needs::V2 => "cgroup v2 hierarchy",
                }
            ),
        )),
    }
}

/// A cgroup `revert` may remove: one the planner names `nearnative-<id>-<role>`.
fn check_own_cgroup(cgroup: &Cgroup) -> Result<(), Fault> {
    let name = cgroup.path.as_str().rsplit('/').next().unwrap_or("");
    match name.starts_with("nearnative-") {
        true => Ok(()),
        false => Err((
            "knob.cgroup.path",
            format!(
                "{} is not a cgroup nearnative creates (nearnative-…)",
                cgroup.path
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use nearnative_host::libvirt::LibvirtChild;
    use nearnative_knob::exclusivity::cgroup::{CgroupDir, Controller, CpusetCpus, TaskCgroup};
    use nearnative_knob::exclusivity::housekeeping::WatchdogCpumask;
    use nearnative_knob::exclusivity::irq::IrqAffinity;
    use nearnative_knob::exclusivity::sched::SchedPolicy;
    use nearnative_knob::exclusivity::task::ThreadAffinity;
    use nearnative_knob::{CgroupPath, Change};

    use super::*;

    const MOUNTINFO: &str = "\
        30 25 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755\n\
        34 30 0:31 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n\
        35 30 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
        41 30 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";

    /// A host with the mounts above and CPUs 0-3, and no cgroup files of its own.
    fn bounds() -> (tempfile::TempDir, HostBounds) {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        };
        write("proc/self/mountinfo", MOUNTINFO);
        write("sys/devices/system/cpu/possible", "0-3\n");
        let bounds = HostBounds::read(&Root::new(dir.path()));
        (dir, bounds)
    }

    fn cgroup(mount: &str, path: &str) -> Cgroup {
        Cgroup {
            mount: CgroupMount::try_from(mount).unwrap(),
            path: CgroupPath::try_from(path).unwrap(),
        }
    }

    fn made_dir(mount: &str, path: &str) -> Step {
        Step::from(Change {
            knob: CgroupDir {
                cgroup: cgroup(mount, path),
            },
            from: Presence::Absent,
            to: Presence::Present,
        })
    }

    fn policy(pid: u32, from: Policy, to: Policy) -> Step {
        Step::from(Change {
            knob: SchedPolicy {
                pid,
                tid: pid,
                start_time: 1,
            },
            from,
            to,
        })
    }

    fn affinity(tid: u32, from: &[u32]) -> Step {
        Step::from(Change {
            knob: ThreadAffinity {
                pid: 9,
                tid,
                start_time: 1,
            },
            from: CpuSet::from_ids(from.iter().copied()),
            to: CpuSet::from_ids([1]),
        })
    }

    fn moved(mount: &str, controller: &str) -> Step {
        Step::from(Change {
            knob: TaskCgroup {
                pid: 9,
                tid: 9,
                start_time: 1,
                hierarchy: Hierarchy::V1 {
                    mount: CgroupMount::try_from(mount).unwrap(),
                    controller: Controller::try_from(controller.to_owned()).unwrap(),
                },
            },
            from: CgroupPath::root(),
            to: CgroupPath::try_from("/nearnative-a-t0").unwrap(),
        })
    }

    #[test]
    fn what_nearnative_writes_passes_and_anything_else_is_refused_by_field() {
        let fifo99 = Policy::Fifo { priority: 99 };
        let cases: Vec<(&str, Step, Option<&str>)> = vec![
            (
                "its own v1 cgroup",
                made_dir("/sys/fs/cgroup/cpuset", "/nearnative-a-t0"),
                None,
            ),
            (
                "its own v2 cgroup",
                made_dir("/sys/fs/cgroup/unified", "/s/nearnative-a-hk"),
                None,
            ),
            (
                "a cgroup under /etc",
                made_dir("/etc", "/nearnative-a-t0"),
                Some("knob.cgroup.mount"),
            ),
            (
                "the tmpfs above the hierarchies",
                made_dir("/sys/fs/cgroup", "/nearnative-a"),
                Some("knob.cgroup.mount"),
            ),
            (
                "a hierarchy without cpuset",
                made_dir("/sys/fs/cgroup/memory", "/nearnative-a"),
                Some("knob.cgroup.mount"),
            ),
            (
                "removing someone else's cgroup",
                made_dir("/sys/fs/cgroup/cpuset", "/system.slice"),
                Some("knob.cgroup.path"),
            ),
            (
                "a real prior policy, even SCHED_FIFO 99",
                policy(9, fifo99, Policy::Fifo { priority: 10 }),
                None,
            ),
            (
                "a target other than SCHED_FIFO",
                policy(9, fifo99, Policy::Other { nice: 0 }),
                Some("to"),
            ),
            (
                "a priority the kernel has not",
                policy(9, Policy::Rr { priority: 100 }, fifo99),
                Some("from"),
            ),
            ("process 0", policy(0, fifo99, fifo99), Some("knob.pid")),
            ("an affinity within the host", affinity(9, &[0, 3]), None),
            ("an empty affinity", affinity(9, &[]), Some("from")),
            (
                "a CPU the host cannot have",
                affinity(9, &[4]),
                Some("from"),
            ),
            ("thread 0", affinity(0, &[0]), Some("knob.tid")),
            (
                "a thread moved in the cpuset hierarchy",
                moved("/sys/fs/cgroup/cpuset", "cpuset"),
                None,
            ),
            (
                "a thread moved in the memory hierarchy",
                moved("/sys/fs/cgroup/memory", "memory"),
                Some("knob.hierarchy.controller"),
            ),
            (
                "a thread moved under /tmp",
                moved("/tmp", "cpuset"),
                Some("knob.hierarchy.mount"),
            ),
        ];
        let (_dir, bounds) = bounds();
        for (what, step, field) in cases {
            let result = validate_steps(&[affinity(9, &[1]), step], &bounds);
            match (result, field) {
                (Ok(()), None) => {}
                (Err(err), Some(field)) => {
                    assert_eq!(err.field, field, "{what}: {err}");
                    assert_eq!(err.index, 2, "{what}: {err}");
                }
                (result, _) => panic!("{what}: {result:?}"),
            }
        }
    }

    fn libvirt_pin(uri: &str, domain_id: u32, path: &str) -> Step {
        Step::from(Change {
            knob: LibvirtPin {
                uri: uri.into(),
                domain_id,
                domain: "nn1".into(),
                which: LibvirtChild::Vcpu(0),
                cgroup: cgroup("/sys/fs/cgroup/cpuset", path),
            },
            from: CpuSet::from_ids([0, 1, 2, 3]),
            to: CpuSet::from_ids([1]),
        })
    }

    #[test]
    fn a_libvirt_pin_names_the_cgroup_of_its_domain_id_and_a_plain_uri() {
        let vcpu0 = "/machine/qemu-2-nn1.libvirt-qemu/vcpu0";
        let cases = [
            ("as planned", libvirt_pin("qemu:///system", 2, vcpu0), None),
            (
                "another run of the domain",
                libvirt_pin("qemu:///system", 3, vcpu0),
                Some("knob.cgroup.path"),
            ),
            (
                "another child",
                libvirt_pin(
                    "qemu:///system",
                    2,
                    "/machine/qemu-2-nn1.libvirt-qemu/emulator",
                ),
                Some("knob.cgroup.path"),
            ),
            (
                "an option for a URI",
                libvirt_pin("--help", 2, vcpu0),
                Some("knob.uri"),
            ),
            (
                "a space in the URI",
                libvirt_pin("qemu:///system x", 2, vcpu0),
                Some("knob.uri"),
            ),
        ];
        let (_dir, bounds) = bounds();
        for (what, step, field) in cases {
            let result = validate_steps(&[step], &bounds);
            assert_eq!(result.err().map(|e| e.field), field, "{what}");
        }
    }

    #[test]
    fn a_cpuset_list_or_irq_mask_outside_the_host_is_refused() {
        let (_dir, bounds) = bounds();
        let cpus = Step::from(Change {
            knob: CpusetCpus {
                cgroup: cgroup("/sys/fs/cgroup/cpuset", "/s"),
            },
            from: CpuSet::from_ids([7]),
            to: CpuSet::from_ids([1]),
        });
        let err = validate_steps(&[cpus], &bounds).unwrap_err().to_string();
        assert!(
            err.contains("7 is not within the host's possible CPUs 0-3"),
            "{err}"
        );
        let irq = Step::from(Change {
            knob: IrqAffinity { irq: 24 },
            from: CpuSet::new(),
            to: CpuSet::from_ids([0]),
        });
        let err = validate_steps(&[irq], &bounds).unwrap_err().to_string();
        assert!(
            err.starts_with("change 1 (IrqAffinity): from is empty"),
            "{err}"
        );
    }

    /// An empty watchdog list is the kernel's "watch no CPU", a prior value revert may put
    /// back; a CPU the host cannot have is still refused.
    #[test]
    fn a_watchdog_list_may_be_empty_but_not_outside_the_host() {
        let (_dir, bounds) = bounds();
        let watchdog = |from: &[u32]| {
            Step::from(Change {
                knob: WatchdogCpumask,
                from: CpuSet::from_ids(from.iter().copied()),
                to: CpuSet::new(),
            })
        };
        assert!(validate_steps(&[watchdog(&[])], &bounds).is_ok());
        assert!(validate_steps(&[watchdog(&[0, 3])], &bounds).is_ok());
        let err = validate_steps(&[watchdog(&[0, 4])], &bounds).unwrap_err();
        assert_eq!(err.field, "from", "{err}");
    }

    #[test]
    fn on_the_live_host_only_its_own_cgroup_mounts_count() {
        let live = HostBounds::read(&Root::default());
        let err = validate_steps(&[made_dir("/tmp", "/nearnative-a")], &live).unwrap_err();
        assert_eq!(err.field, "knob.cgroup.mount");
        let tree_like = "/sys/fs/cgroup/cpuset";
        let listed = live.mounts.iter().any(|m| m.is_cgroup1_with("cpuset"));
        let result = validate_steps(&[made_dir(tree_like, "/nearnative-a")], &live);
        assert_eq!(result.is_ok(), listed, "{result:?}");
    }
}
