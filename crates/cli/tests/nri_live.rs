//! `nearnative daemon --nri` against a real containerd 1.7 with NRI on (issue 12's
//! acceptance): the test plays kubelet. [`Containerd`] is a containerd of the test's own
//! (own root, state, sockets and configuration, in a cpuset cgroup of its own, its pods
//! below it), with a pause and a busybox image built here and imported with `ctr`; pods and
//! containers are run through the CRI. Everything is undone at the end, also when the test
//! fails, and the end checks that no process, mount or cgroup of the test is left.

use std::path::Path;
use std::time::Duration;

use nearnative_testkit::cri::ContainerState;
use nearnative_testkit::Containerd;

/// `Cpus_allowed_list` of `pid`, from /proc.
fn cpus_allowed(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Cpus_allowed_list:"));
    line.unwrap().split(':').nth(1).unwrap().trim().to_owned()
}

fn all_cpus() -> String {
    std::fs::read_to_string("/sys/fs/cgroup/cpuset/cpuset.cpus")
        .unwrap()
        .trim()
        .to_owned()
}

/// The harness on its own, no plugin: a plain pod's container runs in its cgroup below the
/// test's scope on every CPU, stops and goes with its pod, and nothing is left afterwards.
#[test]
#[ignore = "needs root: containerd 1.7 with NRI ($NEARNATIVE_CONTAINERD), runc, busybox-static"]
fn the_harness_runs_a_pod_through_the_cri_and_leaves_nothing() {
    let mut containerd = Containerd::start();
    let version = containerd.cri().version().unwrap();
    assert_eq!(version.runtime_name, "containerd");
    assert!(version.runtime_version.starts_with("1.7."), "{version:?}");

    let pod = containerd.run_pod("plain", &[("example.com/kind", "plain")]);
    let id = containerd.run_container(&pod, "app", Some(500));
    let status = containerd.cri().container_status(&id).unwrap();
    assert_eq!(status.state, ContainerState::Running as i32, "{status:?}");

    let pid = containerd.container_pid(&id);
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let expected = format!("cpuset:{}/{id}", containerd.pods_cgroup());
    assert!(cgroup.lines().any(|l| l.ends_with(&expected)), "{cgroup}");
    assert_eq!(containerd.container_cpuset(&id), all_cpus());
    assert_eq!(cpus_allowed(pid), all_cpus());
    let quota = containerd.container_cgroup(&id);
    let quota = Path::new("/sys/fs/cgroup/cpu")
        .join(quota.strip_prefix("/sys/fs/cgroup/cpuset").unwrap())
        .join("cpu.cfs_quota_us");
    assert_eq!(std::fs::read_to_string(quota).unwrap().trim(), "50000");

    containerd
        .cri()
        .stop_container(&id, Duration::ZERO)
        .unwrap();
    let status = containerd.cri().container_status(&id).unwrap();
    assert_eq!(status.state, ContainerState::Exited as i32, "{status:?}");
    containerd.cri().remove_container(&id).unwrap();
    let again = containerd.run_container(&pod, "again", None);
    assert!(!containerd.processes().is_empty());

    containerd.restart();
    let status = containerd.cri().container_status(&again).unwrap();
    assert_eq!(
        status.state,
        ContainerState::Running as i32,
        "a container outlives containerd's restart: {status:?}"
    );
    // The second pod is left running: the harness's end must remove it.
    containerd.run_pod("left-running", &[]);

    let left = containerd.stop();
    assert!(left.is_empty(), "left behind: {left:#?}");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "{pid} still runs"
    );
}
