//! The state lock: one `apply` or `revert` at a time per state directory, so two runs never
//! interleave their knob writes or their journal updates. Taking it first checks that the
//! whole state directory is root's alone ([`crate::trust`]): every command that changes the
//! host goes through here before it reads a journal or writes anything.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::libc;

use crate::trust::{self, TrustError};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path}: cannot open the state lock: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path}: another nearnative apply or revert is running (pid {holder}); wait for it to finish"
    )]
    Busy { path: PathBuf, holder: String },
    #[error("{path}: cannot take the state lock: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error(transparent)]
    Untrusted(#[from] TrustError),
}

/// An exclusive `flock` on `STATE_DIR/lock`, released when dropped or when the process dies,
/// so a crashed apply never leaves the state locked.
#[derive(Debug)]
pub struct StateLock {
    _lock: Flock<File>,
}

impl StateLock {
    /// Takes the lock without waiting: a second run should be told, not silently queued.
    pub fn acquire(state_dir: &Path) -> Result<StateLock, LockError> {
        trust::check_state_dir(state_dir)?;
        match pid_lock(&state_dir.join("lock")) {
            Ok(lock) => Ok(StateLock { _lock: lock }),
            Err(PidLockError::Open { path, source }) => Err(LockError::Open { path, source }),
            Err(PidLockError::Busy { path, holder }) => Err(LockError::Busy { path, holder }),
            Err(PidLockError::Lock { path, source }) => Err(LockError::Lock { path, source }),
            Err(PidLockError::Untrusted(err)) => Err(LockError::Untrusted(err)),
        }
    }
}

/// Why [`pid_lock`] could not take its lock.
#[derive(Debug)]
pub enum PidLockError {
    Open {
        path: PathBuf,
        source: io::Error,
    },
    /// Another process holds it; `holder` is the pid it wrote, or `unknown`.
    Busy {
        path: PathBuf,
        holder: String,
    },
    Lock {
        path: PathBuf,
        source: Errno,
    },
    /// The file is a link, or someone other than root could write it or its directory.
    Untrusted(TrustError),
}

/// An exclusive `flock` on `path` (created 0600 if missing), taken without waiting, with this
/// process's pid written into the file so a refused caller can say who holds it. The kernel
/// drops the lock when its holder dies. A link is never followed and the file is checked to
/// be root's alone before anything is written into it.
pub fn pid_lock(path: &Path) -> Result<Flock<File>, PidLockError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ELOOP) => PidLockError::Untrusted(trust::open_error(path, source)),
            _ => PidLockError::Open {
                path: path.to_owned(),
                source,
            },
        })?;
    trust::check_open(path, &file)
        .and_then(|()| trust::check_parent(path))
        .map_err(PidLockError::Untrusted)?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((mut file, Errno::EWOULDBLOCK)) => {
            return Err(PidLockError::Busy {
                holder: holder_of(&mut file),
                path: path.to_owned(),
            })
        }
        Err((_, source)) => {
            return Err(PidLockError::Lock {
                path: path.to_owned(),
                source,
            })
        }
    };
    // The pid is only for the message a refused caller prints; the flock is the lock.
    let _ = lock
        .set_len(0)
        .and_then(|()| lock.rewind())
        .and_then(|()| write!(lock, "{}", std::process::id()));
    Ok(lock)
}

fn holder_of(file: &mut File) -> String {
    let mut pid = String::new();
    match file.read_to_string(&mut pid) {
        Ok(_) if !pid.trim().is_empty() => pid.trim().to_owned(),
        _ => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_with_the_holder_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::acquire(dir.path()).unwrap();
        let err = StateLock::acquire(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        StateLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn missing_state_dir_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = StateLock::acquire(&dir.path().join("absent")).unwrap_err();
        assert!(err.to_string().contains("absent/lock"), "{err}");
    }

    #[test]
    fn the_lock_is_created_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let _lock = StateLock::acquire(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("lock"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// `lock` → `victim`: the lock would truncate it and write a pid into it.
    fn planted_link(state: &Path) -> PathBuf {
        let victim = state.parent().unwrap().join("victim");
        std::fs::write(&victim, "root's file").unwrap();
        std::os::unix::fs::symlink(&victim, state.join("lock")).unwrap();
        victim
    }

    #[test]
    fn a_lock_that_is_a_link_is_refused_and_its_target_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let victim = planted_link(&state);
        let err = StateLock::acquire(&state).unwrap_err();
        assert!(
            err.to_string().contains("state/lock: is a symbolic link"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's file");
        let err = pid_lock(&state.join("lock")).unwrap_err();
        assert!(matches!(err, PidLockError::Untrusted(_)), "{err:?}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's file");
    }

    #[test]
    #[ignore = "needs root: hands the state directory over to nobody with chown"]
    fn a_nobody_owned_state_dir_with_a_planted_lock_is_refused_naming_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let victim = planted_link(&state);
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
        let nobody = Some(nix::unistd::Uid::from_raw(65534));
        nix::unistd::chown(&state, nobody, None).unwrap();
        let err = StateLock::acquire(&state).unwrap_err().to_string();
        let expected = format!("{}: owned by uid 65534, not by root", state.display());
        assert!(err.starts_with(&expected), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's file");
    }
}
