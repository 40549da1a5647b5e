//! QEMU: recognising the process, its VM name, its thread names, and the QMP socket its
//! command line opens.
//!
//! With `-name ...,debug-threads=on` (libvirt always sets it) QEMU names its threads
//! `CPU <n>/KVM` and `IO <iothread id>`; without it every thread carries the process name and
//! only QMP can tell which thread runs which vCPU.

use std::collections::HashMap;
use std::path::PathBuf;

use super::cmdline::{option_values, program_name};
use super::qemu_opts::QemuOpts;

/// The kernel truncates comm to 15 bytes: `qemu-system-x86_64` shows as `qemu-system-x86`.
const COMM_PREFIX: &str = "qemu-system-";

pub fn matches(comm: &str, args: &[String]) -> bool {
    let program = program_name(args);
    [comm, program]
        .iter()
        .any(|name| name.starts_with(COMM_PREFIX) || *name == "qemu-kvm")
}

/// The guest name from `-name guest=NAME` or `-name NAME`.
pub fn name(args: &[String]) -> Option<String> {
    let value = qemu_option_values(args, "name").pop()?;
    let name = QemuOpts::parse(value, "guest").get("guest")?.to_owned();
    (!name.is_empty()).then_some(name)
}

/// The vCPU index of a `CPU <n>/<accelerator>` thread.
pub fn vcpu_index(comm: &str) -> Option<u32> {
    let rest = comm.strip_prefix("CPU ")?;
    let (index, _accelerator) = rest.split_once('/')?;
    index.parse().ok()
}

/// The vCPUs the VM boots with: `-smp N` or `-smp cpus=N,...`, and 1 without `-smp`, as
/// QEMU counts them. `None` when the count is left to QEMU to derive from sockets, cores and
/// threads.
pub fn boot_vcpus(args: &[String]) -> Option<u32> {
    match qemu_option_values(args, "smp").pop() {
        None => Some(1),
        // `cpus=0` (or none) leaves the count to the topology options: unknown here.
        Some(value) => QemuOpts::parse(value, "cpus")
            .get("cpus")?
            .parse()
            .ok()
            .filter(|&n| n > 0),
    }
}

/// The iothread id of an `IO <id>` thread (cut short when the name passed 15 bytes).
pub fn io_thread_id(comm: &str) -> Option<&str> {
    comm.strip_prefix("IO ").filter(|id| !id.is_empty())
}

/// The path of the first QMP unix socket the command line sets up: `-qmp unix:PATH,...`, or a
/// `-chardev socket,id=ID,path=PATH` that a `-mon chardev=ID,mode=control` uses. Relative
/// paths are as QEMU sees them, from its working directory.
pub fn qmp_socket(args: &[String]) -> Option<PathBuf> {
    let direct = ["qmp", "qmp-pretty"]
        .iter()
        .flat_map(|option| qemu_option_values(args, option))
        .find_map(|value| {
            let rest = value.strip_prefix("unix:")?;
            QemuOpts::parse(rest, "path").get("path").map(PathBuf::from)
        });
    direct.or_else(|| monitor_chardev_socket(args))
}

fn monitor_chardev_socket(args: &[String]) -> Option<PathBuf> {
    let socket_paths: HashMap<String, String> = qemu_option_values(args, "chardev")
        .into_iter()
        .map(|value| QemuOpts::parse(value, "backend"))
        .filter(|opts| opts.get("backend") == Some("socket"))
        .filter_map(|opts| Some((opts.get("id")?.to_owned(), opts.get("path")?.to_owned())))
        .collect();
    qemu_option_values(args, "mon")
        .into_iter()
        .map(|value| QemuOpts::parse(value, "chardev"))
        .filter(|opts| opts.get("mode") == Some("control"))
        .find_map(|opts| socket_paths.get(opts.get("chardev")?).map(PathBuf::from))
}

/// QEMU accepts every option with one dash or two.
fn qemu_option_values<'a>(args: &'a [String], option: &str) -> Vec<&'a str> {
    option_values(args, &[&format!("-{option}"), &format!("--{option}")])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::cmdline::args_of_line as args;

    #[test]
    fn recognised_by_comm_or_program() {
        let cases = [
            ("truncated comm", "qemu-system-x86", "x", true),
            (
                "renamed process",
                "web1",
                "/usr/bin/qemu-system-aarch64 -S",
                true,
            ),
            ("rhel binary", "qemu-kvm", "/usr/libexec/qemu-kvm", true),
            ("qemu-img", "qemu-img", "qemu-img info", false),
        ];
        for (what, comm, line, expected) in cases {
            assert_eq!(matches(comm, &args(line)), expected, "{what}");
        }
    }

    #[test]
    fn boot_vcpus_from_smp() {
        let cases = [
            ("no -smp", "qemu-system-x86_64 -S", Some(1)),
            ("plain count", "qemu-system-x86_64 -smp 4", Some(4)),
            (
                "cpus= form",
                "qemu-system-x86_64 --smp=cpus=2,maxcpus=8",
                Some(2),
            ),
            ("derived", "qemu-system-x86_64 -smp sockets=2,cores=2", None),
            ("garbage", "qemu-system-x86_64 -smp x", None),
        ];
        for (what, line, expected) in cases {
            assert_eq!(boot_vcpus(&args(line)), expected, "{what}");
        }
    }

    #[test]
    fn names_and_sockets_from_command_lines() {
        let cases = [
            (
                "libvirt style",
                "qemu-system-x86_64 -name guest=web1,debug-threads=on -chardev \
                 socket,id=charmonitor,path=/run/mon.sock,server=on,wait=off -mon \
                 chardev=charmonitor,id=monitor,mode=control",
                Some("web1"),
                Some("/run/mon.sock"),
            ),
            (
                "plain name and -qmp",
                "qemu-system-x86_64 -S -name test1 -qmp unix:/tmp/q,,1.sock,server=on,wait=off",
                Some("test1"),
                Some("/tmp/q,1.sock"),
            ),
            (
                "double dashes, relative socket",
                "qemu-kvm --name=db --qmp unix:qmp.sock,server,nowait",
                Some("db"),
                Some("qmp.sock"),
            ),
            (
                "hmp monitor and tcp qmp only",
                "qemu-system-x86_64 -chardev socket,id=h,path=/h -mon chardev=h -qmp tcp:[::1]:4444",
                None,
                None,
            ),
            (
                "libvirt fd-passed monitor",
                "qemu-system-x86_64 -name guest= -chardev socket,id=m,fd=31,server=on -mon \
                 chardev=m,mode=control",
                None,
                None,
            ),
        ];
        for (what, line, expected_name, expected_socket) in cases {
            let argv = args(line);
            assert_eq!(name(&argv).as_deref(), expected_name, "{what}");
            assert_eq!(
                qmp_socket(&argv),
                expected_socket.map(PathBuf::from),
                "{what}"
            );
        }
    }

    #[test]
    fn thread_names_classify() {
        assert_eq!(vcpu_index("CPU 12/KVM"), Some(12));
        assert_eq!(vcpu_index("CPU 0/TCG"), Some(0));
        assert_eq!(vcpu_index("CPU x/KVM"), None);
        assert_eq!(vcpu_index("qemu-system-x86"), None);
        assert_eq!(io_thread_id("IO mon_iothread"), Some("mon_iothread"));
        assert_eq!(io_thread_id("IO "), None);
    }
}
