//! Fake and captured sysfs/procfs trees in temporary directories, for tests.

use std::path::PathBuf;

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

    /// A symlink at `path` pointing to `target`; relative targets resolve as in sysfs.
    pub fn link(&self, path: &str, target: &str) -> &Self {
        let full = self.at(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, full).unwrap();
        self
    }
}
