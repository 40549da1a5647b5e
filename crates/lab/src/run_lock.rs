//! One lab at a time per run directory: an exclusive `flock` on `<run dir>/lab.lock`, held
//! for the whole run. Two labs at once would fight over the same CPUs, IRQs and host knobs
//! and measure each other's noise, so the second is refused, naming the holder. The kernel
//! drops the lock when its holder dies, so a `kill -9` never leaves the directory locked.
//!
//! The run directory's registries tell root what to remove, so taking the lock first checks
//! that the directory and everything in it are root's alone, as the state directory must be.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use nearnative_sys::lock::{pid_lock, PidLockError};
use nearnative_sys::trust::{check_state_dir, TrustError};
use nix::errno::Errno;
use nix::fcntl::Flock;

/// The lock file's name inside the run directory.
pub const LOCK_FILE: &str = "lab.lock";

#[derive(Debug, thiserror::Error)]
pub enum RunLockError {
    #[error("cannot open the lab lock {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "another nearnative lab is running (pid {holder}, holding {path}); wait for it to finish"
    )]
    Busy { path: PathBuf, holder: String },
    #[error("cannot take the lab lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error(transparent)]
    Untrusted(#[from] TrustError),
}

/// The held lock; released when dropped or when the process dies.
#[derive(Debug)]
pub struct RunLock {
    _lock: Flock<File>,
}

impl RunLock {
    /// Takes the lock on `run_dir` (which must exist) without waiting.
    pub fn acquire(run_dir: &Path) -> Result<RunLock, RunLockError> {
        check_state_dir(run_dir)?;
        match pid_lock(&run_dir.join(LOCK_FILE)) {
            Ok(lock) => Ok(RunLock { _lock: lock }),
            Err(PidLockError::Open { path, source }) => Err(RunLockError::Open { path, source }),
            Err(PidLockError::Busy { path, holder }) => Err(RunLockError::Busy { path, holder }),
            Err(PidLockError::Lock { path, source }) => Err(RunLockError::Lock { path, source }),
            Err(PidLockError::Untrusted(err)) => Err(RunLockError::Untrusted(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lab_is_refused_naming_the_holder_until_the_first_ends() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        let err = RunLock::acquire(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        RunLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn a_run_dir_others_can_write_or_a_linked_lock_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "root's file").unwrap();
        let run_dir = dir.path().join("run");
        std::fs::create_dir(&run_dir).unwrap();
        std::os::unix::fs::symlink(&victim, run_dir.join(LOCK_FILE)).unwrap();
        let err = RunLock::acquire(&run_dir).unwrap_err();
        assert!(
            err.to_string().contains("lab.lock: is a symbolic link"),
            "{err}"
        );
        std::fs::remove_file(run_dir.join(LOCK_FILE)).unwrap();
        std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = RunLock::acquire(&run_dir).unwrap_err();
        assert!(err.to_string().contains("run: mode 0777"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's file");
    }
}
