//! The root directory every host read goes through.
//!
//! A missing knob is normal on real machines (old kernels, containers, other
//! architectures), so "not found" is kept apart from every other failure.

use std::io;
use std::path::{Path, PathBuf};

/// A failed read of one host file. Every variant carries the full path that was read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: not found")]
    NotFound { path: PathBuf },
    #[error("{path}: permission denied")]
    PermissionDenied { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: cannot parse {value:?}: {reason}")]
    Parse {
        path: PathBuf,
        value: String,
        reason: String,
    },
}

impl ReadError {
    fn from_io(path: PathBuf, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::NotFound => ReadError::NotFound { path },
            io::ErrorKind::PermissionDenied => ReadError::PermissionDenied { path },
            _ => ReadError::Io { path, source },
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::NotFound { .. })
    }

    /// The path of the file whose read failed.
    pub fn path(&self) -> &Path {
        match self {
            ReadError::NotFound { path }
            | ReadError::PermissionDenied { path }
            | ReadError::Io { path, .. }
            | ReadError::Parse { path, .. } => path,
        }
    }
}

/// A directory that stands for `/`: the live host, or an extracted snapshot.
///
/// Paths given to its methods are absolute host paths such as `/proc/interrupts`; they are
/// resolved under the root, never outside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    dir: PathBuf,
}

impl Default for Root {
    fn default() -> Self {
        Root::new("/")
    }
}

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Root { dir: dir.into() }
    }

    /// True when this root is the running host, so live-only sources (QMP, ioctls) apply.
    pub fn is_live(&self) -> bool {
        self.dir == Path::new("/")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The real location of a host path under this root.
    pub fn path(&self, host_path: impl AsRef<Path>) -> PathBuf {
        let host_path = host_path.as_ref();
        let relative = host_path.strip_prefix("/").unwrap_or(host_path);
        self.dir.join(relative)
    }

    pub fn read_to_string(&self, host_path: impl AsRef<Path>) -> Result<String, ReadError> {
        let path = self.path(host_path);
        std::fs::read_to_string(&path).map_err(|e| ReadError::from_io(path, e))
    }

    /// The file's content with surrounding whitespace trimmed, as sysfs single-value files want.
    pub fn read_trimmed(&self, host_path: impl AsRef<Path>) -> Result<String, ReadError> {
        self.read_to_string(host_path).map(|s| s.trim().to_owned())
    }

    /// Reads and parses one value, turning a parse failure into a [`ReadError::Parse`] that
    /// names the file and the text found there.
    pub fn read_parsed<T, E: std::fmt::Display>(
        &self,
        host_path: impl AsRef<Path>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, ReadError> {
        let host_path = host_path.as_ref();
        let text = self.read_trimmed(host_path)?;
        parse(&text).map_err(|e| ReadError::Parse {
            path: self.path(host_path),
            value: text,
            reason: e.to_string(),
        })
    }

    /// The names of a directory's entries, sorted. Names that are not UTF-8 are skipped: no
    /// kernel object we read has one.
    pub fn list_dir(&self, host_path: impl AsRef<Path>) -> Result<Vec<String>, ReadError> {
        let path = self.path(host_path);
        let entries = std::fs::read_dir(&path).map_err(|e| ReadError::from_io(path.clone(), e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ReadError::from_io(path.clone(), e))?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    pub fn exists(&self, host_path: impl AsRef<Path>) -> bool {
        self.path(host_path).exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths_resolve_under_the_root() {
        let root = Root::new("/snap");
        assert_eq!(
            root.path("/proc/cmdline"),
            PathBuf::from("/snap/proc/cmdline")
        );
        assert_eq!(root.path("sys/x"), PathBuf::from("/snap/sys/x"));
    }

    #[test]
    fn missing_file_is_not_found_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = Root::new(dir.path()).read_to_string("/nope").unwrap_err();
        assert!(err.is_not_found());
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn parse_failure_names_file_and_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("n"), "abc\n").unwrap();
        let err = Root::new(dir.path())
            .read_parsed("/n", |s| s.parse::<u32>())
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"abc\"") && msg.contains("/n"), "{msg}");
    }
}
