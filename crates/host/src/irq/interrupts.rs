//! Parsing `/proc/interrupts`: per-CPU counts of every IRQ line and of the architecture's
//! named interrupts (LOC, RES, CAL, TLB on x86; IPI0..IPIn on ARM).
//!
//! The kernel prints one column per *online* CPU, headed `CPUn` (offline CPUs leave gaps in
//! the numbering). After the counts, a numbered row carries the chip name, the hardware IRQ
//! number (glued to the flow handler's name on x86: `5-edge`), on some architectures a
//! `Level`/`Edge` column, and the action names joined by `", "`. Action names may contain
//! spaces (`1004b800.serial:rx err`), so they are taken as the rest of the line, not as
//! tokens. Named rows may have fewer counts than CPUs (`ERR:` and `MIS:` have one).

use serde::{Deserialize, Serialize};

/// The edge or level trigger of an interrupt line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Edge,
    Level,
}

impl Trigger {
    pub fn parse(text: &str) -> Option<Trigger> {
        match text.trim().to_ascii_lowercase().as_str() {
            "edge" => Some(Trigger::Edge),
            "level" => Some(Trigger::Level),
            _ => None,
        }
    }
}

/// One numbered row: an IRQ line with its counts and the chip/hwirq/action columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberedRow {
    pub irq: u32,
    /// Counts in header column order; shorter than the header when the line was cut short.
    pub counts: Vec<u64>,
    pub chip: Option<String>,
    pub hwirq: Option<u64>,
    /// The flow handler's name where the kernel prints it (`edge`, `fasteoi`).
    pub handler: Option<String>,
    pub trigger: Option<Trigger>,
    pub actions: Vec<String>,
}

/// One named row such as `LOC: ... Local timer interrupts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedRow {
    pub name: String,
    /// Counts in header column order; may be shorter than the header (`ERR:` has one).
    pub counts: Vec<u64>,
    pub description: Option<String>,
}

/// A line the parser could not read, kept so the caller can report it as unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based, as editors count.
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterruptTable {
    /// The CPU of each count column, from the `CPUn` header.
    pub cpus: Vec<u32>,
    pub numbered: Vec<NumberedRow>,
    pub named: Vec<NamedRow>,
}

/// Parses the whole file. A missing or unreadable header refuses the file (no column can be
/// attributed to a CPU); a bad row is skipped and returned as a [`BadLine`].
pub fn parse(text: &str) -> Result<(InterruptTable, Vec<BadLine>), String> {
    let mut lines = text.lines().enumerate();
    let header = lines.next().map(|(_, l)| l).unwrap_or_default();
    let cpus = parse_header(header)?;
    let mut table = InterruptTable {
        cpus,
        ..InterruptTable::default()
    };
    let mut bad = Vec::new();
    for (index, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        if let Err(reason) = parse_row(line, &mut table) {
            bad.push(BadLine {
                line: index + 1,
                reason,
            });
        }
    }
    Ok((table, bad))
}

fn parse_header(header: &str) -> Result<Vec<u32>, String> {
    let cpus: Result<Vec<u32>, _> = header
        .split_whitespace()
        .map(|token| {
            token
                .strip_prefix("CPU")
                .and_then(|id| id.parse().ok())
                .ok_or_else(|| format!("header token {token:?} is not CPUn"))
        })
        .collect();
    match cpus {
        Ok(cpus) if cpus.is_empty() => Err("no CPU columns in the header".to_owned()),
        other => other,
    }
}

fn parse_row(line: &str, table: &mut InterruptTable) -> Result<(), String> {
    let (label, rest) = line
        .split_once(':')
        .ok_or_else(|| format!("no \"label:\" in {:?}", short(line)))?;
    let label = label.trim();
    if label.is_empty() || label.contains(char::is_whitespace) {
        return Err(format!("bad row label {label:?}"));
    }
    let (counts, tail) = take_counts(rest, table.cpus.len());
    let tail = tail.trim();
    match label.parse::<u32>() {
        Ok(irq) => {
            table.numbered.push(parse_numbered_tail(irq, counts, tail));
        }
        Err(_) if label.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(format!("IRQ number {label:?} out of range"));
        }
        Err(_) => table.named.push(NamedRow {
            name: label.to_owned(),
            counts,
            description: (!tail.is_empty()).then(|| tail.to_owned()),
        }),
    }
    Ok(())
}

/// Takes up to `max` leading decimal counts; returns them and the unparsed rest.
fn take_counts(text: &str, max: usize) -> (Vec<u64>, &str) {
    let mut counts = Vec::new();
    let mut rest = text;
    while counts.len() < max {
        let (token, after) = next_token(rest);
        match token.parse::<u64>() {
            Ok(count) if !token.is_empty() => {
                counts.push(count);
                rest = after;
            }
            _ => break,
        }
    }
    (counts, rest)
}

fn parse_numbered_tail(irq: u32, counts: Vec<u64>, tail: &str) -> NumberedRow {
    let mut row = NumberedRow {
        irq,
        counts,
        ..NumberedRow::default()
    };
    let (chip, mut rest) = next_token(tail);
    if !chip.is_empty() {
        row.chip = Some(chip.to_owned());
    }
    // The hwirq column is blank for lines without an IRQ domain, leaving `-edge` alone.
    let (token, after) = next_token(rest);
    if token.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        let (number, handler) = token.split_once('-').unwrap_or((token, ""));
        row.hwirq = number.parse().ok();
        row.handler = (!handler.is_empty()).then(|| handler.to_owned());
        rest = after;
    }
    let (token, after) = next_token(rest);
    if let Some(trigger) = Trigger::parse(token) {
        row.trigger = Some(trigger);
        rest = after;
    }
    row.actions = split_actions(rest);
    row
}

/// Splits the kernel's `", "`-joined action list.
pub fn split_actions(text: &str) -> Vec<String> {
    text.split(", ")
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

fn next_token(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    text.split_at(end)
}

fn short(line: &str) -> String {
    line.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_columns_follow_online_cpus() {
        let (table, bad) = parse("    CPU0  CPU2 CPU3\n 5:  1 2 3  IO-APIC 5-edge x\n").unwrap();
        assert_eq!(table.cpus, [0, 2, 3]);
        assert_eq!(table.numbered[0].counts, [1, 2, 3]);
        assert!(bad.is_empty());
    }

    #[test]
    fn refuses_a_file_without_cpu_header() {
        for (what, text) in [
            ("empty", ""),
            ("blank header", "\n 0: 1"),
            ("junk header", "hello world\n"),
        ] {
            assert!(parse(text).is_err(), "{what}");
        }
    }

    #[test]
    fn tails_are_split_into_columns() {
        let cases = [
            (
                "x86 IO-APIC",
                " 24:  1  0  IO-APIC   5-edge      ACPI:Ged",
                (
                    Some("IO-APIC"),
                    Some(5),
                    Some("edge"),
                    None,
                    vec!["ACPI:Ged"],
                ),
            ),
            (
                "GIC with trigger column",
                " 11:  262  109  GICv3  27 Level     arch_timer",
                (
                    Some("GICv3"),
                    Some(27),
                    None,
                    Some(Trigger::Level),
                    vec!["arch_timer"],
                ),
            ),
            (
                "no domain: no hwirq",
                " 21:  3  4  spmi-pmic-arb  pmic_pwrkey",
                (Some("spmi-pmic-arb"), None, None, None, vec!["pmic_pwrkey"]),
            ),
            (
                "shared line, names with spaces",
                " 44:  1  0  ITS-MSI 16384 Edge      aerdrv, PCIe PME, pciehp",
                (
                    Some("ITS-MSI"),
                    Some(16384),
                    None,
                    Some(Trigger::Edge),
                    vec!["aerdrv", "PCIe PME", "pciehp"],
                ),
            ),
            (
                "x86 line without a domain",
                "  7:  0  0  None   -edge      parport0",
                (Some("None"), None, Some("edge"), None, vec!["parport0"]),
            ),
            (
                "no action",
                "  2:  0  0  XT-PIC",
                (Some("XT-PIC"), None, None, None, vec![]),
            ),
        ];
        for (what, line, (chip, hwirq, handler, trigger, actions)) in cases {
            let (table, bad) = parse(&format!("CPU0 CPU1\n{line}\n")).unwrap();
            assert!(bad.is_empty(), "{what}: {bad:?}");
            let row = &table.numbered[0];
            assert_eq!(row.chip.as_deref(), chip, "{what}");
            assert_eq!(row.hwirq, hwirq, "{what}");
            assert_eq!(row.handler.as_deref(), handler, "{what}");
            assert_eq!(row.trigger, trigger, "{what}");
            assert_eq!(row.actions, actions, "{what}");
        }
    }

    #[test]
    fn short_rows_keep_the_counts_they_have() {
        let text = "CPU0 CPU1 CPU2\nERR:  7\nMIS:  0\n 9: 5\n";
        let (table, bad) = parse(text).unwrap();
        assert!(bad.is_empty());
        assert_eq!(table.named[0].counts, [7]);
        assert_eq!(table.named[0].description, None);
        assert_eq!(table.numbered[0].counts, [5]);
        assert_eq!(table.numbered[0].chip, None);
    }

    /// Real files: this KVM guest, a 16-CPU x86 server, and GICv3 rows from arm64 boards.
    #[test]
    fn captured_files_parse_fully() {
        let cases = [
            (
                "2-CPU KVM guest, MSI-X virtio",
                include_str!("../../tests/data/interrupts/kvm-2cpu.txt"),
                2,
                (38, "PCI-MSIX-0000:00:03.0", "virtio2-input.0"),
                ("LOC", 2),
            ),
            (
                "16-CPU x86 server",
                include_str!("../../tests/data/interrupts/x86-16cpu.txt"),
                16,
                (25, "PCI-MSI-0000:00:01.0", "PCIe bwctrl"),
                ("VPMI", 16),
            ),
            (
                "arm64 GICv3 with ITS",
                include_str!("../../tests/data/interrupts/arm64-gicv3.txt"),
                4,
                (13, "GICv3", "1004b800.serial:rx err"),
                ("IPI0", 4),
            ),
        ];
        for (what, text, ncpus, (irq, chip, action), (named, ncounts)) in cases {
            let (table, bad) = parse(text).unwrap();
            assert!(bad.is_empty(), "{what}: {bad:?}");
            assert_eq!(table.cpus, (0..ncpus).collect::<Vec<u32>>(), "{what}");
            let row = table.numbered.iter().find(|r| r.irq == irq).unwrap();
            assert_eq!(row.chip.as_deref(), Some(chip), "{what}");
            assert_eq!(
                row.actions.last().map(String::as_str),
                Some(action),
                "{what}"
            );
            assert_eq!(row.counts.len(), ncpus as usize, "{what}");
            let named_row = table.named.iter().find(|r| r.name == named).unwrap();
            assert_eq!(named_row.counts.len(), ncounts, "{what}");
            let err = table
                .named
                .iter()
                .find(|r| r.name.eq_ignore_ascii_case("err"));
            assert_eq!(err.unwrap().counts, [0], "{what}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_random_text(text in "(?s).{0,400}") {
            let _ = parse(&text);
        }

        #[test]
        fn never_panics_on_mangled_real_files(
            cut in 0usize..4100,
            drop_line in 0usize..40,
            extra in "[ 0-9A-Za-z:,.-]{0,60}",
        ) {
            let real = include_str!("../../tests/data/interrupts/x86-16cpu.txt");
            let mut lines: Vec<&str> = real.lines().collect();
            if drop_line < lines.len() { lines.remove(drop_line); }
            let mut text = lines.join("\n");
            text.truncate(cut.min(text.len())); // the capture is ASCII: any cut is a boundary
            text.push_str(&extra);
            if let Ok((table, _)) = parse(&text) {
                for row in &table.numbered {
                    prop_assert!(row.counts.len() <= table.cpus.len());
                }
            }
        }

        #[test]
        fn rows_with_any_column_count_keep_their_counts(
            ncpus in 1usize..12,
            counts in proptest::collection::vec(0u64..1_000_000, 0..12),
            action in "[a-z][a-z0-9_.-]{0,12}",
        ) {
            let header: Vec<String> = (0..ncpus).map(|c| format!("CPU{c}")).collect();
            let counts_text: Vec<String> = counts.iter().map(u64::to_string).collect();
            let text = format!("{}\n 7: {} IO-APIC 7-edge {action}\n", header.join(" "), counts_text.join(" "));
            let (table, bad) = parse(&text).unwrap();
            prop_assert!(bad.is_empty());
            let row = &table.numbered[0];
            let kept = counts.len().min(ncpus);
            prop_assert_eq!(&row.counts[..], &counts[..kept]);
            if counts.len() <= ncpus {
                prop_assert_eq!(row.actions.clone(), vec![action]);
            }
        }
    }

    #[test]
    fn bad_rows_are_reported_with_their_line() {
        let text = "CPU0\n 1: 4 IO-APIC 1-edge i8042\nno colon here\n99999999999: 1\n : 3\n";
        let (table, bad) = parse(text).unwrap();
        assert_eq!(table.numbered.len(), 1);
        let lines: Vec<_> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [3, 4, 5]);
    }
}
