//! A real QEMU for live tests: paused (`-S`, no guest code runs), daemonized, and killed on
//! drop even when the test fails. By default it is started as libvirt would start it (a
//! microvm with one vCPU, `debug-threads=on`, so the vCPU threads are named "CPU n/KVM");
//! [`QemuOptions`] gives the variations tests need (more vCPUs, unnamed threads, a QMP
//! socket). Tests that use it are marked `#[ignore = "needs QEMU ..."]`: a missing QEMU fails
//! them with one line, it never lets them pass unrun.

use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub const QEMU: &str = "qemu-system-x86_64";

/// The command line's variations.
#[derive(Debug, Clone, Copy)]
pub struct QemuOptions {
    pub vcpus: u32,
    /// Names the threads "CPU n/KVM"; without it every thread is named like the process and
    /// only QMP maps vCPUs to threads.
    pub debug_threads: bool,
    /// Opens a QMP socket `qmp.sock` in the test's directory.
    pub qmp: bool,
}

impl Default for QemuOptions {
    fn default() -> Self {
        QemuOptions {
            vcpus: 1,
            debug_threads: true,
            qmp: false,
        }
    }
}

pub struct PausedQemu {
    pub pid: Pid,
    qmp_socket: Option<PathBuf>,
}

impl PausedQemu {
    /// Starts VM `name` with the default options, its files in `dir`. Fails the calling test,
    /// in one line, when QEMU is not installed or does not start.
    #[track_caller]
    pub fn start(dir: &Path, name: &str) -> Self {
        PausedQemu::start_with(dir, name, QemuOptions::default())
    }

    #[track_caller]
    pub fn start_with(dir: &Path, name: &str, options: QemuOptions) -> Self {
        PausedQemu::start_in(dir, name, options, None)
    }

    /// Starts VM `name` already inside the cgroup whose `cgroup.procs` file is `procs`: a
    /// shell moves itself there and then execs QEMU, so QEMU's exec and its every thread
    /// happen inside it, as under libvirt or systemd.
    #[track_caller]
    pub fn start_in(dir: &Path, name: &str, options: QemuOptions, procs: Option<&Path>) -> Self {
        let pidfile = dir.join("qemu.pid");
        let qmp_socket = options.qmp.then(|| dir.join("qmp.sock"));
        let name_option = match options.debug_threads {
            true => format!("guest={name},debug-threads=on"),
            false => format!("guest={name}"),
        };
        let mut command = match procs {
            None => Command::new(QEMU),
            Some(procs) => {
                let mut shell = Command::new("sh");
                shell
                    .args(["-c", "echo $$ > \"$0\" && exec \"$@\""])
                    .arg(procs)
                    .arg(QEMU);
                shell
            }
        };
        command
            .args(["-enable-kvm", "-S", "-display", "none", "-M", "microvm"])
            .args(["-smp", &options.vcpus.to_string(), "-m", "64"])
            .args(["-name", &name_option]);
        if let Some(socket) = &qmp_socket {
            command.args([
                "-qmp",
                &format!("unix:{},server=on,wait=off", socket.display()),
            ]);
        }
        let output = command
            .args(["-daemonize", "-pidfile"])
            .arg(&pidfile)
            .output();
        let output = match output {
            Ok(output) => output,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                panic!("needs QEMU: {QEMU} is not installed (apt-get install qemu-system-x86)")
            }
            Err(err) => panic!("needs QEMU: cannot run {QEMU}: {err}"),
        };
        let pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .filter(|_| output.status.success());
        match pid {
            Some(pid) => PausedQemu {
                pid: Pid::from_raw(pid),
                qmp_socket,
            },
            None => panic!(
                "{QEMU} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid.as_raw().unsigned_abs()
    }

    /// Kills the VM and waits (up to 10 s) until its process is gone.
    pub fn stop(self) {
        let pid = self.pid();
        drop(self);
        for _ in 0..1000 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("QEMU {pid} did not exit within 10 s of SIGKILL");
    }

    /// The QMP socket, when the options asked for one.
    pub fn qmp_socket(&self) -> Option<&Path> {
        self.qmp_socket.as_deref()
    }
}

impl Drop for PausedQemu {
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
    }
}
