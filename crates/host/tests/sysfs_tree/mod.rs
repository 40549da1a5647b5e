//! Building fake sysfs/procfs trees in a temporary directory for tests.

use std::os::unix::fs::PermissionsExt;

use nearnative_host::Root;
use tempfile::TempDir;

/// A temporary directory standing for `/`, removed on drop.
pub struct Tree {
    dir: TempDir,
}

impl Tree {
    pub fn new() -> Self {
        Tree {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn root(&self) -> Root {
        Root::new(self.dir.path())
    }

    /// Writes `content` at host path `path`, creating parent directories.
    pub fn file(&self, path: &str, content: &str) -> &Self {
        let full = self.dir.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
        self
    }

    pub fn dir(&self, path: &str) -> &Self {
        std::fs::create_dir_all(self.dir.path().join(path.trim_start_matches('/'))).unwrap();
        self
    }

    pub fn mode(&self, path: &str, mode: u32) -> &Self {
        let full = self.dir.path().join(path.trim_start_matches('/'));
        std::fs::set_permissions(full, std::fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    /// A symlink at `path` pointing to `target`; relative targets resolve as in sysfs.
    pub fn link(&self, path: &str, target: &str) -> &Self {
        let full = self.dir.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, full).unwrap();
        self
    }
}
