//! A captured or extracted tree standing for `/`, for tests and offline dry runs. File knobs
//! write the tree's files; kernel-side effects are played by [`super::tree_kernel`] so a read
//! after a write shows what the kernel would. No write ever leaves the tree: `..` is refused
//! and every path is resolved (symlinks included) and checked to stay under the root.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use nearnative_host::nic::Coalescing;
use nearnative_host::{CpuSet, Root};

use super::{libvirt, tree_cgroup_v2, tree_kernel};
use super::{Backend, LibvirtPinCall, Offload, TaskId, TaskMove};
use crate::exclusivity::sched::Policy;

#[derive(Debug, Clone)]
pub struct TreeBackend {
    root: Root,
}

impl TreeBackend {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        TreeBackend {
            root: Root::new(dir),
        }
    }

    /// The real path of an existing host path, or of a new entry in an existing directory,
    /// checked to lie inside the tree.
    pub(crate) fn resolve(&self, host_path: &Path) -> io::Result<PathBuf> {
        if host_path.components().any(|c| c == Component::ParentDir) {
            return Err(escape(host_path, "contains \"..\""));
        }
        let base = fs::canonicalize(self.root.dir())?;
        let path = self.root.path(host_path);
        let real = match fs::symlink_metadata(&path) {
            Ok(_) => fs::canonicalize(&path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let parent = path.parent().ok_or(e)?;
                let name = path
                    .file_name()
                    .ok_or_else(|| escape(host_path, "has no name"))?;
                fs::canonicalize(parent)?.join(name)
            }
            Err(e) => return Err(e),
        };
        match real.starts_with(&base) {
            true => Ok(real),
            false => Err(escape(host_path, "resolves outside the tree")),
        }
    }

    /// Replaces a tree file's content; the file must exist, as kernel files are never created
    /// by writing, and must carry a write bit, as a sysfs attribute without `store` refuses
    /// even root.
    pub(crate) fn replace(&self, host_path: &Path, content: &str) -> io::Result<()> {
        let path = self.resolve(host_path)?;
        let meta = fs::metadata(&path)?;
        if !meta.is_file() {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        if meta.permissions().mode() & 0o222 == 0 {
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        fs::write(path, content)
    }

    pub(crate) fn read(&self, host_path: &Path) -> io::Result<String> {
        fs::read_to_string(self.resolve(host_path)?)
    }
}

fn escape(host_path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} {why}", host_path.display()),
    )
}

fn not_available() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "ioctls reach only the live host, not a captured tree",
    )
}

impl Backend for TreeBackend {
    fn root(&self) -> &Root {
        &self.root
    }

    fn is_live(&self) -> bool {
        false
    }

    fn write_file(&self, host_path: &Path, text: &str) -> io::Result<()> {
        let current = self.read(host_path)?;
        let shown = match host_path.file_name().and_then(|n| n.to_str()) {
            Some("cgroup.subtree_control") => {
                tree_cgroup_v2::subtree_control_after_write(&current, text)
            }
            _ => tree_kernel::shown_after_write(&current, text),
        };
        self.replace(host_path, &shown)
    }

    fn set_thread_affinity(&self, task: TaskId, cpus: &CpuSet) -> io::Result<()> {
        let status = task.proc_dir().join("status");
        let current = self.read(&status)?;
        self.replace(&status, &tree_kernel::status_with_affinity(&current, cpus))
    }

    fn set_sched_policy(&self, task: TaskId, policy: Policy) -> io::Result<()> {
        let stat = task.proc_dir().join("stat");
        let current = self.read(&stat)?;
        let updated = tree_kernel::stat_with_policy(&current, policy)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "odd stat line"))?;
        self.replace(&stat, &updated)
    }

    fn move_task(&self, task_move: &TaskMove) -> io::Result<()> {
        tree_kernel::move_task(self, task_move)
    }

    fn create_cgroup(&self, host_dir: &Path) -> io::Result<()> {
        tree_kernel::create_cgroup(self, host_dir)
    }

    fn remove_cgroup(&self, host_dir: &Path) -> io::Result<()> {
        tree_kernel::remove_cgroup(self, host_dir)
    }

    fn coalescing(&self, _iface: &str) -> io::Result<Coalescing> {
        Err(not_available())
    }

    fn set_coalescing(&self, _iface: &str, _coalescing: &Coalescing) -> io::Result<()> {
        Err(not_available())
    }

    fn offload(&self, _iface: &str, _offload: Offload) -> io::Result<bool> {
        Err(not_available())
    }

    fn set_offload(&self, _iface: &str, _offload: Offload, _on: bool) -> io::Result<()> {
        Err(not_available())
    }

    fn libvirt_pin(&self, call: &LibvirtPinCall) -> io::Result<()> {
        libvirt::play_on_tree(self, call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_never_leave_the_tree() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("victim"), "keep\n").unwrap();
        let tree = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), tree.path().join("link")).unwrap();
        let backend = TreeBackend::new(tree.path());
        let cases = [
            ("dot-dot", PathBuf::from("/../victim")),
            ("absolute symlink escape", PathBuf::from("/link/victim")),
        ];
        for (what, path) in cases {
            assert!(backend.write_file(&path, "0").is_err(), "{what}");
        }
        assert_eq!(
            std::fs::read_to_string(outside.path().join("victim")).unwrap(),
            "keep\n"
        );
    }

    #[test]
    fn files_are_never_created_and_read_only_files_refuse() {
        let tree = tempfile::tempdir().unwrap();
        let backend = TreeBackend::new(tree.path());
        let err = backend.write_file(Path::new("/new"), "1").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let file = tree.path().join("ro");
        std::fs::write(&file, "0\n").unwrap();
        std::fs::set_permissions(&file, fs::Permissions::from_mode(0o444)).unwrap();
        let err = backend.write_file(Path::new("/ro"), "1").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EACCES));
    }
}
