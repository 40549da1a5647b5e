//! Path resolution confined to a captured tree, as `openat2(RESOLVE_IN_ROOT)` does it.
//!
//! A captured tree is untrusted input: its symlinks may be absolute (`/dev/zero`), climb out
//! with `..`, or loop. Each component is opened with `O_PATH|O_NOFOLLOW` from the descriptor
//! of its parent, a symlink met on the way is read and walked again from the root (absolute)
//! or from its own directory (relative), and `..` never climbs above the root. Working on
//! descriptors, not path strings, means a tree changed during the walk cannot redirect it.
//! The walk, rather than `openat2` itself, is used everywhere because inspect also needs the
//! resolved path (a NIC's canonical device name) and older kernels lack `openat2`.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

/// Symlinks followed in one resolution before giving up, as the kernel's own limit.
const MAX_LINK_HOPS: u32 = 40;

/// A host path resolved inside a root: the directory holding the last component, and its
/// name, so the caller opens it with the flags it needs and `O_NOFOLLOW`.
#[derive(Debug)]
pub(super) struct Resolved {
    /// The root itself, or the directories below it, outermost first.
    stack: Vec<(OwnedFd, OsString)>,
    root: OwnedFd,
}

impl Resolved {
    /// The host path reached, free of symlinks, `.` and `..`.
    pub(super) fn host_path(&self) -> PathBuf {
        let mut path = PathBuf::from("/");
        path.extend(self.stack.iter().map(|(_, name)| name));
        path
    }

    /// Opens the resolved object itself with `flags` (plus `O_NOFOLLOW|O_CLOEXEC`).
    pub(super) fn open(&self, flags: OFlag) -> io::Result<OwnedFd> {
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match self.stack.split_last() {
            None => openat(self.root.as_fd(), ".", flags, Mode::empty()),
            Some(((_, name), [])) => {
                openat(self.root.as_fd(), name.as_os_str(), flags, Mode::empty())
            }
            Some(((_, name), parents)) => {
                let (parent, _) = &parents[parents.len() - 1];
                openat(parent.as_fd(), name.as_os_str(), flags, Mode::empty())
            }
        };
        Ok(fd?)
    }

    /// The target of the last component, which must be a symlink.
    pub(super) fn read_link(&self) -> io::Result<PathBuf> {
        let target = match self.stack.split_last() {
            None => return Err(io::Error::from_raw_os_error(nix::libc::EINVAL)),
            Some(((_, name), [])) => readlinkat(self.root.as_fd(), name.as_os_str()),
            Some(((_, name), parents)) => {
                readlinkat(parents[parents.len() - 1].0.as_fd(), name.as_os_str())
            }
        };
        Ok(PathBuf::from(target?))
    }

    fn dir(&self) -> &OwnedFd {
        self.stack.last().map_or(&self.root, |(fd, _)| fd)
    }
}

/// Resolves `host_path` under `root_dir`, following symlinks inside the root only; the last
/// component is followed too unless `follow_last` is false.
pub(super) fn resolve(
    root_dir: &Path,
    host_path: &Path,
    follow_last: bool,
) -> io::Result<Resolved> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let root = nix::fcntl::open(root_dir, flags, Mode::empty())?;
    let mut resolved = Resolved {
        stack: Vec::new(),
        root,
    };
    let mut pending = components(host_path);
    let mut hops = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            resolved.stack.pop();
            continue;
        }
        let fd = openat(
            resolved.dir().as_fd(),
            name.as_os_str(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let kind = SFlag::from_bits_truncate(fstat(fd.as_fd())?.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFLNK && (follow_last || !pending.is_empty()) {
            hops += 1;
            if hops > MAX_LINK_HOPS {
                return Err(io::Error::from_raw_os_error(nix::libc::ELOOP));
            }
            let target = PathBuf::from(readlinkat(resolved.dir().as_fd(), name.as_os_str())?);
            if target.is_absolute() {
                resolved.stack.clear();
            }
            pending.extend(components(&target));
            continue;
        }
        if kind != SFlag::S_IFDIR && !pending.is_empty() {
            return Err(io::Error::from_raw_os_error(nix::libc::ENOTDIR));
        }
        resolved.stack.push((fd, name));
    }
    Ok(resolved)
}

/// The names of a path, last first (a stack to pop), with `.` and the root dropped.
fn components(path: &Path) -> Vec<OsString> {
    let mut names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some(OsStr::new("..").to_owned()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    names.reverse();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("sys/devices/net/eth0")).unwrap();
        std::fs::create_dir_all(d.join("sys/class/net")).unwrap();
        std::fs::write(d.join("sys/devices/net/eth0/mtu"), "1500\n").unwrap();
        symlink("../../devices/net/eth0", d.join("sys/class/net/eth0")).unwrap();
        symlink("/sys/devices/net", d.join("abs")).unwrap();
        symlink("../../../../../../../etc", d.join("sys/up")).unwrap();
        symlink("loop", d.join("loop")).unwrap();
        dir
    }

    fn resolved(root: &Path, path: &str) -> io::Result<PathBuf> {
        resolve(root, Path::new(path), true).map(|r| r.host_path())
    }

    #[test]
    fn relative_links_resolve_like_the_kernel() {
        let dir = tree();
        let path = resolved(dir.path(), "/sys/class/net/eth0/mtu").unwrap();
        assert_eq!(path, Path::new("/sys/devices/net/eth0/mtu"));
    }

    #[test]
    fn absolute_links_and_dot_dot_stay_inside_the_root() {
        let dir = tree();
        let abs = resolved(dir.path(), "/abs/eth0").unwrap();
        assert_eq!(abs, Path::new("/sys/devices/net/eth0"));
        let up = resolve(dir.path(), Path::new("/sys/up/passwd"), true).unwrap_err();
        assert_eq!(up.kind(), io::ErrorKind::NotFound, "{up}");
        assert_eq!(
            resolved(dir.path(), "/../../sys/..").unwrap(),
            Path::new("/")
        );
    }

    #[test]
    fn a_symlink_loop_is_an_error_not_a_hang() {
        let dir = tree();
        let err = resolve(dir.path(), Path::new("/loop/x"), true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::libc::ELOOP));
    }

    #[test]
    fn the_last_link_is_kept_when_asked() {
        let dir = tree();
        let link = resolve(dir.path(), Path::new("/sys/class/net/eth0"), false).unwrap();
        assert_eq!(link.host_path(), Path::new("/sys/class/net/eth0"));
        assert_eq!(
            link.read_link().unwrap(),
            Path::new("../../devices/net/eth0")
        );
    }
}
