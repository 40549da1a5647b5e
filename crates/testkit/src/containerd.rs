//! A real containerd 1.7 with NRI on, for live tests that play kubelet (see
//! shared/recipes/containerd-nri.md): its own root, state, sockets and configuration under a
//! temporary directory, runc from the distribution, images built here and imported with
//! `ctr` (no registry), pods and containers driven through the CRI ([`CriClient`]).
//!
//! containerd and its shims run in a v1 cpuset cgroup of the test's own, `/nn-containerd-…`,
//! and pods get `/nn-containerd-…/pods` as their cgroup parent (cgroupfs driver), so every
//! container's cgroup is `/nn-containerd-…/pods/ID` in each hierarchy. Pods use the host's
//! network (no CNI). On drop, also when the test fails, the harness removes its pods, stops
//! containerd by pid, kills whatever process is left in its cgroups, unmounts what is mounted
//! under its directory, removes its cgroups and stale shim sockets, and its directory.
//! [`Containerd::stop`] does the same and reports whatever it could not undo.
//!
//! The binary is `$NEARNATIVE_CONTAINERD` (or `containerd` on PATH), `ctr` the one beside
//! it. A missing need fails the calling test with one line: it never lets it pass unrun.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::fs::File;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

use crate::cri::{
    ContainerConfig, ContainerMetadata, CriClient, CriError, ImageSpec, LinuxContainerConfig,
    LinuxContainerResources, LinuxContainerSecurityContext, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata,
};

pub const RUNC: &str = "/usr/sbin/runc";
pub const BUSYBOX: &str = "/bin/busybox";
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CPUSET: &str = "/sys/fs/cgroup/cpuset";
/// Where containerd 1.7 puts shim sockets whatever its configuration says.
const SHIM_SOCKETS: &str = "/run/containerd/s";
/// How long containerd may take to start, stop or answer.
const PATIENCE: Duration = Duration::from_secs(30);
/// The images the harness builds and imports.
pub const PAUSE_IMAGE: &str = "docker.io/library/nn-pause:1";
pub const BUSYBOX_IMAGE: &str = "docker.io/library/nn-busybox:1";
/// A command that sleeps and exits at once on SIGTERM (as PID 1 it has no default handler).
const SLEEPER: &str = "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done";
/// The busybox applets the images link.
const APPLETS: &[&str] = &["sh", "sleep", "cat", "grep", "true"];
const CFS_PERIOD_US: i64 = 100_000;

/// A pod the harness ran: its sandbox id and the configuration CreateContainer repeats.
#[derive(Clone, Debug)]
pub struct Pod {
    pub id: String,
    pub name: String,
    /// The pod's own cgroup below the harness's `pods` (kubelet's `pod<UID>`), its
    /// sandbox's and containers' cgroup parent.
    pub cgroup: String,
    config: PodSandboxConfig,
}

/// The private containerd and what the test started through it.
pub struct Containerd {
    dir: tempfile::TempDir,
    scope_name: String,
    child: Option<Child>,
    cri: Option<CriClient>,
    pods: Vec<String>,
    /// Directories under /run this harness made (containerd's shim socket directory).
    made_run_dirs: Vec<PathBuf>,
    shim_sockets_before: BTreeSet<PathBuf>,
}

impl Containerd {
    /// Builds and imports the images, starts containerd with NRI on and connects the CRI
    /// client.
    #[track_caller]
    pub fn start() -> Containerd {
        check_needs();
        let dir = tempfile::Builder::new()
            .prefix("nn-containerd")
            .tempdir()
            .expect("a temporary directory");
        let scope_name = format!(
            "nn-containerd-{}-{}",
            std::process::id(),
            dir.path()
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().replace('.', ""))
        );
        // Built first, so that its drop undoes whatever the steps below did before a failure.
        let mut containerd = Containerd {
            dir,
            scope_name,
            child: None,
            cri: None,
            pods: Vec::new(),
            made_run_dirs: ["/run/containerd", SHIM_SOCKETS]
                .iter()
                .map(PathBuf::from)
                .filter(|d| !d.exists())
                .collect(),
            shim_sockets_before: list(Path::new(SHIM_SOCKETS)),
        };
        create_scope(&containerd.scope_dir());
        for sub in ["sock", "logs", "nri/plugins", "nri/conf.d"] {
            std::fs::create_dir_all(containerd.path(sub)).expect("containerd's directories");
        }
        std::fs::write(containerd.path("config.toml"), containerd.config_toml())
            .expect("containerd's config.toml");
        containerd.launch();
        containerd.import(PAUSE_IMAGE, SLEEPER);
        containerd.import(BUSYBOX_IMAGE, SLEEPER);
        containerd
    }

    /// containerd's NRI socket, for the plugin.
    pub fn nri_socket(&self) -> PathBuf {
        self.path("sock/nri.sock")
    }

    /// containerd's gRPC (CRI) socket.
    pub fn grpc_socket(&self) -> PathBuf {
        self.path("sock/containerd.sock")
    }

    /// The name of the cgroup containerd, its shims and (below `pods`) its pods run in.
    pub fn scope_name(&self) -> &str {
        &self.scope_name
    }

    /// That cgroup in the v1 cpuset hierarchy.
    pub fn scope_dir(&self) -> PathBuf {
        Path::new(CPUSET).join(&self.scope_name)
    }

    /// The cgroup every pod's own cgroup lies in (kubelet's `kubepods`).
    pub fn pods_cgroup(&self) -> String {
        format!("/{}/pods", self.scope_name)
    }

    /// containerd's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The connected CRI client.
    pub fn cri(&self) -> &CriClient {
        self.cri.as_ref().expect("containerd runs")
    }

    /// The last lines of containerd's log, for failure messages.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.path("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Runs a host-network pod named `name` with `annotations`.
    #[track_caller]
    pub fn run_pod(&mut self, name: &str, annotations: &[(&str, &str)]) -> Pod {
        // One cgroup per pod, as kubelet makes: the plugin's scope for a container is its
        // pod's cgroup, which must not hold the other pods' containers.
        let cgroup = format!("{}/pod-{name}", self.pods_cgroup());
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_owned(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            }),
            // runc refuses a hostname without a private UTS namespace, which host
            // networking denies.
            hostname: String::new(),
            log_directory: self.path("logs").join(name).display().to_string(),
            annotations: owned(annotations),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: cgroup.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(host_network()),
                }),
            }),
            ..Default::default()
        };
        let id = self
            .cri()
            .run_pod_sandbox(config.clone())
            .unwrap_or_else(|e| panic!("pod {name}: {e}\ncontainerd's log:\n{}", self.log()));
        self.pods.push(id.clone());
        Pod {
            id,
            name: name.to_owned(),
            cgroup,
            config,
        }
    }

    /// Creates container `name` (busybox, sleeping) in `pod`, with a CPU limit of
    /// `cpu_millis` thousandths of a CPU when given (kubelet's quota, period and shares).
    /// An NRI plugin may refuse it: the error carries its reason.
    pub fn create_container(
        &self,
        pod: &Pod,
        name: &str,
        cpu_millis: Option<u32>,
    ) -> Result<String, CriError> {
        let resources = cpu_millis.map(|millis| LinuxContainerResources {
            cpu_period: CFS_PERIOD_US,
            cpu_quota: CFS_PERIOD_US * i64::from(millis) / 1000,
            cpu_shares: 1024 * i64::from(millis) / 1000,
            ..Default::default()
        });
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.to_owned(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: BUSYBOX_IMAGE.into(),
            }),
            log_path: format!("{name}.log"),
            linux: Some(LinuxContainerConfig {
                resources,
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(host_network()),
                }),
            }),
            ..Default::default()
        };
        self.cri()
            .create_container(&pod.id, config, pod.config.clone())
    }

    /// Creates and starts container `name` in `pod` (see [`Containerd::create_container`]);
    /// returns its id.
    #[track_caller]
    pub fn run_container(&self, pod: &Pod, name: &str, cpu_millis: Option<u32>) -> String {
        let id = self
            .create_container(pod, name, cpu_millis)
            .unwrap_or_else(|e| panic!("container {name}: {e}\ncontainerd's log:\n{}", self.log()));
        self.cri()
            .start_container(&id)
            .unwrap_or_else(|e| panic!("container {name}: {e}\ncontainerd's log:\n{}", self.log()));
        id
    }

    /// Stops and removes `pod` with its containers.
    #[track_caller]
    pub fn remove_pod(&mut self, pod: &Pod) {
        let cri = self.cri();
        let removed = cri
            .stop_pod_sandbox(&pod.id)
            .and_then(|()| cri.remove_pod_sandbox(&pod.id));
        if let Err(e) = removed {
            panic!("pod {}: {e}\ncontainerd's log:\n{}", pod.name, self.log());
        }
        self.pods.retain(|id| *id != pod.id);
        // As kubelet does once the pod is gone: runc removed only its own leaves.
        for hierarchy in list(Path::new(CGROUP_ROOT)) {
            let _ = std::fs::remove_dir(hierarchy.join(pod.cgroup.trim_start_matches('/')));
        }
    }

    /// Container `id`'s cgroup in the v1 cpuset hierarchy.
    pub fn container_cgroup(&self, id: &str) -> PathBuf {
        let pods = Path::new(CPUSET).join(self.pods_cgroup().trim_start_matches('/'));
        let mut found = list(&pods).into_iter().map(|pod| pod.join(id));
        found
            .find(|cgroup| cgroup.is_dir())
            .unwrap_or_else(|| pods.join(id))
    }

    /// Container `id`'s `cpuset.cpus`, trimmed.
    #[track_caller]
    pub fn container_cpuset(&self, id: &str) -> String {
        let file = self.container_cgroup(id).join("cpuset.cpus");
        let text = std::fs::read_to_string(&file);
        text.unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .trim()
            .to_owned()
    }

    /// The first process of container `id` (its init: the sleeping shell).
    #[track_caller]
    pub fn container_pid(&self, id: &str) -> u32 {
        let file = self.container_cgroup(id).join("cgroup.procs");
        let text = std::fs::read_to_string(&file);
        let text = text.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let pid = text.lines().next().and_then(|l| l.trim().parse().ok());
        pid.unwrap_or_else(|| panic!("{}: no process", file.display()))
    }

    /// Every process in the harness's cgroups (containerd, shims, pods), by the cpuset tree.
    pub fn processes(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        collect_procs(&self.scope_dir(), &mut pids);
        pids
    }

    /// Stops containerd by its pid (SIGTERM) and starts it again; the pods keep running.
    #[track_caller]
    pub fn restart(&mut self) {
        self.cri = None;
        if let Some(child) = self.child.take() {
            crate::process::stop(child, Signal::SIGTERM, PATIENCE);
        }
        self.launch();
    }

    /// Undoes everything and says what could not be undone: a process whose command line
    /// names the harness's directory, a mount under it, a cgroup of its scope in any
    /// hierarchy, the directory itself. Empty when all is clean.
    pub fn stop(mut self) -> Vec<String> {
        self.clean_up();
        let dir = self.dir.path().to_path_buf();
        let scope_name = self.scope_name.clone();
        drop(self);
        leftovers(&dir, &scope_name)
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// Starts containerd inside the scope and waits until the CRI answers.
    #[track_caller]
    fn launch(&mut self) {
        for socket in [self.grpc_socket(), self.nri_socket()] {
            let _ = std::fs::remove_file(socket);
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.path("containerd.log"))
            .expect("containerd's log file");
        let err = log.try_clone().expect("containerd's log file");
        let binary = containerd_binary();
        let child = Command::new("sh")
            .args(["-c", "echo $$ > \"$0\" && exec \"$@\""])
            .arg(self.scope_dir().join("cgroup.procs"))
            .arg(&binary)
            .arg("--config")
            .arg(self.path("config.toml"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            // Its own process group: a terminal's signals are for the test alone.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("needs {}: {e}", binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(cri) = self.answering_cri() {
                self.cri = Some(cri);
                break;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("containerd exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "containerd's CRI did not answer within {PATIENCE:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.wait_for_nri_socket();
    }

    fn answering_cri(&self) -> Option<CriClient> {
        if !self.grpc_socket().exists() {
            return None;
        }
        let cri = CriClient::connect(&self.grpc_socket()).ok()?;
        cri.version().ok().map(|_| cri)
    }

    #[track_caller]
    fn wait_for_nri_socket(&self) {
        let deadline = Instant::now() + PATIENCE;
        while !self.nri_socket().exists() {
            assert!(
                Instant::now() < deadline,
                "no NRI socket {} within {PATIENCE:?}:\n{}",
                self.nri_socket().display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Builds the OCI image `name` running `sh -c COMMAND` and imports it into k8s.io.
    #[track_caller]
    fn import(&self, name: &str, command: &str) {
        let file = self.path(&format!("{}.tar", image_file_name(name)));
        std::fs::write(&file, oci_image(name, command)).expect("the image tarball");
        let ctr = ctr_binary();
        let address = self.grpc_socket();
        let output = Command::new(&ctr)
            .arg("-a")
            .arg(&address)
            .args(["-n", "k8s.io", "images", "import"])
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("needs {}: {e}", ctr.display()));
        assert!(
            output.status.success(),
            "ctr images import {name}: {}\ncontainerd's log:\n{}",
            String::from_utf8_lossy(&output.stderr).trim(),
            self.log()
        );
    }

    fn config_toml(&self) -> String {
        let r = self.dir.path().display();
        format!(
            r#"version = 2
root = "{r}/root"
state = "{r}/state"
[grpc]
  address = "{r}/sock/containerd.sock"
[ttrpc]
  address = "{r}/sock/containerd.sock.ttrpc"
[debug]
  address = "{r}/sock/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{r}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        Root = "{r}/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{r}/cni/bin"
    conf_dir = "{r}/cni/net.d"
[plugins."io.containerd.nri.v1.nri"]
  disable = false
  disable_connections = false
  socket_path = "{r}/sock/nri.sock"
  plugin_path = "{r}/nri/plugins"
  plugin_config_path = "{r}/nri/conf.d"
  plugin_registration_timeout = "5s"
  plugin_request_timeout = "2s"
"#
        )
    }

    /// Removes the pods through the CRI while containerd runs, then stops it and undoes by
    /// hand what is left.
    fn clean_up(&mut self) {
        if self.cri.is_some() {
            for id in std::mem::take(&mut self.pods) {
                let _ = self.cri().stop_pod_sandbox(&id);
                let _ = self.cri().remove_pod_sandbox(&id);
            }
        }
        self.cri = None;
        if let Some(child) = self.child.take() {
            crate::process::stop(child, Signal::SIGTERM, PATIENCE);
        }
        self.kill_processes();
        unmount_below(self.dir.path());
        for hierarchy in list(Path::new(CGROUP_ROOT)) {
            remove_depth_first(&hierarchy.join(&self.scope_name));
        }
        for socket in list(Path::new(SHIM_SOCKETS)) {
            if !self.shim_sockets_before.contains(&socket) && UnixStream::connect(&socket).is_err()
            {
                let _ = std::fs::remove_file(socket);
            }
        }
        for dir in self.made_run_dirs.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// SIGKILLs every process in the scope's cgroups (shims, sandboxes, containers): all
    /// of them were started by this harness.
    fn kill_processes(&self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let pids = self.processes();
            if pids.is_empty() || Instant::now() > deadline {
                return;
            }
            for pid in pids {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.clean_up();
    }
}

/// What a stopped harness left: processes naming `dir`, mounts under it, cgroups named
/// `scope_name`, `dir` itself.
fn leftovers(dir: &Path, scope_name: &str) -> Vec<String> {
    let mut left = Vec::new();
    let needle = dir.display().to_string();
    for process in list(Path::new("/proc")) {
        let cmdline = std::fs::read(process.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            left.push(format!("process {}: {cmdline}", process.display()));
        }
    }
    for mount in mounts_below(dir) {
        left.push(format!("mount {}", mount.display()));
    }
    for hierarchy in list(Path::new(CGROUP_ROOT)) {
        let cgroup = hierarchy.join(scope_name);
        if cgroup.exists() {
            left.push(format!("cgroup {}", cgroup.display()));
        }
    }
    if dir.exists() {
        left.push(format!("directory {}", dir.display()));
    }
    left
}

#[track_caller]
fn check_needs() {
    assert!(nix::unistd::geteuid().is_root(), "needs root");
    assert!(
        Path::new(RUNC).exists(),
        "needs {RUNC}: apt-get install runc"
    );
    assert!(
        Path::new(BUSYBOX).exists(),
        "needs {BUSYBOX}: apt-get install busybox-static"
    );
    assert!(
        Path::new(CPUSET).join("tasks").exists(),
        "needs a cgroup v1 cpuset hierarchy at {CPUSET}"
    );
    let binary = containerd_binary();
    let version = Command::new(&binary).arg("--version").output();
    let version = version.unwrap_or_else(|e| {
        panic!(
            "needs containerd 1.7 ($NEARNATIVE_CONTAINERD or on PATH; .ci/fetch-containerd): {}: {e}",
            binary.display()
        )
    });
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.contains(" 1.7.") || version.contains(" v1.7."),
        "needs containerd 1.7 (NRI v0.6): {} says {}",
        binary.display(),
        version.trim()
    );
}

fn containerd_binary() -> PathBuf {
    std::env::var_os("NEARNATIVE_CONTAINERD").map_or_else(|| "containerd".into(), PathBuf::from)
}

/// `ctr` beside containerd when it has a directory, else on PATH.
fn ctr_binary() -> PathBuf {
    let binary = containerd_binary();
    let beside = binary.parent().map(|dir| dir.join("ctr"));
    beside
        .filter(|ctr| ctr.exists())
        .unwrap_or_else(|| "ctr".into())
}

fn host_network() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
    }
}

fn owned(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn image_file_name(name: &str) -> String {
    name.rsplit('/').next().unwrap_or(name).replace(':', "-")
}

/// An OCI image-layout tarball: one layer with busybox and its applets, a config whose
/// Entrypoint is `sh -c COMMAND`, and an index naming the image `name` for containerd.
#[track_caller]
pub fn oci_image(name: &str, command: &str) -> Vec<u8> {
    oci_image_of(name, command, busybox_layer())
}

/// An OCI image-layout tarball whose one layer is the tarball `layer`.
fn oci_image_of(name: &str, command: &str, layer: Vec<u8>) -> Vec<u8> {
    let layer_digest = sha256(&layer);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Entrypoint": ["/bin/sh", "-c", command], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    })
    .to_string()
    .into_bytes();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", &layer)],
    })
    .to_string()
    .into_bytes();
    let mut entry = descriptor("application/vnd.oci.image.manifest.v1+json", &manifest);
    entry["annotations"] = serde_json::json!({ "io.containerd.image.name": name });
    entry["platform"] = serde_json::json!({ "architecture": arch, "os": "linux" });
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [entry] }).to_string();
    let mut image = tar::Builder::new(Vec::new());
    add_file(
        &mut image,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        0o644,
    );
    add_file(&mut image, "index.json", index.as_bytes(), 0o644);
    for blob in [&config, &manifest, &layer] {
        let path = format!("blobs/sha256/{}", hex(&Sha256::digest(blob)));
        add_file(&mut image, &path, blob, 0o644);
    }
    image.into_inner().expect("an in-memory tarball")
}

/// One uncompressed layer: /bin/busybox and a symlink to it per applet.
#[track_caller]
fn busybox_layer() -> Vec<u8> {
    let busybox = std::fs::read(BUSYBOX).unwrap_or_else(|e| panic!("needs {BUSYBOX}: {e}"));
    let mut layer = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    layer
        .append_data(&mut dir, "bin/", std::io::empty())
        .expect("an in-memory tarball");
    add_file(&mut layer, "bin/busybox", &busybox, 0o755);
    for applet in APPLETS {
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_mode(0o777);
        link.set_size(0);
        layer
            .append_link(&mut link, format!("bin/{applet}"), "busybox")
            .expect("an in-memory tarball");
    }
    layer.into_inner().expect("an in-memory tarball")
}

fn add_file(tarball: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_entry_type(tar::EntryType::Regular);
    tarball
        .append_data(&mut header, path, data)
        .expect("an in-memory tarball");
}

fn descriptor(media_type: &str, blob: &[u8]) -> serde_json::Value {
    serde_json::json!({ "mediaType": media_type, "digest": sha256(blob), "size": blob.len() })
}

fn sha256(blob: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(blob)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
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

fn collect_procs(cgroup: &Path, pids: &mut Vec<u32>) {
    let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
    pids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    for child in list(cgroup).into_iter().filter(|p| p.is_dir()) {
        collect_procs(&child, pids);
    }
}

/// Removes the cgroup `dir` and every cgroup below it, children first.
fn remove_depth_first(dir: &Path) {
    for child in list(dir).into_iter().filter(|p| p.is_dir()) {
        remove_depth_first(&child);
    }
    for _ in 0..50 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Mount points under `dir`, deepest first, from /proc/self/mountinfo (its field 5).
fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|point| point.starts_with(dir))
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    mounts
}

fn unmount_below(dir: &Path) {
    for point in mounts_below(dir) {
        let _ = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The entries of `dir`, sorted; none when it cannot be read.
fn list(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index names the image for containerd, and every blob it reaches is in the
    /// tarball under its digest.
    #[test]
    fn the_image_layout_names_the_image_and_holds_its_blobs() {
        let mut layer = tar::Builder::new(Vec::new());
        add_file(&mut layer, "bin/true", b"#!", 0o755);
        let image = oci_image_of("docker.io/library/x:1", "true", layer.into_inner().unwrap());
        let mut archive = tar::Archive::new(image.as_slice());
        let mut files = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            files.insert(entry.path().unwrap().display().to_string(), data);
        }
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let entry = &index["manifests"][0];
        assert_eq!(
            entry["annotations"]["io.containerd.image.name"],
            "docker.io/library/x:1"
        );
        let blob = |digest: &serde_json::Value| {
            let digest = digest.as_str().unwrap().trim_start_matches("sha256:");
            files[&format!("blobs/sha256/{digest}")].clone()
        };
        let manifest: serde_json::Value = serde_json::from_slice(&blob(&entry["digest"])).unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(&blob(&manifest["config"]["digest"])).unwrap();
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/bin/sh", "-c", "true"])
        );
        let layer = blob(&manifest["layers"][0]["digest"]);
        assert_eq!(
            sha256(&layer),
            config["rootfs"]["diff_ids"][0],
            "an uncompressed layer's diff id is its digest"
        );
    }
}
