//! Running iproute2's `ip`, always with an argument vector (never a shell string), and the
//! preflight that says in one line what is missing: root, or `ip` itself.

use std::io;
use std::process::Command;

use nix::unistd::geteuid;

#[derive(Debug, thiserror::Error)]
pub enum IpError {
    #[error("nearnative lab needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN to create network namespaces); run it as root")]
    NotRoot,
    #[error("nearnative lab needs iproute2's `ip` on PATH (Debian: apt-get install iproute2)")]
    Missing(#[source] io::Error),
    #[error("cannot run `ip {args}`")]
    Spawn {
        args: String,
        #[source]
        source: io::Error,
    },
    #[error("`ip {args}` failed: {stderr}")]
    Failed { args: String, stderr: String },
}

/// Fails unless this process is root and `ip` runs.
pub fn preflight() -> Result<(), IpError> {
    if !geteuid().is_root() {
        return Err(IpError::NotRoot);
    }
    match Command::new("ip").arg("-V").output() {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(IpError::Missing(e)),
        Err(source) => Err(IpError::Spawn {
            args: "-V".into(),
            source,
        }),
    }
}

/// Runs `ip ARGS` and returns its standard output, or the first line of its complaint.
pub fn ip(args: &[&str]) -> Result<String, IpError> {
    let joined = || args.join(" ");
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => IpError::Missing(source),
            _ => IpError::Spawn {
                args: joined(),
                source,
            },
        })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(IpError::Failed {
        args: joined(),
        stderr: first_line(&stderr, &output.status.to_string()),
    })
}

/// `ip ARGS` inside the namespace `netns` (`ip -n NETNS ARGS`).
pub fn ip_in(netns: &str, args: &[&str]) -> Result<String, IpError> {
    let mut all = vec!["-n", netns];
    all.extend_from_slice(args);
    ip(&all)
}

/// The interface names of `ip -o link` output (`2: eth0: <...>`, `5: v1@if4: <...>`).
pub fn parse_link_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_owned())
        .collect()
}

/// The namespace names of `ip netns list` output (`name` or `name (id: 3)`).
pub fn parse_netns_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn first_line(text: &str, fallback: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(fallback)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_link_and_netns_lists() {
        let links = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue\n\
                     5: nnl9aav1@if4: <BROADCAST,MULTICAST> mtu 1500\n";
        assert_eq!(parse_link_names(links), ["lo", "nnl9aav1"]);
        let netns = "nnlab-9aa-veth-s (id: 1)\nnnlab-9aa-veth-c\n";
        assert_eq!(
            parse_netns_names(netns),
            ["nnlab-9aa-veth-s", "nnlab-9aa-veth-c"]
        );
        assert!(parse_netns_names("").is_empty());
    }

    #[test]
    fn complaint_is_one_line() {
        assert_eq!(
            first_line("\n  Cannot find device\nmore\n", "x"),
            "Cannot find device"
        );
        assert_eq!(first_line("", "exit status: 1"), "exit status: 1");
    }
}
