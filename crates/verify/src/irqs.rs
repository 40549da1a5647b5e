//! Interrupts on the exclusive CPUs: `/proc/interrupts` and `/proc/softirqs` read at the start
//! and the end of a sample, through the host crate's parser, and turned into per-CPU counts.
//!
//! Numbered lines (device IRQs) and the architecture's named rows (LOC, RES, CAL, TLB, ...)
//! are kept apart: named rows are per-CPU by nature, and some (LOC, the timer tick) are
//! expected on every CPU that is not `nohz_full`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use nearnative_host::irq::{affinity_settable, interrupts};
use nearnative_host::{CpuSet, Root, Unknown};
use serde::{Deserialize, Serialize};

use crate::counters::{deltas, total, CounterTable, CpuCount};
use crate::proc_file::read_parsed;

pub const INTERRUPTS: &str = "/proc/interrupts";
pub const SOFTIRQS: &str = "/proc/softirqs";

/// One reading of `/proc/interrupts`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterruptsReading {
    pub lines: CounterTable<u32>,
    /// The action names of each line, joined with `,` (`virtio2-input.0`).
    pub names: BTreeMap<u32, String>,
    pub named: CounterTable<String>,
    /// The named rows' descriptions (`Local timer interrupts`).
    pub descriptions: BTreeMap<String, String>,
}

/// A device IRQ line that fired on the exclusive CPUs during the sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IrqLine {
    pub irq: u32,
    /// The action names joined with `,`; empty for a line without a handler name.
    pub name: String,
    pub counts: Vec<CpuCount>,
    pub total: u64,
    /// False for a kernel-managed or per-CPU line, whose affinity user space cannot change:
    /// its interrupts on an exclusive CPU are unavoidable. `None` off the live host.
    pub affinity_settable: Option<bool>,
}

impl IrqLine {
    /// "IRQ 38 virtio2-input.0".
    pub fn label(&self) -> String {
        match self.name.is_empty() {
            true => format!("IRQ {}", self.irq),
            false => format!("IRQ {} {}", self.irq, self.name),
        }
    }
}

/// A named per-CPU interrupt (LOC, RES, ...) or a softirq (TIMER, NET_RX, ...) that fired on
/// the exclusive CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedCount {
    pub name: String,
    pub description: Option<String>,
    pub counts: Vec<CpuCount>,
    pub total: u64,
}

/// What fired on the exclusive CPUs during the sample.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IrqActivity {
    pub lines: Vec<IrqLine>,
    pub named: Vec<NamedCount>,
}

/// Reads `/proc/interrupts`; bad rows are skipped and returned as unknowns, a file that
/// cannot be read or has no CPU header is one unknown.
pub fn read_interrupts(root: &Root) -> Result<(InterruptsReading, Vec<Unknown>), Unknown> {
    let (table, bad) = read_table(root, "IRQ counts", INTERRUPTS)?;
    let unknowns = bad
        .into_iter()
        .map(|b| Unknown {
            object: format!("line {} of {INTERRUPTS}", b.line),
            path: PathBuf::from(INTERRUPTS),
            reason: b.reason,
        })
        .collect();
    let mut reading = InterruptsReading {
        lines: CounterTable {
            cpus: table.cpus.clone(),
            rows: BTreeMap::new(),
        },
        named: CounterTable {
            cpus: table.cpus,
            rows: BTreeMap::new(),
        },
        ..InterruptsReading::default()
    };
    for row in table.numbered {
        reading.names.insert(row.irq, row.actions.join(","));
        reading.lines.rows.insert(row.irq, row.counts);
    }
    for row in table.named {
        if let Some(description) = row.description {
            reading.descriptions.insert(row.name.clone(), description);
        }
        reading.named.rows.insert(row.name, row.counts);
    }
    Ok((reading, unknowns))
}

/// Reads `/proc/softirqs`, whose layout (a `CPUn` header, then `NAME: counts` rows) is the
/// one `/proc/interrupts` uses for its named rows.
pub fn read_softirqs(root: &Root) -> Result<CounterTable<String>, Unknown> {
    let (table, _) = read_table(root, "softirq counts", SOFTIRQS)?;
    Ok(CounterTable {
        cpus: table.cpus,
        rows: table
            .named
            .into_iter()
            .map(|r| (r.name, r.counts))
            .collect(),
    })
}

/// Reads and parses a per-CPU table in the `/proc/interrupts` layout.
fn read_table(
    root: &Root,
    object: &str,
    path: &str,
) -> Result<(interrupts::InterruptTable, Vec<interrupts::BadLine>), Unknown> {
    read_parsed(root, path, object, interrupts::parse)
}

/// What fired on `cpus` between two readings of `/proc/interrupts`. The end reading names
/// the lines (a line freed mid-sample keeps its last name); `root` tells which lines'
/// affinity can be set.
pub fn irq_activity(
    root: &Root,
    before: &InterruptsReading,
    after: &InterruptsReading,
    cpus: &CpuSet,
) -> IrqActivity {
    let lines = deltas(&before.lines, &after.lines, cpus)
        .into_iter()
        .map(|(irq, counts)| IrqLine {
            irq,
            name: after.names.get(&irq).cloned().unwrap_or_default(),
            affinity_settable: affinity_settable(root, &format!("/proc/irq/{irq}")),
            total: total(&counts),
            counts,
        })
        .collect();
    IrqActivity {
        lines,
        named: named_counts(&before.named, &after.named, cpus, &after.descriptions),
    }
}

/// The named rows of two readings that advanced on `cpus`, with their descriptions.
pub fn named_counts(
    before: &CounterTable<String>,
    after: &CounterTable<String>,
    cpus: &CpuSet,
    descriptions: &BTreeMap<String, String>,
) -> Vec<NamedCount> {
    deltas(before, after, cpus)
        .into_iter()
        .map(|(name, counts)| NamedCount {
            description: descriptions.get(&name).cloned(),
            total: total(&counts),
            name,
            counts,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A `/proc/interrupts` text with the given CPU columns and numbered rows (at most one
    /// count per column, as the kernel prints).
    fn render(cpus: &[u32], rows: &BTreeMap<u32, Vec<u64>>) -> String {
        let header: Vec<String> = cpus.iter().map(|c| format!("CPU{c}")).collect();
        let mut text = format!("{}\n", header.join(" "));
        for (irq, counts) in rows {
            let counts: Vec<String> = counts.iter().take(cpus.len()).map(u64::to_string).collect();
            text.push_str(&format!(
                "{irq}: {} IO-APIC {irq}-edge dev{irq}\n",
                counts.join(" ")
            ));
        }
        text
    }

    fn arb_reading() -> impl Strategy<Value = (Vec<u32>, BTreeMap<u32, Vec<u64>>)> {
        (
            proptest::collection::btree_set(0u32..6, 1..4),
            proptest::collection::btree_map(
                0u32..8,
                proptest::collection::vec(any::<u64>(), 0..5),
                0..6,
            ),
        )
            .prop_map(|(cpus, rows)| (cpus.into_iter().collect(), rows))
    }

    proptest! {
        #[test]
        fn activity_between_any_two_readings_never_panics(
            (cpus_a, rows_a) in arb_reading(),
            (cpus_b, rows_b) in arb_reading(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("proc")).unwrap();
            let root = Root::new(dir.path());
            let file = dir.path().join("proc/interrupts");
            std::fs::write(&file, render(&cpus_a, &rows_a)).unwrap();
            let (before, _) = read_interrupts(&root).unwrap();
            std::fs::write(&file, render(&cpus_b, &rows_b)).unwrap();
            let (after, _) = read_interrupts(&root).unwrap();
            let activity = irq_activity(&root, &before, &after, &CpuSet::from_ids(0..6));
            for line in &activity.lines {
                prop_assert!(rows_b.contains_key(&line.irq), "only rows present at the end");
                prop_assert_eq!(line.total, total(&line.counts));
                prop_assert_eq!(&line.name, &format!("dev{}", line.irq));
            }
        }
    }

    fn root_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        for (path, text) in files {
            std::fs::write(dir.path().join(path.trim_start_matches('/')), text).unwrap();
        }
        dir
    }

    const BEFORE: &str =
        "      CPU0  CPU1\n 38:  5  50  PCI-MSIX-0000:00:03.0 1-edge virtio2-input.0\n\
        LOC: 100 200 Local timer interrupts\nRES: 1 1 Rescheduling interrupts\n";
    const AFTER: &str =
        "      CPU0  CPU1\n 38:  9  107  PCI-MSIX-0000:00:03.0 1-edge virtio2-input.0\n\
        LOC: 150 450 Local timer interrupts\nRES: 1 1 Rescheduling interrupts\nbad row\n";

    #[test]
    fn activity_names_lines_and_keeps_named_rows_apart() {
        let before = read_interrupts(&Root::new(root_with(&[(INTERRUPTS, BEFORE)]).path()));
        let dir = root_with(&[(INTERRUPTS, AFTER)]);
        let (after, unknowns) = read_interrupts(&Root::new(dir.path())).unwrap();
        assert_eq!(unknowns.len(), 1, "the bad row is an unknown");
        let root = Root::new(dir.path());
        let activity = irq_activity(&root, &before.unwrap().0, &after, &CpuSet::from_ids([1]));
        assert_eq!(activity.lines.len(), 1);
        assert_eq!(activity.lines[0].label(), "IRQ 38 virtio2-input.0");
        assert_eq!(activity.lines[0].total, 57);
        assert_eq!(
            activity.lines[0].affinity_settable, None,
            "not the live host"
        );
        assert_eq!(activity.named.len(), 1, "RES did not advance");
        assert_eq!(activity.named[0].name, "LOC");
        assert_eq!(
            activity.named[0].description.as_deref(),
            Some("Local timer interrupts")
        );
        assert_eq!(activity.named[0].total, 250);
    }

    #[test]
    fn missing_or_headerless_files_are_unknowns_with_their_path() {
        let cases = [
            ("missing", None, "not found"),
            ("no header", Some("garbage\n"), "not CPUn"),
        ];
        for (what, text, reason) in cases {
            let dir = root_with(&[]);
            if let Some(text) = text {
                std::fs::write(dir.path().join("proc/interrupts"), text).unwrap();
                std::fs::write(dir.path().join("proc/softirqs"), text).unwrap();
            }
            let root = Root::new(dir.path());
            let unknown = read_interrupts(&root).unwrap_err();
            assert!(unknown.path.ends_with("proc/interrupts"), "{what}");
            assert!(unknown.reason.contains(reason), "{what}: {unknown:?}");
            let unknown = read_softirqs(&root).unwrap_err();
            assert!(unknown.path.ends_with("proc/softirqs"), "{what}");
        }
    }

    #[test]
    fn softirqs_parse_as_named_rows() {
        let text = "                    CPU0       CPU1\n          HI:          0          0\n\
            \u{20}      TIMER:     154181     120682\n      NET_RX:   19129845   18816450\n";
        let dir = root_with(&[(SOFTIRQS, text)]);
        let table = read_softirqs(&Root::new(dir.path())).unwrap();
        assert_eq!(table.get(&"NET_RX".to_owned(), 1), Some(18816450));
        assert_eq!(table.rows.len(), 3);
    }
}
