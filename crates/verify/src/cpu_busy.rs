//! How busy each exclusive CPU was, from the per-CPU lines of `/proc/stat`: the cross-check
//! that catches what thread polling misses (threads born and gone between two listings).
//!
//! The kernel prints each CPU's time in `USER_HZ` ticks (1/100 s on every mainstream
//! architecture), split into user, nice, system, idle, iowait, irq, softirq and steal. Busy
//! time is user + nice + system + irq + softirq: everything but idle, iowait (idle with I/O
//! pending) and steal (time the hypervisor gave to someone else). The resolution is one tick,
//! so this is a coarse total, not a per-thread account.

use std::collections::BTreeMap;

use nearnative_host::{CpuSet, Root, Unknown};
use serde::{Deserialize, Serialize};

use crate::counters::advance;
use crate::proc_file::{per_cpu_lines, read_parsed};

pub const STAT: &str = "/proc/stat";

/// One CPU's time over the sample, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuBusy {
    pub cpu: u32,
    /// Time running tasks or handling interrupts.
    pub busy_ns: u64,
    /// The part of `busy_ns` spent in hard and soft interrupt handlers (zero unless the
    /// kernel accounts IRQ time).
    pub irq_ns: u64,
    /// Time the hypervisor ran something else on this virtual CPU.
    pub steal_ns: u64,
}

/// Tick counters of one CPU line, in the kernel's order from `user`.
type Ticks = Vec<u64>;

/// One reading of `/proc/stat`'s per-CPU lines.
pub type StatReading = BTreeMap<u32, Ticks>;

/// The per-CPU lines of `/proc/stat`, by CPU.
pub fn parse_stat(text: &str) -> Result<StatReading, String> {
    per_cpu_lines(text, |cpu, line, fields| {
        let ticks: Ticks = fields
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| format!("bad count in {line:?}"))?;
        if ticks.len() < 8 {
            return Err(format!("cpu{cpu} has {} counters, need 8", ticks.len()));
        }
        Ok(ticks)
    })
}

pub fn read(root: &Root) -> Result<StatReading, Unknown> {
    read_parsed(root, STAT, "CPU busy time", parse_stat)
}

const USER: usize = 0;
const NICE: usize = 1;
const SYSTEM: usize = 2;
const IRQ: usize = 5;
const SOFTIRQ: usize = 6;
const STEAL: usize = 7;

/// Each of `cpus`' time between two readings; a CPU missing from either is left out.
pub fn busy(
    before: &StatReading,
    after: &StatReading,
    cpus: &CpuSet,
    tick_ns: u64,
) -> Vec<CpuBusy> {
    cpus.iter()
        .filter_map(|cpu| {
            let (start, end) = (before.get(&cpu)?, after.get(&cpu)?);
            let ns = |fields: &[usize]| {
                fields
                    .iter()
                    .map(|&f| advance(start[f], end[f]))
                    .fold(0u64, u64::saturating_add)
                    .saturating_mul(tick_ns)
            };
            Some(CpuBusy {
                cpu,
                busy_ns: ns(&[USER, NICE, SYSTEM, IRQ, SOFTIRQ]),
                irq_ns: ns(&[IRQ, SOFTIRQ]),
                steal_ns: ns(&[STEAL]),
            })
        })
        .collect()
}

/// Nanoseconds per `USER_HZ` tick on this host.
pub fn tick_ns() -> u64 {
    // SAFETY: sysconf only reads a configuration value; it has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    match u64::try_from(hz) {
        Ok(hz) if hz > 0 => 1_000_000_000 / hz,
        _ => 10_000_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STAT_TEXT: &str = "cpu  10 0 10 100 0 0 0 0 0 0\n\
        cpu0 5 0 5 50 0 0 0 0 0 0\ncpu1 100 2 30 800 4 1 2 7 0 0\nintr 1 2 3\nctxt 99\n";

    #[test]
    fn parses_per_cpu_lines_only() {
        let cpus = parse_stat(STAT_TEXT).unwrap();
        assert_eq!(cpus.keys().copied().collect::<Vec<_>>(), [0, 1]);
        assert_eq!(cpus[&1][STEAL], 7);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let cases = [
            ("empty", "", "no cpuN"),
            ("short line", "cpu0 1 2 3\n", "need 8"),
            ("bad count", "cpu0 1 2 3 4 5 6 7 x\n", "bad count"),
            ("bad label", "cpuX 1 2 3 4 5 6 7 8\n", "bad CPU label"),
        ];
        for (what, text, reason) in cases {
            let err = parse_stat(text).unwrap_err();
            assert!(err.contains(reason), "{what}: {err}");
        }
    }

    #[test]
    fn busy_time_leaves_out_idle_iowait_and_steal() {
        let before = parse_stat(STAT_TEXT).unwrap();
        let after = parse_stat(
            &STAT_TEXT.replace("cpu1 100 2 30 800 4 1 2 7", "cpu1 150 2 40 830 9 3 6 9"),
        )
        .unwrap();
        let got = busy(&before, &after, &CpuSet::from_ids([1, 5]), 10_000_000);
        let expected = CpuBusy {
            cpu: 1,
            busy_ns: (50 + 10 + 2 + 4) * 10_000_000,
            irq_ns: 6 * 10_000_000,
            steal_ns: 2 * 10_000_000,
        };
        assert_eq!(got, [expected]);
    }

    proptest! {
        #[test]
        fn busy_never_panics_on_any_pair(
            a in proptest::collection::vec(any::<u64>(), 8..11),
            b in proptest::collection::vec(any::<u64>(), 8..11),
        ) {
            let before = BTreeMap::from([(1, a)]);
            let after = BTreeMap::from([(1, b)]);
            let _ = busy(&before, &after, &CpuSet::from_ids([1]), u64::MAX);
        }
    }
}
