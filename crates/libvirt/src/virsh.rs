//! `virsh`, run with a timeout: a libvirtd that does not answer must not hang the caller.
//! Errors are one line naming the domain and what virsh said. Never call it from inside a
//! qemu hook: libvirtd waits for the hook while the hook waits for libvirtd.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// libvirt's connection when none is given.
pub const DEFAULT_URI: &str = "qemu:///system";
/// How long one virsh call may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum VirshError {
    #[error("{domain}: cannot run virsh {command}: {source}")]
    Spawn {
        domain: String,
        command: String,
        source: std::io::Error,
    },
    #[error("{domain}: virsh {command} gave no answer within {} s", timeout.as_secs())]
    Timeout {
        domain: String,
        command: String,
        timeout: Duration,
    },
    #[error("{domain}: virsh {command}: {message}")]
    Failed {
        domain: String,
        command: String,
        message: String,
    },
}

/// One libvirt connection, reached through the `virsh` client.
#[derive(Debug, Clone)]
pub struct Virsh {
    uri: String,
    timeout: Duration,
}

impl Virsh {
    /// A connection to `uri` (`None`: [`DEFAULT_URI`]).
    pub fn new(uri: Option<&str>) -> Virsh {
        Virsh {
            uri: uri.unwrap_or(DEFAULT_URI).to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Virsh {
        self.timeout = timeout;
        self
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The live XML of running `domain` (its persistent one when it does not run).
    pub fn dumpxml(&self, domain: &str) -> Result<String, VirshError> {
        self.run(domain, &["dumpxml", "--domain", domain])
    }

    /// `virsh -c URI ARGS` about `domain`; its stdout. A non-zero exit, or silence past the
    /// timeout (virsh is then killed), is an error naming `domain`.
    pub fn run(&self, domain: &str, args: &[&str]) -> Result<String, VirshError> {
        let command = args.first().copied().unwrap_or_default().to_owned();
        let mut child = Command::new("virsh")
            .args(["-c", &self.uri])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| VirshError::Spawn {
                domain: domain.to_owned(),
                command: command.clone(),
                source,
            })?;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let (done, finished) = mpsc::channel();
        // Each pipe read on a thread of its own, so that neither fills while the other waits.
        let errors = std::thread::spawn(move || read_all(stderr));
        std::thread::spawn(move || {
            let stdout = read_all(stdout);
            let _ = done.send((stdout, errors.join().unwrap_or_default()));
        });
        let Ok((stdout, stderr)) = finished.recv_timeout(self.timeout) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(VirshError::Timeout {
                domain: domain.to_owned(),
                command,
                timeout: self.timeout,
            });
        };
        let status = child.wait().map_err(|source| VirshError::Spawn {
            domain: domain.to_owned(),
            command: command.clone(),
            source,
        })?;
        match status.success() {
            true => Ok(stdout),
            false => Err(VirshError::Failed {
                domain: domain.to_owned(),
                command,
                message: one_line(&stderr, status),
            }),
        }
    }
}

/// Everything `pipe` gives until it closes (the child exits); empty when there is none.
fn read_all(pipe: Option<impl Read>) -> String {
    let mut text = String::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_string(&mut text);
    }
    text
}

/// virsh's `error: ...` lines joined into one, without the prefix; the exit status when it
/// said nothing.
fn one_line(stderr: &str, status: std::process::ExitStatus) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(|l| l.trim().trim_start_matches("error:").trim())
        .filter(|l| !l.is_empty())
        .collect();
    match lines.is_empty() {
        true => format!("failed ({status})"),
        false => lines.join(": "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn virsh_errors_become_one_line_without_their_prefix() {
        let stderr = "error: failed to get domain 'nn9'\nerror: Domain not found: no domain with matching name 'nn9'\n\n";
        assert_eq!(
            one_line(stderr, std::process::ExitStatus::from_raw(256)),
            "failed to get domain 'nn9': Domain not found: no domain with matching name 'nn9'"
        );
        assert_eq!(
            one_line("", std::process::ExitStatus::from_raw(256)),
            "failed (exit status: 1)"
        );
    }

    #[test]
    fn an_error_names_the_domain_and_the_command() {
        let error = VirshError::Failed {
            domain: "nn9".to_owned(),
            command: "dumpxml".to_owned(),
            message: "failed to get domain 'nn9'".to_owned(),
        };
        assert_eq!(
            error.to_string(),
            "nn9: virsh dumpxml: failed to get domain 'nn9'"
        );
    }
}
