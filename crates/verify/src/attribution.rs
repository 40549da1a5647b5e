//! Who took the exclusive CPUs' time: a sample's interrupts, softirqs, per-CPU interrupts
//! (IPIs, the tick) and foreign threads set against the time a spin-loop probe saw stolen
//! over the same window, with the remainder nothing inside the guest explains.
//!
//! What is measured and what is estimated:
//! - A foreign thread's time is measured: the sampler credits each thread's CPU time
//!   (`/proc/PID/task/TID/schedstat`, nanoseconds) to the exclusive CPU it ran on.
//! - An interrupt's time is not measured (the kernel counts interrupts per CPU, but times them
//!   only with `CONFIG_IRQ_TIME_ACCOUNTING`, and then only per CPU, in `/proc/stat` ticks of
//!   10 ms). Each one is charged a fixed cost per event ([`EventCosts`]): an estimate.
//! - The hypervisor's own account of the time it ran something else on these virtual CPUs
//!   (`steal` in `/proc/stat`, 10 ms ticks) is shown beside the remainder, which it is part
//!   of, not subtracted from it.
//!
//! The remainder (`unexplained_ns`) is the probe's stolen time minus the threads' time and the
//! interrupts' estimated time, never below zero: time the guest cannot see being taken, so
//! taken below it (the hypervisor, or the cost of virtualised interrupts beyond the
//! estimate).

use nearnative_host::CpuSet;
use serde::{Deserialize, Serialize};

use crate::irqs::{IrqLine, NamedCount};
use crate::threads::{Attribution, ForeignThread, ThreadClass};
use crate::Sample;

/// What one interrupt costs the CPU it lands on, by kind, in nanoseconds: estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCosts {
    /// A device IRQ or a per-CPU interrupt (IPI, local timer): entry, handler and exit,
    /// including the exits and entries a virtualised interrupt costs a guest.
    pub interrupt_ns: u64,
    /// One softirq run (a NET_RX poll, a timer list, RCU callbacks): more work per event.
    pub softirq_ns: u64,
}

impl Default for EventCosts {
    /// 2 µs per interrupt and 4 µs per softirq: the order of a virtualised interrupt on
    /// current x86 KVM hosts and of a short softirq run. Estimates, not measurements.
    fn default() -> Self {
        EventCosts {
            interrupt_ns: 2_000,
            softirq_ns: 4_000,
        }
    }
}

/// An interrupt source that fired on the exclusive CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterruptSource {
    /// `IRQ 38 virtio2-input.0`, `TLB`, `NET_RX`.
    pub name: String,
    /// The kernel's description of a per-CPU interrupt (`TLB shootdowns`), if it gives one.
    pub description: Option<String>,
    /// How often it fired there during the window.
    pub count: u64,
    /// `count` times its kind's cost per event: an estimate.
    pub estimated_ns: u64,
}

/// A thread other than the measured ones that ran on the exclusive CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadSource {
    pub comm: String,
    pub pid: u32,
    pub tid: u32,
    pub class: ThreadClass,
    /// Its CPU time on the exclusive CPUs during the window, measured.
    pub ns: u64,
    pub attribution: Attribution,
}

/// Everything that took the exclusive CPUs during one window, largest first in each list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interference {
    pub cpus: CpuSet,
    /// The window's wall time, in nanoseconds.
    pub window_ns: u64,
    /// What the spin-loop probe saw taken from it, at its rate over the whole window; `None`
    /// without a probe (as in `verify --sample`, where the workload itself runs there).
    pub stolen_ns: Option<u64>,
    /// Device IRQ lines, by number and name.
    pub irqs: Vec<InterruptSource>,
    /// Softirqs, by kind (`/proc/softirqs`).
    pub softirqs: Vec<InterruptSource>,
    /// The per-CPU rows of `/proc/interrupts`: IPIs (RES, CAL, TLB, IWI), the local timer
    /// (LOC) and the rest.
    pub ipis: Vec<InterruptSource>,
    pub threads: Vec<ThreadSource>,
    /// The hypervisor's account of the time it gave these virtual CPUs' host CPU to something
    /// else (`steal`, 10 ms ticks); part of the remainder, shown for comparison. `None`
    /// when `/proc/stat` could not be read.
    pub steal_ns: Option<u64>,
    /// The probe's stolen time minus the threads' and the interrupts' (estimated): taken
    /// below the guest. `None` without a probe.
    pub unexplained_ns: Option<u64>,
    /// The costs per event the interrupts were charged.
    pub costs: EventCosts,
    /// Something could not be read (`/proc/interrupts`, `/proc/softirqs`): the lists are
    /// incomplete and the remainder overstated.
    pub incomplete: bool,
}

/// What a spin-loop probe saw on the exclusive CPUs: the time taken from it over its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub stolen_ns: u64,
    /// The probe's own run, which lies within the sample's window.
    pub runtime_ns: u64,
}

impl Probe {
    /// The stolen time at the probe's rate over `window_ns`: the sampler's window is a little
    /// longer than the probe's run (starting and joining it), and its counts cover all of it.
    fn stolen_over(&self, window_ns: u64) -> u64 {
        match self.runtime_ns {
            0 => self.stolen_ns,
            runtime => {
                let scaled = u128::from(self.stolen_ns) * u128::from(window_ns.max(runtime))
                    / u128::from(runtime);
                u64::try_from(scaled).unwrap_or(u64::MAX)
            }
        }
    }
}

/// One line of a ranking: a source and the time charged to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    pub label: String,
    pub ns: u64,
    /// False when `ns` is an estimate (an interrupt's count times its cost).
    pub measured: bool,
}

/// Attributes the exclusive CPUs' lost time over `sample`'s window: `probe` is what a
/// spin-loop probe saw taken on those CPUs during a run inside that window, if one ran; its
/// stolen time is taken at its rate over the whole window. `measuring` names threads to leave
/// out (the probe's own spinning thread, say): they are the measurement, not interference.
pub fn attribute(
    sample: &Sample,
    probe: Option<Probe>,
    costs: EventCosts,
    measuring: impl Fn(&ForeignThread) -> bool,
) -> Interference {
    let stolen_ns = probe.map(|p| p.stolen_over(sample.duration_ns));
    let irqs = sample.irqs.as_ref();
    let mut interference = Interference {
        cpus: sample.cpus.clone(),
        window_ns: sample.duration_ns,
        stolen_ns,
        irqs: irqs.map_or_else(Vec::new, |a| ranked(a.lines.iter().map(|l| line(l, costs)))),
        softirqs: sample.softirqs.as_deref().map_or_else(Vec::new, |rows| {
            ranked(rows.iter().map(|r| named(r, costs.softirq_ns)))
        }),
        ipis: irqs.map_or_else(Vec::new, |a| {
            ranked(a.named.iter().map(|r| named(r, costs.interrupt_ns)))
        }),
        threads: threads(&sample.threads, measuring),
        steal_ns: sample
            .cpu_busy
            .as_ref()
            .map(|cpus| cpus.iter().map(|c| c.steal_ns).fold(0, u64::saturating_add)),
        unexplained_ns: None,
        costs,
        incomplete: sample.irqs.is_none() || sample.softirqs.is_none(),
    };
    interference.unexplained_ns = stolen_ns.map(|s| s.saturating_sub(interference.explained_ns()));
    interference
}

fn line(line: &IrqLine, costs: EventCosts) -> InterruptSource {
    InterruptSource {
        name: line.label(),
        description: None,
        count: line.total,
        estimated_ns: line.total.saturating_mul(costs.interrupt_ns),
    }
}

fn named(row: &NamedCount, cost_ns: u64) -> InterruptSource {
    InterruptSource {
        name: row.name.clone(),
        description: row.description.clone(),
        count: row.total,
        estimated_ns: row.total.saturating_mul(cost_ns),
    }
}

fn ranked(sources: impl Iterator<Item = InterruptSource>) -> Vec<InterruptSource> {
    let mut sources: Vec<InterruptSource> = sources.filter(|s| s.count > 0).collect();
    sources.sort_by(|a, b| {
        b.estimated_ns
            .cmp(&a.estimated_ns)
            .then(a.name.cmp(&b.name))
    });
    sources
}

fn threads(
    threads: &[ForeignThread],
    measuring: impl Fn(&ForeignThread) -> bool,
) -> Vec<ThreadSource> {
    let mut sources: Vec<ThreadSource> = threads
        .iter()
        .filter(|t| t.total_ns > 0 && !measuring(t))
        .map(|t| ThreadSource {
            comm: t.comm.clone(),
            pid: t.pid,
            tid: t.tid,
            class: t.class,
            ns: t.total_ns,
            attribution: t.attribution,
        })
        .collect();
    sources.sort_by(|a, b| b.ns.cmp(&a.ns).then(a.tid.cmp(&b.tid)));
    sources
}

impl Interference {
    /// The threads' measured time plus the interrupts' estimated time.
    pub fn explained_ns(&self) -> u64 {
        let interrupts = [&self.irqs, &self.softirqs, &self.ipis]
            .into_iter()
            .flatten()
            .map(|s| s.estimated_ns);
        self.threads
            .iter()
            .map(|t| t.ns)
            .chain(interrupts)
            .fold(0, u64::saturating_add)
    }

    /// Every source with the time charged to it, the remainder included, largest first.
    pub fn ranking(&self) -> Vec<Ranked> {
        let interrupts = [&self.irqs, &self.softirqs, &self.ipis]
            .into_iter()
            .flatten()
            .map(|s| Ranked {
                label: s.name.clone(),
                ns: s.estimated_ns,
                measured: false,
            });
        let threads = self.threads.iter().map(|t| Ranked {
            label: format!("thread {} (tid {})", t.comm, t.tid),
            ns: t.ns,
            measured: true,
        });
        let remainder = self.unexplained_ns.map(|ns| Ranked {
            label: "below the guest (unexplained)".to_owned(),
            ns,
            measured: true,
        });
        let mut ranking: Vec<Ranked> = interrupts.chain(threads).chain(remainder).collect();
        ranking.sort_by(|a, b| b.ns.cmp(&a.ns).then(a.label.cmp(&b.label)));
        ranking
    }

    /// `ns` as a share of the stolen time, or of the window without a probe; `None` when
    /// that is zero.
    pub fn share(&self, ns: u64) -> Option<f64> {
        let whole = self.stolen_ns.unwrap_or(self.window_ns);
        (whole > 0).then(|| ns as f64 / whole as f64)
    }

    /// The `n` largest sources as `label share` (`TLB 31%`), `~` marking estimates.
    pub fn top(&self, n: usize) -> Vec<String> {
        self.ranking()
            .into_iter()
            .filter(|r| r.ns > 0)
            .take(n)
            .map(|r| {
                let share = self
                    .share(r.ns)
                    .map_or_else(|| "-".to_owned(), |s| format!("{:.0}%", s * 100.0));
                let approx = if r.measured { "" } else { "~" };
                format!("{} {approx}{share}", r.label)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu_busy::{busy, parse_stat};
    use crate::irqs::{irq_activity, named_counts, read_interrupts, read_softirqs};
    use crate::threads::{Attribution, CpuTime};
    use crate::SamplerCost;
    use nearnative_host::tasks::TaskKind;
    use nearnative_host::Root;
    use std::collections::BTreeMap;

    /// Two readings of this 2-CPU Firecracker guest's files, a second apart, captured.
    const INTERRUPTS_BEFORE: &str = "           CPU0       CPU1       \n\
 36:          0     110217 PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0\n\
 38:          0       2022 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0\n\
NMI:          0          0   Non-maskable interrupts\n\
LOC:     247075     261751   Local timer interrupts\n\
RES:      66133      45732   Rescheduling interrupts\n\
CAL:     138977     122503   Function call interrupts\n\
TLB:     107726     102177   TLB shootdowns\n\
ERR:          0\n";
    const INTERRUPTS_AFTER: &str = "           CPU0       CPU1       \n\
 36:          0     110297 PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0\n\
 38:          0       2022 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0\n\
NMI:          0          0   Non-maskable interrupts\n\
LOC:     247365     262111   Local timer interrupts\n\
RES:      66194      45776   Rescheduling interrupts\n\
CAL:     138988     122626   Function call interrupts\n\
TLB:     107737     102300   TLB shootdowns\n\
ERR:          0\n";
    const SOFTIRQS_BEFORE: &str = "                    CPU0       CPU1       \n\
          HI:          0          0\n       TIMER:      44188      47190\n\
      NET_RX:       1689       1968\n       BLOCK:          0     110216\n\
         RCU:     175216     194519\n";
    const SOFTIRQS_AFTER: &str = "                    CPU0       CPU1       \n\
          HI:          0          0\n       TIMER:      44288      47290\n\
      NET_RX:       1689       1968\n       BLOCK:          0     110296\n\
         RCU:     175316     194719\n";
    const STAT_BEFORE: &str = "cpu0 66223 0 15518 44731 465 0 6 259 0 0\n\
cpu1 67013 0 15994 43152 718 0 147 253 0 0\n";
    const STAT_AFTER: &str = "cpu0 66323 0 15518 44731 465 0 6 259 0 0\n\
cpu1 67063 0 15994 43152 718 0 147 255 0 0\n";

    fn root_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join("proc").join(name), text).unwrap();
        }
        dir
    }

    fn thread(comm: &str, tid: u32, ns: u64) -> ForeignThread {
        ForeignThread {
            pid: 100,
            tid,
            comm: comm.to_owned(),
            kind: TaskKind::User,
            class: ThreadClass::OutsideScope,
            cpu_time: vec![CpuTime { cpu: 1, ns }],
            total_ns: ns,
            attribution: Attribution::Exact,
        }
    }

    /// A sample of CPU 1 built from the captured readings, as the sampler builds it.
    fn captured_sample(threads: Vec<ForeignThread>) -> Sample {
        let cpus = CpuSet::from_ids([1]);
        let before = root_with(&[
            ("interrupts", INTERRUPTS_BEFORE),
            ("softirqs", SOFTIRQS_BEFORE),
        ]);
        let after = root_with(&[
            ("interrupts", INTERRUPTS_AFTER),
            ("softirqs", SOFTIRQS_AFTER),
        ]);
        let (before_root, after_root) = (Root::new(before.path()), Root::new(after.path()));
        let (start, _) = read_interrupts(&before_root).unwrap();
        let (end, _) = read_interrupts(&after_root).unwrap();
        let softirqs = named_counts(
            &read_softirqs(&before_root).unwrap(),
            &read_softirqs(&after_root).unwrap(),
            &cpus,
            &BTreeMap::new(),
        );
        let stat = busy(
            &parse_stat(STAT_BEFORE).unwrap(),
            &parse_stat(STAT_AFTER).unwrap(),
            &cpus,
            10_000_000,
        );
        Sample {
            irqs: Some(irq_activity(&after_root, &start, &end, &cpus)),
            softirqs: Some(softirqs),
            cpu_busy: Some(stat),
            cpus,
            target_tids: Default::default(),
            scope: None,
            duration_ns: 1_000_000_000,
            stopped_early: false,
            threads,
            targets: Vec::new(),
            sampler: SamplerCost {
                cpu_time_ns: 0,
                pinned_to: None,
                longest_poll_period_ns: 0,
                threads: Default::default(),
            },
            unknowns: Vec::new(),
            unknowns_dropped: 0,
        }
    }

    #[test]
    fn names_every_source_with_its_count_and_charges_the_rest_below_the_guest() {
        let sample = captured_sample(vec![
            thread("rustc", 7, 3_000_000),
            thread("jitter-cpu1", 8, 900_000_000),
            thread("idle-ish", 9, 0),
        ]);
        let got = attribute(&sample, probe(10_000_000), EventCosts::default(), |t| {
            t.comm == "jitter-cpu1"
        });
        let counts = |sources: &[InterruptSource]| -> Vec<(String, u64)> {
            sources.iter().map(|s| (s.name.clone(), s.count)).collect()
        };
        assert_eq!(counts(&got.irqs), [("IRQ 36 virtio1-req.0".to_owned(), 80)]);
        let ipis = [("LOC", 360), ("CAL", 123), ("TLB", 123), ("RES", 44)];
        assert_eq!(
            counts(&got.ipis),
            ipis.map(|(n, c)| (n.to_owned(), c)),
            "largest first, ties by name; NMI did not fire and ERR has no CPU columns"
        );
        let softirqs = [("RCU", 200), ("TIMER", 100), ("BLOCK", 80)];
        assert_eq!(
            counts(&got.softirqs),
            softirqs.map(|(n, c)| (n.to_owned(), c))
        );
        assert_eq!(
            got.ipis[1].description.as_deref(),
            Some("Function call interrupts")
        );
        assert_eq!(
            got.threads
                .iter()
                .map(|t| (t.comm.as_str(), t.ns))
                .collect::<Vec<_>>(),
            [("rustc", 3_000_000)],
            "the probe's own thread and a thread with no time are left out"
        );
        assert_eq!(got.steal_ns, Some(20_000_000));
        let interrupts = (80 + 360 + 123 + 123 + 44) * 2_000 + (200 + 100 + 80) * 4_000;
        assert_eq!(got.explained_ns(), 3_000_000 + interrupts);
        assert_eq!(
            got.unexplained_ns,
            Some(10_000_000 - 3_000_000 - interrupts)
        );
        assert!(!got.incomplete);
    }

    #[test]
    fn ranking_and_shares_put_the_largest_first_and_mark_estimates() {
        let sample = captured_sample(vec![thread("intruder", 42, 6_000_000)]);
        let got = attribute(&sample, probe(10_000_000), EventCosts::default(), |_| false);
        let top = got.top(3);
        assert_eq!(top[0], "thread intruder (tid 42) 60%");
        assert!(
            top[1].starts_with("below the guest (unexplained) "),
            "{top:?}"
        );
        assert_eq!(top[2], "RCU ~8%");
    }

    #[test]
    fn explained_time_beyond_the_stolen_time_leaves_no_negative_remainder() {
        let sample = captured_sample(vec![thread("hog", 1, 900_000_000)]);
        let got = attribute(&sample, probe(500_000_000), EventCosts::default(), |_| {
            false
        });
        assert_eq!(got.unexplained_ns, Some(0));
    }

    /// A probe that ran the whole 1 s window.
    fn probe(stolen_ns: u64) -> Option<Probe> {
        Some(Probe {
            stolen_ns,
            runtime_ns: 1_000_000_000,
        })
    }

    #[test]
    fn a_probe_shorter_than_the_window_is_taken_at_its_rate() {
        let sample = captured_sample(vec![]);
        let short = Probe {
            stolen_ns: 8_000_000,
            runtime_ns: 800_000_000,
        };
        let got = attribute(&sample, Some(short), EventCosts::default(), |_| false);
        assert_eq!(got.stolen_ns, Some(10_000_000));
        let idle = Probe {
            stolen_ns: 5,
            runtime_ns: 0,
        };
        let got = attribute(&sample, Some(idle), EventCosts::default(), |_| false);
        assert_eq!(
            got.stolen_ns,
            Some(5),
            "a run of no length is taken as it is"
        );
    }

    #[test]
    fn without_a_probe_shares_are_of_the_window_and_nothing_is_unexplained() {
        let mut sample = captured_sample(vec![thread("rustc", 7, 250_000_000)]);
        sample.softirqs = None;
        let got = attribute(&sample, None, EventCosts::default(), |_| false);
        assert_eq!(got.unexplained_ns, None);
        assert!(got.incomplete, "softirqs could not be read");
        assert!(got.softirqs.is_empty());
        assert_eq!(got.top(1), ["thread rustc (tid 7) 25%"]);
    }

    #[test]
    fn serialises_the_fields_the_lab_report_names() {
        let got = attribute(
            &captured_sample(vec![]),
            probe(1),
            EventCosts::default(),
            |_| false,
        );
        let json = serde_json::to_value(&got).unwrap();
        for field in ["irqs", "softirqs", "ipis", "threads", "unexplained_ns"] {
            assert!(json.get(field).is_some(), "{field}: {json}");
        }
        let back: Interference = serde_json::from_value(json).unwrap();
        assert_eq!(back, got);
    }
}
