//! `--scope cgroup:PATH`: an intruder inside the scope fails the verdict, one outside is only
//! listed. The test makes its own cpuset cgroup and moves only its own threads into it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nearnative_host::Severity;
use nearnative_verify::{verdict, Expectations, Outcome, Scope, ThreadClass};

use super::{need_cpus, sample_cpu, serialize, Busy, OffCpu};

const CPUSET: &str = "/sys/fs/cgroup/cpuset";

/// A cgroup v1 cpuset made for the test; dropping it moves its threads back and removes it.
struct TestCgroup {
    dir: PathBuf,
    home: PathBuf,
}

impl TestCgroup {
    fn create() -> TestCgroup {
        let root = Path::new(CPUSET);
        let dir = root.join(format!("nearnative-verify-test-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let value = std::fs::read_to_string(root.join(file)).unwrap();
            std::fs::write(dir.join(file), value.trim()).unwrap();
        }
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let home = nearnative_host::tasks::parse_cgroup(&cgroup)
            .unwrap()
            .cpuset_v1
            .unwrap_or_else(|| "/".to_owned());
        TestCgroup {
            home: root.join(home.trim_start_matches('/')),
            dir,
        }
    }

    fn scope(&self) -> Scope {
        let name = self.dir.file_name().unwrap().to_str().unwrap();
        format!("cgroup:/{name}").parse().unwrap()
    }

    fn tasks(&self) -> PathBuf {
        self.dir.join("tasks")
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let tasks = std::fs::read_to_string(self.tasks()).unwrap_or_default();
        for tid in tasks.lines() {
            let _ = std::fs::write(self.home.join("tasks"), tid);
        }
        if let Err(err) = std::fs::remove_dir(&self.dir) {
            eprintln!("cannot remove {}: {err}", self.dir.display());
        }
    }
}

/// `/proc/self` belongs to the process's effective user.
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[test]
#[ignore = "needs root: a v1 cpuset hierarchy"]
fn scope_splits_in_scope_from_outside_needs_root() {
    let _live = serialize();
    need_cpus();
    assert!(is_root(), "needs root");
    assert!(
        Path::new(CPUSET).join("tasks").exists(),
        "needs a cgroup v1 cpuset hierarchy at {CPUSET}"
    );
    let cgroup = TestCgroup::create();
    let _off = OffCpu::new();
    let target = Busy::start("nn-target", |_| {});
    let tasks = cgroup.tasks();
    let inside = Busy::start("nn-in-scope", move |tid| {
        std::fs::write(&tasks, tid.to_string()).unwrap();
    });
    let outside = Busy::start("nn-outside", |_| {});

    let sample = sample_cpu(&[target.tid], Some(cgroup.scope()));

    let class_of = |tid: u32| {
        let found = sample.threads.iter().find(|t| t.tid == tid);
        found
            .unwrap_or_else(|| panic!("{tid} not in {:#?}", sample.threads))
            .class
    };
    assert_eq!(class_of(inside.tid), ThreadClass::InScope);
    assert_eq!(class_of(outside.tid), ThreadClass::OutsideScope);
    let verdict = verdict(&sample, &Expectations::default());
    let threads = &verdict.checks[0];
    assert_eq!(threads.outcome, Outcome::Fail);
    let severity_of = |tid: u32| {
        let needle = format!("tid {tid},");
        threads
            .findings
            .iter()
            .find(|f| f.object.contains(&needle))
            .unwrap()
            .severity
    };
    assert_eq!(severity_of(inside.tid), Severity::Critical);
    assert_eq!(severity_of(outside.tid), Severity::Info);
    drop((inside, outside, target));
}
