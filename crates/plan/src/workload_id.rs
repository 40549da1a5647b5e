//! [`WorkloadId`]: the one short name of an applied workload, used for its journal
//! (`journals/<id>.json`), its plan record (`plans/<id>.json`) and its cgroups
//! (`nearnative-<id>-hk`).
//!
//! It must be one safe path component and stay short, yet two different workloads must never
//! share it: Kubernetes containers' cgroup paths are long and differ only near their end, and
//! `vm:a b` and `vm:a/b` differ only in characters a file name cannot hold. So:
//! - `vm:NAME` and `pid:PID` whose name is all `[A-Za-z0-9.-]` and short enough keep their
//!   plain form, `vm-web1`, `pid-4242`: the kind (which holds no `-`) ends at the first `-`,
//!   and the name follows verbatim, so no two keys share it.
//! - Every other key (any cgroup path) gets a readable part (the kind and the end of the name,
//!   each run of other characters made one `-`), `_`, and 16 hex digits of the SHA-256 of the
//!   whole key, which tells any two keys apart in practice. A plain id never holds `_`, so the
//!   two forms never meet.
//!
//! Ids made before this scheme (the escaped key cut at 64 characters, `cgroup--a-b`) remain
//! valid: they are read back from the plan records that hold them, never derived again.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::request::WorkloadKey;

/// The longest id: the journal's file name rule (1 to 64 characters).
pub const MAX_ID_LEN: usize = 64;
/// The kinds whose simple names are their own id. Neither holds `-`.
const PLAIN_KINDS: [&str; 2] = ["vm", "pid"];
/// Hex digits of the key's SHA-256 in a new id (64 bits).
const HASH_DIGITS: usize = 16;
/// The readable part keeps at most this much, so `nearnative-<id>-pool` stays short.
const READABLE_LEN: usize = 40;

/// Why a stored id cannot name a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("workload id {id:?}: must be 1 to {MAX_ID_LEN} of letters, digits, \".\", \"_\" and \"-\", not starting with \".\"")]
pub struct BadWorkloadId {
    pub id: String,
}

/// One safe path component of 1 to 64 of `[A-Za-z0-9._-]`, not starting with `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkloadId(String);

impl WorkloadId {
    /// The id of `key`: `vm:web1` → `vm-web1`, `cgroup:/a/b` → `cgroup-a-b_<16 hex digits>`.
    pub fn of(key: &WorkloadKey) -> WorkloadId {
        if let Some(plain) = plain(&key.0) {
            return WorkloadId(plain);
        }
        let digest = Sha256::digest(key.0.as_bytes());
        let hash: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let hash = &hash[..HASH_DIGITS];
        match readable(&key.0) {
            readable if readable.is_empty() => WorkloadId(hash.to_owned()),
            readable => WorkloadId(format!("{readable}_{hash}")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `KIND-NAME` for a VM or process whose name needs no escaping, if it fits.
fn plain(key: &str) -> Option<String> {
    let (kind, name) = key.split_once(':')?;
    let verbatim = |c: char| c.is_ascii_alphanumeric() || ".-".contains(c);
    let fits = kind.len() + 1 + name.len() <= MAX_ID_LEN;
    let plain = PLAIN_KINDS.contains(&kind) && !name.is_empty() && name.chars().all(verbatim);
    (plain && fits).then(|| format!("{kind}-{name}"))
}

/// The key's kind and as much of the end of its name as fits (a path's last components tell
/// containers apart), each run of unsafe characters made one `-`.
fn readable(key: &str) -> String {
    let (kind, name) = key.split_once(':').unwrap_or(("", key));
    let kind = escape(kind);
    let name = escape(name);
    let room = READABLE_LEN.saturating_sub(kind.len() + 1);
    let tail = &name[name.len().saturating_sub(room)..];
    let joined = format!("{kind}-{}", tail.trim_start_matches(['-', '.']));
    joined.trim_matches(['-', '.']).to_owned()
}

/// `text` with each run of characters outside `[A-Za-z0-9._-]` made one `-` (so ASCII).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c.is_ascii_alphanumeric() || "._-".contains(c) {
            true => out.push(c),
            false if out.ends_with('-') => {}
            false => out.push('-'),
        }
    }
    out
}

impl TryFrom<String> for WorkloadId {
    type Error = BadWorkloadId;
    fn try_from(id: String) -> Result<Self, BadWorkloadId> {
        let safe = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
        let fits = (1..=MAX_ID_LEN).contains(&id.len());
        match fits && !id.starts_with('.') && id.chars().all(safe) {
            true => Ok(WorkloadId(id)),
            false => Err(BadWorkloadId { id }),
        }
    }
}

impl From<WorkloadId> for String {
    fn from(id: WorkloadId) -> String {
        id.0
    }
}

impl fmt::Display for WorkloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(key: &str) -> String {
        WorkloadId::of(&WorkloadKey::from(key)).0
    }

    #[test]
    fn ids_read_as_their_key() {
        let cases = [
            ("vm name", "vm:web1", "vm-web1", false),
            ("process", "pid:4242", "pid-4242", false),
            ("cgroup path", "cgroup:/a/b", "cgroup-a-b_", true),
            ("odd characters", "vm:a b/c", "vm-a-b-c_", true),
            ("underscore", "vm:a_b", "vm-a_b_", true),
        ];
        for (what, key, expected, hashed) in cases {
            let id = id(key);
            match hashed {
                true => {
                    assert!(id.starts_with(expected), "{what}: {id}");
                    assert_eq!(id.len(), expected.len() + HASH_DIGITS, "{what}: {id}");
                }
                false => assert_eq!(id, expected, "{what}"),
            }
        }
    }

    #[test]
    fn keys_that_escape_alike_get_different_ids() {
        let pod = "cgroup:/kubepods.slice/kubepods-burstable.slice/\
                   kubepods-burstable-pod0f3c8a2e_5b1d_4c7e_9a6f_2d8e1b4c7a90.slice/";
        let container = |c: char| format!("{pod}cri-containerd-{}.scope", c.to_string().repeat(64));
        let long_vm = |c: char| format!("vm:{}{c}", "x".repeat(70));
        let pairs = [
            ("space and slash", "vm:a b".to_owned(), "vm:a/b".to_owned()),
            ("escaped by hand", "vm:a b".to_owned(), "vm:a-b".to_owned()),
            ("kind and name", "vm:pid-1".to_owned(), "pid:1".to_owned()),
            ("containers", container('a'), container('b')),
            ("long names", long_vm('a'), long_vm('b')),
        ];
        for (what, a, b) in pairs {
            assert_ne!(id(&a), id(&b), "{what}");
        }
    }

    #[test]
    fn every_id_is_one_short_safe_component() {
        let long = format!("cgroup:/{}", "x/".repeat(200));
        let keys = ["vm:web1", "vm:..", "vm:ü", ":", "", "...", long.as_str()];
        for key in keys {
            let id = id(key);
            assert!(WorkloadId::try_from(id.clone()).is_ok(), "{key:?}: {id}");
            assert!(id.len() <= MAX_ID_LEN, "{key:?}: {id}");
        }
        assert_eq!(
            id("cgroup:/a"),
            id("cgroup:/a"),
            "the same key, the same id"
        );
    }

    #[test]
    fn ids_stored_before_the_hash_still_load() {
        for old in ["vm-web1", "cgroup--a-b", "pid-4242"] {
            let json = format!("\"{old}\"");
            let id: WorkloadId = serde_json::from_str(&json).unwrap();
            assert_eq!(id.as_str(), old);
        }
        for bad in ["", ".x", "a/b", ".."] {
            let json = format!("\"{bad}\"");
            assert!(
                serde_json::from_str::<WorkloadId>(&json).is_err(),
                "{bad:?}"
            );
        }
    }
}
