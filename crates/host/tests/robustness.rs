//! Missing, empty and garbled files never panic inspect; they become Unknowns with the path.

use std::path::{Path, PathBuf};

use nearnative_host::{Host, InspectOptions, Root};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::fixtures::extract;

/// A seeded runner: the same damage on every run, so CI never flakes on a new case.
fn runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Delete,
    Empty,
    Garble,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        Just(Damage::Delete),
        Just(Damage::Empty),
        Just(Damage::Garble)
    ]
}

/// Junk no parser accepts: every strategy value carries a `#`.
fn junk() -> impl Strategy<Value = String> {
    "[a-z0-9,\\- \\n\\x00]{0,12}".prop_map(|s| format!("#{s}"))
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    files
}

/// Applies the damage, reads the host, and puts every file back.
fn read_damaged(root: &Path, damaged: &[(PathBuf, Damage, String)]) -> Host {
    let saved: Vec<(PathBuf, Vec<u8>)> = damaged
        .iter()
        .map(|(path, _, _)| (path.clone(), std::fs::read(path).unwrap_or_default()))
        .collect();
    for (path, damage, junk) in damaged {
        match damage {
            Damage::Delete => {
                let _ = std::fs::remove_file(path);
            }
            Damage::Empty => std::fs::write(path, "").unwrap(),
            Damage::Garble => std::fs::write(path, junk).unwrap(),
        }
    }
    let host = Host::read(&Root::new(root), &InspectOptions::default());
    for (path, content) in saved {
        std::fs::write(path, content).unwrap();
    }
    host
}

#[test]
fn damaged_snapshots_never_panic() {
    for name in ["offline-cpu0-node0", "16em64t-4s2c2t"] {
        let snapshot = extract(name);
        let files = files_under(&snapshot.root);
        let mut runner = runner(48);
        let strategy = proptest::collection::vec((0..files.len(), damage(), junk()), 1..12);
        runner
            .run(&strategy, |picks| {
                let damaged: Vec<_> = picks
                    .into_iter()
                    .map(|(i, damage, junk)| (files[i].clone(), damage, junk))
                    .collect();
                let host = read_damaged(&snapshot.root, &damaged);
                for unknown in &host.unknowns {
                    prop_assert!(unknown.path.starts_with(&snapshot.root), "{unknown:?}");
                    prop_assert!(!unknown.reason.is_empty(), "{unknown:?}");
                }
                Ok(())
            })
            .unwrap();
    }
}

/// Files whose garbling inspect may tolerate: `possible` only expands `all` on the command
/// line, the cgroup controller lists only steer the walk, `/proc/self/cgroup` falls back to
/// `/proc/self/cpuset`, and cpuinfo only tells AMD compute units apart.
fn may_be_tolerated(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    matches!(
        name,
        "possible" | "cgroup.controllers" | "cgroup.subtree_control" | "cgroup" | "cpuinfo"
    )
}

#[test]
fn a_garbled_file_that_inspect_reads_is_reported_with_its_path() {
    for name in ["20em64t-hybrid-1p6c2t+2ca4co1t", "offline-cpu0-node0"] {
        let snapshot = extract(name);
        let (recording_root, recorder) = Root::new(&snapshot.root).recording(u64::MAX);
        Host::read(&recording_root, &InspectOptions::default());
        let read: Vec<PathBuf> = recorder
            .snapshot()
            .files
            .keys()
            .map(|host_path| Root::new(&snapshot.root).path(host_path))
            .filter(|path| path.is_file() && !path.is_symlink() && !may_be_tolerated(path))
            .collect();
        let mut runner = runner(64);
        runner
            .run(&(0..read.len(), junk()), |(i, junk)| {
                let path = read[i].canonicalize().unwrap();
                let host = read_damaged(&snapshot.root, &[(path.clone(), Damage::Garble, junk)]);
                let named = host
                    .unknowns
                    .iter()
                    .any(|u| u.path.canonicalize().is_ok_and(|p| p == path) || u.path == path);
                prop_assert!(
                    named,
                    "{} garbled but not reported: {:?}",
                    path.display(),
                    host.unknowns
                );
                Ok(())
            })
            .unwrap();
    }
}

/// What a hostile capture may put where inspect expects a kernel file. Links to `/dev/zero`
/// and files of gigabytes are tried in the binary's tests, under `ulimit -v`: here, in the test
/// process, a regression would take the machine's memory with it.
#[derive(Debug, Clone, Copy)]
enum Hostile {
    Fifo,
    LinkToHostFile,
    HugeSparseFile,
    SelfLoop,
    /// The file's directory becomes a link to itself.
    DirectoryLoop,
}

fn hostile() -> impl Strategy<Value = Hostile> {
    prop_oneof![
        Just(Hostile::Fifo),
        Just(Hostile::LinkToHostFile),
        Just(Hostile::HugeSparseFile),
        Just(Hostile::SelfLoop),
        Just(Hostile::DirectoryLoop),
    ]
}

fn plant(path: &Path, hostile: Hostile) {
    use std::os::unix::fs::symlink;
    let clear = |path: &Path| {
        let _ = std::fs::remove_file(path).or_else(|_| std::fs::remove_dir_all(path));
    };
    match hostile {
        Hostile::DirectoryLoop => {
            let dir = path.parent().unwrap();
            clear(dir);
            symlink(dir.file_name().unwrap(), dir).unwrap();
            return;
        }
        _ => clear(path),
    }
    match hostile {
        Hostile::Fifo => nix::unistd::mkfifo(path, nix::sys::stat::Mode::S_IRUSR).unwrap(),
        Hostile::LinkToHostFile => symlink("/proc/self/status", path).unwrap(),
        Hostile::HugeSparseFile => std::fs::File::create(path)
            .unwrap()
            .set_len(HUGE_FILE)
            .unwrap(),
        Hostile::SelfLoop => symlink(path.file_name().unwrap(), path).unwrap(),
        Hostile::DirectoryLoop => unreachable!("planted above"),
    }
}

/// Far above every cap, and above [`PEAK_RSS_KIB`] if it were read whole.
const HUGE_FILE: u64 = 512 << 20;
/// The test process's peak resident memory must stay below this.
const PEAK_RSS_KIB: u64 = 384 << 10;

/// Inspect on a thread, so a read that blocks fails the case instead of hanging the suite.
fn read_within(root: &Path, timeout: std::time::Duration) -> Option<Host> {
    let root = Root::new(root);
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(Host::read(&root, &InspectOptions::default()));
    });
    receive.recv_timeout(timeout).ok()
}

/// Peak resident memory of this test process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn hostile_trees_are_read_in_time_and_bounded_memory() {
    let name = "16em64t-4s2c2t";
    let healthy = extract(name);
    let (recording_root, recorder) = Root::new(&healthy.root).recording(u64::MAX);
    Host::read(&recording_root, &InspectOptions::default());
    let read: Vec<PathBuf> = recorder.snapshot().files.into_keys().collect();
    let strategy = proptest::collection::vec((0..read.len(), hostile()), 1..6);
    runner(16)
        .run(&strategy, |picks| {
            let snapshot = extract(name);
            let root = Root::new(&snapshot.root);
            for (i, hostile) in &picks {
                plant(&root.path(&read[*i]), *hostile);
            }
            let host = read_within(&snapshot.root, std::time::Duration::from_secs(30));
            prop_assert!(host.is_some(), "inspect did not return");
            for unknown in &host.unwrap().unknowns {
                prop_assert!(unknown.path.starts_with(&snapshot.root), "{unknown:?}");
            }
            // A huge file read whole would show here.
            let peak = peak_rss_kib();
            prop_assert!(peak < PEAK_RSS_KIB, "peak RSS {peak} KiB");
            Ok(())
        })
        .unwrap();
}
