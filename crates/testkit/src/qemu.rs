//! A real QEMU for live tests: paused (`-S`, no guest code runs), one vCPU, named threads
//! (`debug-threads=on`, as libvirt starts it), daemonized, and killed on drop even when the
//! test fails.

use std::path::Path;
use std::process::Command;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub const QEMU: &str = "qemu-system-x86_64";

pub struct PausedQemu {
    pub pid: Pid,
}

impl PausedQemu {
    /// Starts VM `name`, its pidfile in `dir`. `None`, with a loud message, when QEMU is not
    /// installed; any other failure panics.
    pub fn start(dir: &Path, name: &str) -> Option<Self> {
        let pidfile = dir.join("qemu.pid");
        let output = Command::new(QEMU)
            .args(["-enable-kvm", "-S", "-display", "none", "-M", "microvm"])
            .args(["-smp", "1", "-m", "64"])
            .args(["-name", &format!("guest={name},debug-threads=on")])
            .args(["-daemonize", "-pidfile"])
            .arg(&pidfile)
            .output();
        let output = match output {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                eprintln!(
                    "!!!! SKIPPED: {QEMU} is not installed (apt-get install qemu-system-x86)"
                );
                return None;
            }
            other => other.unwrap(),
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{QEMU} failed: {stderr}");
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let pid = pid.trim().parse().unwrap();
        Some(PausedQemu {
            pid: Pid::from_raw(pid),
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid.as_raw().unsigned_abs()
    }
}

impl Drop for PausedQemu {
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
    }
}
