//! The real host snapshots in `../shared/fixtures/hosts` and hwloc's reading of each.

use std::path::{Path, PathBuf};
use std::process::Command;

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
/// where `NEARNATIVE_FIXTURES` points.
pub fn hosts_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NEARNATIVE_FIXTURES") {
        return PathBuf::from(dir);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = ["../shared/fixtures/hosts", "../../shared/fixtures/hosts"];
    candidates
        .iter()
        .map(|c| repo.join(c))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| panic!("no shared/fixtures/hosts near {}", repo.display()))
}

/// A snapshot extracted into its own temporary directory, to change freely; `root` is the
/// folder that holds `sys/` and `proc/`.
pub struct Snapshot {
    _dir: TempDir,
    pub root: PathBuf,
}

pub fn extract(name: &str) -> Snapshot {
    let dir = tempfile::tempdir().unwrap();
    untar(name, dir.path());
    let root = single_folder(dir.path());
    Snapshot { _dir: dir, root }
}

/// The root of a snapshot extracted once per build directory and shared by every test that
/// only reads it (creating files is slow here: the 128-CPU snapshot has ten thousand).
pub fn shared(name: &str) -> PathBuf {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
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

fn untar(name: &str, into: &Path) {
    let archive = hosts_dir().join(format!("{name}.tar.bz2"));
    let status = Command::new("tar")
        .arg("xjf")
        .arg(&archive)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap();
    assert!(status.success(), "tar xjf {}", archive.display());
}

fn single_folder(dir: &Path) -> PathBuf {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{} holds one folder", dir.display());
    entries.remove(0)
}

/// What `lstopo --of console` printed for a snapshot.
#[derive(Debug, Default)]
pub struct Lstopo {
    pub packages: usize,
    pub numa_nodes: usize,
    /// Each core's PU ids (`P#`), in `Core L#` order.
    pub cores: Vec<Vec<u32>>,
    pub pus: Vec<u32>,
}

pub fn lstopo(name: &str) -> Lstopo {
    let text = std::fs::read_to_string(hosts_dir().join(format!("{name}.lstopo.txt"))).unwrap();
    parse_lstopo(&text)
}

/// Parses the object tree: a PU belongs to the last Core above it at a lower indentation.
pub fn parse_lstopo(text: &str) -> Lstopo {
    let mut out = Lstopo::default();
    let mut core_indent: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let object = line.trim_start();
        let os_index = || {
            let at = object.find("(P#")? + 3;
            let digits: String = object[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<u32>().ok()
        };
        if core_indent.is_some_and(|ci| indent <= ci) {
            core_indent = None;
        }
        if object.starts_with("Package L#") {
            out.packages += 1;
        } else if object.starts_with("NUMANode L#") {
            out.numa_nodes += 1;
        } else if object.starts_with("Core L#") {
            out.cores.push(Vec::new());
            core_indent = Some(indent);
        } else if object.starts_with("PU L#") {
            let pu = os_index().expect("PU has P#");
            out.pus.push(pu);
            if core_indent.is_some() {
                out.cores.last_mut().unwrap().push(pu);
            }
        }
    }
    out
}

#[test]
fn lstopo_parser_reads_cores_and_pus() {
    let text = "Machine\n  Package L#0 (P#0)\n    NUMANode L#0 (P#0)\n    Core L#0 (P#0)\n      PU L#0 (P#0)\n      PU L#1 (P#8)\n    Core L#1 (P#1)\n      PU L#2 (P#4)\n";
    let parsed = parse_lstopo(text);
    assert_eq!((parsed.packages, parsed.numa_nodes), (1, 1));
    assert_eq!(parsed.cores, vec![vec![0, 8], vec![4]]);
}
