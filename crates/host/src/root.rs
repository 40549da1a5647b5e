//! The root directory every host read goes through.
//!
//! A missing knob is normal on real machines (old kernels, containers, other
//! architectures), so "not found" is kept apart from every other failure.
//!
//! A captured tree is untrusted input (someone else's bug report), so every read is made
//! safe for it: only regular files are read, never FIFOs or devices (opened non-blocking so
//! that opening one cannot hang), at most a cap per file family ([`limits`]), and symlinks are
//! resolved inside the root only ([`resolve`]). The live host (`/`) is resolved by the
//! kernel as usual, so `/proc/self` and the other magic links keep working.

mod limits;
mod resolve;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

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
/// resolved under the root, never outside it. A root made by [`Root::recording`] also keeps
/// what every successful read and listing returned, so `capture` can save exactly the files
/// inspect used. Every method that reads host state must record through it.
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
    recorder: Option<Recorder>,
}

impl PartialEq for Root {
    fn eq(&self, other: &Self) -> bool {
        self.dir == other.dir
    }
}

impl Eq for Root {}

impl Default for Root {
    fn default() -> Self {
        Root::new("/")
    }
}

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Root {
            dir: dir.into(),
            recorder: None,
        }
    }

    /// The same root, recording every successful read into the returned [`Recorder`], which
    /// keeps at most `max_bytes` of file content (later files are counted as dropped).
    pub fn recording(&self, max_bytes: u64) -> (Root, Recorder) {
        let recorder = Recorder::new(max_bytes);
        let root = Root {
            dir: self.dir.clone(),
            recorder: Some(recorder.clone()),
        };
        (root, recorder)
    }

    /// True when this root is the running host, so live-only sources (QMP, ioctls) apply.
    pub fn is_live(&self) -> bool {
        self.dir == Path::new("/")
    }

    /// True when every file read is also recorded for a capture: a reading that skips a file
    /// (a system call in its place) would leave it out of the captured tree.
    pub fn is_recording(&self) -> bool {
        self.recorder.is_some()
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

    /// The file's content. Refuses, naming the file, anything but a regular file and a file
    /// larger than its family's cap.
    pub fn read_to_string(&self, host_path: impl AsRef<Path>) -> Result<String, ReadError> {
        let host_path = host_path.as_ref();
        let path = self.path(host_path);
        let text = self
            .read_capped(host_path)
            .and_then(|bytes| {
                String::from_utf8(bytes)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "content is not UTF-8"))
            })
            .map_err(|e| ReadError::from_io(path, e))?;
        if let Some(recorder) = &self.recorder {
            recorder.record_file(host_path, text.as_bytes());
        }
        Ok(text)
    }

    /// The file's content with surrounding whitespace trimmed, as sysfs single-value files want.
    /// Trailing NUL bytes are trimmed too: sysfs binary attributes (the topology `*_cpus`
    /// files since Linux 5.14) can carry them into snapshots.
    pub fn read_trimmed(&self, host_path: impl AsRef<Path>) -> Result<String, ReadError> {
        self.read_to_string(host_path).map(|s| {
            s.trim_matches(|c: char| c.is_whitespace() || c == '\0')
                .to_owned()
        })
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
        let path = self.path(host_path.as_ref());
        let mut names = self
            .dir_names(host_path.as_ref())
            .map_err(|e| ReadError::from_io(path, e))?;
        names.sort();
        if let Some(recorder) = &self.recorder {
            recorder.record_dir(host_path.as_ref(), &names);
        }
        Ok(names)
    }

    /// Whether the path exists. A recording root keeps an existing directory (with no
    /// entries), so a capture has it too.
    pub fn exists(&self, host_path: impl AsRef<Path>) -> bool {
        let host_path = host_path.as_ref();
        let Ok(meta) = self.stat(host_path) else {
            return false;
        };
        if let Some(recorder) = self.recorder.as_ref().filter(|_| meta.is_dir()) {
            recorder.record_existing_dir(host_path);
        }
        true
    }

    /// Whether the path is a directory, following symlinks inside the root.
    pub fn is_dir(&self, host_path: impl AsRef<Path>) -> bool {
        self.stat(host_path.as_ref())
            .is_ok_and(|meta| meta.is_dir())
    }

    /// The metadata of what the path names, following symlinks inside the root.
    pub fn metadata(&self, host_path: impl AsRef<Path>) -> Result<std::fs::Metadata, ReadError> {
        let host_path = host_path.as_ref();
        self.stat(host_path)
            .map_err(|e| ReadError::from_io(self.path(host_path), e))
    }

    /// The target of a symlink, as written in it (it is not followed).
    pub fn read_link(&self, host_path: impl AsRef<Path>) -> Result<PathBuf, ReadError> {
        let host_path = host_path.as_ref();
        let target = if self.is_live() {
            std::fs::read_link(self.path(host_path))
        } else {
            resolve::resolve(&self.dir, host_path, false).and_then(|r| r.read_link())
        };
        target.map_err(|e| ReadError::from_io(self.path(host_path), e))
    }

    /// The host path with every symlink resolved, inside the root.
    pub fn canonicalize(&self, host_path: impl AsRef<Path>) -> Result<PathBuf, ReadError> {
        let host_path = host_path.as_ref();
        let resolved = if self.is_live() {
            std::fs::canonicalize(self.path(host_path))
        } else {
            resolve::resolve(&self.dir, host_path, true).map(|r| r.host_path())
        };
        resolved.map_err(|e| ReadError::from_io(self.path(host_path), e))
    }

    /// Opens what the path names: by the kernel on the live host, inside the root otherwise.
    fn open(&self, host_path: &Path, flags: OFlag) -> io::Result<OwnedFd> {
        if self.is_live() {
            let flags = flags | OFlag::O_CLOEXEC;
            Ok(nix::fcntl::open(
                &self.path(host_path),
                flags,
                Mode::empty(),
            )?)
        } else {
            resolve::resolve(&self.dir, host_path, true)?.open(flags)
        }
    }

    fn stat(&self, host_path: &Path) -> io::Result<std::fs::Metadata> {
        File::from(self.open(host_path, OFlag::O_PATH)?).metadata()
    }

    /// A regular file's bytes, up to its family's cap. `O_NONBLOCK` makes opening a FIFO
    /// return at once, so the check that follows can refuse it.
    fn read_capped(&self, host_path: &Path) -> io::Result<Vec<u8>> {
        let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
        let file = File::from(self.open(host_path, flags)?);
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(refused(format!("{}, not a regular file", kind(&meta))));
        }
        let cap = limits::cap(host_path);
        let too_big = || refused(format!("larger than the {cap} bytes such a file may hold"));
        if meta.len() > cap {
            return Err(too_big());
        }
        // /proc files report a size of 0, so the cap is enforced on what is read too. Room
        // for a whole small file up front saves the probing reads an empty buffer starts with
        // (a third of the system calls of reading 10 000 threads).
        let room = match meta.len() {
            0 => PROC_FILE_ROOM,
            len => len.saturating_add(1),
        };
        let mut bytes = Vec::with_capacity(room.min(cap.saturating_add(1)) as usize);
        file.take(cap + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > cap {
            return Err(too_big());
        }
        Ok(bytes)
    }

    fn dir_names(&self, host_path: &Path) -> io::Result<Vec<String>> {
        let fd = self.open(host_path, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        let mut dir = nix::dir::Dir::from_fd(fd)?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let entry = entry?;
            match entry.file_name().to_str() {
                Ok("." | "..") | Err(_) => {}
                Ok(name) => names.push(name.to_owned()),
            }
        }
        Ok(names)
    }
}

/// The buffer a file that reports no size (a /proc file) is first read into: a thread's
/// `stat` or `status` fits.
const PROC_FILE_ROOM: u64 = 4096;

fn refused(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("refused: {reason}"))
}

/// What a file that is not a regular file is, for the refusal.
fn kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "an unknown kind of file"
    }
}

/// What a recording [`Root`] saw: file contents and directory listings, keyed by host path.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recording {
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    /// Directory listings: the entry names each directory had when it was listed.
    pub dirs: BTreeMap<PathBuf, Vec<String>>,
    /// Bytes of file content kept.
    pub bytes: u64,
    /// Files read but not kept because the byte budget was spent.
    pub dropped_files: u64,
}

/// The shared store behind a recording [`Root`]; clones share it.
#[derive(Debug, Clone)]
pub struct Recorder {
    max_bytes: u64,
    recording: Arc<Mutex<Recording>>,
}

impl Recorder {
    fn new(max_bytes: u64) -> Self {
        Recorder {
            max_bytes,
            recording: Arc::default(),
        }
    }

    /// Everything recorded so far.
    pub fn snapshot(&self) -> Recording {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Recording> {
        // A panic elsewhere while holding the lock leaves a recording that is still valid data.
        self.recording.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record_file(&self, host_path: &Path, content: &[u8]) {
        let mut recording = self.lock();
        let size = content.len() as u64;
        if recording.files.contains_key(host_path) {
            return;
        }
        if recording.bytes + size > self.max_bytes {
            recording.dropped_files += 1;
            return;
        }
        recording.bytes += size;
        recording
            .files
            .insert(host_path.to_owned(), content.to_vec());
    }

    fn record_existing_dir(&self, host_path: &Path) {
        self.lock().dirs.entry(host_path.to_owned()).or_default();
    }

    fn record_dir(&self, host_path: &Path, names: &[String]) {
        self.lock()
            .dirs
            .insert(host_path.to_owned(), names.to_vec());
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

    #[test]
    fn trimmed_reads_drop_sysfs_trailing_nuls() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cpus"), "0-3\n\0").unwrap();
        assert_eq!(Root::new(dir.path()).read_trimmed("/cpus").unwrap(), "0-3");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&dir.path().join("level"), Mode::S_IRUSR).unwrap();
        let err = Root::new(dir.path()).read_to_string("/level").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("level") && msg.contains("a FIFO"), "{msg}");
    }

    #[test]
    fn an_absolute_link_to_a_device_stays_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("size")).unwrap();
        let err = Root::new(dir.path()).read_to_string("/size").unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    #[test]
    fn a_huge_file_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("online")).unwrap();
        file.set_len(1 << 30).unwrap();
        let err = Root::new(dir.path()).read_to_string("/online").unwrap_err();
        assert!(err.to_string().contains("larger than the"), "{err}");
    }

    #[test]
    fn live_reads_follow_proc_self() {
        let root = Root::default();
        let status = root.read_to_string("/proc/self/status").unwrap();
        assert!(status.contains("Pid:"), "{status}");
        assert!(root.read_link("/proc/self/exe").is_ok());
    }

    #[test]
    fn recording_root_keeps_reads_and_listings_within_budget() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/a"), "12345").unwrap();
        std::fs::write(dir.path().join("d/b"), "67890").unwrap();
        let (root, recorder) = Root::new(dir.path()).recording(8);
        assert_eq!(root, Root::new(dir.path()));
        assert_eq!(root.list_dir("/d").unwrap(), ["a", "b"]);
        root.read_to_string("/d/a").unwrap();
        root.read_to_string("/d/b").unwrap();
        assert!(root.read_to_string("/d/missing").is_err());
        let recording = recorder.snapshot();
        assert_eq!(recording.dirs[Path::new("/d")], ["a", "b"]);
        assert_eq!(recording.files[Path::new("/d/a")], b"12345");
        assert_eq!((recording.files.len(), recording.dropped_files), (1, 1));
    }
}
