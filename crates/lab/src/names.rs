//! Names of everything one lab run creates, unique per run so that concurrent runs and the
//! leftovers of a crashed run never collide.
//!
//! A run is identified by its process id and a per-process sequence number (a process may
//! build several labs, as the tests do). Interface names are `nnl<pid><seq><suffix>`, which
//! fits the kernel's 15-character limit (IFNAMSIZ less the NUL) for every pid up to the
//! kernel's maximum of 4194304 (7 digits): 3 + 7 + 2 + 2 = 14. Namespace names have no such
//! limit and read `nnlab-<pid><seq>-<what>`. The fixed prefixes are also what a sweep checks
//! before removing anything a registry names, so a tampered registry cannot make it delete a
//! foreign interface.

use std::sync::atomic::{AtomicU32, Ordering};

/// The longest interface name the kernel accepts.
pub const MAX_IFNAME_LEN: usize = 15;
/// Every interface a lab creates starts with this.
pub const LINK_PREFIX: &str = "nnl";
/// Every network namespace a lab creates starts with this.
pub const NETNS_PREFIX: &str = "nnlab-";
/// The lab's own cpuset cgroup is named this followed by the run id.
pub const CGROUP_PREFIX: &str = "nearnative-lab-";

static NEXT_SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// The identity of one lab run: its pid and a two-letter sequence within the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunTag {
    pid: u32,
    sequence: String,
}

/// A name that would not fit the kernel's interface name limit.
#[derive(Debug, thiserror::Error)]
#[error("interface name {name:?} is longer than {MAX_IFNAME_LEN} characters")]
pub struct NameTooLong {
    pub name: String,
}

impl RunTag {
    /// The next tag of this process. Sequences wrap after 676 labs in one process, far beyond
    /// any real use; by then the first of them is long gone.
    pub fn next() -> RunTag {
        let n = NEXT_SEQUENCE.fetch_add(1, Ordering::Relaxed) % (26 * 26);
        RunTag::new(std::process::id(), n)
    }

    fn new(pid: u32, n: u32) -> RunTag {
        let letter = |i: u32| char::from(b'a' + (i % 26) as u8);
        RunTag {
            pid,
            sequence: [letter(n / 26), letter(n)].iter().collect(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `<pid><seq>`: the part every name of this run contains.
    pub fn id(&self) -> String {
        format!("{}{}", self.pid, self.sequence)
    }

    /// The interface `nnl<pid><seq><suffix>`, refused if it exceeds IFNAMSIZ.
    pub fn link(&self, suffix: &str) -> Result<String, NameTooLong> {
        let name = format!("{LINK_PREFIX}{}{suffix}", self.id());
        if name.len() > MAX_IFNAME_LEN {
            return Err(NameTooLong { name });
        }
        Ok(name)
    }

    /// The network namespace `nnlab-<pid><seq>-<what>`.
    pub fn netns(&self, what: &str) -> String {
        format!("{NETNS_PREFIX}{}-{what}", self.id())
    }

    /// The name of this run's own cpuset cgroup, `nearnative-lab-<pid><seq>`.
    pub fn cgroup(&self) -> String {
        format!("{CGROUP_PREFIX}{}", self.id())
    }

    /// The registry file name of this run, `lab-<pid><seq>.json`.
    pub fn registry_file(&self) -> String {
        format!("lab-{}.json", self.id())
    }
}

/// True when `name` is a name a lab could have given an interface: the sweep removes nothing
/// else.
pub fn is_lab_link(name: &str) -> bool {
    name.len() <= MAX_IFNAME_LEN && is_lab_name(name, LINK_PREFIX)
}

/// True when `name` is a name a lab could have given a network namespace.
pub fn is_lab_netns(name: &str) -> bool {
    is_lab_name(name, NETNS_PREFIX)
}

/// True when `name` (one path component) is a name a lab could have given its cgroup.
pub fn is_lab_cgroup(name: &str) -> bool {
    name.strip_prefix(CGROUP_PREFIX).is_some_and(|id| {
        let letters = id.trim_start_matches(|c: char| c.is_ascii_digit());
        letters.len() == 2
            && letters.len() < id.len()
            && letters.bytes().all(|b| b.is_ascii_lowercase())
    })
}

fn is_lab_name(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|rest| {
        !rest.is_empty()
            && rest.as_bytes()[0].is_ascii_digit()
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_pid_still_fits_ifnamsiz() {
        let tag = RunTag::new(4_194_304, 26 * 26 - 1);
        let name = tag.link("bq").unwrap();
        assert_eq!(name, "nnl4194304zzbq");
        assert!(name.len() <= MAX_IFNAME_LEN);
        assert!(tag.link("toolong").is_err());
    }

    #[test]
    fn sequences_differ_within_a_process() {
        assert_ne!(RunTag::next(), RunTag::next());
        assert_eq!(RunTag::new(7, 27).id(), "7bb");
    }

    #[test]
    fn recognises_only_lab_names() {
        let cases = [
            ("lab veth", "nnl123aav0", true),
            ("eth0", "eth0", false),
            ("prefix without pid", "nnlx", false),
            ("bare prefix", "nnl", false),
            ("too long", "nnl12345678901234", false),
            ("path trick", "nnl1/../eth0", false),
        ];
        for (what, name, want) in cases {
            assert_eq!(is_lab_link(name), want, "{what}");
        }
        assert!(is_lab_netns("nnlab-123aa-veth-s"));
        assert!(!is_lab_netns("nnlab-../x"));
        assert!(!is_lab_netns("default"));
    }

    #[test]
    fn recognises_only_lab_cgroups() {
        let cases = [
            ("a run's cgroup", "nearnative-lab-123aa", true),
            ("no pid", "nearnative-lab-aa", false),
            ("no sequence", "nearnative-lab-123", false),
            ("a plan's cgroup", "nearnative-pid-123-hk", false),
            ("a path", "nearnative-lab-1aa/..", false),
            ("upper case", "nearnative-lab-1AA", false),
        ];
        for (what, name, want) in cases {
            assert_eq!(is_lab_cgroup(name), want, "{what}");
        }
        assert!(is_lab_cgroup(&RunTag::new(4_194_304, 3).cgroup()));
    }
}
