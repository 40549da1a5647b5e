//! End to end on this machine: a real (paused) QEMU alone in a cpuset scope of our own is
//! planned (a CPU per vCPU, or a pool that its vCPUs share), the plan's cgroup and thread steps
//! are applied through the journal, the vCPUs are found pinned in their cgroup, and revert
//! puts every thread and cgroup back. Only objects the
//! test created are touched: the scope cgroup, the QEMU, and the cgroups the plan makes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nearnative_apply::apply::apply;
use nearnative_apply::revert::{revert, RevertTarget};
use nearnative_apply::state::{JournalId, StateDir};
use std::process::Command;

use nearnative_host::capture::capture;
use nearnative_host::{Host, InspectOptions, Root};
use nearnative_knob::{LiveBackend, Step};
use nearnative_plan::{plan, Ledger, Plan, PlanRequest, Target};
use nearnative_testkit::{PausedQemu, QemuOptions};
use nix::unistd::{Pid, Uid};

use crate::plan_snapshots::check_priors;

const CPUSET: &str = "/sys/fs/cgroup/cpuset";

/// Our scope cgroup, removed on drop (after the QEMU in it is killed) even when the test fails.
struct Scope {
    dir: PathBuf,
    qemu: Option<PausedQemu>,
    /// The scope's path in the cpuset hierarchy: `/nn-plan-live-...`.
    path: String,
    /// The VM's name.
    name: String,
}

impl Scope {
    /// A paused QEMU named `LABEL<our pid>` with `vcpus` vCPUs, alone in a fresh scope
    /// cgroup. Fails the test, naming what is missing, without root, a v1 cpuset hierarchy or
    /// QEMU.
    #[track_caller]
    fn with_qemu(dir: &Path, label: &str, vcpus: u32) -> Scope {
        assert!(Uid::effective().is_root(), "needs root");
        assert!(
            Path::new(CPUSET).join("tasks").exists(),
            "needs a cgroup v1 cpuset hierarchy at {CPUSET}"
        );
        let scope_name = format!("nn-{label}-{}", std::process::id());
        let dir_path = Path::new(CPUSET).join(&scope_name);
        std::fs::create_dir(&dir_path).unwrap();
        let mut scope = Scope {
            dir: dir_path.clone(),
            qemu: None,
            path: format!("/{scope_name}"),
            name: format!("{label}{}", std::process::id()),
        };
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let parent = std::fs::read_to_string(Path::new(CPUSET).join(file)).unwrap();
            std::fs::write(dir_path.join(file), parent.trim()).unwrap();
        }
        let options = QemuOptions {
            vcpus,
            ..QemuOptions::default()
        };
        let paused = PausedQemu::start_with(dir, &scope.name, options);
        let pid = paused.pid;
        scope.qemu = Some(paused);
        std::fs::write(dir_path.join("cgroup.procs"), pid.to_string()).unwrap();
        scope
    }

    fn qemu(&self) -> Pid {
        self.qemu.as_ref().map(|q| q.pid).unwrap()
    }

    /// The plan's cgroup and thread steps, checked to touch only our QEMU and our scope.
    fn steps(&self, plan: &Plan) -> Vec<Step> {
        let qemu_pid = self.qemu().as_raw() as u32;
        let steps: Vec<Step> = plan
            .steps()
            .into_iter()
            .filter(|s| {
                matches!(
                    s,
                    Step::CgroupDir(_)
                        | Step::CpusetCpus(_)
                        | Step::CpusetMems(_)
                        | Step::ThreadAffinity(_)
                        | Step::TaskCgroup(_)
                )
            })
            .collect();
        for step in &steps {
            let pid = match step {
                Step::ThreadAffinity(c) => Some(c.knob.pid),
                Step::TaskCgroup(c) => Some(c.knob.pid),
                _ => None,
            };
            assert!(
                pid.map_or(true, |p| p == qemu_pid),
                "only our QEMU's threads: {step:?}"
            );
            if let Step::CgroupDir(c) = step {
                let path = c.knob.cgroup.path.as_str();
                assert!(
                    path.starts_with(&format!("{}/", self.path)),
                    "only cgroups in our scope: {path}"
                );
            }
        }
        steps
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        drop(self.qemu.take());
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn status_cpus(pid: Pid, tid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list:"))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().to_owned()
}

fn cpuset_of(pid: Pid, tid: u32) -> String {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/cgroup")).unwrap();
    let line = cgroup.lines().find(|l| {
        l.split(':')
            .nth(1)
            .unwrap_or("")
            .split(',')
            .any(|c| c == "cpuset")
    });
    line.unwrap().splitn(3, ':').nth(2).unwrap().to_owned()
}

#[test]
#[ignore = "needs root: a v1 cpuset hierarchy and QEMU (qemu-system-x86) with /dev/kvm"]
fn a_scoped_plan_applies_and_reverts_on_a_real_qemu_needs_root_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Scope::with_qemu(dir.path(), "planlive", 1);
    let (qemu, name, scope_name) = (
        fixture.qemu(),
        fixture.name.clone(),
        fixture.path.trim_start_matches('/').to_owned(),
    );
    let qemu_pid = qemu.as_raw() as u32;
    let host = Host::read(&Root::new("/"), &InspectOptions::default());
    let mut request = PlanRequest::new(Target::Vm(name.clone()));
    request.scope = Some(fixture.path.clone());
    let plan = plan(&host, &request, &Ledger::new()).unwrap();
    let steps = fixture.steps(&plan);
    let workload = host.workloads.iter().find(|w| w.name == name).unwrap();
    let vcpu = workload.vcpus[0].thread.tid;
    let before = (status_cpus(qemu, vcpu), cpuset_of(qemu, vcpu));
    let cpu = plan.allocation.slots[0].cpu;

    let state = StateDir::new(dir.path().join("state"));
    let id = JournalId::try_from("plan-live").unwrap();
    let backend = LiveBackend::new();
    apply(&steps, &backend, &state, &id).unwrap();
    let t0 = format!("/{scope_name}/nearnative-vm-{name}-t0");
    assert_eq!(
        status_cpus(qemu, vcpu),
        cpu.to_string(),
        "vCPU pinned to its CPU"
    );
    assert_eq!(cpuset_of(qemu, vcpu), t0, "vCPU in its own cpuset");
    assert_eq!(
        cpuset_of(qemu, qemu_pid),
        format!("/{scope_name}/nearnative-vm-{name}-hk"),
        "the emulator thread on housekeeping"
    );

    revert(&state, &RevertTarget::One(id), &backend).unwrap();
    assert_eq!(
        (status_cpus(qemu, vcpu), cpuset_of(qemu, vcpu)),
        before,
        "revert restores the vCPU"
    );
    assert!(
        !Path::new(CPUSET).join(t0.trim_start_matches('/')).exists(),
        "the plan's cgroups are gone"
    );
    drop(fixture);
}

#[test]
#[ignore = "needs root: a v1 cpuset hierarchy and QEMU (qemu-system-x86) with /dev/kvm"]
fn a_pool_of_one_core_for_two_vcpus_applies_and_reverts_needs_root_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Scope::with_qemu(dir.path(), "planpool", 2);
    let qemu = fixture.qemu();
    let host = Host::read(&Root::new("/"), &InspectOptions::default());
    let mut request = PlanRequest::new(Target::Vm(fixture.name.clone()));
    request.scope = Some(fixture.path.clone());
    request.cores = Some(1);
    let plan = plan(&host, &request, &Ledger::new()).unwrap();
    let pool = plan.pool.clone().expect("a pool");
    let pool_cgroup = format!("{}/nearnative-vm-{}-pool", fixture.path, fixture.name);
    assert_eq!(pool.cgroup.as_deref(), Some(pool_cgroup.as_str()));
    assert_eq!(pool.cpus.len(), 1, "one core, no SMT here: one CPU");
    let steps = fixture.steps(&plan);
    let workload = host.workloads.iter().find(|w| w.name == fixture.name);
    let vcpus: Vec<u32> = workload
        .unwrap()
        .vcpus
        .iter()
        .map(|v| v.thread.tid)
        .collect();
    assert_eq!(vcpus.len(), 2);
    let now = || -> Vec<(String, String)> {
        let state = |tid: u32| (status_cpus(qemu, tid), cpuset_of(qemu, tid));
        vcpus.iter().map(|&tid| state(tid)).collect()
    };
    let before = now();

    let state = StateDir::new(dir.path().join("state"));
    let id = JournalId::try_from("plan-pool").unwrap();
    let backend = LiveBackend::new();
    apply(&steps, &backend, &state, &id).unwrap();
    let shared = (pool.cpus.to_list(), pool_cgroup.clone());
    assert_eq!(now(), [shared.clone(), shared], "both vCPUs share the pool");

    revert(&state, &RevertTarget::One(id), &backend).unwrap();
    assert_eq!(now(), before, "revert restores both vCPUs");
    assert!(
        !Path::new(CPUSET)
            .join(pool_cgroup.trim_start_matches('/'))
            .exists(),
        "the pool's cgroup is gone"
    );
    drop(fixture);
}

#[test]
#[ignore = "needs QEMU (qemu-system-x86) and root for /dev/kvm"]
fn a_captured_host_plans_as_the_live_one_and_every_prior_matches_the_capture_needs_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("plancap{}", std::process::id());
    let qemu = PausedQemu::start(dir.path(), &name);
    let archive = dir.path().join("host1.tar.gz");
    let options = InspectOptions::default();
    let (live, _) = capture(&Root::new("/"), &options, &archive, 64 << 20).unwrap();
    drop(qemu);
    let status = Command::new("tar")
        .arg("xzf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let root = dir.path().join("host1");
    let captured = Host::read(&Root::new(&root), &options);
    let request = PlanRequest::new(Target::Vm(name));
    let live_plan = plan(&live, &request, &Ledger::new()).unwrap();
    let captured_plan = plan(&captured, &request, &Ledger::new()).unwrap();
    assert_eq!(captured_plan.allocation, live_plan.allocation);
    let file_knobs = check_priors("captured host", &root, &captured, &captured_plan);
    assert!(
        file_knobs > 0,
        "IRQ, mask or kernel knob steps were read back from the capture"
    );
}
