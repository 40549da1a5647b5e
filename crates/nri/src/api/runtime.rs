//! The Runtime service (`nri.pkg.api.v1alpha1.Runtime` in NRI v0.6.1 `pkg/api/api.proto`):
//! the calls the plugin makes to the runtime.

use super::adjust::ContainerUpdate;

/// The service name on the wire.
pub const SERVICE: &str = "nri.pkg.api.v1alpha1.Runtime";
/// `rpc RegisterPlugin(RegisterPluginRequest) returns (Empty)`.
pub const REGISTER_PLUGIN: &str = "RegisterPlugin";
/// `rpc UpdateContainers(UpdateContainersRequest) returns (UpdateContainersResponse)`.
pub const UPDATE_CONTAINERS: &str = "UpdateContainers";

/// `message RegisterPluginRequest`. The runtime calls plugins in ascending `plugin_idx`,
/// which must be exactly two decimal digits.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RegisterPluginRequest {
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    #[prost(string, tag = "2")]
    pub plugin_idx: String,
}

/// `message UpdateContainersRequest`: unsolicited updates, sent outside any Plugin call.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateContainersRequest {
    #[prost(message, repeated, tag = "1")]
    pub update: Vec<ContainerUpdate>,
    #[prost(message, repeated, tag = "2")]
    pub evict: Vec<ContainerEviction>,
}

/// `message UpdateContainersResponse`: the updates the runtime could not apply.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateContainersResponse {
    #[prost(message, repeated, tag = "1")]
    pub failed: Vec<ContainerUpdate>,
}

/// `message ContainerEviction`: a container the plugin wants stopped, and why.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerEviction {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(string, tag = "2")]
    pub reason: String,
}

/// `message Empty`, the answer of RegisterPlugin, Shutdown and StateChange.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Empty {}
