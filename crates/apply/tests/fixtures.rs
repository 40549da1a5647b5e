//! The real host snapshots in `shared/fixtures/hosts`, extracted for a test to change freely.
//! A minimal local copy of crates/host/tests/fixtures.rs's extraction (a shared dev-only
//! crate for it was not on main yet).

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

pub const SNAPSHOTS: &[&str] = &[
    "16em64t-4s2c2t",
    "16amd64-8n2c",
    "20em64t-hybrid-1p6c2t+2ca4co1t",
    "64amd64-4s2n4ca2co",
    "128arm-2pa2n8cluster4co",
    "offline-cpu0-node0",
];

fn hosts_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NEARNATIVE_FIXTURES") {
        return PathBuf::from(dir);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    ["../shared/fixtures/hosts", "../../shared/fixtures/hosts"]
        .iter()
        .map(|c| repo.join(c))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| panic!("no shared/fixtures/hosts near {}", repo.display()))
}

/// A snapshot extracted into its own temporary directory; `root` holds `sys/` and `proc/`.
pub struct Snapshot {
    _dir: TempDir,
    pub root: PathBuf,
}

pub fn extract(name: &str) -> Snapshot {
    let dir = tempfile::tempdir().unwrap();
    let archive = hosts_dir().join(format!("{name}.tar.bz2"));
    let status = Command::new("tar")
        .arg("xjf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "tar xjf {}", archive.display());
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{name} holds one folder");
    let root = entries.remove(0);
    Snapshot { _dir: dir, root }
}
