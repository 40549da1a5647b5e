//! Reading a followed thread's CPU time every poll, cheaply.
//!
//! Opening `/proc/PID/task/TID/schedstat` walks four path components each time; the sampler
//! reads it for every candidate a hundred times a second, so it keeps the file open and
//! re-reads it from offset 0 (procfs restarts a single-record file there). An open file also
//! stays bound to its thread: if the thread exits the read fails with ESRCH, and a new thread
//! that reuses the id is never mistaken for the old one. Open files are bounded (the
//! process's descriptor limit is often 1024); past the bound, the path is opened each time.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};

use nearnative_host::{ReadError, Root};

use super::parse_schedstat;

/// Files held open at once across all samples in this process.
pub const MAX_HELD_FILES: usize = 512;
static HELD: AtomicUsize = AtomicUsize::new(0);

/// The `schedstat` file of one thread, open when the budget allowed it.
#[derive(Debug)]
pub struct CpuTimeFile {
    host_path: String,
    file: Option<File>,
}

impl CpuTimeFile {
    /// Prepares to read `dir/schedstat`; opens it now if a slot is free.
    pub fn new(root: &Root, dir: &str) -> CpuTimeFile {
        let host_path = format!("{dir}/schedstat");
        let file = take_slot()
            .then(|| {
                File::open(root.path(&host_path))
                    .map_err(|_| release_slot())
                    .ok()
            })
            .flatten();
        CpuTimeFile { host_path, file }
    }

    /// The thread's CPU time in nanoseconds.
    pub fn read(&self, root: &Root) -> Result<u64, ReadError> {
        let Some(file) = &self.file else {
            return root
                .read_parsed(&self.host_path, parse_schedstat)
                .map(|s| s.runtime_ns);
        };
        let path = || root.path(&self.host_path);
        let mut buffer = [0u8; 128];
        let length = file
            .read_at(&mut buffer, 0)
            .map_err(|source| match source.kind() {
                ErrorKind::NotFound => ReadError::NotFound { path: path() },
                _ => ReadError::Io {
                    path: path(),
                    source,
                },
            })?;
        let text = String::from_utf8_lossy(&buffer[..length]);
        parse_schedstat(&text)
            .map(|s| s.runtime_ns)
            .map_err(|e| ReadError::Parse {
                path: path(),
                value: text.trim().to_owned(),
                reason: e.to_string(),
            })
    }
}

impl CpuTimeFile {
    /// Closes the file and frees its slot; later reads open the path each time.
    pub fn close(&mut self) {
        if self.file.take().is_some() {
            release_slot();
        }
    }
}

impl Drop for CpuTimeFile {
    fn drop(&mut self) {
        self.close();
    }
}

fn take_slot() -> bool {
    HELD.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
        (held < MAX_HELD_FILES).then_some(held + 1)
    })
    .is_ok()
}

fn release_slot() {
    HELD.fetch_sub(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rereads_an_open_file_and_reports_bad_content_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir(dir.path().join("t")).unwrap();
        std::fs::write(dir.path().join("t/schedstat"), "5 6 7\n").unwrap();
        let mut file = CpuTimeFile::new(&root, "/t");
        assert_eq!(file.read(&root).unwrap(), 5);
        file.close();
        assert_eq!(file.read(&root).unwrap(), 5, "closed: read by path");
        let file = CpuTimeFile::new(&root, "/t");
        std::fs::write(dir.path().join("t/schedstat"), "9 6 8\n").unwrap();
        assert_eq!(file.read(&root).unwrap(), 9);
        std::fs::write(dir.path().join("t/schedstat"), "junk").unwrap();
        let err = file.read(&root).unwrap_err().to_string();
        assert!(err.contains("t/schedstat") && err.contains("junk"), "{err}");
    }

    #[test]
    fn a_missing_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let file = CpuTimeFile::new(&root, "/gone");
        assert!(file.read(&root).unwrap_err().is_not_found());
    }
}
