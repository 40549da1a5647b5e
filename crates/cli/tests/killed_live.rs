//! A target killed during its apply, live and scoped: a process of 2,000 threads in a cpuset
//! cgroup of the test's own is killed at several moments of `apply pid:T --cores 1 --scope`. Each time
//! the apply either finished (and `revert` is clean) or rolled back by itself, saying the
//! target exited, with no journal left, no `rollback_incomplete`, and no cgroup of
//! nearnative's left in the scope.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const CPUSET: &str = "/sys/fs/cgroup/cpuset";
const THREADS: usize = 2000;

/// Starts `THREADS` (argv[1]) sleeping threads, then says so on stdout.
const TARGET: &str = "import sys, threading, time\n\
[threading.Thread(target=time.sleep, args=(600,), daemon=True).start() for _ in range(int(sys.argv[1]))]\n\
print('ready', flush=True)\n\
time.sleep(600)\n";

fn nearnative(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nearnative"));
    command.args(args);
    command
}

fn run(args: &[&str]) -> Output {
    nearnative(args).output().unwrap()
}

/// The scope cgroup; on drop everything is reverted and removed.
struct Scope {
    dir: PathBuf,
    state: String,
    target: Option<Child>,
}

impl Drop for Scope {
    fn drop(&mut self) {
        let _ = run(&["revert", "--all", "--state-dir", &self.state]);
        self.kill_target();
        for _ in 0..200 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Scope {
    /// Starts a fresh target in the scope and waits for its threads.
    fn start_target(&mut self) -> u32 {
        let mut child = Command::new("python3")
            .args(["-c", TARGET, &THREADS.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("needs python3");
        let pid = child.id();
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).unwrap();
        let mut ready = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready");
        let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .count();
        assert_eq!(threads, THREADS + 1);
        self.target = Some(child);
        pid
    }

    fn kill_target(&mut self) {
        if let Some(mut target) = self.target.take() {
            let _ = target.kill();
            let _ = target.wait();
        }
    }

    fn apply(&self, pid: u32) -> Command {
        let scope = format!(
            "cgroup:/{}",
            self.dir.file_name().unwrap().to_str().unwrap()
        );
        nearnative(&[
            "apply",
            &format!("pid:{pid}"),
            "--cores",
            "1",
            "--scope",
            &scope,
            "--state-dir",
            &self.state,
        ])
    }

    /// Nothing of nearnative's is left: no journal, no cgroup of its own in the scope.
    fn assert_clean(&self, when: &str) {
        let journals = Path::new(&self.state).join("journals");
        let left: Vec<_> = std::fs::read_dir(&journals)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{when}: journals left: {left:?}");
        let cgroups: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name())
            .collect();
        assert!(cgroups.is_empty(), "{when}: cgroups left: {cgroups:?}");
    }
}

fn text(output: &Output) -> String {
    format!(
        "rc {:?}: {}{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
#[ignore = "needs root, python3 and this machine's cgroup v1 cpuset hierarchy"]
fn a_target_killed_during_its_apply_is_rolled_back_cleanly_by_the_apply_itself() {
    assert!(
        Path::new(CPUSET).join("tasks").exists(),
        "needs a cgroup v1 cpuset hierarchy at {CPUSET}"
    );
    let _serial = crate::host_knobs_exclusively();
    let tmp = tempfile::tempdir().unwrap();
    let dir = Path::new(CPUSET).join(format!("nn-killed-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let parent = std::fs::read_to_string(Path::new(CPUSET).join(file)).unwrap();
        std::fs::write(dir.join(file), parent.trim()).unwrap();
    }
    let mut scope = Scope {
        dir,
        state: tmp.path().join("state").to_str().unwrap().to_owned(),
        target: None,
    };

    let pid = scope.start_target();
    let started = Instant::now();
    let applied = scope.apply(pid).output().unwrap();
    let whole_apply = started.elapsed();
    assert!(applied.status.success(), "calibration {}", text(&applied));
    let reverted = run(&["revert", "--all", "--state-dir", &scope.state]);
    assert!(reverted.status.success(), "calibration {}", text(&reverted));
    scope.kill_target();

    let mut rolled_back = 0;
    for tenth in 1..=9 {
        let pid = scope.start_target();
        let apply = scope
            .apply(pid)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(whole_apply * tenth / 10);
        scope.kill_target();
        let output = apply.wait_with_output().unwrap();
        let when = format!(
            "killed at {tenth}/10 of {whole_apply:?}, apply {}",
            text(&output)
        );
        let said = text(&output);
        assert!(
            !said.contains("journal kept") && !said.contains("run revert"),
            "{when}"
        );
        if !output.status.success() {
            rolled_back += usize::from(said.contains("exited during the apply"));
            scope.assert_clean(&when);
        }
        let reverted = run(&["revert", "--all", "--state-dir", &scope.state]);
        assert!(
            reverted.status.success(),
            "{when}; revert {}",
            text(&reverted)
        );
        scope.assert_clean(&when);
    }
    assert!(
        rolled_back > 0,
        "no kill landed during an apply of {whole_apply:?}; the test proved nothing"
    );
}
