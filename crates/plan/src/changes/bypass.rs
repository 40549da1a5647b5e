//! Bypass: let the exclusive CPUs wake fast and the NIC interrupt at once. PM QoS forbids idle
//! states with any exit latency on the CPUs that run the workload's threads (not on their idle
//! SMT siblings), the cpufreq governor holds top frequency on every exclusive CPU, KVM halt polling
//! gets 200 µs, and with `--nic` interrupt coalescing and receive batching are off and
//! sockets busy-poll.

use nearnative_host::knobs::Knobs;
use nearnative_host::nic::{Coalescing, Nic};
use nearnative_host::power::ResumeLatency;
use nearnative_host::{Host, Mechanism};
use nearnative_knob::bypass::nic::{Interface, NicCoalesce, NicFeature};
use nearnative_knob::bypass::power::{CpufreqGovernor, PmQosResumeLatency};
use nearnative_knob::bypass::sysctl::{BusyPoll, BusyRead, KvmHaltPollNs};
use nearnative_knob::{Change, Offload};

use super::{Changes, Context};
use crate::decisions::Note;
use crate::plan_error::PlanError;

const MECHANISM: Mechanism = Mechanism::Bypass;
/// KVM's halt polling window the plan raises the module default to: long enough to catch a
/// typical request/response gap without the vCPU thread sleeping.
pub const HALT_POLL_NS: u32 = 200_000;
/// `net.core.busy_poll` and `busy_read` in µs, the kernel documentation's suggested value.
pub const BUSY_POLL_US: u32 = 50;

/// The interface `--nic` names, or a one-line error listing those that exist.
pub fn named_nic<'h>(host: &'h Host, name: Option<&str>) -> Result<Option<&'h Nic>, PlanError> {
    let Some(name) = name else {
        return Ok(None);
    };
    match host.nics.interfaces.iter().find(|n| n.name == name) {
        Some(nic) => Ok(Some(nic)),
        None => {
            let known: Vec<&str> = host
                .nics
                .interfaces
                .iter()
                .map(|n| n.name.as_str())
                .collect();
            Err(PlanError::UnknownNic {
                name: name.to_owned(),
                known: match known.is_empty() {
                    true => "none".to_owned(),
                    false => known.join(", "),
                },
            })
        }
    }
}

pub fn plan(context: &Context, out: &mut Changes) {
    power(context, out);
    halt_polling(&context.host.knobs, out);
    if let Some(nic) = context.nic {
        nic_changes(nic, out);
        busy_polling(&context.host.knobs, out);
    }
}

fn power(context: &Context, out: &mut Changes) {
    let busy = context
        .allocation
        .thread_cpus()
        .union(&context.allocation.io_cpus);
    if !context.allocation.reserved_idle.is_empty() {
        out.note(Note::IdleSiblingsPmQos {
            cpus: context.allocation.reserved_idle.clone(),
        });
    }
    for cpu in &context.host.power.cpus {
        if !context.exclusive.contains(cpu.cpu) {
            continue;
        }
        if let Some(latency) = cpu.resume_latency.filter(|_| busy.contains(cpu.cpu)) {
            out.push(
                Change {
                    knob: PmQosResumeLatency { cpu: cpu.cpu },
                    from: latency,
                    to: ResumeLatency::ZeroLatency,
                },
                MECHANISM,
                format!(
                    "n/a: CPU {} accepts no idle exit latency, so it only polls when idle",
                    cpu.cpu
                ),
            );
        }
        let performance = cpu
            .cpufreq_available_governors
            .iter()
            .find(|g| *g == "performance");
        if let (Some(from), Some(to)) = (&cpu.cpufreq_governor, performance) {
            out.push(
                Change {
                    knob: CpufreqGovernor { cpu: cpu.cpu },
                    from: from.clone(),
                    to: to.clone(),
                },
                MECHANISM,
                format!(
                    "CPU {} stays at its top frequency: no ramp-up after idle",
                    cpu.cpu
                ),
            );
        }
    }
}

fn halt_polling(knobs: &Knobs, out: &mut Changes) {
    match knobs.kvm_halt_poll_ns {
        None => out.note(Note::KvmNotLoaded),
        Some(from) if from < HALT_POLL_NS => out.push(
            Change {
                knob: KvmHaltPollNs,
                from,
                to: HALT_POLL_NS,
            },
            MECHANISM,
            "a halted vCPU polls 200 µs before its thread sleeps, so a wake-up in that window \
             skips the scheduler",
        ),
        Some(ns) => out.note(Note::HaltPollKept {
            ns: u64::from(ns),
            at_least: u64::from(HALT_POLL_NS),
        }),
    }
}

fn nic_changes(nic: &Nic, out: &mut Changes) {
    let Ok(iface) = Interface::try_from(nic.name.clone()) else {
        out.note(Note::NicBadName {
            nic: nic.name.clone(),
        });
        return;
    };
    match nic.coalescing.as_ref().and_then(|c| c.read()) {
        Some(current) => out.push(
            Change {
                knob: NicCoalesce {
                    iface: iface.clone(),
                },
                from: *current,
                to: Coalescing {
                    rx_usecs: 0,
                    rx_frames: 1,
                    tx_usecs: 0,
                    tx_frames: 1,
                    adaptive_rx: false,
                    adaptive_tx: false,
                },
            },
            MECHANISM,
            format!(
                "{} interrupts for every packet, without waiting to batch",
                nic.name
            ),
        ),
        None => out.note(Note::CoalescingUnreadable {
            nic: nic.name.clone(),
        }),
    }
    let offloads = nic.offloads.as_ref().and_then(|o| o.read());
    let features = [
        (Offload::Lro, offloads.and_then(|o| o.lro), "LRO"),
        (Offload::Gro, offloads.and_then(|o| o.gro), "GRO"),
    ];
    for (feature, current, label) in features {
        if let Some(current) = current {
            out.push(
                Change {
                    knob: NicFeature {
                        iface: iface.clone(),
                        feature,
                    },
                    from: current,
                    to: false,
                },
                MECHANISM,
                format!("{label} off: {} hands each packet up at once", nic.name),
            );
        }
    }
}

fn busy_polling(knobs: &Knobs, out: &mut Changes) {
    let reason = "sockets spin 50 µs for data before sleeping";
    if let Some(0) = knobs.busy_poll_us {
        out.push(
            Change {
                knob: BusyPoll,
                from: 0,
                to: BUSY_POLL_US,
            },
            MECHANISM,
            reason,
        );
    }
    if let Some(0) = knobs.busy_read_us {
        out.push(
            Change {
                knob: BusyRead,
                from: 0,
                to: BUSY_POLL_US,
            },
            MECHANISM,
            reason,
        );
    }
}
