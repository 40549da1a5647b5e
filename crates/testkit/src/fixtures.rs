//! The real host snapshots in `shared/fixtures/hosts`: six sysfs/procfs trees from hwloc's
//! test suite. A snapshot extracts to a single folder holding `sys/` and `proc/`, which is
//! the root to read.

use std::path::{Path, PathBuf};
use std::process::Command;

use nearnative_host::topology::Topology;
use nearnative_host::Root;
use tempfile::TempDir;

/// The six snapshots every fixture test covers.
pub const SNAPSHOTS: &[&str] = &[
    "16em64t-4s2c2t",
    "16amd64-8n2c",
    "20em64t-hybrid-1p6c2t+2ca4co1t",
    "64amd64-4s2n4ca2co",
    "128arm-2pa2n8cluster4co",
    "offline-cpu0-node0",
];

/// `shared/fixtures/hosts` beside the repository (or beside the worktree's parent), or
/// where `NEARNATIVE_FIXTURES` points. The snapshots are not part of the repository, so a
/// machine without them fails the calling test with one line saying where they were looked
/// for; it never lets the test pass unrun.
#[track_caller]
pub fn hosts_dir() -> PathBuf {
    match find_hosts_dir() {
        Ok(dir) => dir,
        Err(missing) => panic!("{missing}"),
    }
}

/// The snapshots' folder, or the one line that says where it is missing.
pub fn find_hosts_dir() -> Result<PathBuf, String> {
    let given = std::env::var_os("NEARNATIVE_FIXTURES").filter(|dir| !dir.is_empty());
    let candidates: Vec<PathBuf> = match given {
        Some(dir) => vec![PathBuf::from(dir)],
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .skip(3)
            .take(2)
            .map(|dir| dir.join("shared/fixtures/hosts"))
            .collect(),
    };
    if let Some(found) = candidates.iter().find(|dir| dir.is_dir()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
    Err(format!(
        "needs the hwloc host snapshots at {}: absent (set NEARNATIVE_FIXTURES to their folder)",
        looked.join(" or ")
    ))
}

/// A snapshot extracted into its own temporary directory, to change freely; `root` is the
/// folder that holds `sys/` and `proc/`.
pub struct Snapshot {
    _dir: TempDir,
    pub root: PathBuf,
}

/// A copy of the shared extraction, in memory where `/dev/shm` exists: copying ten thousand
/// small files there takes a fraction of a second, unpacking them again on disk ten.
#[track_caller]
pub fn extract(name: &str) -> Snapshot {
    let source = shared(name);
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(&source)
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "cp -a {}", source.display());
    // Some snapshot files are read-only (0444): root writes them anyway, any other user
    // could not damage or furnish the copy.
    let status = Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "chmod -R u+w {}", dir.path().display());
    let root = single_folder(dir.path());
    Snapshot { _dir: dir, root }
}

/// The root of a snapshot extracted once per build directory and shared by every test that
/// only reads it (creating files is slow here: the 128-CPU snapshot has ten thousand).
#[track_caller]
pub fn shared(name: &str) -> PathBuf {
    let base = shared_base();
    let done = base.join(name);
    if !done.is_dir() {
        std::fs::create_dir_all(&base).unwrap();
        let staging = tempfile::tempdir_in(&base).unwrap();
        untar(name, staging.path());
        // Another test may have won the race; its copy is as good as ours.
        let _ = std::fs::rename(staging.keep(), &done);
    }
    single_folder(&done)
}

/// The topology of a shared snapshot. What it leaves unknown is the host crate's tests'
/// business; a snapshot without online CPUs or cores would make every test above it vacuous.
#[track_caller]
pub fn topology(name: &str) -> Topology {
    let topology = Topology::read(&Root::new(shared(name)), &mut Vec::new());
    assert!(
        !topology.online.is_empty() && !topology.cores.is_empty(),
        "{name}: no online CPUs or cores read"
    );
    topology
}

/// `target/tmp/fixtures` of the running test or bench binary: the build directory is the
/// nearest ancestor holding cargo's `CACHEDIR.TAG`. A library cannot use
/// `CARGO_TARGET_TMPDIR`, which cargo sets only for integration tests and benches.
fn shared_base() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    target.join("tmp").join("fixtures")
}

#[track_caller]
fn untar(name: &str, into: &Path) {
    let archive = hosts_dir().join(format!("{name}.tar.bz2"));
    if !archive.is_file() {
        panic!(
            "needs the hwloc host snapshot {}: absent",
            archive.display()
        );
    }
    let status = Command::new("tar")
        .arg("xjf")
        .arg(&archive)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap();
    assert!(status.success(), "tar xjf {}", archive.display());
}

#[track_caller]
fn single_folder(dir: &Path) -> PathBuf {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{} holds one folder", dir.display());
    entries.remove(0)
}
