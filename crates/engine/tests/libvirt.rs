//! A libvirt domain on a furnished tree with a v1 cpuset hierarchy and libvirt's plain
//! layout (`/machine/qemu-ID-NAME.libvirt-qemu/{emulator,vcpu0,iothread1}`): apply pins it
//! through libvirt's own cgroups (the tree plays libvirt), a sibling domain started after the
//! apply is shrunk off the exclusive CPU by reconcile, and after that domain stopped (libvirt
//! removed its cgroups) revert restores every file byte for byte.

use std::fs;
use std::path::Path;

use nearnative_engine::{DriftMode, RevertWhich};
use nearnative_host::CpuSet;
use nearnative_plan::{PlanRequest, Target};
use nearnative_testkit::tree::{add, cpus, list_ids, stat_line, TreeImage};

use crate::Bench;

const SNAPSHOT: &str = "16em64t-4s2c2t";
const MOUNT: &str = "/sys/fs/cgroup/cpuset";
const NN1: &str = "/machine/qemu-2-nn1.libvirt-qemu";
const OTHER: &str = "/machine/qemu-3-other.libvirt-qemu";
const QEMU: u32 = 6000;
const OTHER_QEMU: u32 = 7000;

fn write(root: &Path, path: &str, content: &str) {
    let real = root.join(path.trim_start_matches('/'));
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    fs::write(real, content).unwrap();
}

fn read(root: &Path, path: &str) -> String {
    fs::read_to_string(root.join(path.trim_start_matches('/'))).unwrap()
}

fn cgroup(root: &Path, path: &str) {
    let all = format!("{}\n", cpus(root).online.to_list());
    for (file, content) in [
        ("cpuset.cpus", all.as_str()),
        ("cpuset.effective_cpus", all.as_str()),
        ("cpuset.mems", "0\n"),
        ("cpuset.cpu_exclusive", "0\n"),
        ("cpuset.sched_load_balance", "1\n"),
        ("tasks", ""),
        ("cgroup.procs", ""),
    ] {
        add(root, &format!("{MOUNT}{path}/{file}"), content);
    }
}

/// Domain `name` as QEMU `pid`, its threads in libvirt's cgroups under `dir`; kernel 6.x's
/// nx-lpage worker sits in vcpu0's.
fn domain(root: &Path, dir: &str, name: &str, pid: u32) {
    cgroup(root, "/machine");
    cgroup(root, dir);
    let all = cpus(root);
    let list = all.online.to_list();
    let mask = all.online.to_mask(all.mask_words);
    let threads = [
        (pid, "qemu-system-x86", "emulator"),
        (pid + 1, "CPU 0/KVM", "vcpu0"),
        (pid + 2, "IO iothread1", "iothread1"),
        (pid + 3, "kvm-nx-lpage-re", "vcpu0"),
    ];
    let cmdline = format!("qemu-system-x86_64\0-name\0guest={name},debug-threads=on\0");
    write(root, &format!("/proc/{pid}/cmdline"), &cmdline);
    let table = |child: &str| format!("4:memory:/user\n3:cpuset:{dir}/{child}\n0::/\n");
    write(root, &format!("/proc/{pid}/cgroup"), &table("emulator"));
    for (tid, comm, child) in threads {
        cgroup(root, &format!("{dir}/{child}"));
        let task = format!("/proc/{pid}/task/{tid}");
        let stat = stat_line(tid).replace("(fake worker)", &format!("({comm})"));
        write(root, &format!("{task}/stat"), &stat);
        let status = format!(
            "Name:\t{comm}\nPid:\t{tid}\nCpus_allowed:\t{mask}\nCpus_allowed_list:\t{list}\nvoluntary_ctxt_switches:\t3\n"
        );
        write(root, &format!("{task}/status"), &status);
        write(root, &format!("{task}/cgroup"), &table(child));
        list_ids(root, &format!("{MOUNT}{dir}/{child}/tasks"), &[tid]);
    }
    list_ids(root, &format!("{MOUNT}{dir}/emulator/cgroup.procs"), &[pid]);
}

/// The snapshot with a v1 cpuset mount and domain nn1 running.
fn bench() -> Bench {
    let bench = Bench::new(SNAPSHOT);
    let root = bench.root().to_owned();
    let line = format!("30 25 0:26 / {MOUNT} rw - cgroup cgroup rw,cpuset\n");
    write(&root, "/proc/self/mountinfo", &line);
    domain(&root, NN1, "nn1", QEMU);
    Bench {
        before: TreeImage::take(&root),
        ..bench
    }
}

fn cpus_of(root: &Path, cgroup: &str) -> CpuSet {
    CpuSet::parse_list(read(root, &format!("{MOUNT}{cgroup}/cpuset.cpus")).trim()).unwrap()
}

/// Thread `tid`'s cpuset cgroup and allowed CPUs.
fn thread(root: &Path, pid: u32, tid: u32) -> (String, CpuSet) {
    let dir = format!("/proc/{pid}/task/{tid}");
    let table = read(root, &format!("{dir}/cgroup"));
    let path = table
        .lines()
        .find_map(|l| l.strip_prefix("3:cpuset:"))
        .unwrap();
    let status = read(root, &format!("{dir}/status"));
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:\t"))
        .unwrap();
    (path.to_owned(), CpuSet::parse_list(list).unwrap())
}

#[test]
fn a_libvirt_domain_is_pinned_in_its_cgroups_a_later_domain_is_fenced_and_revert_is_exact() {
    let bench = bench();
    let root = bench.root().to_owned();
    let all = cpus(&root).online;
    let engine = bench.engine();
    let applied = engine
        .apply(&PlanRequest::new(Target::Vm("nn1".into())))
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = &applied.plan;
    let cpu = CpuSet::from_ids([plan.allocation.slots[0].cpu]);
    let hk = plan.allocation.housekeeping.clone();
    assert_eq!(cpus_of(&root, &format!("{NN1}/vcpu0")), cpu);
    assert_eq!(
        thread(&root, QEMU, QEMU + 1),
        (format!("{NN1}/vcpu0"), cpu.clone())
    );
    assert_eq!(cpus_of(&root, &format!("{NN1}/emulator")), hk);
    assert_eq!(
        thread(&root, QEMU, QEMU),
        (format!("{NN1}/emulator"), hk.clone())
    );
    // The move alone places it: the kernel gives a task that joins a v1 cpuset the cpuset's
    // CPUs, which the tree does not play (the live libvirt test sees it on housekeeping).
    assert_eq!(
        thread(&root, QEMU, QEMU + 3).0,
        format!("{NN1}/emulator"),
        "the nx-lpage worker joins the emulator"
    );
    assert_eq!(cpus_of(&root, "/machine"), all, "libvirt's partition keeps");
    assert_eq!(cpus_of(&root, NN1), all, "the domain's own cgroup keeps");
    let ours = fs::read_dir(root.join(MOUNT.trim_start_matches('/')))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("nearnative-") && !n.ends_with("-hk"))
        .collect::<Vec<_>>();
    assert!(
        ours.is_empty(),
        "no cgroups of ours for the domain: {ours:?}"
    );

    // libvirt starts another domain under /machine, on every CPU.
    domain(&root, OTHER, "other", OTHER_QEMU);
    let reconciled = engine.reconcile("vm:nn1", DriftMode::Repair).unwrap();
    assert!(reconciled.failed.is_empty(), "{reconciled:?}");
    let exclusive = plan.allocation.exclusive_cpus.clone();
    for cgroup in [
        OTHER.to_owned(),
        format!("{OTHER}/vcpu0"),
        format!("{OTHER}/emulator"),
    ] {
        let cpus = cpus_of(&root, &cgroup);
        assert!(cpus.is_disjoint(&exclusive), "{cgroup}: {cpus}");
    }
    assert_eq!(
        cpus_of(&root, "/machine"),
        all,
        "still able to start domains"
    );

    // The other domain stops: libvirt removes its cgroups, QEMU is gone.
    fs::remove_dir_all(root.join(format!("{MOUNT}{OTHER}").trim_start_matches('/'))).unwrap();
    fs::remove_dir_all(root.join(format!("proc/{OTHER_QEMU}"))).unwrap();
    engine
        .revert(&RevertWhich::All)
        .unwrap_or_else(|e| panic!("{e}"));
    bench.assert_unchanged("apply, a sibling domain's life, revert");
}
