//! Memory files that disturb a latency-sensitive workload from outside: transparent huge pages
//! (enable and defrag), KSM and automatic NUMA balancing. The THP selector files show
//! `always [madvise] never`; the bare word is written.

use serde::{Deserialize, Serialize};

use super::{Fixed, KernelValue};

/// `/sys/kernel/mm/transparent_hugepage/enabled`.
pub const THP_ENABLED: Fixed<ThpEnabled> = Fixed::new(
    "transparent huge pages",
    "/sys/kernel/mm/transparent_hugepage/enabled",
);

/// `/sys/kernel/mm/transparent_hugepage/defrag`: when THP allocation may stall to compact.
pub const THP_DEFRAG: Fixed<ThpDefrag> =
    Fixed::new("THP defrag", "/sys/kernel/mm/transparent_hugepage/defrag");

/// `/sys/kernel/mm/ksm/run`: kernel same-page merging.
pub const KSM_RUN: Fixed<KsmRun> = Fixed::new("KSM", "/sys/kernel/mm/ksm/run");

/// `kernel.numa_balancing`.
pub const NUMA_BALANCING: Fixed<NumaBalancing> =
    Fixed::new("kernel.numa_balancing", "/proc/sys/kernel/numa_balancing");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThpEnabled {
    Always,
    Madvise,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThpDefrag {
    Always,
    Defer,
    DeferMadvise,
    Madvise,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KsmRun {
    Stopped,
    Running,
    /// `2`: stop and unmerge every shared page.
    Unmerge,
}

/// `kernel.numa_balancing`, a bit mask since 6.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumaBalancing {
    Disabled,
    Normal,
    MemoryTiering,
    NormalAndMemoryTiering,
}

/// The `[bracketed]` choice of a sysfs selector such as `always [madvise] never`.
pub fn selected(text: &str) -> Result<&str, String> {
    let mut choices = text
        .split_whitespace()
        .filter_map(|w| w.strip_prefix('[')?.strip_suffix(']'));
    match (choices.next(), choices.next()) {
        (Some(choice), None) => Ok(choice),
        _ => Err("not exactly one [selected] choice".to_owned()),
    }
}

/// A value kept as one word among fixed choices, in both directions.
fn word<T: Copy + PartialEq>(table: &[(T, &'static str)], value: T) -> String {
    let found = table.iter().find(|(v, _)| *v == value);
    found.map_or("", |(_, w)| w).to_owned()
}

fn from_word<T: Copy>(table: &[(T, &'static str)], text: &str, what: &str) -> Result<T, String> {
    let found = table.iter().find(|(_, w)| *w == text);
    found
        .map(|(v, _)| *v)
        .ok_or_else(|| format!("unknown {what} {text:?}"))
}

const THP_ENABLED_WORDS: [(ThpEnabled, &str); 3] = [
    (ThpEnabled::Always, "always"),
    (ThpEnabled::Madvise, "madvise"),
    (ThpEnabled::Never, "never"),
];

const THP_DEFRAG_WORDS: [(ThpDefrag, &str); 5] = [
    (ThpDefrag::Always, "always"),
    (ThpDefrag::Defer, "defer"),
    (ThpDefrag::DeferMadvise, "defer+madvise"),
    (ThpDefrag::Madvise, "madvise"),
    (ThpDefrag::Never, "never"),
];

const KSM_WORDS: [(KsmRun, &str); 3] = [
    (KsmRun::Stopped, "0"),
    (KsmRun::Running, "1"),
    (KsmRun::Unmerge, "2"),
];

const NUMA_WORDS: [(NumaBalancing, &str); 4] = [
    (NumaBalancing::Disabled, "0"),
    (NumaBalancing::Normal, "1"),
    (NumaBalancing::MemoryTiering, "2"),
    (NumaBalancing::NormalAndMemoryTiering, "3"),
];

impl KernelValue for ThpEnabled {
    fn parse(text: &str) -> Result<Self, String> {
        from_word(&THP_ENABLED_WORDS, selected(text)?, "THP mode")
    }
    fn format(&self) -> String {
        word(&THP_ENABLED_WORDS, *self)
    }
}

impl KernelValue for ThpDefrag {
    fn parse(text: &str) -> Result<Self, String> {
        from_word(&THP_DEFRAG_WORDS, selected(text)?, "THP defrag mode")
    }
    fn format(&self) -> String {
        word(&THP_DEFRAG_WORDS, *self)
    }
}

impl KernelValue for KsmRun {
    fn parse(text: &str) -> Result<Self, String> {
        from_word(&KSM_WORDS, text, "KSM state").map_err(|_| "not 0, 1 or 2".to_owned())
    }
    fn format(&self) -> String {
        word(&KSM_WORDS, *self)
    }
}

impl KernelValue for NumaBalancing {
    fn parse(text: &str) -> Result<Self, String> {
        from_word(&NUMA_WORDS, text, "mode").map_err(|_| "not 0 to 3".to_owned())
    }
    fn format(&self) -> String {
        word(&NUMA_WORDS, *self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::tests::round_trip;
    use crate::kernel::KernelFile;

    #[test]
    fn selectors_parse_the_bracketed_choice_and_write_the_bare_word() {
        let cases = [
            (
                "debian default",
                "always [madvise] never\n",
                Ok(ThpEnabled::Madvise),
            ),
            ("always", "[always] madvise never", Ok(ThpEnabled::Always)),
            ("none selected", "always madvise never", Err(())),
            ("two selected", "[always] [never]", Err(())),
            ("unknown mode", "always [sometimes]", Err(())),
            ("empty", "", Err(())),
        ];
        for (what, text, want) in cases {
            assert_eq!(THP_ENABLED.parse(text).map_err(|_| ()), want, "{what}");
        }
        let defrag = "always defer [defer+madvise] madvise never\n";
        assert_eq!(
            round_trip(&THP_DEFRAG, defrag, "defer+madvise"),
            ThpDefrag::DeferMadvise
        );
        assert_eq!(
            round_trip(&THP_ENABLED, "[always] madvise never", "always"),
            ThpEnabled::Always
        );
    }

    #[test]
    fn numbered_modes_round_trip() {
        assert_eq!(round_trip(&KSM_RUN, "2\n", "2"), KsmRun::Unmerge);
        assert_eq!(
            round_trip(&NUMA_BALANCING, "3\n", "3"),
            NumaBalancing::NormalAndMemoryTiering
        );
        assert!(NUMA_BALANCING.parse("4").is_err());
        assert!(KSM_RUN.parse("").is_err());
    }
}
