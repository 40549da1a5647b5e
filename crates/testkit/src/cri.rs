//! A CRI v1 client for live tests: the test plays kubelet against a real containerd.
//!
//! The messages are our own prost structs holding only the fields the tests use; their
//! numbers and types are those of `runtime.v1` in the CRI API (k8s.io/cri-api
//! `pkg/apis/runtime/v1/api.proto`), so no protoc is needed. The transport is tonic's gRPC
//! over the runtime's unix socket. Calls block: each runs on a runtime the client owns.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

/// How long one call may take; CreateContainer waits for the NRI plugins' answers.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A failed CRI call: which call, and the runtime's status.
#[derive(Debug, thiserror::Error)]
#[error("CRI {call}: {message} ({code:?})")]
pub struct CriError {
    pub call: &'static str,
    pub code: tonic::Code,
    /// The runtime's message, e.g. a refusal an NRI plugin gave for CreateContainer.
    pub message: String,
}

/// `NamespaceMode`: whose namespace a pod or container uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum NamespaceMode {
    Pod = 0,
    Container = 1,
    Node = 2,
}

/// `ContainerState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum ContainerState {
    Created = 0,
    Running = 1,
    Exited = 2,
    Unknown = 3,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionRequest {
    #[prost(string, tag = "1")]
    pub version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionResponse {
    #[prost(string, tag = "1")]
    pub version: String,
    #[prost(string, tag = "2")]
    pub runtime_name: String,
    #[prost(string, tag = "3")]
    pub runtime_version: String,
    #[prost(string, tag = "4")]
    pub runtime_api_version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamespaceOption {
    #[prost(enumeration = "NamespaceMode", tag = "1")]
    pub network: i32,
    #[prost(enumeration = "NamespaceMode", tag = "2")]
    pub pid: i32,
    #[prost(enumeration = "NamespaceMode", tag = "3")]
    pub ipc: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxSandboxSecurityContext {
    #[prost(message, optional, tag = "1")]
    pub namespace_options: Option<NamespaceOption>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxPodSandboxConfig {
    #[prost(string, tag = "1")]
    pub cgroup_parent: String,
    #[prost(message, optional, tag = "2")]
    pub security_context: Option<LinuxSandboxSecurityContext>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub uid: String,
    #[prost(string, tag = "3")]
    pub namespace: String,
    #[prost(uint32, tag = "4")]
    pub attempt: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxConfig {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<PodSandboxMetadata>,
    #[prost(string, tag = "2")]
    pub hostname: String,
    #[prost(string, tag = "3")]
    pub log_directory: String,
    #[prost(btree_map = "string, string", tag = "6")]
    pub labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "7")]
    pub annotations: BTreeMap<String, String>,
    #[prost(message, optional, tag = "8")]
    pub linux: Option<LinuxPodSandboxConfig>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RunPodSandboxRequest {
    #[prost(message, optional, tag = "1")]
    pub config: Option<PodSandboxConfig>,
    #[prost(string, tag = "2")]
    pub runtime_handler: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RunPodSandboxResponse {
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
}

/// StopPodSandboxRequest and RemovePodSandboxRequest have this one field.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxIdRequest {
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
}

/// Every response the tests read nothing from.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageSpec {
    #[prost(string, tag = "1")]
    pub image: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxContainerResources {
    #[prost(int64, tag = "1")]
    pub cpu_period: i64,
    #[prost(int64, tag = "2")]
    pub cpu_quota: i64,
    #[prost(int64, tag = "3")]
    pub cpu_shares: i64,
    #[prost(int64, tag = "4")]
    pub memory_limit_in_bytes: i64,
    #[prost(string, tag = "6")]
    pub cpuset_cpus: String,
    #[prost(string, tag = "7")]
    pub cpuset_mems: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxContainerSecurityContext {
    #[prost(message, optional, tag = "3")]
    pub namespace_options: Option<NamespaceOption>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxContainerConfig {
    #[prost(message, optional, tag = "1")]
    pub resources: Option<LinuxContainerResources>,
    #[prost(message, optional, tag = "2")]
    pub security_context: Option<LinuxContainerSecurityContext>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint32, tag = "2")]
    pub attempt: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerConfig {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ContainerMetadata>,
    #[prost(message, optional, tag = "2")]
    pub image: Option<ImageSpec>,
    #[prost(string, repeated, tag = "3")]
    pub command: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    pub args: Vec<String>,
    #[prost(btree_map = "string, string", tag = "9")]
    pub labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "10")]
    pub annotations: BTreeMap<String, String>,
    #[prost(string, tag = "11")]
    pub log_path: String,
    #[prost(message, optional, tag = "15")]
    pub linux: Option<LinuxContainerConfig>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateContainerRequest {
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
    #[prost(message, optional, tag = "2")]
    pub config: Option<ContainerConfig>,
    #[prost(message, optional, tag = "3")]
    pub sandbox_config: Option<PodSandboxConfig>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateContainerResponse {
    #[prost(string, tag = "1")]
    pub container_id: String,
}

/// StartContainerRequest, RemoveContainerRequest and ContainerStatusRequest (with `verbose`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerIdRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(bool, tag = "2")]
    pub verbose: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StopContainerRequest {
    #[prost(string, tag = "1")]
    pub container_id: String,
    /// Seconds before the kill; 0 kills at once.
    #[prost(int64, tag = "2")]
    pub timeout: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatus {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<ContainerMetadata>,
    #[prost(enumeration = "ContainerState", tag = "3")]
    pub state: i32,
    #[prost(int32, tag = "7")]
    pub exit_code: i32,
    #[prost(string, tag = "10")]
    pub reason: String,
    #[prost(string, tag = "11")]
    pub message: String,
    #[prost(btree_map = "string, string", tag = "13")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatusResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<ContainerStatus>,
    #[prost(btree_map = "string, string", tag = "2")]
    pub info: BTreeMap<String, String>,
}

/// A connection to a runtime's CRI socket.
pub struct CriClient {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
}

impl fmt::Debug for CriClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CriClient")
    }
}

impl CriClient {
    /// Connects to the gRPC unix socket `socket` (containerd's `grpc.address`).
    pub fn connect(socket: &Path) -> Result<CriClient, CriError> {
        let failed = |message: String| CriError {
            call: "connect",
            code: tonic::Code::Unavailable,
            message: format!("{}: {message}", socket.display()),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let socket = socket.to_path_buf();
        // The URI is a placeholder: the connector below dials the socket whatever it says.
        let endpoint = Endpoint::from_static("http://cri.invalid").timeout(CALL_TIMEOUT);
        let connector = tower::service_fn(move |_: http::Uri| {
            let socket: PathBuf = socket.clone();
            async move { UnixStream::connect(socket).await.map(TokioIo::new) }
        });
        let channel = runtime
            .block_on(endpoint.connect_with_connector(connector))
            .map_err(|e| failed(format!("{e:?}")))?;
        Ok(CriClient { runtime, channel })
    }

    pub fn version(&self) -> Result<VersionResponse, CriError> {
        self.call("Version", VersionRequest::default())
    }

    /// Runs a pod sandbox; returns its id.
    pub fn run_pod_sandbox(&self, config: PodSandboxConfig) -> Result<String, CriError> {
        let request = RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        };
        let response: RunPodSandboxResponse = self.call("RunPodSandbox", request)?;
        Ok(response.pod_sandbox_id)
    }

    /// Stops a pod sandbox and every container in it.
    pub fn stop_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<(), CriError> {
        self.call_empty("StopPodSandbox", pod_request(pod_sandbox_id))
    }

    /// Removes a stopped pod sandbox and its containers.
    pub fn remove_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<(), CriError> {
        self.call_empty("RemovePodSandbox", pod_request(pod_sandbox_id))
    }

    /// Creates a container in pod `pod_sandbox_id` (whose configuration `sandbox_config`
    /// was); returns its id. NRI plugins see CreateContainer here and may refuse it.
    pub fn create_container(
        &self,
        pod_sandbox_id: &str,
        config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> Result<String, CriError> {
        let request = CreateContainerRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let response: CreateContainerResponse = self.call("CreateContainer", request)?;
        Ok(response.container_id)
    }

    pub fn start_container(&self, container_id: &str) -> Result<(), CriError> {
        self.call_empty("StartContainer", container_request(container_id))
    }

    /// Stops a container, killing it after `timeout` (0: at once).
    pub fn stop_container(&self, container_id: &str, timeout: Duration) -> Result<(), CriError> {
        let request = StopContainerRequest {
            container_id: container_id.to_owned(),
            timeout: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        };
        self.call_empty("StopContainer", request)
    }

    pub fn remove_container(&self, container_id: &str) -> Result<(), CriError> {
        self.call_empty("RemoveContainer", container_request(container_id))
    }

    /// The container's status. Its resources are those kubelet asked for, not what an NRI
    /// plugin made of them: read the cgroup for those.
    pub fn container_status(&self, container_id: &str) -> Result<ContainerStatus, CriError> {
        let response: ContainerStatusResponse =
            self.call("ContainerStatus", container_request(container_id))?;
        response.status.ok_or_else(|| CriError {
            call: "ContainerStatus",
            code: tonic::Code::Internal,
            message: format!("{container_id}: the answer holds no status"),
        })
    }

    fn call_empty<Request>(&self, method: &'static str, request: Request) -> Result<(), CriError>
    where
        Request: prost::Message + Send + Sync + 'static,
    {
        self.call::<Request, Empty>(method, request).map(drop)
    }

    /// One unary call of `runtime.v1.RuntimeService/METHOD`.
    fn call<Request, Response>(
        &self,
        method: &'static str,
        request: Request,
    ) -> Result<Response, CriError>
    where
        Request: prost::Message + Send + Sync + 'static,
        Response: prost::Message + Default + Send + Sync + 'static,
    {
        let failed = |status: tonic::Status| CriError {
            call: method,
            code: status.code(),
            message: status.message().to_owned(),
        };
        let path = format!("/runtime.v1.RuntimeService/{method}");
        let path = http::uri::PathAndQuery::try_from(path).map_err(|e| CriError {
            call: method,
            code: tonic::Code::InvalidArgument,
            message: e.to_string(),
        })?;
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        self.runtime.block_on(async {
            grpc.ready()
                .await
                .map_err(|e| failed(tonic::Status::unavailable(e.to_string())))?;
            let codec = tonic_prost::ProstCodec::<Request, Response>::default();
            grpc.unary(tonic::Request::new(request), path, codec)
                .await
                .map(tonic::Response::into_inner)
                .map_err(failed)
        })
    }
}

fn pod_request(pod_sandbox_id: &str) -> PodSandboxIdRequest {
    PodSandboxIdRequest {
        pod_sandbox_id: pod_sandbox_id.to_owned(),
    }
}

fn container_request(container_id: &str) -> ContainerIdRequest {
    ContainerIdRequest {
        container_id: container_id.to_owned(),
        verbose: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Field numbers are the wire's facts: a CreateContainerRequest with a pod id, a name, an
    /// image, an annotation and a CPU quota encodes to the bytes the CRI defines for them.
    #[test]
    fn a_container_request_encodes_with_the_cri_field_numbers() {
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: "c".into(),
                attempt: 0,
            }),
            image: Some(ImageSpec { image: "i".into() }),
            annotations: [("k".to_owned(), "v".to_owned())].into(),
            linux: Some(LinuxContainerConfig {
                resources: Some(LinuxContainerResources {
                    cpu_quota: 1,
                    ..Default::default()
                }),
                security_context: None,
            }),
            ..Default::default()
        };
        let request = CreateContainerRequest {
            pod_sandbox_id: "p".into(),
            config: Some(config),
            sandbox_config: None,
        };
        let expected: &[u8] = &[
            0x0a, 1, b'p', // 1: pod_sandbox_id
            0x12, 24, // 2: config
            0x0a, 3, 0x0a, 1, b'c', // 1: metadata { 1: name }
            0x12, 3, 0x0a, 1, b'i', // 2: image { 1: image }
            0x52, 6, 0x0a, 1, b'k', 0x12, 1, b'v', // 10: annotations
            0x7a, 4, 0x0a, 2, 0x10, 1, // 15: linux { 1: resources { 2: cpu_quota } }
        ];
        assert_eq!(request.encode_to_vec(), expected);
    }
}
