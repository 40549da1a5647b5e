//! Firecracker: recognising the process, naming its VM, and its `fc_vcpu <N>` threads.
//!
//! A VM is named by `--id` (what the jailer and metrics use), else by its `--api-sock` path,
//! else by its pid. Firecracker defaults `--id` to `anonymous-instance`, which names nothing.

use super::cmdline::{option_values, program_name};

const PROGRAM: &str = "firecracker";
const DEFAULT_ID: &str = "anonymous-instance";

pub fn matches(comm: &str, args: &[String]) -> bool {
    comm == PROGRAM || program_name(args) == PROGRAM
}

pub fn name(args: &[String]) -> Option<String> {
    let id = option_values(args, &["--id"])
        .pop()
        .filter(|id| !id.is_empty() && *id != DEFAULT_ID);
    id.or_else(|| option_values(args, &["--api-sock"]).pop())
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
}

pub fn vcpu_index(comm: &str) -> Option<u32> {
    comm.strip_prefix("fc_vcpu ")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::cmdline::args_of_line as args;

    #[test]
    fn names_from_id_then_api_socket() {
        let cases = [
            ("id", "firecracker --id fc1 --api-sock /s", Some("fc1")),
            (
                "default id",
                "firecracker --id anonymous-instance --api-sock /s",
                Some("/s"),
            ),
            (
                "socket only",
                "firecracker --api-sock=/run/fc.sock",
                Some("/run/fc.sock"),
            ),
            ("nothing", "firecracker --no-api", None),
        ];
        for (what, line, expected) in cases {
            assert_eq!(name(&args(line)).as_deref(), expected, "{what}");
        }
    }

    #[test]
    fn recognised_and_vcpus_numbered() {
        assert!(matches("firecracker", &[]));
        assert!(matches("fc_api", &args("/usr/bin/firecracker --id a")));
        assert!(!matches("jailer", &args("jailer --id a")));
        assert_eq!(vcpu_index("fc_vcpu 3"), Some(3));
        assert_eq!(vcpu_index("fc_vcpu"), None);
    }
}
