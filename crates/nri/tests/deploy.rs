//! The Kubernetes deployment (deploy/kubernetes): every manifest parses, and the DaemonSet,
//! its ConfigMap, the Containerfile and the example pod agree with each other and with the
//! plugin on what the deployment relies on: the host's PID namespace, the mounts and their
//! host paths, the NRI socket, the privileges, the image, the entrypoint.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use nearnative_nri::annotations::{self, Decision};
use nearnative_nri::api::resources::{OptionalInt64, OptionalUInt64};
use nearnative_nri::api::{LinuxCpu, LinuxResources};
use nearnative_nri::runner::{DEFAULT_INDEX, DEFAULT_SOCKET};
use nearnative_plan::Level;
use serde::Deserialize;
use serde_norway::Value;

/// The CLI's defaults (docs/daemon.md): the host's `nearnative status`, `verify`, `apply` and
/// `revert` find the daemon's state and socket there, so the DaemonSet must keep them.
const STATE_DIR: &str = "/var/lib/nearnative";
const CONTROL_SOCKET: &str = "/run/nearnative/control.sock";
const POLICY_DIR: &str = "/etc/nearnative/workloads.d";
/// kubelet's CPU manager state, which the plugin reads for its warning.
const KUBELET_STATE: &str = "/var/lib/kubelet/cpu_manager_state";
/// The label the rollout goes by (docs/kubernetes.md, "Rolling out").
const NODE_LABEL: &str = "nearnative.io/latency-sensitive";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

/// Every `*.yaml` file under deploy/kubernetes, examples included, sorted.
fn manifest_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(manifest_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The documents of one manifest file, each a Kubernetes object.
fn documents(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|document| {
            Value::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

/// The objects `kubectl apply -f deploy/kubernetes/` creates: the top directory only.
fn applied_objects() -> Vec<Value> {
    manifest_files(&deploy_dir())
        .iter()
        .filter(|path| path.parent() == Some(deploy_dir().as_path()))
        .flat_map(|path| documents(path))
        .collect()
}

fn the_one(objects: &[Value], kind: &str) -> Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(
        found.len(),
        1,
        "one {kind} in deploy/kubernetes, not {}",
        found.len()
    );
    found[0].clone()
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, not {value:?}"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("expected a list, not {value:?}"))
        .iter()
        .map(|v| text(v).to_owned())
        .collect()
}

fn pod_spec(daemonset: &Value) -> &Value {
    &daemonset["spec"]["template"]["spec"]
}

fn container(daemonset: &Value) -> &Value {
    let containers = pod_spec(daemonset)["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1, "the DaemonSet runs one container");
    &containers[0]
}

/// A volume mount with the host path its volume names (`None` for a volume that is not a
/// hostPath).
struct Mount {
    mount_path: String,
    host_path: Option<String>,
    read_only: bool,
    propagation: Option<String>,
    volume: Value,
    sub_path: Option<String>,
}

fn mounts(daemonset: &Value) -> Vec<Mount> {
    let volumes: HashMap<&str, &Value> = pod_spec(daemonset)["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| (text(&v["name"]), v))
        .collect();
    container(daemonset)["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| {
            let name = text(&m["name"]);
            let volume = volumes
                .get(name)
                .unwrap_or_else(|| panic!("volumeMount {name} names no volume"));
            Mount {
                mount_path: text(&m["mountPath"]).to_owned(),
                host_path: volume["hostPath"]["path"].as_str().map(str::to_owned),
                read_only: m["readOnly"].as_bool().unwrap_or(false),
                propagation: m["mountPropagation"].as_str().map(str::to_owned),
                volume: (*volume).clone(),
                sub_path: m["subPath"].as_str().map(str::to_owned),
            }
        })
        .collect()
}

/// The mount that holds `path` in the container (the deepest one).
fn mount_holding<'a>(mounts: &'a [Mount], path: &str) -> &'a Mount {
    mounts
        .iter()
        .filter(|m| Path::new(path).starts_with(&m.mount_path))
        .max_by_key(|m| m.mount_path.len())
        .unwrap_or_else(|| panic!("no volume holds {path}"))
}

/// `path` is the host's own: it lies in a hostPath volume mounted at its host path.
fn assert_host_path(mounts: &[Mount], path: &str) {
    let mount = mount_holding(mounts, path);
    assert_eq!(
        mount.host_path.as_deref(),
        Some(mount.mount_path.as_str()),
        "{path} must be the host's {path}: its volume is mounted at {} from {:?}",
        mount.mount_path,
        mount.host_path
    );
}

/// The exec form of the Containerfile's last ENTRYPOINT (the final stage's).
fn containerfile_entrypoint() -> Vec<String> {
    let text = fs::read_to_string(deploy_dir().join("Containerfile")).unwrap();
    let line = text
        .lines()
        .rfind(|l| l.starts_with("ENTRYPOINT "))
        .expect("the Containerfile has an ENTRYPOINT");
    serde_json::from_str(line.trim_start_matches("ENTRYPOINT ")).expect("ENTRYPOINT in exec form")
}

/// What the daemon's container runs: the image's entrypoint, then the DaemonSet's args.
fn argv(daemonset: &Value) -> Vec<String> {
    let container = container(daemonset);
    assert!(
        container["command"].is_null(),
        "the DaemonSet keeps the image's entrypoint, not a command of its own"
    );
    let mut argv = containerfile_entrypoint();
    argv.extend(strings(&container["args"]));
    argv
}

/// The value of `--flag=VALUE` or `--flag VALUE`; `Some("")` for a bare `--flag`.
fn flag(argv: &[String], name: &str) -> Option<String> {
    argv.iter().enumerate().find_map(|(i, arg)| {
        let rest = arg.strip_prefix(name)?;
        if let Some(value) = rest.strip_prefix('=') {
            return Some(value.to_owned());
        }
        rest.is_empty().then(|| {
            argv.get(i + 1)
                .filter(|next| !next.starts_with("--"))
                .cloned()
                .unwrap_or_default()
        })
    })
}

#[test]
fn every_manifest_parses_as_kubernetes_objects() {
    let files = manifest_files(&deploy_dir());
    assert!(files.len() >= 4, "deploy/kubernetes holds {files:?}");
    for file in &files {
        let objects = documents(file);
        assert!(!objects.is_empty(), "{}: no object", file.display());
        for object in objects {
            for field in ["apiVersion", "kind"] {
                assert!(object[field].is_string(), "{}: no {field}", file.display());
            }
            assert!(
                object["metadata"]["name"].is_string(),
                "{}: a {:?} without a name",
                file.display(),
                object["kind"]
            );
        }
    }
}

#[test]
fn everything_applied_lives_in_the_namespace_it_defines() {
    let objects = applied_objects();
    let namespace = the_one(&objects, "Namespace");
    let name = text(&namespace["metadata"]["name"]);
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "privileged",
        "Pod Security Admission would refuse a privileged hostPID pod"
    );
    for object in objects.iter().filter(|o| o["kind"] != "Namespace") {
        assert_eq!(object["metadata"]["namespace"], name, "{object:?}");
    }
    let account = the_one(&objects, "ServiceAccount");
    let daemonset = the_one(&objects, "DaemonSet");
    assert_eq!(
        pod_spec(&daemonset)["serviceAccountName"],
        account["metadata"]["name"]
    );
    assert_eq!(account["automountServiceAccountToken"], false);
    assert_eq!(pod_spec(&daemonset)["automountServiceAccountToken"], false);
}

#[test]
fn the_daemonset_sees_the_host_and_runs_on_every_labelled_node() {
    let daemonset = the_one(&applied_objects(), "DaemonSet");
    let spec = pod_spec(&daemonset);
    assert_eq!(spec["hostPID"], true, "the daemon pins threads by host pid");
    assert_eq!(
        spec["hostNetwork"], true,
        "the proc connector reports only to the initial network namespace"
    );
    assert_eq!(spec["priorityClassName"], "system-node-critical");
    assert_eq!(spec["nodeSelector"][NODE_LABEL], "enabled");
    let tolerates_every_taint = spec["tolerations"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|t| t["operator"] == "Exists" && t["key"].is_null() && t["effect"].is_null());
    assert!(tolerates_every_taint, "{:?}", spec["tolerations"]);
    assert_eq!(
        daemonset["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
        1
    );
    let labels = &daemonset["spec"]["template"]["metadata"]["labels"];
    for (key, value) in daemonset["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap()
    {
        assert_eq!(&labels[text(key)], value, "the selector matches the pods");
    }
}

#[test]
fn the_daemonset_mounts_the_host_paths_the_daemon_uses() {
    let daemonset = the_one(&applied_objects(), "DaemonSet");
    let mounts = mounts(&daemonset);
    for path in ["/sys", "/sys/fs/cgroup", "/sys/devices/system/cpu"] {
        assert_host_path(&mounts, path);
        assert!(!mount_holding(&mounts, path).read_only, "{path} is written");
    }
    let socket_dir = Path::new(DEFAULT_SOCKET).parent().unwrap();
    assert_host_path(&mounts, socket_dir.to_str().unwrap());
    assert!(
        mount_holding(&mounts, DEFAULT_SOCKET).mount_path == socket_dir.to_str().unwrap(),
        "the socket's directory is mounted, so a runtime's new socket shows"
    );
    assert_host_path(&mounts, STATE_DIR);
    assert_host_path(&mounts, CONTROL_SOCKET);

    assert_host_path(&mounts, KUBELET_STATE);
    let kubelet = mount_holding(&mounts, KUBELET_STATE);
    assert!(kubelet.read_only, "kubelet's directory is only read");
    assert_eq!(
        kubelet.propagation.as_deref(),
        Some("HostToContainer"),
        "pod volumes unmounted on the host must not stay busy here"
    );

    assert!(
        mounts.iter().all(|m| m.mount_path != "/proc"),
        "/proc is the host's through hostPID, not a volume"
    );
}

#[test]
fn the_policy_files_reach_the_daemon_as_regular_files_it_trusts() {
    let objects = applied_objects();
    let daemonset = the_one(&objects, "DaemonSet");
    let configmap = the_one(&objects, "ConfigMap");
    let keys: Vec<&str> = configmap["data"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(text)
        .collect();
    assert!(!keys.is_empty());
    let policy_mounts: Vec<Mount> = mounts(&daemonset)
        .into_iter()
        .filter(|m| !m.volume["configMap"].is_null())
        .collect();
    for key in keys {
        assert!(
            key.ends_with(".toml") && !key.starts_with('.'),
            "{key}: the daemon reads only *.toml files that are not hidden"
        );
        let mount = policy_mounts
            .iter()
            .find(|m| m.sub_path.as_deref() == Some(key))
            .unwrap_or_else(|| panic!("{key} is not mounted by subPath: a whole ConfigMap volume shows links, which the daemon refuses"));
        assert_eq!(mount.mount_path, format!("{POLICY_DIR}/{key}"));
        assert_eq!(
            mount.volume["configMap"]["name"],
            configmap["metadata"]["name"]
        );
        let mode = mount.volume["configMap"]["defaultMode"]
            .as_u64()
            .expect("defaultMode set");
        assert_eq!(mode & 0o022, 0, "mode {mode:o}: group or others may write");
    }
    let argv = argv(&daemonset);
    assert_eq!(flag(&argv, "--policy-dir").as_deref(), Some(POLICY_DIR));
}

#[test]
fn the_daemon_runs_as_the_nri_plugin_on_the_runtimes_socket() {
    let daemonset = the_one(&applied_objects(), "DaemonSet");
    let argv = argv(&daemonset);
    assert_eq!(argv[..2], ["/usr/bin/nearnative", "daemon"]);
    let socket = flag(&argv, "--nri").expect("--nri among the daemon's arguments");
    let socket = if socket.is_empty() {
        DEFAULT_SOCKET.to_owned()
    } else {
        socket
    };
    assert_eq!(
        socket, DEFAULT_SOCKET,
        "containerd's and CRI-O's default NRI socket"
    );
    let index = flag(&argv, "--nri-index").map_or(DEFAULT_INDEX, |i| i.parse().unwrap());
    assert_eq!(index, DEFAULT_INDEX);
    assert_eq!(flag(&argv, "--state-dir").as_deref(), Some(STATE_DIR));
    assert_eq!(
        flag(&argv, "--control-socket").as_deref(),
        Some(CONTROL_SOCKET)
    );
    assert!(
        flag(&argv, "--revert-on-exit").is_none(),
        "a rolling update must not revert the node's pods"
    );
}

#[test]
fn the_readiness_probe_reads_the_daemons_metrics() {
    let daemonset = the_one(&applied_objects(), "DaemonSet");
    let metrics = flag(&argv(&daemonset), "--metrics").expect("--metrics");
    let probe = &container(&daemonset)["readinessProbe"]["httpGet"];
    let probed = format!(
        "{}:{}",
        text(&probe["host"]),
        probe["port"].as_u64().unwrap()
    );
    assert_eq!(probed, metrics, "the probe asks where the daemon serves");
    assert!(
        metrics.starts_with("127."),
        "the daemon serves only loopback"
    );
    assert_eq!(probe["path"], "/metrics");
    assert_eq!(
        pod_spec(&daemonset)["hostNetwork"],
        true,
        "kubelet reaches the pod's loopback only in the host's network namespace"
    );
}

#[test]
fn the_container_is_privileged_root_on_a_read_only_image() {
    let daemonset = the_one(&applied_objects(), "DaemonSet");
    let container = container(&daemonset);
    let security = &container["securityContext"];
    assert_eq!(security["privileged"], true);
    assert_eq!(security["runAsUser"], 0);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    for path in [STATE_DIR, CONTROL_SOCKET] {
        assert!(
            !mount_holding(&mounts(&daemonset), path).read_only,
            "{path} is written"
        );
    }
    assert!(
        container["resources"]["limits"]["cpu"].is_null(),
        "no CFS quota on the daemon"
    );
    assert!(!container["resources"]["limits"]["memory"].is_null());
}

#[test]
fn the_image_is_this_version_built_by_the_containerfile() {
    let daemonset = the_one(&applied_objects(), "DaemonSet");
    let image = text(&container(&daemonset)["image"]);
    let (name, tag) = image.rsplit_once(':').expect("a tagged image");
    assert!(name.ends_with("/nearnative"), "{image}");
    assert_eq!(tag, env!("CARGO_PKG_VERSION"), "{image}");

    let containerfile = fs::read_to_string(deploy_dir().join("Containerfile")).unwrap();
    let stages: Vec<&str> = containerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(stages.len(), 2, "a builder stage and the image: {stages:?}");
    assert!(stages[0].contains("rust:") && stages[0].contains("bookworm"));
    assert!(stages[1].contains("debian:12-slim"), "{}", stages[1]);
    assert!(containerfile.contains("cargo build --release --locked -p nearnative"));
    let entrypoint = containerfile_entrypoint();
    assert_eq!(entrypoint, ["/usr/bin/nearnative", "daemon", "--nri"]);
    assert!(
        containerfile.contains(&format!("COPY --from=build /out{0} {0}", entrypoint[0])),
        "the entrypoint is the binary the builder made"
    );
    assert!(
        containerfile.contains(POLICY_DIR),
        "the policy directory exists"
    );
}

/// A CPU quantity as Kubernetes writes it ("2", "500m") as the CFS quota kubelet sets for
/// it over the default period.
fn cfs_limit(quantity: &str) -> LinuxResources {
    const PERIOD_US: u64 = 100_000;
    let millis: u64 = match quantity.strip_suffix('m') {
        Some(m) => m.parse().unwrap(),
        None => quantity.parse::<u64>().unwrap() * 1000,
    };
    LinuxResources {
        cpu: Some(LinuxCpu {
            quota: Some(OptionalInt64 {
                value: i64::try_from(millis * PERIOD_US / 1000).unwrap(),
            }),
            period: Some(OptionalUInt64 { value: PERIOD_US }),
            ..LinuxCpu::default()
        }),
        ..LinuxResources::default()
    }
}

#[test]
fn the_example_pod_asks_what_its_comments_say_and_lands_where_the_plugin_runs() {
    let path = deploy_dir().join("examples/latency-sensitive-pod.yaml");
    let pod = documents(&path).remove(0);
    assert_eq!(pod["kind"], "Pod");
    let annotations: HashMap<String, String> =
        serde_norway::from_value(pod["metadata"]["annotations"].clone()).unwrap();
    let decisions: HashMap<&str, Decision> = pod["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| {
            let limit = cfs_limit(text(&c["resources"]["limits"]["cpu"]));
            let name = text(&c["name"]);
            (
                name,
                annotations::decide(&annotations, name, Some(&limit)).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        decisions["engine"],
        Decision::LatencySensitive {
            level: Level::High,
            cores: 2
        }
    );
    assert_eq!(decisions["exporter"], Decision::Plain);

    let daemonset = the_one(&applied_objects(), "DaemonSet");
    assert_eq!(
        pod["spec"]["nodeSelector"][NODE_LABEL],
        pod_spec(&daemonset)["nodeSelector"][NODE_LABEL]
    );
}
