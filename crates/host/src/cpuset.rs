//! Sets of CPU ids, in the kernel's two text forms: the list form (`0-3,8,10-11`, as in
//! `/sys/devices/system/cpu/online` or `cpuset.cpus`) and the mask form (`ff,0000000f`, as in
//! `/proc/irq/N/smp_affinity`).

use std::fmt;
use std::str::FromStr;

/// CPU ids above this are refused: the kernel's NR_CPUS tops out at 8192, and a bound keeps a
/// hostile list such as `0-4294967295` from allocating gigabytes.
pub const MAX_CPU_ID: u32 = 65_535;

/// A set of CPU ids. Invariant: no trailing zero words, so equal sets compare equal.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CpuSet {
    words: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuSetError {
    #[error("{0:?} is not a CPU number")]
    NotANumber(String),
    #[error("CPU {0} is above the largest supported id {MAX_CPU_ID}")]
    TooLarge(u64),
    #[error("range {0:?} runs backwards")]
    Backwards(String),
    #[error("group {0:?} needs used/group sizes with 0 < used <= group")]
    BadGroup(String),
    #[error("{0:?} is not a hexadecimal CPU mask")]
    BadMask(String),
    #[error("{0:?} has an empty entry (two commas, or one at an end)")]
    EmptyEntry(String),
}

impl CpuSet {
    pub fn new() -> Self {
        CpuSet::default()
    }

    /// Parses the kernel's list form, including the `a-b:used/group` stride syntax that
    /// `bitmap_parselist` accepts. Surrounding whitespace and an empty list are allowed, as
    /// the kernel writes them (`isolated` holds just a newline when nothing is isolated); an
    /// empty entry inside a list (`1,,2`) is not something the kernel writes, so it is refused.
    pub fn parse_list(text: &str) -> Result<Self, CpuSetError> {
        let mut set = CpuSet::new();
        let text = text.trim();
        if text.is_empty() {
            return Ok(set);
        }
        for item in text.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(CpuSetError::EmptyEntry(text.to_owned()));
            }
            let (range, group) = match item.split_once(':') {
                Some((range, group)) => (range, Some(group)),
                None => (item, None),
            };
            let (first, last) = match range.split_once('-') {
                Some((a, b)) => (parse_id(a)?, parse_id(b)?),
                None => {
                    let id = parse_id(range)?;
                    (id, id)
                }
            };
            if last < first {
                return Err(CpuSetError::Backwards(item.to_owned()));
            }
            let (used, size) = match group {
                Some(group) => parse_group(group).ok_or(CpuSetError::BadGroup(item.to_owned()))?,
                None => (1, 1),
            };
            for id in (first..=last).filter(|id| (id - first) % size < used) {
                set.insert(id);
            }
        }
        Ok(set)
    }

    /// Parses the mask form: comma-separated 32-bit hex words, most significant first.
    pub fn parse_mask(text: &str) -> Result<Self, CpuSetError> {
        let text = text.trim();
        let bad = || CpuSetError::BadMask(text.to_owned());
        let mut set = CpuSet::new();
        let mut bit_base = 0u64;
        for word in text.rsplit(',') {
            let word = word.trim();
            if word.is_empty() || word.len() > 8 {
                return Err(bad());
            }
            let value = u32::from_str_radix(word, 16).map_err(|_| bad())?;
            for bit in (0..32).filter(|b| value & (1 << b) != 0) {
                let id = bit_base + bit;
                if id > u64::from(MAX_CPU_ID) {
                    return Err(CpuSetError::TooLarge(id));
                }
                set.insert(id as u32);
            }
            bit_base += 32;
        }
        Ok(set)
    }

    pub fn from_ids(ids: impl IntoIterator<Item = u32>) -> Self {
        let mut set = CpuSet::new();
        for id in ids {
            set.insert(id);
        }
        set
    }

    /// Adds `id`. Panics only above [`MAX_CPU_ID`], which parsers reject first.
    pub fn insert(&mut self, id: u32) {
        assert!(id <= MAX_CPU_ID, "CPU id {id} above MAX_CPU_ID");
        let word = (id / 64) as usize;
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        self.words[word] |= 1 << (id % 64);
    }

    pub fn remove(&mut self, id: u32) {
        if let Some(word) = self.words.get_mut((id / 64) as usize) {
            *word &= !(1 << (id % 64));
        }
        self.trim();
    }

    pub fn contains(&self, id: u32) -> bool {
        self.words
            .get((id / 64) as usize)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn first(&self) -> Option<u32> {
        self.iter().next()
    }

    /// The ids in ascending order. Skips zero bits a word at a time, so sparse sets on
    /// thousand-CPU machines cost per member, not per possible id.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros();
                    rest &= rest - 1;
                    i as u32 * 64 + bit
                })
            })
        })
    }

    pub fn union(&self, other: &CpuSet) -> CpuSet {
        let len = self.words.len().max(other.words.len());
        let words = (0..len).map(|i| self.word(i) | other.word(i)).collect();
        CpuSet { words }.trimmed()
    }

    pub fn intersection(&self, other: &CpuSet) -> CpuSet {
        let len = self.words.len().min(other.words.len());
        let words = (0..len).map(|i| self.word(i) & other.word(i)).collect();
        CpuSet { words }.trimmed()
    }

    pub fn difference(&self, other: &CpuSet) -> CpuSet {
        let words = (0..self.words.len())
            .map(|i| self.word(i) & !other.word(i))
            .collect();
        CpuSet { words }.trimmed()
    }

    pub fn is_subset(&self, other: &CpuSet) -> bool {
        self.difference(other).is_empty()
    }

    pub fn is_disjoint(&self, other: &CpuSet) -> bool {
        self.intersection(other).is_empty()
    }

    /// The list form, with runs of three or more folded into ranges as the kernel prints them.
    pub fn to_list(&self) -> String {
        let mut out = String::new();
        let mut ids = self.iter().peekable();
        while let Some(first) = ids.next() {
            let mut last = first;
            while ids.peek() == Some(&(last + 1)) {
                last = ids.next().unwrap_or(last);
            }
            if !out.is_empty() {
                out.push(',');
            }
            match last - first {
                0 => out.push_str(&first.to_string()),
                _ => out.push_str(&format!("{first}-{last}")),
            }
        }
        out
    }

    /// The mask form, `words32` 32-bit words wide at least (the kernel pads to nr_cpu_ids).
    pub fn to_mask(&self, words32: usize) -> String {
        let needed = self.iter().last().map_or(1, |id| id as usize / 32 + 1);
        let width = needed.max(words32).max(1);
        (0..width)
            .rev()
            .map(|i| format!("{:08x}", (self.word(i / 2) >> (32 * (i % 2))) as u32))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn word(&self, i: usize) -> u64 {
        self.words.get(i).copied().unwrap_or(0)
    }

    fn trim(&mut self) {
        while self.words.last() == Some(&0) {
            self.words.pop();
        }
    }

    fn trimmed(mut self) -> Self {
        self.trim();
        self
    }
}

fn parse_id(text: &str) -> Result<u32, CpuSetError> {
    let value: u64 = text
        .trim()
        .parse()
        .map_err(|_| CpuSetError::NotANumber(text.to_owned()))?;
    if value > u64::from(MAX_CPU_ID) {
        return Err(CpuSetError::TooLarge(value));
    }
    Ok(value as u32)
}

fn parse_group(text: &str) -> Option<(u32, u32)> {
    let (used, size) = text.split_once('/')?;
    let (used, size) = (used.trim().parse().ok()?, size.trim().parse().ok()?);
    (0 < used && used <= size).then_some((used, size))
}

impl FromStr for CpuSet {
    type Err = CpuSetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CpuSet::parse_list(s)
    }
}

impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_list())
    }
}

impl fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuSet({})", self.to_list())
    }
}

impl FromIterator<u32> for CpuSet {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        CpuSet::from_ids(iter)
    }
}

impl serde::Serialize for CpuSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for CpuSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ids = Vec::<u32>::deserialize(d)?;
        if let Some(&bad) = ids.iter().find(|&&id| id > MAX_CPU_ID) {
            return Err(serde::de::Error::custom(CpuSetError::TooLarge(bad.into())));
        }
        Ok(CpuSet::from_ids(ids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn list_forms_parse() {
        let cases = [
            ("empty", "", vec![]),
            ("newline only", "\n", vec![]),
            ("spaces and NUL-free padding", "  0-1 \n", vec![0, 1]),
            ("single", "5", vec![5]),
            (
                "range and singles",
                "0-3,8,10-11\n",
                vec![0, 1, 2, 3, 8, 10, 11],
            ),
            ("stride group", "0-9:2/5", vec![0, 1, 5, 6]),
        ];
        for (what, text, ids) in cases {
            assert_eq!(
                CpuSet::parse_list(text).unwrap(),
                CpuSet::from_ids(ids),
                "{what}"
            );
        }
    }

    #[test]
    fn bad_lists_are_refused_with_the_reason() {
        let cases = [
            ("letters", "a-b"),
            ("backwards", "5-3"),
            ("huge", "0-4294967295"),
            ("dangling dash", "3-"),
            ("bad group", "0-9:0/5"),
            ("negative", "-1"),
            ("empty entry", "1,,2"),
            ("trailing comma", "1,"),
            ("leading comma", ",1"),
        ];
        for (what, text) in cases {
            assert!(CpuSet::parse_list(text).is_err(), "{what}: {text:?}");
        }
    }

    #[test]
    fn masks_parse_most_significant_word_first() {
        let set = CpuSet::parse_mask("00000001,80000003\n").unwrap();
        assert_eq!(set.to_list(), "0-1,31-32");
        assert_eq!(set.to_mask(2), "00000001,80000003");
        assert_eq!(CpuSet::new().to_mask(1), "00000000");
        assert!(CpuSet::parse_mask("xyz").is_err());
        assert!(CpuSet::parse_mask("").is_err());
    }

    #[test]
    fn formats_like_the_kernel() {
        assert_eq!(
            CpuSet::from_ids([0, 1, 2, 3, 8, 10, 11]).to_list(),
            "0-3,8,10-11"
        );
        assert_eq!(CpuSet::new().to_list(), "");
    }

    proptest! {
        #[test]
        fn list_round_trips(ids in proptest::collection::btree_set(0u32..2048, 0..200)) {
            let set = CpuSet::from_ids(ids.iter().copied());
            prop_assert_eq!(CpuSet::parse_list(&set.to_list()).unwrap(), set.clone());
            prop_assert_eq!(CpuSet::parse_mask(&set.to_mask(1)).unwrap(), set.clone());
            prop_assert_eq!(set.iter().collect::<Vec<_>>(), ids.into_iter().collect::<Vec<_>>());
        }

        #[test]
        fn parsers_never_panic(text in ".{0,64}") {
            let _ = CpuSet::parse_list(&text);
            let _ = CpuSet::parse_mask(&text);
        }

        #[test]
        fn set_algebra_agrees_with_btreeset(
            a in proptest::collection::btree_set(0u32..300, 0..50),
            b in proptest::collection::btree_set(0u32..300, 0..50),
        ) {
            let (sa, sb) = (CpuSet::from_ids(a.clone()), CpuSet::from_ids(b.clone()));
            prop_assert_eq!(sa.union(&sb), a.union(&b).copied().collect());
            prop_assert_eq!(sa.intersection(&sb), a.intersection(&b).copied().collect());
            prop_assert_eq!(sa.difference(&sb), a.difference(&b).copied().collect());
            prop_assert_eq!(sa.is_subset(&sb), a.is_subset(&b));
        }
    }
}
