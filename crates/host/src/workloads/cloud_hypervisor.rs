//! Cloud Hypervisor: recognising the process, naming its VM, and its `vcpu<N>` threads.
//!
//! Cloud Hypervisor has no VM-name option, so a VM is named by its `--api-socket` path (what
//! `ch-remote` needs to reach it); a VM started without an API socket is named by its pid.

use super::cmdline::{option_values, program_name};

/// `cloud-hypervisor` is 16 bytes; the kernel keeps 15 of them in comm.
const COMM: &str = "cloud-hyperviso";
const PROGRAM: &str = "cloud-hypervisor";

pub fn matches(comm: &str, args: &[String]) -> bool {
    comm == COMM || program_name(args) == PROGRAM
}

/// The API socket path, from `--api-socket PATH` or `--api-socket path=PATH[,...]`. An
/// `fd=N` socket has no path and gives no name.
pub fn name(args: &[String]) -> Option<String> {
    let value = option_values(args, &["--api-socket"]).pop()?;
    let path = match value.split(',').find_map(|kv| kv.strip_prefix("path=")) {
        Some(path) => path,
        None if !value.contains('=') => value,
        None => return None,
    };
    (!path.is_empty()).then(|| path.to_owned())
}

/// The vCPUs the VM boots with: `--cpus boot=N`, and 1 without it.
pub fn boot_vcpus(args: &[String]) -> Option<u32> {
    let Some(value) = option_values(args, &["--cpus"]).pop() else {
        return Some(1);
    };
    let boot = value.split(',').find_map(|kv| kv.strip_prefix("boot="));
    boot.unwrap_or("1").parse().ok().filter(|&n| n > 0)
}

pub fn vcpu_index(comm: &str) -> Option<u32> {
    comm.strip_prefix("vcpu")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::cmdline::args_of_line as args;

    #[test]
    fn names_from_the_api_socket() {
        let cases = [
            (
                "plain path",
                "cloud-hypervisor --api-socket /run/ch/a.sock",
                Some("/run/ch/a.sock"),
            ),
            (
                "path= form",
                "cloud-hypervisor --api-socket=path=/b,x=1",
                Some("/b"),
            ),
            ("fd form", "cloud-hypervisor --api-socket fd=3", None),
            ("absent", "cloud-hypervisor --kernel k", None),
        ];
        for (what, line, expected) in cases {
            assert_eq!(name(&args(line)).as_deref(), expected, "{what}");
        }
    }

    #[test]
    fn boot_vcpus_from_the_cpus_option() {
        let cases = [
            ("absent", "cloud-hypervisor --kernel k", Some(1)),
            ("boot=", "cloud-hypervisor --cpus boot=4,max=8", Some(4)),
            ("max only", "cloud-hypervisor --cpus max=8", Some(1)),
            ("garbage", "cloud-hypervisor --cpus boot=x", None),
        ];
        for (what, line, expected) in cases {
            assert_eq!(boot_vcpus(&args(line)), expected, "{what}");
        }
    }

    #[test]
    fn recognised_and_vcpus_numbered() {
        assert!(matches("cloud-hyperviso", &[]));
        assert!(matches("x", &args("/opt/cloud-hypervisor --cpus boot=2")));
        assert!(!matches("ch-remote", &args("ch-remote info")));
        assert_eq!(vcpu_index("vcpu7"), Some(7));
        assert_eq!(vcpu_index("vcpu"), None);
        assert_eq!(vcpu_index("vmm"), None);
    }
}
