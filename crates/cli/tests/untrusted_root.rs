//! `inspect` and `plan` on a `--root` tree someone else captured: FIFOs, devices, huge files,
//! symlink loops and links out of the tree must give a result or a one-line error, promptly
//! and in bounded memory.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nearnative_host::{Host, InspectOptions, Root};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Far more than a healthy inspect of a snapshot takes in a debug build.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Address space for one command, in KiB: a healthy run needs a small part of it, a read of a
/// 2 GiB file or of `/dev/zero` runs out.
const ADDRESS_SPACE_KIB: u64 = 1 << 20;

#[derive(Debug, Clone, Copy)]
enum Mutation {
    Fifo,
    /// A `/dev/null`-like character device, or a link to `/dev/null` when mknod is refused.
    CharDevice,
    LinkToDevZero,
    LinkOutOfTree,
    HugeSparseFile,
    SelfLoop,
    /// The file's directory becomes a link to itself.
    DirectoryLoop,
    /// The file's directory becomes a link climbing far above the root.
    DirectoryClimb,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::Fifo),
        Just(Mutation::CharDevice),
        Just(Mutation::LinkToDevZero),
        Just(Mutation::LinkOutOfTree),
        Just(Mutation::HugeSparseFile),
        Just(Mutation::SelfLoop),
        Just(Mutation::DirectoryLoop),
        Just(Mutation::DirectoryClimb),
    ]
}

fn apply(path: &Path, mutation: Mutation) {
    let replace = |path: &Path| {
        let _ = std::fs::remove_file(path).or_else(|_| std::fs::remove_dir_all(path));
    };
    let dir = path.parent().unwrap();
    match mutation {
        Mutation::Fifo => {
            replace(path);
            nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
        }
        Mutation::CharDevice => {
            replace(path);
            let mode = Mode::S_IRUSR | Mode::S_IWUSR;
            if mknod(path, SFlag::S_IFCHR, mode, makedev(1, 3)).is_err() {
                symlink("/dev/null", path).unwrap();
            }
        }
        Mutation::LinkToDevZero => {
            replace(path);
            symlink("/dev/zero", path).unwrap();
        }
        Mutation::LinkOutOfTree => {
            replace(path);
            symlink("/proc/self/status", path).unwrap();
        }
        Mutation::HugeSparseFile => {
            replace(path);
            let file = std::fs::File::create(path).unwrap();
            file.set_len(2 << 30).unwrap();
        }
        Mutation::SelfLoop => {
            replace(path);
            symlink(path.file_name().unwrap(), path).unwrap();
        }
        Mutation::DirectoryLoop => {
            replace(dir);
            symlink(dir.file_name().unwrap(), dir).unwrap();
        }
        Mutation::DirectoryClimb => {
            replace(dir);
            symlink("../".repeat(40), dir).unwrap();
        }
    }
}

/// The files inspect reads in a healthy copy of the snapshot: mutating any other file would
/// test nothing.
fn files_read(root: &Path) -> Vec<PathBuf> {
    let (recording_root, recorder) = Root::new(root).recording(u64::MAX);
    Host::read(&recording_root, &InspectOptions::default());
    recorder.snapshot().files.into_keys().collect()
}

/// What a bounded run ended with: its status, stdout and stderr.
struct Ended {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the binary in its own address-space limit, killing it at the timeout. Stdout goes
/// through a file so that a large output cannot stall the child while it is polled.
fn run_bounded(args: &[&str]) -> Result<Ended, String> {
    let mut stdout = tempfile::tempfile().unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_nearnative"))
        .args(args)
        .stdout(stdout.try_clone().unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            let mut text = String::new();
            stdout.seek(SeekFrom::Start(0)).unwrap();
            stdout.read_to_string(&mut text).unwrap();
            return Ok(Ended {
                status,
                stdout: text,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{args:?} still running after {TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check_commands(root: &Path) -> Result<(), TestCaseError> {
    let root = root.to_str().unwrap();
    let state = tempfile::tempdir().unwrap();
    let state = state.path().to_str().unwrap();
    let commands: [&[&str]; 3] = [
        &["inspect", "--root", root],
        &["inspect", "--json", "--root", root],
        &["plan", "vm:nope", "--root", root, "--state-dir", state],
    ];
    for args in commands {
        let ended = run_bounded(args).map_err(TestCaseError::fail)?;
        let one_line_error = ended.status.code() == Some(2) && ended.stderr.lines().count() == 1;
        prop_assert!(
            ended.status.success() || one_line_error,
            "{args:?} ended with {}: {}",
            ended.status,
            ended.stderr
        );
    }
    Ok(())
}

#[test]
fn mutated_snapshots_give_a_result_or_one_line_error_in_time_and_memory() {
    let name = "16em64t-4s2c2t";
    let read = files_read(&nearnative_testkit::extract(name).root);
    let config = Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let strategy = proptest::collection::vec((0..read.len(), mutation()), 1..5);
    runner
        .run(&strategy, |picks| {
            let snapshot = nearnative_testkit::extract(name);
            for (i, mutation) in picks {
                apply(&Root::new(&snapshot.root).path(&read[i]), mutation);
            }
            check_commands(&snapshot.root)
        })
        .unwrap();
}

/// The reproduction from the issue: a FIFO for one cache level hung inspect forever.
#[test]
fn a_fifo_for_a_cache_level_is_refused_by_name() {
    let snapshot = nearnative_testkit::extract("16em64t-4s2c2t");
    let level = snapshot
        .root
        .join("sys/devices/system/cpu/cpu11/cache/index0/level");
    apply(&level, Mutation::Fifo);
    let root = snapshot.root.to_str().unwrap();
    let ended = run_bounded(&["inspect", "--json", "--root", root]).unwrap();
    assert!(ended.status.success(), "{}: {}", ended.status, ended.stderr);
    assert!(
        ended.stdout.contains("cpu11/cache/index0/level")
            && ended.stdout.contains("a FIFO, not a regular file"),
        "{}",
        ended.stdout
    );
}
