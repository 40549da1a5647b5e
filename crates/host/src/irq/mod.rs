//! IRQs: where each interrupt line may and does land, who owns it, whether its affinity can
//! be changed, and whether irqbalance is running to undo such changes.
//!
//! Sources, all read through the [`Root`]: `/proc/interrupts` for counts and the
//! chip/hwirq/action columns; `/sys/kernel/irq/N/*` for the same columns without the
//! whitespace ambiguity; `/proc/irq/N/{smp_affinity_list,effective_affinity_list}` for
//! affinity; the write bit of `/proc/irq/N/smp_affinity`, which the kernel drops when user
//! space may not set the affinity (managed and per-CPU lines); `/sys/bus/pci/devices/*/msi_irqs`
//! for the owning PCI function.

mod findings;
pub mod interrupts;
pub mod irqbalance;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;

use serde::{Deserialize, Serialize};

use crate::collect::Collector;
use crate::kernel::irq::{SmpAffinityList, DEFAULT_SMP_AFFINITY};
use crate::kernel::KernelFile;
use crate::{CpuSet, ReadError, Root, Unknown};
pub use interrupts::{split_actions, NamedRow, Trigger};
pub use irqbalance::IrqBalance;

const INTERRUPTS: &str = "/proc/interrupts";
const PCI_DEVICES: &str = "/sys/bus/pci/devices";

/// Every IRQ line of the host, the named per-CPU interrupts, and the policies that place them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Irqs {
    /// The CPU of each count column (the online CPUs when the file was read).
    pub cpus: Vec<u32>,
    pub lines: Vec<Irq>,
    /// LOC, RES, CAL, TLB, NMI... (x86) or IPI0..IPIn (ARM); counts follow `cpus`.
    pub named: Vec<NamedRow>,
    /// `/proc/irq/default_smp_affinity`: where newly requested IRQs start out.
    pub default_affinity: Option<CpuSet>,
    pub irqbalance: IrqBalance,
}

/// One numbered interrupt line. `None` fields could not be read and are listed as unknown,
/// except `effective_affinity`, which older kernels and some architectures do not expose.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Irq {
    pub number: u32,
    /// Interrupts handled since boot, one per entry of [`Irqs::cpus`] (shorter if cut short).
    pub counts: Vec<u64>,
    pub chip: Option<String>,
    pub hwirq: Option<u64>,
    /// The flow handler (`edge`, `fasteoi`) where the kernel names one.
    pub handler: Option<String>,
    pub trigger: Option<Trigger>,
    /// The drivers' handler names: `virtio2-input.0`, `eth0-TxRx-3`, `nvme0q1`.
    pub actions: Vec<String>,
    /// The PCI function whose MSI/MSI-X vector this is (`0000:00:03.0`).
    pub device: Option<String>,
    /// The CPUs the line may be routed to (`smp_affinity_list`).
    pub affinity: Option<CpuSet>,
    /// The CPUs it is actually routed to (`effective_affinity_list`), a subset of `affinity`.
    pub effective_affinity: Option<CpuSet>,
    /// False for kernel-managed and per-CPU lines, whose affinity user space cannot set: a
    /// write fails with EIO, which apply reports as "unchangeable". `None` off the live host.
    pub affinity_settable: Option<bool>,
}

impl Irq {
    /// "IRQ 36 virtio1-req.0": how findings and reports name the line.
    pub fn label(&self) -> String {
        match self.actions.is_empty() {
            true => format!("IRQ {}", self.number),
            false => format!("IRQ {} {}", self.number, self.actions.join(",")),
        }
    }

    /// Where the line's interrupts are delivered: the effective affinity when known.
    pub fn delivered_to(&self) -> Option<&CpuSet> {
        self.effective_affinity.as_ref().or(self.affinity.as_ref())
    }

    /// Count on `cpu` since boot, if that CPU has a column.
    pub fn count_on(&self, cpus: &[u32], cpu: u32) -> Option<u64> {
        let column = cpus.iter().position(|&c| c == cpu)?;
        self.counts.get(column).copied()
    }
}

/// Reads every IRQ line, the named rows, `default_smp_affinity` and irqbalance's state.
pub fn read(root: &Root) -> (Irqs, Vec<Unknown>) {
    let mut collect = Collector::new(root);
    let mut irqs = Irqs::default();
    let mut rows = BTreeMap::new();
    if let Some(text) = collect.text("IRQ counts", INTERRUPTS) {
        match interrupts::parse(&text) {
            Ok((table, bad_lines)) => {
                for bad in bad_lines {
                    let object = format!("line {} of /proc/interrupts", bad.line);
                    collect.malformed(object, INTERRUPTS, bad.reason);
                }
                irqs.cpus = table.cpus;
                irqs.named = table.named;
                rows = table.numbered.into_iter().map(|r| (r.irq, r)).collect();
            }
            Err(reason) => collect.malformed("IRQ counts", INTERRUPTS, reason),
        }
    }
    let mut numbers: BTreeSet<u32> = rows.keys().copied().collect();
    if let Some(names) = collect.list_dir("IRQ affinities", "/proc/irq") {
        numbers.extend(names.iter().filter_map(|n| n.parse::<u32>().ok()));
    }
    let owners = msi_owners(root);
    irqs.lines = numbers
        .into_iter()
        .map(|number| {
            let row = rows.remove(&number).unwrap_or_default();
            read_line(&mut collect, number, row, owners.get(&number))
        })
        .collect();
    irqs.default_affinity = collect.file(&DEFAULT_SMP_AFFINITY);
    irqs.irqbalance = irqbalance::read(&mut collect);
    (irqs, collect.finish())
}

fn read_line(
    collect: &mut Collector,
    number: u32,
    row: interrupts::NumberedRow,
    owner: Option<&String>,
) -> Irq {
    let sys = format!("/sys/kernel/irq/{number}");
    let proc = format!("/proc/irq/{number}");
    let object = |what: &str| format!("{what} of IRQ {number}");
    let mut irq = Irq {
        number,
        counts: row.counts,
        chip: row.chip,
        hwirq: row.hwirq,
        handler: row.handler,
        trigger: row.trigger,
        actions: row.actions,
        device: owner.cloned(),
        ..Irq::default()
    };
    let text = |s: &str| Ok::<_, String>(s.to_owned());
    if let Some(chip) = collect.parsed_if_present(object("chip"), format!("{sys}/chip_name"), text)
    {
        irq.chip = Some(chip).filter(|c| !c.is_empty());
    }
    if let Some(hwirq) = collect.parsed_if_present(object("hwirq"), format!("{sys}/hwirq"), |s| {
        s.parse::<u64>()
    }) {
        irq.hwirq = Some(hwirq);
    }
    if let Some(trigger) =
        collect.parsed_if_present(object("trigger"), format!("{sys}/type"), |s| {
            Trigger::parse(s).ok_or("neither edge nor level")
        })
    {
        irq.trigger = Some(trigger);
    }
    if let Some(actions) =
        collect.parsed_if_present(object("actions"), format!("{sys}/actions"), text)
    {
        irq.actions = split_sysfs_actions(&actions);
    }
    if irq.actions.is_empty() {
        irq.actions = action_dirs(collect.root, &proc);
    }
    irq.affinity = read_affinity(collect, number, &proc);
    irq.effective_affinity = read_effective(collect, &object("effective affinity"), &proc);
    irq.affinity_settable = affinity_settable(collect.root, &proc);
    irq
}

/// The kernel creates `smp_affinity` without its write bit when user space may not set the
/// line's affinity. Only the live host keeps that mode: captures store every file as 0644,
/// so elsewhere settability is unknown rather than guessed.
pub fn affinity_settable(root: &Root, proc: &str) -> Option<bool> {
    if !root.is_live() {
        return None;
    }
    let meta = root.metadata(format!("{proc}/smp_affinity")).ok()?;
    Some(meta.permissions().mode() & 0o200 != 0)
}

/// `smp_affinity_list` through the definition the knob writes through.
fn read_affinity(collect: &mut Collector, irq: u32, proc: &str) -> Option<CpuSet> {
    let list = SmpAffinityList { irq };
    list_or_mask(
        collect,
        &list.object(),
        list.read(collect.root),
        proc,
        "smp_affinity",
    )
}

/// The list form first (exact), then the mask form (kernels before 2.6.28 lack the list).
fn list_or_mask(
    collect: &mut Collector,
    object: &str,
    list: Result<CpuSet, ReadError>,
    proc: &str,
    file: &str,
) -> Option<CpuSet> {
    match list {
        Ok(set) => Some(set),
        Err(err) if err.is_not_found() => {
            collect.parsed(object, format!("{proc}/{file}"), CpuSet::parse_mask)
        }
        Err(err) => collect.failed(object, &err),
    }
}

fn read_effective(collect: &mut Collector, object: &str, proc: &str) -> Option<CpuSet> {
    let exists = |name: &str| collect.root.exists(format!("{proc}/{name}"));
    if !exists("effective_affinity_list") && !exists("effective_affinity") {
        return None;
    }
    let list = collect.root.read_parsed(
        format!("{proc}/effective_affinity_list"),
        CpuSet::parse_list,
    );
    list_or_mask(collect, object, list, proc, "effective_affinity")
}

/// The action names of IRQ `number`: `/sys/kernel/irq/N/actions`, else the
/// `/proc/irq/N/<action>` directories; empty when neither names any.
pub fn action_names(root: &Root, number: u32) -> Vec<String> {
    match root.read_trimmed(format!("/sys/kernel/irq/{number}/actions")) {
        Ok(text) if !text.is_empty() => split_sysfs_actions(&text),
        _ => action_dirs(root, &format!("/proc/irq/{number}")),
    }
}

/// sysfs joins action names with a bare `,` (`/proc/interrupts` uses `", "`).
fn split_sysfs_actions(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `/proc/irq/N/<action>` directories: the action names when nothing better was found.
fn action_dirs(root: &Root, proc: &str) -> Vec<String> {
    let Ok(names) = root.list_dir(proc) else {
        return Vec::new();
    };
    names
        .into_iter()
        .filter(|name| root.list_dir(format!("{proc}/{name}")).is_ok())
        .collect()
}

/// IRQ number → the PCI function that owns it as an MSI/MSI-X vector. Hosts without PCI
/// have no such directory, which is not an unknown.
pub fn msi_owners(root: &Root) -> BTreeMap<u32, String> {
    let mut owners = BTreeMap::new();
    for device in root.list_dir(PCI_DEVICES).unwrap_or_default() {
        let msi = format!("{PCI_DEVICES}/{device}/msi_irqs");
        for irq in root.list_dir(&msi).unwrap_or_default() {
            if let Ok(number) = irq.parse::<u32>() {
                owners.insert(number, device.clone());
            }
        }
    }
    owners
}
