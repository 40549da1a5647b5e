//! When a VM is complete enough to plan. QEMU creates its vCPU threads one by one after its
//! exec, and `-daemonize` runs two processes of the same name for a moment; a plan made
//! before that would pin some vCPUs and leave the others (or be refused as ambiguous). So a
//! VM is applied once exactly one process carries its name and it has every vCPU its command
//! line boots with. Only when the command line does not say how many (a VMM we cannot read)
//! must its threads also stay put for a short settle. Threads the VM makes after that (an
//! iothread, a hot-added vCPU) are placed by the engine's reconcile, so waiting for them would
//! only delay the vCPUs.
//!
//! While a VM is incomplete the loop looks again after the settle, for a few seconds; after
//! that only events and the sweep bring it back, so a VM that never completes costs nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nearnative_host::workloads::read_boot_vcpus;
use nearnative_host::{Host, Root};
use nearnative_plan::Target;

/// How long a VM's thread count must stay put before it is planned, when its command line
/// does not say how many vCPUs it boots with.
pub const SETTLE: Duration = Duration::from_millis(20);

/// How long after first sight an incomplete VM is looked at again without an event.
const PATIENCE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not yet: look again at `until` (or at the next event or sweep when `None`).
    NotYet {
        until: Option<Instant>,
    },
}

/// One VM process as last seen.
#[derive(Debug, Clone, Copy)]
struct Sighting {
    /// When it was first seen.
    first: Instant,
    threads: usize,
    /// When its thread count last changed.
    changed: Instant,
    /// The vCPUs its command line boots with, read once.
    boot_vcpus: Option<u32>,
}

impl Sighting {
    /// Ready with the name unambiguous (`more` is false) and every boot vCPU present
    /// (`vcpus` found); with no boot count known, at least one vCPU and the threads settled.
    fn judge(&self, vcpus: usize, more: bool, now: Instant) -> Readiness {
        let (all_vcpus, settled_at) = match self.boot_vcpus {
            Some(boot) => (vcpus >= boot as usize, self.changed),
            None => (vcpus > 0, self.changed + SETTLE),
        };
        let retry = (now.duration_since(self.first) < PATIENCE).then_some(now + SETTLE);
        match (more, all_vcpus) {
            (false, true) if now >= settled_at => Readiness::Ready,
            (false, true) => Readiness::NotYet {
                until: Some(settled_at),
            },
            _ => Readiness::NotYet { until: retry },
        }
    }
}

/// The VMs seen while they start.
#[derive(Debug, Default)]
pub struct Gate {
    seen: BTreeMap<u32, Sighting>,
}

impl Gate {
    /// Whether `target`'s instance on `host` may be planned now. Targets other than VMs are
    /// always ready.
    pub fn check(&mut self, root: &Root, host: &Host, target: &Target, now: Instant) -> Readiness {
        let mut vms = host.workloads.iter().filter(|vm| match target {
            Target::Vm(name) => vm.name == *name,
            Target::VmPid(pid) => vm.pid == *pid,
            _ => false,
        });
        let (vm, more) = match (target, vms.next(), vms.next()) {
            (Target::Vm(_) | Target::VmPid(_), Some(vm), more) => (vm, more.is_some()),
            _ => return Readiness::Ready,
        };
        let threads = host.tasks.process(vm.pid).map_or(0, |p| p.threads.len());
        let boot = || read_boot_vcpus(root, vm).ok().flatten();
        let sighting = self.observe(vm.pid, threads, now, boot);
        sighting.judge(vm.vcpus.len(), more, now)
    }

    /// Records process `pid`'s thread count, noting when it changed; `boot_vcpus` is asked
    /// on first sight only.
    fn observe(
        &mut self,
        pid: u32,
        threads: usize,
        now: Instant,
        boot_vcpus: impl FnOnce() -> Option<u32>,
    ) -> Sighting {
        let sighting = self.seen.entry(pid).or_insert_with(|| Sighting {
            first: now,
            threads,
            changed: now,
            boot_vcpus: boot_vcpus(),
        });
        if sighting.threads != threads {
            sighting.threads = threads;
            sighting.changed = now;
        }
        *sighting
    }

    /// The VM processes seen starting: their new threads should wake the loop.
    pub fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.seen.keys().copied()
    }

    /// Forgets the VMs `host` no longer runs.
    pub fn forget_gone(&mut self, host: &Host) {
        self.seen
            .retain(|pid, _| host.workloads.iter().any(|vm| vm.pid == *pid));
    }
}

/// When the last vCPU thread of `target`'s VM on `host` started, in clock ticks since boot
/// (`/proc/PID/task/TID/stat`'s `starttime`); `None` for a target that is no VM, or a VM
/// whose vCPU threads are not known.
pub fn last_vcpu_start(host: &Host, target: &Target) -> Option<u64> {
    let vm = host.workloads.iter().find(|vm| match target {
        Target::Vm(name) => vm.name == *name,
        Target::VmPid(pid) => vm.pid == *pid,
        _ => false,
    })?;
    let threads = &host.tasks.process(vm.pid)?.threads;
    let vcpu_tids = vm.vcpus.iter().map(|vcpu| vcpu.thread.tid);
    let started = vcpu_tids.filter_map(|tid| threads.iter().find(|t| t.tid == tid));
    started.map(|task| task.start_time).max()
}

/// How long ago, at `now_since_boot` (`CLOCK_BOOTTIME`), a thread started at `start_ticks`
/// clock ticks of `tick_ns` each since boot. The kernel rounds a start down to a tick, so
/// this is longer than the truth by less than one tick (10 ms at `USER_HZ` 100).
pub fn since_start(start_ticks: u64, tick_ns: u64, now_since_boot: Duration) -> Duration {
    let started = Duration::from_nanos(start_ticks.saturating_mul(tick_ns));
    now_since_boot.saturating_sub(started)
}

/// `CLOCK_BOOTTIME` now: the clock thread start times count on.
pub fn since_boot() -> Option<Duration> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
    let secs = u64::try_from(now.tv_sec()).ok()?;
    let nanos = u32::try_from(now.tv_nsec()).ok()?;
    Some(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threads_age_counts_from_its_start_tick() {
        let tick = 10_000_000;
        let now = Duration::from_millis(12_345);
        assert_eq!(since_start(1_231, tick, now), Duration::from_millis(35));
        assert_eq!(
            since_start(2_000, tick, now),
            Duration::ZERO,
            "a clock behind"
        );
    }

    #[test]
    fn this_threads_start_lies_in_the_past_of_the_boot_clock() {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let start = nearnative_host::tasks::parse_stat(&stat)
            .unwrap()
            .start_time;
        let tick = nearnative_verify::cpu_busy::tick_ns();
        let age = since_start(start, tick, since_boot().unwrap());
        assert!(age < Duration::from_secs(3600), "{age:?}");
    }

    #[test]
    fn a_vm_is_ready_as_soon_as_every_boot_vcpu_is_there() {
        let mut gate = Gate::default();
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let seen = gate.observe(40, 3, t0, || Some(2));
        assert_eq!(
            seen.judge(1, false, t0),
            Readiness::NotYet {
                until: Some(ms(20))
            },
            "one vCPU of two"
        );
        let seen = gate.observe(40, 4, ms(5), || panic!("asked once"));
        assert_eq!(seen.judge(2, false, ms(5)), Readiness::Ready);
        assert_eq!(
            seen.judge(2, true, ms(5)),
            Readiness::NotYet {
                until: Some(ms(25))
            },
            "two processes of one name (daemonizing)"
        );
    }

    #[test]
    fn an_incomplete_vm_is_not_polled_forever() {
        let mut gate = Gate::default();
        let t0 = Instant::now();
        let late = t0 + PATIENCE;
        gate.observe(40, 3, t0, || Some(4));
        let seen = gate.observe(40, 3, late, || None);
        assert_eq!(
            seen.judge(3, false, late),
            Readiness::NotYet { until: None }
        );
    }

    #[test]
    fn without_a_declared_count_one_vcpu_will_do() {
        let mut gate = Gate::default();
        let t0 = Instant::now();
        let seen = gate.observe(40, 3, t0, || None);
        let later = t0 + SETTLE;
        assert_eq!(
            seen.judge(0, false, later),
            Readiness::NotYet {
                until: Some(later + SETTLE)
            }
        );
        assert_eq!(seen.judge(1, false, later), Readiness::Ready);
    }
}
