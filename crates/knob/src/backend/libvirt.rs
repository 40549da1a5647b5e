//! Pinning a libvirt domain's threads through libvirt: `virsh vcpupin`, `emulatorpin` and
//! `iothreadpin --live` on the live host, and on a tree what libvirt would then show.
//!
//! libvirt owns a domain's cgroups; a change written behind its back survives only until the
//! next pin call, and libvirt never learns of it. Going through virsh keeps libvirt's view
//! and the host the same.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nearnative_host::libvirt::LibvirtChild;
use nearnative_host::CpuSet;

use super::tree::TreeBackend;
use super::{tree_kernel, Backend, TaskId};

/// How long one virsh call may take: libvirtd answers a pin in milliseconds, but waits for a
/// domain job in progress (a start, a migration) for up to 30 s before it gives up itself.
pub const VIRSH_TIMEOUT: Duration = Duration::from_secs(45);

/// One pin, as virsh is given it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibvirtPinCall<'a> {
    /// libvirt's connection URI (`qemu:///system`).
    pub uri: &'a str,
    /// The domain's numeric ID: a domain restarted under the same name has another.
    pub domain_id: u32,
    pub which: LibvirtChild,
    pub cpus: &'a CpuSet,
    /// The child cgroup's directory (a host path), which a tree writes in libvirt's place.
    pub cgroup_dir: PathBuf,
}

impl LibvirtPinCall<'_> {
    /// virsh's arguments: `-c URI vcpupin ID --vcpu N --cpulist LIST --live` and the like.
    pub fn virsh_args(&self) -> Vec<String> {
        let mut args = vec!["-c".to_owned(), self.uri.to_owned()];
        let (command, index) = match self.which {
            LibvirtChild::Vcpu(n) => ("vcpupin", Some(("--vcpu", n))),
            LibvirtChild::Emulator => ("emulatorpin", None),
            LibvirtChild::Iothread(n) => ("iothreadpin", Some(("--iothread", n))),
        };
        args.push(command.to_owned());
        args.push(self.domain_id.to_string());
        if let Some((option, n)) = index {
            args.extend([option.to_owned(), n.to_string()]);
        }
        args.extend([
            "--cpulist".to_owned(),
            self.cpus.to_list(),
            "--live".to_owned(),
        ]);
        args
    }

    /// Runs virsh, bounded by [`VIRSH_TIMEOUT`]. The error is one line: the command and
    /// virsh's own first line of complaint.
    pub fn run_virsh(&self) -> io::Result<()> {
        let args = self.virsh_args();
        let shown = format!("virsh {}", args.join(" "));
        let mut child = Command::new("virsh")
            .args(&args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| match err.kind() {
                io::ErrorKind::NotFound => io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("{shown}: virsh is not installed (libvirt-clients)"),
                ),
                _ => io::Error::new(err.kind(), format!("{shown}: {err}")),
            })?;
        let status = wait_bounded(&mut child, VIRSH_TIMEOUT)
            .map_err(|err| io::Error::new(err.kind(), format!("{shown}: {err}")))?;
        if status.success() {
            return Ok(());
        }
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            // What virsh said is only the message; failing to read it leaves the status.
            let _ = pipe.read_to_string(&mut stderr);
        }
        Err(virsh_failure(&shown, status, &stderr))
    }
}

/// Waits for `child` until `timeout`, then kills it (it is our own virsh).
fn wait_bounded(child: &mut Child, timeout: Duration) -> io::Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            // The kill may race the exit; either way the wait below reaps it.
            let _ = child.kill();
            child.wait()?;
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {} s", timeout.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// virsh's failure as one line; a domain libvirt does not know is `NotFound`.
fn virsh_failure(shown: &str, status: ExitStatus, stderr: &str) -> io::Error {
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let reason = match said.as_slice() {
        [] => format!("virsh exited with {status}"),
        lines => lines.join("; "),
    };
    let gone = said
        .iter()
        .any(|l| l.contains("Domain not found") || l.contains("failed to get domain"));
    let kind = match gone {
        true => io::ErrorKind::NotFound,
        false => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("{shown}: {reason}"))
}

/// On a tree, libvirt's part: the child cgroup's `cpuset.cpus`, then the affinity of every
/// thread it lists, as libvirt sets both. A child cgroup that is gone is a domain that is.
pub fn play_on_tree(tree: &TreeBackend, call: &LibvirtPinCall) -> io::Result<()> {
    let cpus_file = call.cgroup_dir.join("cpuset.cpus");
    if tree.read(&cpus_file).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: no such domain cgroup", call.cgroup_dir.display()),
        ));
    }
    tree.replace(&cpus_file, &format!("{}\n", call.cpus.to_list()))?;
    for task in listed_tasks(tree, &call.cgroup_dir) {
        let status = task.proc_dir().join("status");
        if let Ok(current) = tree.read(&status) {
            tree.replace(
                &status,
                &tree_kernel::status_with_affinity(&current, call.cpus),
            )?;
        }
    }
    Ok(())
}

/// The threads a v1 (`tasks`) or threaded v2 (`cgroup.threads`) cgroup lists, each with the
/// process the tree shows it under.
fn listed_tasks(tree: &TreeBackend, dir: &Path) -> Vec<TaskId> {
    let listed = ["tasks", "cgroup.threads"]
        .iter()
        .find_map(|file| tree.read(&dir.join(file)).ok())
        .unwrap_or_default();
    let pids: Vec<u32> = tree
        .root()
        .list_dir("/proc")
        .unwrap_or_default()
        .iter()
        .filter_map(|name| name.parse().ok())
        .collect();
    listed
        .split_whitespace()
        .filter_map(|id| id.parse::<u32>().ok())
        .filter_map(|tid| {
            let pid = pids.iter().copied().find(|pid| {
                let task = TaskId { pid: *pid, tid };
                tree.read(&task.proc_dir().join("status")).is_ok()
            })?;
            Some(TaskId { pid, tid })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(which: LibvirtChild, cpus: &CpuSet) -> LibvirtPinCall<'_> {
        LibvirtPinCall {
            uri: "qemu:///system",
            domain_id: 7,
            which,
            cpus,
            cgroup_dir: PathBuf::from("/sys/fs/cgroup/cpuset/machine/qemu-7-nn1.libvirt-qemu"),
        }
    }

    #[test]
    fn virsh_is_given_the_domain_id_the_child_and_the_cpus() {
        let cpus = CpuSet::from_ids([1, 2, 3, 5]);
        let cases = [
            (
                LibvirtChild::Vcpu(0),
                "-c qemu:///system vcpupin 7 --vcpu 0 --cpulist 1-3,5 --live",
            ),
            (
                LibvirtChild::Emulator,
                "-c qemu:///system emulatorpin 7 --cpulist 1-3,5 --live",
            ),
            (
                LibvirtChild::Iothread(2),
                "-c qemu:///system iothreadpin 7 --iothread 2 --cpulist 1-3,5 --live",
            ),
        ];
        for (which, expected) in cases {
            assert_eq!(call(which, &cpus).virsh_args().join(" "), expected);
        }
    }

    #[test]
    fn virsh_failures_are_one_line_and_a_missing_domain_is_not_found() {
        let status = std::process::Command::new("false").status().unwrap();
        let gone = virsh_failure(
            "virsh x",
            status,
            "error: failed to get domain '7'\nerror: Domain not found: no domain with matching id 7\n",
        );
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
        assert!(!gone.to_string().contains('\n'), "{gone}");
        let refused = virsh_failure(
            "virsh x",
            status,
            "error: Invalid value '9' for 'cpuset.cpus'\n",
        );
        assert_eq!(refused.kind(), io::ErrorKind::Other);
        assert!(refused
            .to_string()
            .starts_with("virsh x: error: Invalid value"));
        let silent = virsh_failure("virsh x", status, "");
        assert!(silent.to_string().contains("exited with"), "{silent}");
    }
}
