//! `capture`: saves the files inspect reads as a `.tar.gz`, so a host can be planned offline
//! or attached to a bug report, and `inspect --root EXTRACTED/NAME` reads it back the same.
//!
//! Inspect runs once on a recording [`Root`]; the archive holds what that run read, as it read
//! it (a `/proc/PID` that vanished mid-run is simply absent, and nothing is read twice). Paths
//! reached through symlinks keep their links, rewritten relative and inside the tree, so the
//! sysfs layout survives. Like hwloc-gather-topology's archives, it unpacks to one folder named
//! after the archive.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::root::Recording;
use crate::{Host, InspectOptions, Root};

/// Default bound on the file content kept: far above a 1000-CPU host's sysfs and /proc reads.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;

/// Symlinks followed while placing one path; the kernel's own limit is 40.
const MAX_LINK_HOPS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: cannot write the archive: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What went into the archive.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CaptureSummary {
    /// The folder the archive unpacks to.
    pub folder: String,
    pub files: usize,
    pub dirs: usize,
    pub symlinks: usize,
    pub bytes: u64,
    /// Files read but left out because the byte bound was reached.
    pub dropped_files: u64,
    /// Paths that disappeared between reading and archiving (exited processes).
    pub vanished: usize,
}

/// One entry of the captured tree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
    /// A relative target that stays inside the tree.
    Symlink(PathBuf),
}

/// Runs inspect on `root` while recording, then writes what it read to `out`.
pub fn capture(
    root: &Root,
    options: &InspectOptions,
    out: &Path,
    max_bytes: u64,
) -> Result<(Host, CaptureSummary), CaptureError> {
    let (recording_root, recorder) = root.recording(max_bytes);
    let host = Host::read(&recording_root, options);
    let recording = recorder.snapshot();
    let (tree, vanished) = build_tree(root.dir(), &recording);
    let folder = folder_name(out);
    write_archive(&tree, &folder, out).map_err(|source| CaptureError::Write {
        path: out.to_owned(),
        source,
    })?;
    let count = |want: fn(&Node) -> bool| tree.values().filter(|n| want(n)).count();
    let summary = CaptureSummary {
        folder,
        files: count(|n| matches!(n, Node::File(_))),
        dirs: count(|n| matches!(n, Node::Dir)),
        symlinks: count(|n| matches!(n, Node::Symlink(_))),
        bytes: recording.bytes,
        dropped_files: recording.dropped_files,
        vanished,
    };
    Ok((host, summary))
}

/// `host.tar.gz` unpacks to `host/`.
fn folder_name(out: &Path) -> String {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = [".tar.gz", ".tgz", ".tar"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .unwrap_or(&name);
    if stem.is_empty() || stem == "." || stem == ".." {
        "capture".to_owned()
    } else {
        stem.to_owned()
    }
}

/// Places every recorded file and listing in the tree, with the symlinks on its way.
fn build_tree(root_dir: &Path, recording: &Recording) -> (BTreeMap<PathBuf, Node>, usize) {
    let mut tree = BTreeMap::new();
    let mut vanished = 0;
    for (host_path, content) in &recording.files {
        match place(root_dir, host_path, &mut tree) {
            Some(real) => {
                tree.insert(real, Node::File(content.clone()));
            }
            None => vanished += 1,
        }
    }
    for (host_path, names) in &recording.dirs {
        let Some(real) = place(root_dir, host_path, &mut tree) else {
            vanished += 1;
            continue;
        };
        tree.entry(real.clone()).or_insert(Node::Dir);
        for name in names {
            let entry = real.join(name);
            if let Some(node) = listed_entry(root_dir, &entry) {
                tree.entry(entry).or_insert(node);
            }
        }
    }
    (tree, vanished)
}

/// A listed entry that is a directory or a symlink; regular files only go in when read.
fn listed_entry(root_dir: &Path, host_path: &Path) -> Option<Node> {
    let real = under(root_dir, host_path);
    let meta = std::fs::symlink_metadata(&real).ok()?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(&real).ok()?;
        Some(Node::Symlink(relative_link(host_path, &target)))
    } else {
        meta.is_dir().then_some(Node::Dir)
    }
}

/// Resolves `host_path` inside the root the way the kernel would, adding each directory and
/// symlink met on the way. Returns the real path, or `None` when it no longer exists.
fn place(root_dir: &Path, host_path: &Path, tree: &mut BTreeMap<PathBuf, Node>) -> Option<PathBuf> {
    let mut pending: Vec<PathBuf> = normal_components(host_path);
    pending.reverse();
    let mut done = PathBuf::from("/");
    let mut hops = 0;
    while let Some(name) = pending.pop() {
        let candidate = done.join(&name);
        let real = under(root_dir, &candidate);
        let meta = std::fs::symlink_metadata(&real).ok()?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > MAX_LINK_HOPS {
                return None;
            }
            let target = std::fs::read_link(&real).ok()?;
            let absolute = normalize(&done.join(&target));
            tree.insert(
                candidate.clone(),
                Node::Symlink(relative_link(&candidate, &target)),
            );
            let mut rest: Vec<PathBuf> = normal_components(&absolute);
            rest.reverse();
            pending.extend(rest);
            done = PathBuf::from("/");
        } else {
            if !pending.is_empty() {
                tree.entry(candidate.clone()).or_insert(Node::Dir);
            }
            done = candidate;
        }
    }
    Some(done)
}

fn under(root_dir: &Path, host_path: &Path) -> PathBuf {
    root_dir.join(host_path.strip_prefix("/").unwrap_or(host_path))
}

/// The path's names after `.` and `..` are resolved lexically, `..` stopping at `/`.
fn normal_components(path: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => names.push(PathBuf::from(name)),
            Component::ParentDir => {
                names.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    names
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    out.extend(normal_components(path));
    out
}

/// The target of the link at `link` as a relative path that cannot climb out of the tree:
/// `/proc/self -> 1234` stays, `/x/y -> /a/b` becomes `../a/b`.
fn relative_link(link: &Path, target: &Path) -> PathBuf {
    let parent = link.parent().unwrap_or(Path::new("/"));
    let from = normal_components(parent);
    let to = normal_components(&normalize(&parent.join(target)));
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut relative = PathBuf::new();
    for _ in common..from.len() {
        relative.push("..");
    }
    relative.extend(&to[common..]);
    if relative.as_os_str().is_empty() {
        relative.push(".");
    }
    relative
}

/// Writes the tree under `folder/` as a gzip'd tar, through a temporary file renamed into
/// place, so a failure never leaves a truncated archive at `out`.
fn write_archive(tree: &BTreeMap<PathBuf, Node>, folder: &str, out: &Path) -> io::Result<()> {
    let dir = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let temp = tempfile::NamedTempFile::new_in(dir)?;
    let gzip = GzEncoder::new(BufWriter::new(temp), Compression::default());
    let mut builder = tar::Builder::new(gzip);
    let mtime = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    append_dir(&mut builder, Path::new(folder), mtime)?;
    for (path, node) in tree {
        let name = Path::new(folder).join(path.strip_prefix("/").unwrap_or(path));
        match node {
            Node::Dir => append_dir(&mut builder, &name, mtime)?,
            Node::File(content) => {
                let mut header = header(tar::EntryType::Regular, 0o644, mtime);
                header.set_size(content.len() as u64);
                builder.append_data(&mut header, &name, content.as_slice())?;
            }
            Node::Symlink(target) => {
                let mut header = header(tar::EntryType::Symlink, 0o777, mtime);
                builder.append_link(&mut header, &name, target)?;
            }
        }
    }
    let mut writer = builder.into_inner()?.finish()?;
    writer.flush()?;
    let temp = writer.into_inner().map_err(|e| e.into_error())?;
    temp.as_file().sync_all()?;
    temp.persist(out).map_err(|e| e.error)?;
    Ok(())
}

fn append_dir<W: Write>(builder: &mut tar::Builder<W>, name: &Path, mtime: u64) -> io::Result<()> {
    let mut header = header(tar::EntryType::Directory, 0o755, mtime);
    builder.append_data(&mut header, name, io::empty())
}

fn header(kind: tar::EntryType, mode: u32, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_mtime(mtime);
    header.set_size(0);
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_become_relative_and_stay_inside() {
        let cases = [
            (
                "sysfs style",
                "/sys/dev/cpu/cpu0/node0",
                "../../node/node0",
                "../../node/node0",
            ),
            (
                "absolute",
                "/proc/1/exe",
                "/usr/bin/qemu",
                "../../usr/bin/qemu",
            ),
            ("climbs too far", "/a/link", "../../../../etc/x", "../etc/x"),
            ("same dir", "/proc/self", "1234", "1234"),
        ];
        for (what, link, target, want) in cases {
            let got = relative_link(Path::new(link), Path::new(target));
            assert_eq!(got, PathBuf::from(want), "{what}");
        }
    }

    #[test]
    fn folder_is_the_archive_stem() {
        assert_eq!(folder_name(Path::new("/tmp/web1.tar.gz")), "web1");
        assert_eq!(folder_name(Path::new("x.tgz")), "x");
        assert_eq!(folder_name(Path::new(".tar.gz")), "capture");
    }

    #[test]
    fn placing_a_path_follows_and_keeps_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sys/devices/node/node0")).unwrap();
        std::fs::write(dir.path().join("sys/devices/node/node0/cpulist"), "0").unwrap();
        std::fs::create_dir_all(dir.path().join("sys/devices/cpu/cpu0")).unwrap();
        std::os::unix::fs::symlink(
            "../../node/node0",
            dir.path().join("sys/devices/cpu/cpu0/node0"),
        )
        .unwrap();
        let mut tree = BTreeMap::new();
        let real = place(
            dir.path(),
            Path::new("/sys/devices/cpu/cpu0/node0/cpulist"),
            &mut tree,
        );
        assert_eq!(real, Some(PathBuf::from("/sys/devices/node/node0/cpulist")));
        assert_eq!(
            tree.get(Path::new("/sys/devices/cpu/cpu0/node0")),
            Some(&Node::Symlink(PathBuf::from("../../node/node0")))
        );
        assert_eq!(tree.get(Path::new("/sys/devices/node")), Some(&Node::Dir));
        assert_eq!(
            place(dir.path(), Path::new("/proc/999999/stat"), &mut tree),
            None
        );
    }
}
