//! What a plugin asks of containers (NRI v0.6.1 `pkg/api/api.proto`: `ContainerAdjustment`,
//! `LinuxContainerAdjustment`, `ContainerUpdate`, `LinuxContainerUpdate`). An adjustment
//! changes a container being created; an update changes one that already exists.

use std::collections::HashMap;

use super::pod::{Hooks, KeyValue, LinuxDevice, Mount, PosixRlimit};
use super::resources::LinuxResources;

/// `message ContainerAdjustment`. Field 1 is unused in v0.6.1.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerAdjustment {
    #[prost(map = "string, string", tag = "2")]
    pub annotations: HashMap<String, String>,
    #[prost(message, repeated, tag = "3")]
    pub mounts: Vec<Mount>,
    #[prost(message, repeated, tag = "4")]
    pub env: Vec<KeyValue>,
    #[prost(message, optional, tag = "5")]
    pub hooks: Option<Hooks>,
    #[prost(message, optional, tag = "6")]
    pub linux: Option<LinuxContainerAdjustment>,
    #[prost(message, repeated, tag = "7")]
    pub rlimits: Vec<PosixRlimit>,
}

/// `message LinuxContainerAdjustment`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxContainerAdjustment {
    #[prost(message, repeated, tag = "1")]
    pub devices: Vec<LinuxDevice>,
    #[prost(message, optional, tag = "2")]
    pub resources: Option<LinuxResources>,
    #[prost(string, tag = "3")]
    pub cgroups_path: String,
}

/// `message ContainerUpdate`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerUpdate {
    #[prost(string, tag = "1")]
    pub container_id: String,
    #[prost(message, optional, tag = "2")]
    pub linux: Option<LinuxContainerUpdate>,
    /// Whether the runtime may carry on when this update fails.
    #[prost(bool, tag = "3")]
    pub ignore_failure: bool,
}

/// `message LinuxContainerUpdate`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxContainerUpdate {
    #[prost(message, optional, tag = "1")]
    pub resources: Option<LinuxResources>,
}

impl ContainerAdjustment {
    /// An adjustment that sets only the container's Linux resources.
    pub fn resources(resources: LinuxResources) -> ContainerAdjustment {
        ContainerAdjustment {
            linux: Some(LinuxContainerAdjustment {
                resources: Some(resources),
                ..LinuxContainerAdjustment::default()
            }),
            ..ContainerAdjustment::default()
        }
    }
}

impl ContainerUpdate {
    /// An update that sets only the Linux resources of the container `id`.
    pub fn resources(id: &str, resources: LinuxResources) -> ContainerUpdate {
        ContainerUpdate {
            container_id: id.to_owned(),
            linux: Some(LinuxContainerUpdate {
                resources: Some(resources),
            }),
            ignore_failure: false,
        }
    }
}
