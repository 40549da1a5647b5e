//! Pods and containers as the runtime describes them (NRI v0.6.1 `pkg/api/api.proto`:
//! `PodSandbox`, `LinuxPodSandbox`, `Container`, `ContainerState`, `LinuxContainer` and the
//! messages they hold). The fields marked "for NRI v1 emulation" in the proto are kept, as
//! containerd 1.7 fills some of them.

use std::collections::HashMap;

use super::resources::{LinuxResources, OptionalFileMode, OptionalInt, OptionalUInt32};

/// `message PodSandbox`. Annotations carry the pod's switch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandbox {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub uid: String,
    #[prost(string, tag = "4")]
    pub namespace: String,
    #[prost(map = "string, string", tag = "5")]
    pub labels: HashMap<String, String>,
    #[prost(map = "string, string", tag = "6")]
    pub annotations: HashMap<String, String>,
    #[prost(string, tag = "7")]
    pub runtime_handler: String,
    #[prost(message, optional, tag = "8")]
    pub linux: Option<LinuxPodSandbox>,
    #[prost(uint32, tag = "9")]
    pub pid: u32,
}

/// `message LinuxPodSandbox`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxPodSandbox {
    #[prost(message, optional, tag = "1")]
    pub pod_overhead: Option<LinuxResources>,
    #[prost(message, optional, tag = "2")]
    pub pod_resources: Option<LinuxResources>,
    #[prost(string, tag = "3")]
    pub cgroup_parent: String,
    #[prost(string, tag = "4")]
    pub cgroups_path: String,
    #[prost(message, repeated, tag = "5")]
    pub namespaces: Vec<LinuxNamespace>,
    #[prost(message, optional, tag = "6")]
    pub resources: Option<LinuxResources>,
}

/// `message Container`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Container {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub pod_sandbox_id: String,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(enumeration = "ContainerState", tag = "4")]
    pub state: i32,
    #[prost(map = "string, string", tag = "5")]
    pub labels: HashMap<String, String>,
    #[prost(map = "string, string", tag = "6")]
    pub annotations: HashMap<String, String>,
    #[prost(string, repeated, tag = "7")]
    pub args: Vec<String>,
    #[prost(string, repeated, tag = "8")]
    pub env: Vec<String>,
    #[prost(message, repeated, tag = "9")]
    pub mounts: Vec<Mount>,
    #[prost(message, optional, tag = "10")]
    pub hooks: Option<Hooks>,
    #[prost(message, optional, tag = "11")]
    pub linux: Option<LinuxContainer>,
    /// The container's init process, once it runs.
    #[prost(uint32, tag = "12")]
    pub pid: u32,
    #[prost(message, repeated, tag = "13")]
    pub rlimits: Vec<PosixRlimit>,
}

/// `enum ContainerState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ContainerState {
    Unknown = 0,
    Created = 1,
    Paused = 2,
    Running = 3,
    Stopped = 4,
}

/// `message Mount`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Mount {
    #[prost(string, tag = "1")]
    pub destination: String,
    #[prost(string, tag = "2")]
    pub r#type: String,
    #[prost(string, tag = "3")]
    pub source: String,
    #[prost(string, repeated, tag = "4")]
    pub options: Vec<String>,
}

/// `message Hooks`: OCI hooks by stage.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Hooks {
    #[prost(message, repeated, tag = "1")]
    pub prestart: Vec<Hook>,
    #[prost(message, repeated, tag = "2")]
    pub create_runtime: Vec<Hook>,
    #[prost(message, repeated, tag = "3")]
    pub create_container: Vec<Hook>,
    #[prost(message, repeated, tag = "4")]
    pub start_container: Vec<Hook>,
    #[prost(message, repeated, tag = "5")]
    pub poststart: Vec<Hook>,
    #[prost(message, repeated, tag = "6")]
    pub poststop: Vec<Hook>,
}

/// `message Hook`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Hook {
    #[prost(string, tag = "1")]
    pub path: String,
    #[prost(string, repeated, tag = "2")]
    pub args: Vec<String>,
    #[prost(string, repeated, tag = "3")]
    pub env: Vec<String>,
    #[prost(message, optional, tag = "4")]
    pub timeout: Option<OptionalInt>,
}

/// `message LinuxContainer`. `cgroups_path` is the runtime's spelling (for the cgroupfs
/// driver a path under the cgroup roots, for systemd `slice:prefix:name`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxContainer {
    #[prost(message, repeated, tag = "1")]
    pub namespaces: Vec<LinuxNamespace>,
    #[prost(message, repeated, tag = "2")]
    pub devices: Vec<LinuxDevice>,
    #[prost(message, optional, tag = "3")]
    pub resources: Option<LinuxResources>,
    #[prost(message, optional, tag = "4")]
    pub oom_score_adj: Option<OptionalInt>,
    #[prost(string, tag = "5")]
    pub cgroups_path: String,
}

/// `message LinuxNamespace`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxNamespace {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub path: String,
}

/// `message LinuxDevice`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxDevice {
    #[prost(string, tag = "1")]
    pub path: String,
    #[prost(string, tag = "2")]
    pub r#type: String,
    #[prost(int64, tag = "3")]
    pub major: i64,
    #[prost(int64, tag = "4")]
    pub minor: i64,
    #[prost(message, optional, tag = "5")]
    pub file_mode: Option<OptionalFileMode>,
    #[prost(message, optional, tag = "6")]
    pub uid: Option<OptionalUInt32>,
    #[prost(message, optional, tag = "7")]
    pub gid: Option<OptionalUInt32>,
}

/// `message POSIXRlimit`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PosixRlimit {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(uint64, tag = "2")]
    pub hard: u64,
    #[prost(uint64, tag = "3")]
    pub soft: u64,
}

/// `message KeyValue` of the NRI package (an environment variable in an adjustment).
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}
