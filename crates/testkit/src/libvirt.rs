//! A real libvirtd for live tests, started by the test itself without systemd: `virtlogd`
//! and `libvirtd` with a private configuration, socket and pid file, both inside a v1 cpuset
//! cgroup of the test's own, their output in a log file that failures quote.
//!
//! Clients reach it at `qemu:///system?socket=DIR/sock/libvirt-sock` ([`Libvirtd::uri`]).
//! What the rest of the host shares with it cannot be made private: `/run/libvirt`, the
//! hooks directory `/etc/libvirt/hooks` (compiled in, read at start-up), the cgroup tree
//! `machine/` at the root of every hierarchy, and `/dev/kvm`, which QEMU (run as
//! `libvirt-qemu`, group `kvm`) can open only once it is `root:kvm 0660`, as udev leaves it
//! on a normal host. On drop, also when the test fails, the harness destroys and undefines
//! its domains, kills its two daemons by pid, puts `/dev/kvm`'s owner and mode back and
//! removes the `machine/` cgroups it caused, deepest first.
//!
//! A missing need (root, libvirt, QEMU, `/dev/kvm`, the cpuset hierarchy) fails the calling
//! test with one line: it never lets it pass unrun.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub const LIBVIRTD: &str = "/usr/sbin/libvirtd";
pub const VIRTLOGD: &str = "/usr/sbin/virtlogd";
pub const VIRSH: &str = "virsh";
/// libvirt's hooks directory, compiled into Debian's libvirtd.
pub const HOOKS_DIR: &str = "/etc/libvirt/hooks";
/// Where libvirt keeps a running domain's QEMU pid: `RUN_DIR/NAME.pid`.
pub const RUN_DIR: &str = "/run/libvirt/qemu";
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CPUSET: &str = "/sys/fs/cgroup/cpuset";
const KVM: &str = "/dev/kvm";
/// How long a virsh call, a daemon's start or its exit may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// A small KVM domain with no disk: `vcpus` vCPUs, `iothreads` iothreads, 64 MiB, and
/// `metadata` (raw XML, e.g. the `<nn:latency .../>` switch) under `<metadata>` when given.
/// Guest code is emulated here: start it paused.
pub fn small_domain(name: &str, vcpus: u32, iothreads: u32, metadata: Option<&str>) -> String {
    let metadata = metadata.map_or(String::new(), |m| format!("  <metadata>{m}</metadata>\n"));
    format!(
        "<domain type='kvm'>\n  <name>{name}</name>\n  <memory unit='MiB'>64</memory>\n  \
         <vcpu placement='static'>{vcpus}</vcpu>\n  <iothreads>{iothreads}</iothreads>\n\
         {metadata}  <os><type arch='x86_64' machine='pc'>hvm</type></os>\n  \
         <features><acpi/></features>\n  <cpu mode='host-passthrough'/>\n  \
         <devices><controller type='usb' model='none'/><memballoon model='none'/></devices>\n\
         </domain>\n"
    )
}

/// The running pair of daemons and the domains the test defined through them.
pub struct Libvirtd {
    dir: tempfile::TempDir,
    scope: PathBuf,
    virtlogd: Option<Child>,
    libvirtd: Option<Child>,
    domains: Vec<String>,
    kvm: Option<KvmAccess>,
    /// `machine/` cgroups that did not exist before the daemons started.
    machine_cgroups: Vec<PathBuf>,
}

impl Libvirtd {
    /// Starts virtlogd and libvirtd and waits until `virsh version` answers. Install a qemu
    /// hook before: libvirtd finds hooks when it starts.
    #[track_caller]
    pub fn start() -> Libvirtd {
        check_needs();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let scope = Path::new(CPUSET).join(format!("nn-libvirtd-{}", std::process::id()));
        // Built first, so that its drop undoes whatever the steps below did before a failure.
        let mut libvirtd = Libvirtd {
            dir,
            scope,
            virtlogd: None,
            libvirtd: None,
            domains: Vec::new(),
            kvm: None,
            machine_cgroups: absent_machine_cgroups(),
        };
        create_scope(&libvirtd.scope);
        libvirtd.kvm = Some(KvmAccess::grant());
        std::fs::create_dir(libvirtd.dir.path().join("sock")).expect("the socket directory");
        std::fs::write(libvirtd.conf(), libvirtd.conf_text()).expect("libvirtd.conf");
        libvirtd.virtlogd = Some(libvirtd.spawn(VIRTLOGD, &[]));
        libvirtd.start_libvirtd();
        libvirtd
    }

    /// The connection URI of this libvirtd's private socket.
    pub fn uri(&self) -> String {
        format!(
            "qemu:///system?socket={}",
            self.dir.path().join("sock/libvirt-sock").display()
        )
    }

    /// The daemons' output so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The two daemons' pids, libvirtd's first.
    pub fn daemon_pids(&self) -> Vec<u32> {
        [&self.libvirtd, &self.virtlogd]
            .into_iter()
            .flatten()
            .map(Child::id)
            .collect()
    }

    /// The cgroup (v1 cpuset) the daemons run in.
    pub fn scope(&self) -> &Path {
        &self.scope
    }

    /// `virsh -c URI ARGS`, killed after 30 s.
    #[track_caller]
    pub fn virsh(&self, args: &[&str]) -> Output {
        let mut command = Command::new(VIRSH);
        command.args(["-c", &self.uri()]).args(args);
        run_with_timeout(&mut command, PATIENCE)
            .unwrap_or_else(|e| panic!("virsh {}: {e}\n{}", args.join(" "), self.log()))
    }

    /// `virsh ARGS` that must succeed; returns its stdout.
    #[track_caller]
    pub fn virsh_ok(&self, args: &[&str]) -> String {
        let output = self.virsh(args);
        assert!(
            output.status.success(),
            "virsh {}: {}\nlibvirtd's log:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim(),
            tail(&self.log())
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Defines the domain `xml` describes (see [`small_domain`]); drop undefines it.
    #[track_caller]
    pub fn define(&mut self, name: &str, xml: &str) {
        let file = self.dir.path().join(format!("{name}.xml"));
        std::fs::write(&file, xml).expect("the domain's XML file");
        self.virsh_ok(&["define", file.to_str().expect("a UTF-8 temporary path")]);
        self.domains.push(name.to_owned());
    }

    /// `virsh start --paused NAME`: its stderr, trimmed, when libvirt refused or failed it.
    pub fn start_paused(&self, name: &str) -> Result<(), String> {
        let output = self.virsh(&["start", "--paused", name]);
        match output.status.success() {
            true => Ok(()),
            false => Err(String::from_utf8_lossy(&output.stderr).trim().to_owned()),
        }
    }

    /// `virsh destroy NAME`, which must succeed.
    #[track_caller]
    pub fn destroy(&self, name: &str) {
        self.virsh_ok(&["destroy", name]);
    }

    /// `virsh undefine NAME`, which must succeed.
    #[track_caller]
    pub fn undefine(&mut self, name: &str) {
        self.virsh_ok(&["undefine", name]);
        self.domains.retain(|d| d != name);
    }

    /// The QEMU process of running domain `name`, from libvirt's pid file.
    pub fn qemu_pid(&self, name: &str) -> Option<u32> {
        let pid = std::fs::read_to_string(Path::new(RUN_DIR).join(format!("{name}.pid")));
        pid.ok()?.trim().parse().ok()
    }

    /// Stops libvirtd (SIGTERM, by pid) and starts it again: its running domains keep
    /// running, and the qemu hook hears `reconnect` for each.
    #[track_caller]
    pub fn restart(&mut self) {
        if let Some(child) = self.libvirtd.take() {
            crate::process::stop(child, Signal::SIGTERM, PATIENCE);
        }
        self.start_libvirtd();
    }

    /// Every `cpuset.cpus` and `cpuset.mems` under `machine/` in the v1 cpuset and the v2
    /// hierarchies, by path: libvirt's own cgroup values.
    pub fn machine_cpusets() -> BTreeMap<PathBuf, String> {
        let mut values = BTreeMap::new();
        for hierarchy in [CPUSET, "/sys/fs/cgroup/unified"] {
            collect_cpusets(&Path::new(hierarchy).join("machine"), &mut values);
        }
        values
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("libvirtd.conf")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemons.log")
    }

    fn conf_text(&self) -> String {
        let sock = self.dir.path().join("sock");
        format!(
            "unix_sock_dir = \"{}\"\nunix_sock_rw_perms = \"0700\"\nunix_sock_ro_perms = \"0700\"\n\
             log_outputs = \"3:file:{}\"\n",
            sock.display(),
            self.log_path().display()
        )
    }

    #[track_caller]
    fn start_libvirtd(&mut self) {
        let conf = self.conf();
        let pidfile = self.dir.path().join("libvirtd.pid");
        let args = [
            "-f",
            conf.to_str().expect("a UTF-8 temporary path"),
            "-p",
            pidfile.to_str().expect("a UTF-8 temporary path"),
        ];
        self.libvirtd = Some(self.spawn(LIBVIRTD, &args));
        let deadline = Instant::now() + PATIENCE;
        loop {
            if self.answers() {
                return;
            }
            let exited = self.libvirtd.as_mut().map(|c| c.try_wait());
            if let Some(Ok(Some(status))) = exited {
                panic!("libvirtd exited ({status}):\n{}", tail(&self.log()));
            }
            assert!(
                Instant::now() < deadline,
                "libvirtd did not answer `virsh version` within {PATIENCE:?}:\n{}",
                tail(&self.log())
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn answers(&self) -> bool {
        let mut command = Command::new(VIRSH);
        command.args(["-c", &self.uri(), "version"]);
        run_with_timeout(&mut command, Duration::from_secs(5)).is_ok_and(|o| o.status.success())
    }

    /// Starts `program` inside the scope: a shell moves itself there and execs it, so the
    /// daemon and all it forks live in the scope (QEMU then moves to libvirt's `machine/`).
    #[track_caller]
    fn spawn(&self, program: &str, args: &[&str]) -> Child {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("the daemons' log file");
        let err = log.try_clone().expect("the daemons' log file");
        Command::new("sh")
            .args(["-c", "echo $$ > \"$0\" && exec \"$@\""])
            .arg(self.scope.join("cgroup.procs"))
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("needs {program}: {e}"))
    }

    fn cleanup_domains(&mut self) {
        for name in std::mem::take(&mut self.domains) {
            let _ = self.virsh(&["destroy", &name]);
            // libvirtd gone or wedged: its QEMU is still ours to stop.
            if let Some(pid) = self.qemu_pid(&name) {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            let _ = self.virsh(&["undefine", &name]);
        }
    }
}

impl Drop for Libvirtd {
    fn drop(&mut self) {
        if self.libvirtd.is_some() {
            self.cleanup_domains();
        }
        for child in [self.libvirtd.take(), self.virtlogd.take()]
            .into_iter()
            .flatten()
        {
            crate::process::stop(child, Signal::SIGTERM, PATIENCE);
        }
        drop(self.kvm.take());
        for cgroup in std::mem::take(&mut self.machine_cgroups) {
            remove_depth_first(&cgroup);
        }
        for _ in 0..100 {
            if std::fs::remove_dir(&self.scope).is_ok() || !self.scope.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[track_caller]
fn check_needs() {
    assert!(nix::unistd::geteuid().is_root(), "needs root");
    for program in [LIBVIRTD, VIRTLOGD] {
        assert!(
            Path::new(program).exists(),
            "needs {program}: apt-get install libvirt-daemon-system libvirt-daemon-driver-qemu"
        );
    }
    assert!(
        Command::new(VIRSH).arg("--version").output().is_ok(),
        "needs virsh: apt-get install libvirt-clients"
    );
    assert!(
        Command::new(crate::qemu::QEMU)
            .arg("--version")
            .output()
            .is_ok(),
        "needs QEMU: apt-get install qemu-system-x86"
    );
    assert!(Path::new(KVM).exists(), "needs {KVM}");
    assert!(
        Path::new(CPUSET).join("tasks").exists(),
        "needs a cgroup v1 cpuset hierarchy at {CPUSET}"
    );
}

/// A child cpuset with every CPU and memory node of the root.
#[track_caller]
fn create_scope(scope: &Path) {
    std::fs::create_dir(scope).unwrap_or_else(|e| panic!("{}: {e}", scope.display()));
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let parent = std::fs::read_to_string(Path::new(CPUSET).join(file));
        let parent = parent.unwrap_or_else(|e| panic!("{CPUSET}/{file}: {e}"));
        std::fs::write(scope.join(file), parent.trim())
            .unwrap_or_else(|e| panic!("{}/{file}: {e}", scope.display()));
    }
}

/// `machine/` in each mounted hierarchy where it does not exist yet.
fn absent_machine_cgroups() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(CGROUP_ROOT) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path().join("machine"))
        .filter(|machine| !machine.exists())
        .collect()
}

/// Removes the cgroup `dir` and every cgroup below it, children first.
fn remove_depth_first(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_depth_first(&entry.path());
            }
        }
    }
    for _ in 0..50 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn collect_cpusets(dir: &Path, values: &mut BTreeMap<PathBuf, String>) {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if let Ok(value) = std::fs::read_to_string(dir.join(file)) {
            values.insert(dir.join(file), value);
        }
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_cpusets(&entry.path(), values);
        }
    }
}

/// Runs `command` to completion, killing it after `timeout`.
pub fn run_with_timeout(command: &mut Command, timeout: Duration) -> Result<Output, String> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = Pid::from_raw(child.id() as i32);
    let (done, waited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match waited.recv_timeout(timeout) {
        Ok(output) => output.map_err(|e| e.to_string()),
        Err(_) => {
            let _ = kill(pid, Signal::SIGKILL);
            Err(format!("no answer within {timeout:?}, killed"))
        }
    }
}

/// The last 40 lines of `log`.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// `/dev/kvm` opened to group `kvm` (mode 0660) for QEMU, which libvirt runs as
/// `libvirt-qemu`; the exact prior owner and mode come back on drop.
struct KvmAccess {
    uid: u32,
    gid: u32,
    mode: u32,
}

impl KvmAccess {
    #[track_caller]
    fn grant() -> KvmAccess {
        let meta = std::fs::metadata(KVM).unwrap_or_else(|e| panic!("needs {KVM}: {e}"));
        let prior = KvmAccess {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
        };
        let kvm_gid = group_id("kvm").expect("needs the group kvm in /etc/group");
        std::os::unix::fs::chown(KVM, None, Some(kvm_gid))
            .unwrap_or_else(|e| panic!("{KVM}: chgrp kvm: {e}"));
        let mode = prior.mode | 0o660;
        std::fs::set_permissions(KVM, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{KVM}: chmod {mode:o}: {e}"));
        prior
    }
}

impl Drop for KvmAccess {
    fn drop(&mut self) {
        let _ = std::os::unix::fs::chown(KVM, Some(self.uid), Some(self.gid));
        let _ = std::fs::set_permissions(KVM, std::fs::Permissions::from_mode(self.mode));
    }
}

fn group_id(name: &str) -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}
