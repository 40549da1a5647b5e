//! inotify on the policy directory (a file created, written, moved or deleted) and on the
//! `cgroup.events` file of each watched cgroup (cgroup v2 rewrites it when the cgroup becomes
//! populated or empty).
//!
//! A policy directory that does not exist yet is waited for through its parent, and one that is
//! deleted or moved away is waited for again, so the daemon may start before its configuration
//! is installed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Mutex, MutexGuard};

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};
use rustix::event::{poll, PollFd, PollFlags};

use super::{Bell, Wake};

/// A file appearing, being written whole, renamed in or out, or removed; and the directory
/// itself going away.
const POLICY_DIR_FLAGS: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_CLOSE_WRITE)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MOVE_SELF)
    .union(AddWatchFlags::IN_ONLYDIR);

/// The policy directory appearing in its parent.
const PARENT_FLAGS: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_ONLYDIR);

/// The instance and what each of its watches stands for.
#[derive(Debug)]
pub(crate) struct FileWatches {
    inotify: Inotify,
    table: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    policy_dir: PathBuf,
    policy: PolicyWatch,
    /// Each wanted cgroup directory, with its watch or why it has none.
    cgroups: BTreeMap<PathBuf, Result<WatchDescriptor, String>>,
}

#[derive(Debug)]
enum PolicyWatch {
    Dir(WatchDescriptor),
    /// The directory does not exist; its parent is watched for its creation.
    Parent(WatchDescriptor),
    /// Neither could be watched, for this reason.
    Unwatched(String),
}

impl FileWatches {
    /// Starts inotify and watches `policy_dir` (or its parent).
    pub(crate) fn new(policy_dir: &Path) -> Result<FileWatches, Errno> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
        let policy = watch_policy_dir(&inotify, policy_dir);
        Ok(FileWatches {
            inotify,
            table: Mutex::new(Table {
                policy_dir: policy_dir.to_owned(),
                policy,
                cgroups: BTreeMap::new(),
            }),
        })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `dirs` the watched cgroups: drops the watches of the others, adds one on each new
    /// directory's `cgroup.events`.
    pub(crate) fn watch_cgroups(&self, dirs: &[PathBuf]) {
        let mut table = self.table();
        table.cgroups.retain(|dir, watch| {
            let wanted = dirs.contains(dir);
            if let (false, Ok(wd)) = (wanted, watch) {
                // Fails only if the cgroup is gone, which removed the watch already.
                let _ = self.inotify.rm_watch(*wd);
            }
            wanted
        });
        for dir in dirs {
            if !table.cgroups.contains_key(dir) {
                let watch = self.watch_cgroup_events(dir);
                table.cgroups.insert(dir.clone(), watch);
            }
        }
    }

    fn watch_cgroup_events(&self, dir: &Path) -> Result<WatchDescriptor, String> {
        self.inotify
            .add_watch(&dir.join("cgroup.events"), AddWatchFlags::IN_MODIFY)
            .map_err(|errno| match errno {
                Errno::ENOENT => format!(
                    "cgroup {} has no cgroup.events (cgroup v1, or gone): the sweep covers it",
                    dir.display()
                ),
                errno => format!(
                    "cannot watch {}/cgroup.events ({}): the sweep covers it",
                    dir.display(),
                    errno.desc()
                ),
            })
    }

    /// Why some of what the loop asked for is not watched.
    pub(crate) fn notes(&self) -> Vec<String> {
        let table = self.table();
        let policy = match &table.policy {
            PolicyWatch::Unwatched(reason) => Some(format!(
                "policy directory {} is not watched ({reason}): its changes are read on SIGHUP",
                table.policy_dir.display()
            )),
            PolicyWatch::Dir(_) | PolicyWatch::Parent(_) => None,
        };
        let cgroups = table
            .cgroups
            .values()
            .filter_map(|watch| watch.clone().err());
        policy.into_iter().chain(cgroups).collect()
    }

    /// Reports what changed to `tx` until `stop` rings or the receiver is gone.
    pub(crate) fn run(&self, stop: &Bell, tx: &Sender<Wake>) {
        loop {
            let mut fds = [
                PollFd::new(&self.inotify, PollFlags::IN),
                PollFd::new(stop, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => return,
            }
            if !fds[1].revents().is_empty() {
                return;
            }
            let events = match self.inotify.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(_) => return,
            };
            for wake in self.wakes_for(&events) {
                if tx.send(wake).is_err() {
                    return;
                }
            }
        }
    }

    /// One wake per thing that changed in this batch, however many events it took.
    fn wakes_for(&self, events: &[InotifyEvent]) -> Vec<Wake> {
        let mut table = self.table();
        let mut wakes = Vec::new();
        for event in events {
            if let Some(wake) = self.wake_for(&mut table, event) {
                if !wakes.contains(&wake) {
                    wakes.push(wake);
                }
            }
        }
        wakes
    }

    fn wake_for(&self, table: &mut Table, event: &InotifyEvent) -> Option<Wake> {
        match table.policy {
            PolicyWatch::Dir(wd) if wd == event.wd => {
                let gone = AddWatchFlags::IN_DELETE_SELF
                    | AddWatchFlags::IN_MOVE_SELF
                    | AddWatchFlags::IN_IGNORED;
                if event.mask.intersects(gone) {
                    // A moved directory's watch would follow it to its new name.
                    let _ = self.inotify.rm_watch(wd);
                    table.policy = watch_policy_dir(&self.inotify, &table.policy_dir);
                }
                return Some(Wake::PolicyDir);
            }
            PolicyWatch::Parent(wd) if wd == event.wd => {
                let ours = table.policy_dir.file_name();
                if event.name.as_deref() != ours && !event.mask.contains(AddWatchFlags::IN_IGNORED)
                {
                    return None;
                }
                let _ = self.inotify.rm_watch(wd);
                table.policy = watch_policy_dir(&self.inotify, &table.policy_dir);
                return Some(Wake::PolicyDir);
            }
            _ => {}
        }
        // cgroupfs does not report a cgroup's removal to a watch on its files; the cgroup had to
        // be emptied first, and that was reported.
        table
            .cgroups
            .iter()
            .find(|(_, watch)| watch.as_ref().is_ok_and(|&wd| wd == event.wd))
            .map(|(dir, _)| Wake::CgroupEvents { dir: dir.clone() })
    }
}

/// Watches the directory, or its parent if it does not exist yet.
fn watch_policy_dir(inotify: &Inotify, dir: &Path) -> PolicyWatch {
    match inotify.add_watch(dir, POLICY_DIR_FLAGS) {
        Ok(wd) => return PolicyWatch::Dir(wd),
        Err(Errno::ENOENT) => {}
        Err(errno) => return PolicyWatch::Unwatched(errno.desc().to_owned()),
    }
    let parent = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let parent_wd = match inotify.add_watch(parent, PARENT_FLAGS) {
        Ok(wd) => wd,
        Err(errno) => {
            return PolicyWatch::Unwatched(format!(
                "it does not exist, and its parent cannot be watched: {}",
                errno.desc()
            ))
        }
    };
    // Created between the two calls: its parent's event came too early to be ours.
    match inotify.add_watch(dir, POLICY_DIR_FLAGS) {
        Ok(wd) => {
            let _ = inotify.rm_watch(parent_wd);
            PolicyWatch::Dir(wd)
        }
        Err(_) => PolicyWatch::Parent(parent_wd),
    }
}
