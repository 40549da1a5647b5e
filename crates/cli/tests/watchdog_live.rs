//! Issue 13's removal of the lockup detectors, live and scoped: a sleeping process in a cpuset
//! cgroup of the test's own; `apply pid:PID --scope` plans `watchdog_cpumask` without the
//! exclusive CPU, journals its prior value and writes it, so the kernel watches only the other
//! CPUs; `revert` gives the file back byte for byte. Only the test's cgroup and process are
//! touched, besides the host-wide knobs the journal restores.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use nearnative_host::CpuSet;
use serde_json::Value;

use crate::nearnative;

const CPUSET: &str = "/sys/fs/cgroup/cpuset";
const WATCHDOG_CPUMASK: &str = "/proc/sys/kernel/watchdog_cpumask";

/// The scope cgroup with one sleeping process; on drop (also when the test fails) reverted,
/// the process killed and the cgroup removed.
struct Scope {
    name: String,
    dir: PathBuf,
    state: tempfile::TempDir,
    sleeper: Child,
}

impl Scope {
    fn new() -> Scope {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test writes cgroups and kernel.watchdog_cpumask: run it as root"
        );
        assert!(
            Path::new(CPUSET).join("tasks").exists(),
            "no cgroup v1 cpuset hierarchy at {CPUSET}"
        );
        let name = format!("nn-watchdog-{}", std::process::id());
        let dir = Path::new(CPUSET).join(&name);
        std::fs::create_dir(&dir).unwrap();
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let parent = std::fs::read_to_string(Path::new(CPUSET).join(file)).unwrap();
            std::fs::write(dir.join(file), parent.trim()).unwrap();
        }
        let sleeper = Command::new("sleep").arg("300").spawn().unwrap();
        let scope = Scope {
            name,
            dir,
            state: tempfile::tempdir().unwrap(),
            sleeper,
        };
        std::fs::write(
            scope.dir.join("cgroup.procs"),
            scope.sleeper.id().to_string(),
        )
        .unwrap();
        scope
    }

    fn state(&self) -> &str {
        self.state.path().to_str().unwrap()
    }

    fn target(&self) -> String {
        format!("pid:{}", self.sleeper.id())
    }

    fn apply(&self) -> Value {
        let scope = format!("cgroup:/{}", self.name);
        let target = self.target();
        let args = [
            "apply",
            &target,
            "--scope",
            &scope,
            "--state-dir",
            self.state(),
            "--json",
        ];
        let output = nearnative(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "apply {target}: {stderr}");
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn revert(&self) {
        let target = self.target();
        let output = nearnative(&["revert", &target, "--state-dir", self.state()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "revert {target}: {stderr}");
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let _ = nearnative(&["revert", "--all", "--state-dir", self.state()]);
        let _ = self.sleeper.kill();
        let _ = self.sleeper.wait();
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn watched() -> (Vec<u8>, CpuSet) {
    let bytes = std::fs::read(WATCHDOG_CPUMASK).unwrap();
    let cpus = String::from_utf8_lossy(&bytes).trim().parse().unwrap();
    (bytes, cpus)
}

/// The planned `watchdog_cpumask` step of an `apply --json` answer.
fn planned_step(applied: &Value) -> Value {
    let changes = applied["plan"]["changes"].as_array().unwrap();
    let steps: Vec<&Value> = changes
        .iter()
        .filter(|c| c["kind"] == "watchdog_cpumask")
        .collect();
    let kinds: Vec<&Value> = changes.iter().map(|c| &c["kind"]).collect();
    assert_eq!(steps.len(), 1, "one watchdog_cpumask step among {kinds:?}");
    steps[0].clone()
}

#[test]
#[ignore = "needs root: writes cgroup v1 cpusets, IRQ affinities and kernel knobs"]
fn the_lockup_detectors_leave_the_exclusive_cpu_until_revert_live() {
    let _serial = crate::host_knobs_exclusively();
    let scope = Scope::new();
    let (bytes_before, before) = watched();
    let applied = scope.apply();
    let exclusive: CpuSet =
        serde_json::from_value(applied["plan"]["allocation"]["exclusive_cpus"].clone()).unwrap();
    assert!(
        !exclusive.is_disjoint(&before),
        "needs a watchdog that watches the exclusive CPUs {exclusive} to test their removal; \
         it watches {before}"
    );

    let step = planned_step(&applied);
    let expected = before.difference(&exclusive);
    assert_eq!(step["to"], serde_json::to_value(&expected).unwrap());
    let changed: Vec<&str> = applied["report"]["changed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["location"].as_str())
        .collect();
    assert!(changed.contains(&WATCHDOG_CPUMASK), "written: {changed:?}");
    let journal = applied["report"]["journal"].as_str().unwrap();
    let journaled = std::fs::read_to_string(journal).unwrap();
    assert!(
        journaled.contains("\"kind\":\"watchdog_cpumask\""),
        "journaled: {journaled}"
    );
    let (_, now) = watched();
    assert_eq!(now, expected, "the kernel watches");
    assert!(now.is_disjoint(&exclusive), "still watches {now}");

    scope.revert();
    let (bytes_after, _) = watched();
    assert_eq!(
        String::from_utf8_lossy(&bytes_after),
        String::from_utf8_lossy(&bytes_before),
        "{WATCHDOG_CPUMASK} after revert"
    );
}
