//! Fake and captured sysfs/procfs trees in temporary directories, for tests.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nearnative_host::Root;
use tempfile::TempDir;

/// A directory standing for `/` inside a temporary directory that is removed on drop.
pub struct Tree {
    _temp: TempDir,
    top: PathBuf,
}

impl Tree {
    pub fn new() -> Self {
        let temp = tempfile::tempdir().unwrap();
        let top = temp.path().to_owned();
        Tree { _temp: temp, top }
    }

    pub fn root(&self) -> Root {
        Root::new(&self.top)
    }

    fn at(&self, path: &str) -> PathBuf {
        self.top.join(path.trim_start_matches('/'))
    }

    /// Writes `content` at host path `path`, creating parent directories.
    pub fn file(&self, path: &str, content: &str) -> &Self {
        let full = self.at(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
        self
    }

    pub fn dir(&self, path: &str) -> &Self {
        std::fs::create_dir_all(self.at(path)).unwrap();
        self
    }

    pub fn mode(&self, path: &str, mode: u32) -> &Self {
        std::fs::set_permissions(self.at(path), std::fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    /// A symlink at `path` pointing to `target`; relative targets resolve as in sysfs.
    pub fn link(&self, path: &str, target: &str) -> &Self {
        let full = self.at(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, full).unwrap();
        self
    }
}

/// `shared/fixtures/hosts` beside the repository (or beside a parent of a worktree).
fn fixture_dir() -> Option<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/fixtures/hosts"))
        .find(|dir| dir.is_dir())
}

/// The captured host snapshots whose name contains `part` ("" for all), extracted without
/// their cache, topology and NUMA node directories (nine tenths of the files, which the IRQ,
/// NIC, power and knob parts never read): (name, tree rooted at the snapshot's `/`).
pub fn fixture_hosts_without_topology(part: &str) -> Vec<(String, Tree)> {
    let Some(dir) = fixture_dir() else {
        eprintln!("!!! shared/fixtures/hosts not found: captured-host tests have nothing to read");
        return Vec::new();
    };
    let mut archives: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.ends_with(".tar.bz2") && name.contains(part)
        })
        .collect();
    archives.sort();
    archives.iter().map(|archive| extract(archive)).collect()
}

/// Each archive holds one top-level directory named like the archive.
fn extract(archive: &Path) -> (String, Tree) {
    let temp = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("xjf")
        .arg(archive)
        .arg("-C")
        .arg(temp.path())
        .args([
            "--exclude=*/cache",
            "--exclude=*/topology",
            "--exclude=*/node/node*",
        ])
        .status()
        .unwrap();
    assert!(status.success(), "extracting {}", archive.display());
    let file_name = archive.file_name().unwrap().to_string_lossy();
    let name = file_name.trim_end_matches(".tar.bz2").to_owned();
    let top = temp.path().join(&name);
    (name, Tree { _temp: temp, top })
}
