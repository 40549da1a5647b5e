//! A target three cgroups below the scope, end to end on a real snapshot given a cpuset
//! hierarchy (cgroup v1, then v2) with `/S/a/b/c` in it: inspect the tree, plan, check the
//! kernel's cpuset rules over the steps, apply through the journal with the tree backend,
//! find each thread where the plan put it, revert, and compare the whole tree byte for byte.
//! A `cgroup:` target and a `pid:` target whose process sits in `/S/a/b/c`.

use std::fs;
use std::path::Path;

use nearnative_apply::{apply, revert, JournalId, RevertTarget, StateDir};
use nearnative_host::{CpuSet, Host, InspectOptions, Root};
use nearnative_knob::TreeBackend;
use nearnative_plan::{plan, Fencing, Ledger, Plan, PlanRequest, Target};
use nearnative_testkit::tree::{self, list_ids, stat_line, TreeImage, V2_MOUNT};
use nearnative_testkit::Snapshot;
use tempfile::TempDir;

use crate::kernel_rules;

const SNAPSHOT: &str = "16em64t-4s2c2t";
const V1_MOUNT: &str = "/sys/fs/cgroup/cpuset";
const SCOPE: &str = "/S";
const TARGET_CGROUP: &str = "/S/a/b/c";
/// The chain from the scope to the target's cgroup, and the cgroups beside it.
const CHAIN: [&str; 4] = ["/S", "/S/a", "/S/a/b", "/S/a/b/c"];
const BESIDE_CHAIN: [&str; 3] = ["/S/a/x", "/S/a/x/y", "/S/z"];
/// The target process (two threads), a sidecar in its cgroup, a process beside the chain.
const TARGET: u32 = 5000;
const SIDECAR: u32 = 5100;
const BESIDE: u32 = 5200;

#[derive(Clone, Copy, PartialEq)]
enum Version {
    V1,
    V2,
}

/// A furnished snapshot whose one cgroup mount has the cpuset controller, with the chain
/// and the cgroups beside it on every CPU, and the processes placed.
struct Nested {
    snapshot: Snapshot,
    version: Version,
    online: CpuSet,
    backend: TreeBackend,
    _state_dir: TempDir,
    state: StateDir,
}

impl Nested {
    fn new(version: Version) -> Nested {
        let snapshot = nearnative_testkit::extract(SNAPSHOT);
        let cpus = tree::furnish(&snapshot.root);
        let online = cpus.online.clone();
        let root = snapshot.root.as_path();
        let all = format!("{}\n", online.to_list());
        let cgroups = CHAIN.iter().chain(&BESIDE_CHAIN);
        match version {
            Version::V1 => {
                let line = format!("30 25 0:26 / {V1_MOUNT} rw - cgroup cgroup rw,cpuset\n");
                write(root, "/proc/self/mountinfo", &line);
                cgroups.for_each(|path| v1_cgroup(root, path, &all));
            }
            Version::V2 => {
                let line = format!("30 25 0:26 / {V2_MOUNT} rw - cgroup2 cgroup2 rw\n");
                write(root, "/proc/self/mountinfo", &line);
                v2_cgroup(root, "/", &all);
                cgroups.for_each(|path| v2_cgroup(root, path, &all));
            }
        }
        let processes: [(u32, &[u32], &str); 3] = [
            (TARGET, &[TARGET, TARGET + 1], TARGET_CGROUP),
            (SIDECAR, &[SIDECAR], TARGET_CGROUP),
            (BESIDE, &[BESIDE], "/S/z"),
        ];
        let mask = online.to_mask(cpus.mask_words);
        for (pid, tids, path) in processes {
            place(root, version, pid, tids, path, &mask, &all);
        }
        let state_dir = tempfile::tempdir().unwrap();
        Nested {
            backend: TreeBackend::new(root),
            state: StateDir::new(state_dir.path().join("state")),
            _state_dir: state_dir,
            version,
            online,
            snapshot,
        }
    }

    fn root(&self) -> &Path {
        &self.snapshot.root
    }

    fn host(&self) -> Host {
        Host::read(&Root::new(self.root()), &InspectOptions::default())
    }

    fn read(&self, path: &str) -> String {
        fs::read_to_string(Root::new(self.root()).path(path)).unwrap()
    }

    fn cgroup_file(&self, path: &str, file: &str) -> String {
        let mount = match self.version {
            Version::V1 => V1_MOUNT,
            Version::V2 => V2_MOUNT,
        };
        match path {
            "/" => format!("{mount}/{file}"),
            _ => format!("{mount}{path}/{file}"),
        }
    }

    fn cpus_of(&self, path: &str) -> CpuSet {
        let text = self.read(&self.cgroup_file(path, "cpuset.cpus"));
        CpuSet::parse_list(text.trim()).unwrap()
    }

    /// Thread `tid`'s cpuset cgroup and allowed CPUs, as the tree shows them.
    fn thread(&self, pid: u32, tid: u32) -> (String, CpuSet) {
        let dir = format!("/proc/{pid}/task/{tid}");
        let prefix = match self.version {
            Version::V1 => "3:cpuset:",
            Version::V2 => "0::",
        };
        let table = self.read(&format!("{dir}/cgroup"));
        let path = table.lines().find_map(|l| l.strip_prefix(prefix)).unwrap();
        let status = self.read(&format!("{dir}/status"));
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:\t"))
            .unwrap();
        (path.to_owned(), CpuSet::parse_list(list).unwrap())
    }

    /// Plans (checking the kernel's rules over the steps), applies and checks every step
    /// took: returns the plan and the tree before.
    fn apply(&self, request: &PlanRequest) -> (Plan, TreeImage) {
        let host = self.host();
        let plan = plan(&host, request, &Ledger::new()).unwrap_or_else(|e| panic!("{e}"));
        kernel_rules::check(&host, &plan).unwrap_or_else(|e| panic!("{e}"));
        let fenced = match (self.version, &plan.scope.fencing) {
            (Version::V1, Fencing::CpusetV1 { .. }) => true,
            (Version::V2, Fencing::CpusetV2 { thread_root, .. }) => thread_root == TARGET_CGROUP,
            _ => false,
        };
        assert!(fenced, "{:?}", plan.scope.fencing);
        let before = TreeImage::take(self.root());
        let report = apply(&plan.steps(), &self.backend, &self.state, &id())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(report.vanished.is_empty(), "{:?}", report.vanished);
        for step in plan.steps() {
            let holds = step.holds_target(&self.backend).unwrap();
            assert!(holds, "{} after apply", step.describe());
        }
        (plan, before)
    }

    /// The chain keeps its CPUs; the cgroups beside it lose the exclusive ones, their
    /// processes stay where they are.
    fn check_fencing(&self, plan: &Plan) {
        let exclusive = &plan.allocation.exclusive_cpus;
        for path in CHAIN {
            assert_eq!(
                self.cpus_of(path),
                self.online_or_inherited(),
                "{path} keeps"
            );
        }
        for path in BESIDE_CHAIN {
            let cpus = self.cpus_of(path);
            // Under v2 a cgroup's CPUs lie within its parent's whatever its own file says.
            let follows = self.version == Version::V2 && path == "/S/a/x/y";
            match follows {
                true => assert!(cpus.is_empty(), "{path} follows its parent: {cpus}"),
                false => assert!(
                    cpus.is_disjoint(exclusive),
                    "{path} lost {exclusive}: {cpus}"
                ),
            }
        }
        assert_eq!(
            self.thread(BESIDE, BESIDE).0,
            "/S/z",
            "the process beside the chain stays"
        );
    }

    /// What the chain's `cpuset.cpus` shows untouched: v1 every CPU, v2 empty (inherited).
    fn online_or_inherited(&self) -> CpuSet {
        match self.version {
            Version::V1 => self.online.clone(),
            Version::V2 => CpuSet::new(),
        }
    }

    /// Where the plan's cgroup `suffix` lives: beside the chain in the scope (v1), inside
    /// the target's cgroup (v2).
    fn own(&self, plan: &Plan, suffix: &str) -> String {
        let parent = match self.version {
            Version::V1 => SCOPE,
            Version::V2 => TARGET_CGROUP,
        };
        format!("{parent}/nearnative-{}-{suffix}", plan.id)
    }

    fn revert_exactly(&self, before: &TreeImage) {
        revert(&self.state, &RevertTarget::One(id()), &self.backend)
            .unwrap_or_else(|e| panic!("{e}"));
        let after = TreeImage::take(self.root());
        assert!(
            &after == before,
            "changed by apply + revert: {:?}",
            before.diff(&after)
        );
    }
}

fn id() -> JournalId {
    JournalId::try_from("nested-tree").unwrap()
}

fn write(root: &Path, path: &str, content: &str) {
    let real = Root::new(root).path(path);
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    fs::write(real, content).unwrap();
}

fn v1_cgroup(root: &Path, path: &str, all: &str) {
    for (file, content) in [
        ("cpuset.cpus", all),
        ("cpuset.effective_cpus", all),
        ("cpuset.mems", "0\n"),
        ("cpuset.cpu_exclusive", "0\n"),
        ("cpuset.sched_load_balance", "1\n"),
        ("tasks", ""),
        ("cgroup.procs", ""),
    ] {
        write(root, &format!("{V1_MOUNT}{path}/{file}"), content);
    }
}

/// A v2 cgroup, its `cpuset.cpus` empty (inherited); one with child cgroups hands cpuset
/// down to them.
fn v2_cgroup(root: &Path, path: &str, all: &str) {
    let dir = match path {
        "/" => V2_MOUNT.to_owned(),
        _ => format!("{V2_MOUNT}{path}"),
    };
    let parent = format!("{path}/");
    let inner = path == "/"
        || CHAIN
            .iter()
            .chain(&BESIDE_CHAIN)
            .any(|c| c.starts_with(&parent));
    let subtree = match inner {
        true => "cpuset\n",
        false => "\n",
    };
    let mut files = vec![
        ("cgroup.controllers", "cpuset cpu\n"),
        ("cgroup.subtree_control", subtree),
        ("cpuset.cpus.effective", all),
        ("cgroup.procs", ""),
        ("cgroup.threads", ""),
    ];
    if path != "/" {
        files.extend([
            ("cgroup.type", "domain\n"),
            ("cpuset.cpus", "\n"),
            ("cpuset.mems", "\n"),
            ("cpuset.cpus.partition", "member\n"),
        ]);
    }
    for (file, content) in files {
        write(root, &format!("{dir}/{file}"), content);
    }
}

/// Process `pid` with `tids` in cgroup `path`, each thread allowed on every CPU, listed in
/// the cgroup's files.
fn place(root: &Path, version: Version, pid: u32, tids: &[u32], path: &str, mask: &str, all: &str) {
    let (line, dir, thread_list) = match version {
        Version::V1 => (
            format!("4:memory:/user\n3:cpuset:{path}\n0::/user\n"),
            format!("{V1_MOUNT}{path}"),
            "tasks",
        ),
        Version::V2 => (
            format!("0::{path}\n"),
            format!("{V2_MOUNT}{path}"),
            "cgroup.threads",
        ),
    };
    write(root, &format!("/proc/{pid}/cgroup"), &line);
    for &tid in tids {
        let task = format!("/proc/{pid}/task/{tid}");
        write(root, &format!("{task}/stat"), &stat_line(tid));
        let status = format!(
            "Name:\tfake worker\nPid:\t{tid}\nCpus_allowed:\t{mask}\nCpus_allowed_list:\t{all}"
        );
        write(root, &format!("{task}/status"), &status);
        write(root, &format!("{task}/cgroup"), &line);
    }
    list_ids(root, &format!("{dir}/cgroup.procs"), &[pid]);
    list_ids(root, &format!("{dir}/{thread_list}"), tids);
}

fn scoped(target: Target) -> PlanRequest {
    let mut request = PlanRequest::new(target);
    request.scope = Some(SCOPE.into());
    request
}

/// `cgroup:/S/a/b/c`: every thread of both processes in it gets a CPU of its own.
fn cgroup_target_applies_and_reverts(version: Version) {
    let bench = Nested::new(version);
    let (plan, before) = bench.apply(&scoped(Target::Cgroup(TARGET_CGROUP.into())));
    let threads = [(TARGET, TARGET), (TARGET, TARGET + 1), (SIDECAR, SIDECAR)];
    assert_eq!(plan.allocation.slots.len(), threads.len());
    for (i, (pid, tid)) in threads.into_iter().enumerate() {
        let cpu = plan.allocation.slots[i].cpu;
        assert_eq!(
            bench.thread(pid, tid),
            (bench.own(&plan, &format!("t{i}")), CpuSet::from_ids([cpu])),
            "thread {tid} alone on CPU {cpu}"
        );
    }
    bench.check_fencing(&plan);
    bench.revert_exactly(&before);
}

/// `pid:5000 --threads 5001`: the worker on its CPU, the main thread and the sidecar in the
/// target's cgroup on housekeeping.
fn pid_target_applies_and_reverts(version: Version) {
    let bench = Nested::new(version);
    let mut request = scoped(Target::Pid(TARGET));
    request.threads = Some(vec![TARGET + 1]);
    let (plan, before) = bench.apply(&request);
    let cpu = plan.allocation.slots[0].cpu;
    assert_eq!(
        bench.thread(TARGET, TARGET + 1),
        (bench.own(&plan, "t0"), CpuSet::from_ids([cpu])),
        "the worker alone on its CPU"
    );
    let housekeeping = (bench.own(&plan, "hk"), plan.allocation.housekeeping.clone());
    for (pid, tid) in [(TARGET, TARGET), (SIDECAR, SIDECAR)] {
        assert_eq!(bench.thread(pid, tid), housekeeping, "thread {tid}");
    }
    bench.check_fencing(&plan);
    bench.revert_exactly(&before);
}

#[test]
fn v1_a_cgroup_target_three_levels_down_applies_and_reverts_byte_identically() {
    cgroup_target_applies_and_reverts(Version::V1);
}

#[test]
fn v1_a_pid_target_three_levels_down_applies_and_reverts_byte_identically() {
    pid_target_applies_and_reverts(Version::V1);
}

#[test]
fn v2_a_cgroup_target_three_levels_down_applies_and_reverts_byte_identically() {
    cgroup_target_applies_and_reverts(Version::V2);
}

#[test]
fn v2_a_pid_target_three_levels_down_applies_and_reverts_byte_identically() {
    pid_target_applies_and_reverts(Version::V2);
}
