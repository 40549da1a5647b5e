//! Durable state files: written whole to a temporary file, fsync'd, renamed into place, and the
//! directory fsync'd, so a crash leaves either the old file or the new one, never a torn one.
//!
//! Each file is a JSON envelope `{"schema_version", "sha256", "body"}`. The checksum covers the
//! body's exact bytes, so a file edited by hand or cut short is refused on load instead of being
//! half-trusted. The checksum is no authenticator (anyone can compute it): what makes a file
//! believable is that only root could have written it, which [`crate::trust`] checks on every
//! load and store. Files are created 0600 with `O_EXCL` and opened without following links.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::libc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::trust::{self, TrustError};

#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    #[error("{path}: cannot write state: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: cannot read state: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path}: state file is corrupt ({reason}); inspect it, then move it aside to start afresh"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: written by schema version {found}, this nearnative reads only {supported}; use a matching nearnative")]
    Version {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(transparent)]
    Untrusted(#[from] TrustError),
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    schema_version: u32,
    sha256: String,
    body: &'a RawValue,
}

#[derive(Deserialize)]
struct EnvelopeIn<'a> {
    schema_version: u32,
    sha256: String,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// Writes `body` to `path` atomically and durably, in an envelope marked `schema_version`.
pub fn store<T: Serialize>(path: &Path, schema_version: u32, body: &T) -> Result<(), DurableError> {
    let write_err = |source| DurableError::Write {
        path: path.to_owned(),
        source,
    };
    let body = serde_json::to_string_pretty(body).map_err(|e| write_err(e.into()))?;
    let body = RawValue::from_string(body).map_err(|e| write_err(e.into()))?;
    let envelope = EnvelopeOut {
        schema_version,
        sha256: sha256_hex(body.get().as_bytes()),
        body: &body,
    };
    let mut bytes = serde_json::to_vec_pretty(&envelope).map_err(|e| write_err(e.into()))?;
    bytes.push(b'\n');
    parent_trusted(path, write_err)?;
    write_atomically(path, &bytes).map_err(write_err)
}

/// Deletes a state file durably: the directory is fsync'd, so a crash cannot bring it back.
/// A file already gone is success.
pub fn remove(path: &Path) -> Result<(), DurableError> {
    let write_err = |source| DurableError::Write {
        path: path.to_owned(),
        source,
    };
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(write_err(e)),
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_err)
}

/// Reads a file written by [`store`]. `Ok(None)` when it does not exist.
pub fn load<T: DeserializeOwned>(
    path: &Path,
    schema_version: u32,
) -> Result<Option<T>, DurableError> {
    let Some(bytes) = read_trusted(path)? else {
        return Ok(None);
    };
    let corrupt = |reason: String| DurableError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let envelope: EnvelopeIn = serde_json::from_slice(&bytes)
        .map_err(|e| corrupt(format!("not a state envelope: {e}")))?;
    if envelope.schema_version != schema_version {
        return Err(DurableError::Version {
            path: path.to_owned(),
            found: envelope.schema_version,
            supported: schema_version,
        });
    }
    if sha256_hex(envelope.body.get().as_bytes()) != envelope.sha256 {
        return Err(corrupt("checksum mismatch".to_owned()));
    }
    serde_json::from_str(envelope.body.get())
        .map(Some)
        .map_err(|e| corrupt(format!("unexpected content: {e}")))
}

/// The bytes of a state file only root could have written, read without following a link;
/// `None` when it does not exist. A directory root cannot read (plan, run unprivileged) is a
/// read error, not a trust one, so callers can tell the two apart.
fn read_trusted(path: &Path) -> Result<Option<Vec<u8>>, DurableError> {
    let read_err = |source| DurableError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = match trust::open_for_reading(path) {
        Ok(Some(file)) => file,
        Ok(None) => return Ok(None),
        Err(TrustError::Stat { source, .. }) => return Err(read_err(source)),
        Err(err) => return Err(err.into()),
    };
    parent_trusted(path, read_err)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(read_err)?;
    Ok(Some(bytes))
}

/// Refuses a state file whose directory someone else could write; a directory that cannot be
/// looked at is the caller's I/O error.
fn parent_trusted(
    path: &Path,
    io_err: impl Fn(io::Error) -> DurableError,
) -> Result<(), DurableError> {
    match trust::check_parent(path) {
        Err(TrustError::Stat { source, .. }) => Err(io_err(source)),
        other => Ok(other?),
    }
}

/// Replaces `path` with `bytes` so that a crash at any instant leaves the old or the new file.
/// The directory must be root's alone (see [`crate::trust`]); the new file is 0600.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    through_temporary(path, bytes, |tmp| fs::rename(tmp, path))
}

/// Creates `path` holding `bytes`, failing with `AlreadyExists` when it exists, so that a
/// crash at any instant leaves no file or the whole of it, never an empty or torn one (a
/// journal's first line is its header). The directory must be root's alone; the file is 0600.
pub fn create_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    through_temporary(path, bytes, |tmp| {
        // A hard link, unlike a rename, refuses to replace what is there.
        fs::hard_link(tmp, path)?;
        fs::remove_file(tmp)
    })
}

/// Writes `bytes` to a synced temporary beside `path` (`.NAME.tmp.PID`), lets `place` put it
/// at `path`, and syncs the directory; the temporary is removed if anything fails.
fn through_temporary(
    path: &Path,
    bytes: &[u8],
    place: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    trust::check_parent(path).map_err(io::Error::other)?;
    let result = write_synced(&tmp, bytes).and_then(|()| place(&tmp));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    File::open(dir)?.sync_all()
}

/// Removes the temporary files of `dir` that a writer killed between its write and its
/// rename left behind (`.NAME.tmp.PID`, see [`write_atomically`]): those whose process no
/// longer exists. Returns the names removed; a missing directory has none.
pub fn remove_orphaned_temporaries(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let orphaned = temporary_writer(&name).is_some_and(|pid| !process_exists(pid));
        if orphaned {
            fs::remove_file(dir.join(&name))?;
            removed.push(name);
        }
    }
    Ok(removed)
}

/// The pid of the writer of a temporary file named `.NAME.tmp.PID`.
fn temporary_writer(name: &str) -> Option<i32> {
    let (_, pid) = name.strip_prefix('.')?.rsplit_once(".tmp.")?;
    pid.parse().ok()
}

/// Whether process `pid` exists (signal 0: nothing is sent). A pid reused since keeps its
/// file, which is only a leftover, never read.
fn process_exists(pid: i32) -> bool {
    let probe = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None);
    !matches!(probe, Err(nix::errno::Errno::ESRCH))
}

/// Writes a new temporary file. Only a dead process of this pid can have left one of that
/// name (the directory is root's alone), so one found is removed (never followed) and the
/// file made afresh.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let create = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    };
    let mut file = match create() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(path)?;
            create()?
        }
        other => other?,
    };
    file.write_all(bytes)?;
    file.sync_all()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Body {
        knob: String,
        prior: u64,
    }

    fn body() -> Body {
        Body {
            knob: "/proc/irq/36/smp_affinity_list".into(),
            prior: 3,
        }
    }

    #[test]
    fn an_atomic_create_is_whole_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        create_atomically(&path, b"header\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"header\n");
        let again = create_atomically(&path, b"other\n").unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"header\n", "left as it was");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["j"], "no temporary left behind");
    }

    #[test]
    fn only_the_temporaries_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let alive = std::process::id();
        let names = [
            format!(".a.json.tmp.{dead}"),
            format!(".a.json.tmp.{alive}"),
            "a.json".to_owned(),
            format!("b.tmp.{dead}"),
        ];
        for name in &names {
            fs::write(dir.path().join(name), "{}").unwrap();
        }
        let removed = remove_orphaned_temporaries(dir.path()).unwrap();
        assert_eq!(removed, [names[0].clone()]);
        for name in &names[1..] {
            assert!(dir.path().join(name).exists(), "{name}");
        }
        assert!(remove_orphaned_temporaries(&dir.path().join("none"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn round_trips_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.json");
        store(&path, 1, &body()).unwrap();
        assert_eq!(load::<Body>(&path, 1).unwrap(), Some(body()));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("journal.json")]);
    }

    #[test]
    fn missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load::<Body>(&dir.path().join("absent"), 1).unwrap(), None);
    }

    #[test]
    fn tampered_body_is_refused_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        store(&path, 1, &body()).unwrap();
        let text = fs::read_to_string(&path)
            .unwrap()
            .replace("\"prior\": 3", "\"prior\": 4");
        fs::write(&path, text).unwrap();
        let err = load::<Body>(&path, 1).unwrap_err();
        assert!(matches!(err, DurableError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn truncated_file_is_refused_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        store(&path, 1, &body()).unwrap();
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(
            load::<Body>(&path, 1),
            Err(DurableError::Corrupt { .. })
        ));
    }

    #[test]
    fn other_schema_version_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        store(&path, 2, &body()).unwrap();
        let err = load::<Body>(&path, 1).unwrap_err();
        assert!(err.to_string().contains("schema version 2"), "{err}");
    }

    #[test]
    fn write_into_missing_directory_fails_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/j");
        let err = store(&path, 1, &body()).unwrap_err();
        assert!(err.to_string().contains("no/such/dir/j"), "{err}");
    }

    #[test]
    fn files_are_created_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        store(&path, 1, &body()).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_planted_temporary_link_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "root's file").unwrap();
        let state = dir.path().join("state");
        fs::create_dir(&state).unwrap();
        let tmp = state.join(format!(".j.tmp.{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        store(&state.join("j"), 1, &body()).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "root's file");
        assert_eq!(load::<Body>(&state.join("j"), 1).unwrap(), Some(body()));
        assert!(fs::symlink_metadata(&tmp).is_err(), "temporary left behind");
    }

    #[test]
    fn a_state_file_that_is_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        store(&real, 1, &body()).unwrap();
        let link = dir.path().join("j");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = load::<Body>(&link, 1).unwrap_err();
        assert!(matches!(err, DurableError::Untrusted(_)), "{err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    #[test]
    fn a_state_file_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        store(&path, 1, &body()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o646)).unwrap();
        let err = load::<Body>(&path, 1).unwrap_err();
        assert!(err.to_string().contains("mode 0646"), "{err}");
    }
}
