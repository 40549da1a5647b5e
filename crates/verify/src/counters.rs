//! Per-CPU counter tables (`/proc/interrupts`, `/proc/softirqs`) and their deltas over a
//! sample.
//!
//! The kernel's counters only grow, but between two reads a row can appear (an IRQ line
//! requested mid-sample), disappear (freed), or come back with smaller counts (freed and
//! requested again, or a CPU taken offline and back). A new row counts from zero; a row
//! that went backwards was reset, so only what it counted since the reset (its new value) is
//! certain; a vanished row's last counts are lost. None of these can panic or underflow.

use std::collections::BTreeMap;

use nearnative_host::CpuSet;
use serde::{Deserialize, Serialize};

/// One reading of a per-CPU counter table: the CPU of each column, and each row's counts
/// in column order (possibly fewer than the columns).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterTable<K: Ord> {
    pub cpus: Vec<u32>,
    pub rows: BTreeMap<K, Vec<u64>>,
}

impl<K: Ord> CounterTable<K> {
    /// The count of `key` on `cpu`, if both have a column and a value.
    pub fn get(&self, key: &K, cpu: u32) -> Option<u64> {
        let column = self.cpus.iter().position(|&c| c == cpu)?;
        self.rows.get(key)?.get(column).copied()
    }
}

/// A count on one CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuCount {
    pub cpu: u32,
    pub count: u64,
}

/// How much a counter advanced from `before` to `after`; a counter that went backwards was
/// reset, and counted `after` since.
pub fn advance(before: u64, after: u64) -> u64 {
    after.checked_sub(before).unwrap_or(after)
}

/// Each row's non-zero advances on `cpus`, for rows present at the end (a row absent at the
/// start counts from zero). Rows with no advance on any of `cpus` are left out.
pub fn deltas<K: Ord + Clone>(
    before: &CounterTable<K>,
    after: &CounterTable<K>,
    cpus: &CpuSet,
) -> BTreeMap<K, Vec<CpuCount>> {
    let mut out = BTreeMap::new();
    for key in after.rows.keys() {
        let counts: Vec<CpuCount> = cpus
            .iter()
            .filter_map(|cpu| {
                let end = after.get(key, cpu)?;
                let start = before.get(key, cpu).unwrap_or(0);
                let count = advance(start, end);
                (count > 0).then_some(CpuCount { cpu, count })
            })
            .collect();
        if !counts.is_empty() {
            out.insert(key.clone(), counts);
        }
    }
    out
}

/// The sum of `counts`, saturating.
pub fn total(counts: &[CpuCount]) -> u64 {
    counts
        .iter()
        .fold(0u64, |sum, c| sum.saturating_add(c.count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(cpus: &[u32], rows: &[(&str, &[u64])]) -> CounterTable<String> {
        CounterTable {
            cpus: cpus.to_vec(),
            rows: rows
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_vec()))
                .collect(),
        }
    }

    #[test]
    fn deltas_cover_growth_resets_new_and_vanished_rows() {
        let before = table(
            &[0, 1],
            &[("a", &[5, 10]), ("b", &[1, 100]), ("gone", &[0, 9])],
        );
        let after = table(
            &[0, 1],
            &[("a", &[9, 12]), ("b", &[1, 3]), ("new", &[0, 4])],
        );
        let got = deltas(&before, &after, &CpuSet::from_ids([1]));
        let one = |count| vec![CpuCount { cpu: 1, count }];
        let cases = [
            ("grew by 2", "a", Some(one(2))),
            ("reset: counts since", "b", Some(one(3))),
            ("appeared: from zero", "new", Some(one(4))),
            ("vanished: lost", "gone", None),
        ];
        for (what, key, expected) in cases {
            assert_eq!(got.get(key).cloned(), expected, "{what}");
        }
    }

    #[test]
    fn columns_are_matched_by_cpu_not_position() {
        let before = table(&[0, 1, 2], &[("x", &[1, 2, 3])]);
        let after = table(&[0, 2], &[("x", &[1, 5])]);
        let got = deltas(&before, &after, &CpuSet::from_ids([1, 2]));
        assert_eq!(got["x"], vec![CpuCount { cpu: 2, count: 2 }]);
    }

    fn arb_table() -> impl Strategy<Value = CounterTable<String>> {
        (
            proptest::collection::vec(0u32..8, 0..6),
            proptest::collection::btree_map(
                "[a-d]",
                proptest::collection::vec(any::<u64>(), 0..8),
                0..5,
            ),
        )
            .prop_map(|(cpus, rows)| CounterTable { cpus, rows })
    }

    proptest! {
        #[test]
        fn deltas_never_panic_and_never_exceed_the_end_value(
            before in arb_table(),
            after in arb_table(),
            ids in proptest::collection::vec(0u32..10, 0..5),
        ) {
            let cpus = CpuSet::from_ids(ids);
            for (key, counts) in deltas(&before, &after, &cpus) {
                for c in &counts {
                    prop_assert!(cpus.contains(c.cpu));
                    prop_assert!(c.count > 0);
                    prop_assert!(Some(c.count) <= after.get(&key, c.cpu));
                }
                let _ = total(&counts);
            }
        }

        #[test]
        fn advance_is_exact_for_growing_counters(start in any::<u64>(), step in any::<u64>()) {
            let end = start.saturating_add(step);
            prop_assert_eq!(advance(start, end), end - start);
        }
    }
}
