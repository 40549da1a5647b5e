//! Whether a state file may be believed: nearnative runs as root and a journal decides what
//! `revert` writes, so everything it reads back must be something only root could have put
//! there. A state directory, and every directory and file in it, must be owned by root (or, for
//! an unprivileged run such as `plan`, by the user running it) and writable by no group or
//! other user, with no symbolic link anywhere below it. The directories above it must be just
//! as closed, except sticky ones like `/tmp`, where nobody can rename another's entry, so
//! nothing checked here can be swapped between the check and the open.
//!
//! Files are opened with `O_NOFOLLOW` and checked again on the open descriptor, so a link
//! planted after the walk is refused rather than followed.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::libc;

/// Why a state file or directory is not trusted. Each names the path and the owner or mode.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path}: owned by uid {uid}, not by {trusted}; nearnative acts only on state nobody else can write, so move it aside")]
    Owner {
        path: PathBuf,
        uid: u32,
        trusted: String,
    },
    #[error("{path}: mode {mode:04o} lets group or others write it; nearnative acts only on state nobody else can write, so chmod go-w it or move it aside")]
    Mode { path: PathBuf, mode: u32 },
    #[error(
        "{path}: is a symbolic link; nearnative follows no link in its state, so move it aside"
    )]
    Symlink { path: PathBuf },
    #[error("{path}: is a {found}, not a {expected}; move it aside")]
    Kind {
        path: PathBuf,
        found: &'static str,
        expected: &'static str,
    },
    #[error("{path}: cannot check its owner and mode: {source}")]
    Stat {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What a checked path must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    File,
    Dir,
}

impl Expect {
    fn name(self) -> &'static str {
        match self {
            Expect::File => "regular file",
            Expect::Dir => "directory",
        }
    }
}

impl TrustError {
    /// The path refused: the file or directory itself, or a directory or link above it.
    pub fn path(&self) -> &Path {
        match self {
            TrustError::Owner { path, .. }
            | TrustError::Mode { path, .. }
            | TrustError::Symlink { path }
            | TrustError::Kind { path, .. }
            | TrustError::Stat { path, .. } => path,
        }
    }

    /// The message without the path in front, for a caller that names the path itself.
    pub fn reason(&self) -> String {
        let message = self.to_string();
        let prefix = format!("{}: ", self.path().display());
        match message.strip_prefix(&prefix) {
            Some(reason) => reason.to_owned(),
            None => message,
        }
    }
}

/// Checks a state directory, everything in it and the directories above it. A directory
/// that does not exist yet holds nothing to distrust.
pub fn check_state_dir(dir: &Path) -> Result<(), TrustError> {
    match fs::symlink_metadata(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(stat_error(dir, source)),
    }
    check_dir(dir)?;
    check_entries(dir)
}

/// Checks a directory and the directories above it as a state directory is checked, but not
/// its entries: for one whose files are each checked as they are opened
/// ([`open_for_reading`]), such as the daemon's policy directory.
pub fn check_dir(dir: &Path) -> Result<(), TrustError> {
    let meta = fs::symlink_metadata(dir).map_err(|e| stat_error(dir, e))?;
    check_ancestors(dir)?;
    check_meta(dir, &meta, Expect::Dir)
}

/// Checks the directory a state file is about to be read from or written into (not a link,
/// owned by root, closed to others), so that a file checked inside it cannot be replaced.
pub fn check_parent(path: &Path) -> Result<(), TrustError> {
    let dir = parent_of(path);
    let meta = fs::symlink_metadata(dir).map_err(|e| stat_error(dir, e))?;
    check_meta(dir, &meta, Expect::Dir)
}

/// Opens an existing state file for reading without following a link, and checks what was
/// opened. `Ok(None)` when there is no such file.
pub fn open_for_reading(path: &Path) -> Result<Option<File>, TrustError> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => check_open(path, &file).map(|()| Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(open_error(path, e)),
    }
}

/// Checks an open state file: a regular file owned by root, closed to others.
pub fn check_open(path: &Path, file: &File) -> Result<(), TrustError> {
    let meta = file.metadata().map_err(|e| stat_error(path, e))?;
    check_meta(path, &meta, Expect::File)
}

/// The error for an `O_NOFOLLOW` open that failed: `ELOOP` means the last component is a link.
pub fn open_error(path: &Path, source: io::Error) -> TrustError {
    match source.raw_os_error() {
        Some(libc::ELOOP) => TrustError::Symlink {
            path: path.to_owned(),
        },
        _ => stat_error(path, source),
    }
}

fn check_entries(dir: &Path) -> Result<(), TrustError> {
    let entries = fs::read_dir(dir).map_err(|e| stat_error(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| stat_error(dir, e))?.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| stat_error(&path, e))?;
        if meta.is_dir() {
            check_meta(&path, &meta, Expect::Dir)?;
            check_entries(&path)?;
        } else {
            check_meta(&path, &meta, Expect::File)?;
        }
    }
    Ok(())
}

/// Every directory above `dir`, up to `/`: owned by root and closed to others, or sticky.
/// The path to the state directory is the operator's choice, so links above it are followed,
/// but only links root owns: another user could point theirs elsewhere at any moment.
fn check_ancestors(dir: &Path) -> Result<(), TrustError> {
    let parent = parent_of(dir);
    for link in parent.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        let meta = fs::symlink_metadata(link).map_err(|e| stat_error(link, e))?;
        if meta.file_type().is_symlink() {
            check_owner(link, &meta)?;
        }
    }
    let real = fs::canonicalize(parent).map_err(|e| stat_error(parent, e))?;
    for ancestor in real.ancestors() {
        let meta = fs::metadata(ancestor).map_err(|e| stat_error(ancestor, e))?;
        check_owner(ancestor, &meta)?;
        let sticky = meta.mode() & 0o1000 != 0;
        if !sticky {
            check_mode(ancestor, &meta)?;
        }
    }
    Ok(())
}

fn check_meta(path: &Path, meta: &Metadata, expect: Expect) -> Result<(), TrustError> {
    let found = kind_of(meta);
    if found == "symbolic link" {
        return Err(TrustError::Symlink {
            path: path.to_owned(),
        });
    }
    if found != expect.name() {
        return Err(TrustError::Kind {
            path: path.to_owned(),
            found,
            expected: expect.name(),
        });
    }
    check_owner(path, meta)?;
    check_mode(path, meta)
}

fn check_owner(path: &Path, meta: &Metadata) -> Result<(), TrustError> {
    let euid = nix::unistd::geteuid().as_raw();
    match meta.uid() == 0 || meta.uid() == euid {
        true => Ok(()),
        false => Err(TrustError::Owner {
            path: path.to_owned(),
            uid: meta.uid(),
            trusted: match euid {
                0 => "root".to_owned(),
                uid => format!("root or uid {uid}"),
            },
        }),
    }
}

fn check_mode(path: &Path, meta: &Metadata) -> Result<(), TrustError> {
    match meta.mode() & 0o022 {
        0 => Ok(()),
        _ => Err(TrustError::Mode {
            path: path.to_owned(),
            mode: meta.mode() & 0o7777,
        }),
    }
}

fn kind_of(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_symlink() {
        "symbolic link"
    } else if kind.is_dir() {
        "directory"
    } else if kind.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn stat_error(path: &Path, source: io::Error) -> TrustError {
    TrustError::Stat {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt};

    use nix::unistd::{chown, Uid};

    use super::*;

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A tempdir with `state/` (0700) holding `journals/a.json` (0600).
    fn closed_state() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        fs::create_dir_all(state.join("journals")).unwrap();
        chmod(&state, 0o700);
        fs::write(state.join("journals/a.json"), "{}").unwrap();
        chmod(&state.join("journals/a.json"), 0o600);
        (dir, state)
    }

    #[test]
    fn a_closed_state_dir_passes_and_a_missing_one_has_nothing_to_distrust() {
        let (dir, state) = closed_state();
        check_state_dir(&state).unwrap();
        check_state_dir(&dir.path().join("absent")).unwrap();
    }

    #[test]
    fn anything_others_can_write_is_refused_naming_the_path_and_mode() {
        let cases = [
            ("world-writable state dir", "", 0o777),
            ("group-writable journals dir", "journals", 0o770),
            ("world-writable journal", "journals/a.json", 0o666),
        ];
        for (what, below, mode) in cases {
            let (_dir, state) = closed_state();
            let path = match below {
                "" => state.clone(),
                below => state.join(below),
            };
            chmod(&path, mode);
            let err = check_state_dir(&state).unwrap_err().to_string();
            let expected = format!("{}: mode {mode:04o}", path.display());
            assert!(err.starts_with(&expected), "{what}: {err}");
        }
    }

    #[test]
    fn a_link_anywhere_below_the_state_dir_is_refused() {
        let (dir, state) = closed_state();
        symlink(dir.path(), state.join("plans")).unwrap();
        let err = check_state_dir(&state).unwrap_err();
        assert!(matches!(err, TrustError::Symlink { .. }), "{err}");
        assert!(err.to_string().contains("state/plans"), "{err}");
        let (dir, state) = closed_state();
        let linked = dir.path().join("linked");
        symlink(&state, &linked).unwrap();
        let err = check_state_dir(&linked).unwrap_err();
        assert!(matches!(err, TrustError::Symlink { .. }), "{err}");
    }

    #[test]
    fn an_open_parent_is_refused_unless_sticky() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        fs::create_dir_all(open.join("state")).unwrap();
        chmod(&open, 0o777);
        let err = check_state_dir(&open.join("state"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("open: mode 0777"), "{err}");
        chmod(&open, 0o1777);
        check_state_dir(&open.join("state")).unwrap();
        let link = dir.path().join("link");
        symlink(&open, &link).unwrap();
        check_state_dir(&link.join("state")).unwrap();
    }

    #[test]
    fn a_refusal_names_its_path_and_gives_its_reason_apart() {
        let (_dir, state) = closed_state();
        chmod(&state, 0o777);
        let err = check_dir(&state).unwrap_err();
        assert_eq!(err.path(), state);
        assert!(err.reason().starts_with("mode 0777 lets group"), "{err}");
        chmod(&state, 0o700);
        check_dir(&state).unwrap();
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let (_dir, state) = closed_state();
        let fifo = state.join("ledger.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = open_for_reading(&fifo).unwrap_err();
        assert!(err.to_string().contains("special file"), "{err}");
    }

    #[test]
    #[ignore = "needs root: hands the state over to nobody with chown"]
    fn state_owned_by_another_user_is_refused_naming_the_owner() {
        for below in ["", "journals", "journals/a.json"] {
            let (_dir, state) = closed_state();
            let path = match below {
                "" => state.clone(),
                below => state.join(below),
            };
            chown(&path, Some(Uid::from_raw(65534)), None).unwrap();
            let err = check_state_dir(&state).unwrap_err().to_string();
            let expected = format!("{}: owned by uid 65534, not by root", path.display());
            assert!(err.starts_with(&expected), "{below:?}: {err}");
        }
        let (dir, state) = closed_state();
        let link = dir.path().join("link");
        symlink(dir.path(), &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
        let err = check_state_dir(&link.join("state"))
            .unwrap_err()
            .to_string();
        let expected = format!("{}: owned by uid 65534", link.display());
        assert!(err.starts_with(&expected), "a link above: {err}");
        check_state_dir(&state).unwrap();
    }
}
