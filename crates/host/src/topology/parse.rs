//! Parsers for the small topology files: object directory names, integers, sizes, NUMA
//! `meminfo` and `distance`, and the first block of `/proc/cpuinfo`. Pure functions over text.

use std::num::ParseIntError;

/// The number in an object directory name such as `cpu12` or `node3`, when `name` is exactly
/// `prefix` followed by decimal digits (so `cpufreq` and `cpuidle` are not CPUs).
pub fn numbered_dir(name: &str, prefix: &str) -> Option<u32> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse()
        .ok()
        .filter(|&id| id <= crate::cpuset::MAX_CPU_ID)
}

/// A sysfs integer such as `core_id` or `physical_package_id` (which may be -1).
pub fn int(text: &str) -> Result<i64, ParseIntError> {
    text.trim().parse()
}

/// A cache `size` such as `32K` or `30M`, in KiB.
pub fn cache_size_kib(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "K"),
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size"))?;
    let scale = match unit {
        "K" | "KB" | "k" => 1,
        "M" | "MB" => 1024,
        "G" | "GB" => 1024 * 1024,
        _ => return Err(format!("unknown unit in {text:?}")),
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// `MemTotal` in KiB from a node's `meminfo` (`Node 0 MemTotal:  16323548 kB`) or from
/// `/proc/meminfo` (`MemTotal:  16323548 kB`).
pub fn mem_total_kib(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        if key.split_whitespace().last()? != "MemTotal" {
            return None;
        }
        let mut words = value.split_whitespace();
        let number = words.next()?.parse().ok()?;
        matches!(words.next(), Some("kB") | None).then_some(number)
    })
}

/// A node's `distance` line: one distance per node, in node order.
pub fn distances(text: &str) -> Result<Vec<u32>, ParseIntError> {
    text.split_whitespace().map(str::parse).collect()
}

/// Vendor and family of the first processor in `/proc/cpuinfo` (x86 only; `None` elsewhere).
pub fn cpuinfo_vendor_family(text: &str) -> Option<(String, u32)> {
    let mut vendor = None;
    let mut family = None;
    for line in text.lines().take_while(|l| !l.trim().is_empty()) {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "vendor_id" => vendor = Some(value.trim().to_owned()),
            "cpu family" => family = value.trim().parse().ok(),
            _ => {}
        }
    }
    Some((vendor?, family?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numbered_dirs_are_exact() {
        let cases = [
            ("cpu", "cpu12", Some(12)),
            ("cpu", "cpu0", Some(0)),
            ("cpu", "cpufreq", None),
            ("cpu", "cpu", None),
            ("cpu", "cpu-1", None),
            ("cpu", "cpu99999999999", None),
            ("node", "node3", Some(3)),
            ("node", "has_cpu", None),
        ];
        for (prefix, name, want) in cases {
            assert_eq!(numbered_dir(name, prefix), want, "{name}");
        }
    }

    #[test]
    fn sizes_and_memory_parse() {
        assert_eq!(cache_size_kib("32K"), Ok(32));
        assert_eq!(cache_size_kib("30M"), Ok(30 * 1024));
        assert_eq!(cache_size_kib("512"), Ok(512));
        assert!(cache_size_kib("K").is_err());
        assert!(cache_size_kib("12Q").is_err());
        let node = "Node 1 MemTotal:       65830376 kB\nNode 1 MemFree:  1 kB\n";
        assert_eq!(mem_total_kib(node), Some(65_830_376));
        assert_eq!(mem_total_kib("MemTotal: 2048 kB\n"), Some(2048));
        assert_eq!(mem_total_kib("MemFree: 1 kB\n"), None);
        assert_eq!(distances("10 16 32 33\n"), Ok(vec![10, 16, 32, 33]));
        assert!(distances("10 x").is_err());
    }

    #[test]
    fn cpuinfo_first_block_only() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 21\n\n\
                    processor\t: 1\nvendor_id\t: GenuineIntel\n";
        assert_eq!(
            cpuinfo_vendor_family(text),
            Some(("AuthenticAMD".to_owned(), 21))
        );
        assert_eq!(
            cpuinfo_vendor_family("processor : 0\nBogoMIPS : 50\n"),
            None
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,80}") {
            let _ = numbered_dir(&text, "cpu");
            let _ = int(&text);
            let _ = cache_size_kib(&text);
            let _ = mem_total_kib(&text);
            let _ = distances(&text);
            let _ = cpuinfo_vendor_family(&text);
        }
    }
}
