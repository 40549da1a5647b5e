//! Running code inside a lab network namespace, on a named thread of its own.
//!
//! `setns(CLONE_NEWNET)` changes only the calling thread, so the lab enters a namespace on a
//! fresh thread and never in the caller's: the rest of the process stays in the host
//! namespace. A socket belongs for life to the namespace it was created in, so a server socket
//! bound on such a thread can be served from any thread afterwards.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("cannot open network namespace {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot enter network namespace {path}")]
    Enter {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("cannot start thread {name}")]
    Spawn {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("thread {name} panicked")]
    Panicked { name: String },
}

/// Moves the calling thread into the named namespace (`/run/netns/<name>`).
pub fn enter(name: &str) -> Result<(), NetnsError> {
    let path = PathBuf::from(format!("/run/netns/{name}"));
    let file = open(&path)?;
    enter_file(&file, path)
}

/// The network namespace the calling thread is in now, to come back to with [`enter_file`].
pub fn current() -> Result<(File, PathBuf), NetnsError> {
    let path = PathBuf::from("/proc/thread-self/ns/net");
    Ok((open(&path)?, path))
}

/// Moves the calling thread into the namespace `file` refers to (opened from `path`).
pub fn enter_file(file: &File, path: PathBuf) -> Result<(), NetnsError> {
    setns(file, CloneFlags::CLONE_NEWNET).map_err(|source| NetnsError::Enter { path, source })
}

fn open(path: &Path) -> Result<File, NetnsError> {
    File::open(path).map_err(|source| NetnsError::Open {
        path: path.to_owned(),
        source,
    })
}

/// Runs `work` on a thread named `thread_name` that first enters `netns` (or stays in the
/// host namespace for `None`), and waits for its result.
pub fn run_in<T: Send + 'static>(
    netns: Option<&str>,
    thread_name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NetnsError> {
    let netns = netns.map(str::to_owned);
    let thread = std::thread::Builder::new()
        .name(thread_name.to_owned())
        .spawn(move || {
            if let Some(name) = &netns {
                enter(name)?;
            }
            Ok(work())
        })
        .map_err(|source| NetnsError::Spawn {
            name: thread_name.to_owned(),
            source,
        })?;
    thread.join().map_err(|_| NetnsError::Panicked {
        name: thread_name.to_owned(),
    })?
}
