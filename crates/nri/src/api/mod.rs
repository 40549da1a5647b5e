//! Our schema of the NRI messages this plugin exchanges with the runtime, as prost-derived
//! structs (no protoc, no generated code).
//!
//! Source of every field number and type: `pkg/api/api.proto` of containerd/nri at tag
//! v0.6.1 (package `nri.pkg.api.v1alpha1`), the version containerd 1.7.24 speaks. Debian 13
//! ships that file, byte-identical to the tag, in `golang-github-containerd-nri-dev`. The
//! numbers are wire facts; the Rust names follow Rust conventions (`LinuxCpu` for `LinuxCPU`).
//! Later NRI versions (v0.8–v0.12, containerd 2.x) add fields and calls; they go in beside these.
//!
//! - [`runtime`]: the Runtime service, which the plugin calls.
//! - [`plugin`]: the Plugin service, which the runtime calls, and its events.
//! - [`pod`]: what the runtime tells about pods and containers.
//! - [`resources`]: Linux resources (cpuset, memory) and the optional-value wrappers.
//! - [`adjust`]: what the plugin asks of a container being created or already running.

pub mod adjust;
pub mod plugin;
pub mod pod;
pub mod resources;
pub mod runtime;

pub use adjust::{
    ContainerAdjustment, ContainerUpdate, LinuxContainerAdjustment, LinuxContainerUpdate,
};
pub use plugin::{
    ConfigureRequest, ConfigureResponse, CreateContainerRequest, CreateContainerResponse, Event,
    EventMask, StateChangeEvent, StopContainerRequest, StopContainerResponse, SynchronizeRequest,
    SynchronizeResponse, UpdateContainerRequest, UpdateContainerResponse,
};
pub use pod::{Container, ContainerState, LinuxContainer, LinuxPodSandbox, PodSandbox};
pub use resources::{LinuxCpu, LinuxMemory, LinuxResources};
pub use runtime::{
    ContainerEviction, Empty, RegisterPluginRequest, UpdateContainersRequest,
    UpdateContainersResponse,
};

/// The protobuf package of NRI v0.6.1, which prefixes both service names.
pub const PACKAGE: &str = "nri.pkg.api.v1alpha1";

/// Golden bytes built by hand from the proto's field numbers and wire types
/// (tag byte = field << 3 | wire type; 0 varint, 2 length-delimited).
#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(message: &M, golden: &[u8]) {
        assert_eq!(message.encode_to_vec(), golden, "encoding of {message:?}");
        assert_eq!(&M::decode(golden).unwrap(), message);
    }

    #[test]
    fn register_plugin_request() {
        let request = RegisterPluginRequest {
            plugin_name: "nearnative".into(),
            plugin_idx: "10".into(),
        };
        let mut golden = vec![0x0a, 10];
        golden.extend_from_slice(b"nearnative");
        golden.extend_from_slice(&[0x12, 2, b'1', b'0']);
        round_trip(&request, &golden);
    }

    #[test]
    fn configure_response_carries_the_mask_in_field_2() {
        let response = ConfigureResponse {
            events: EventMask::of(&[Event::CreateContainer]).bits(),
        };
        round_trip(&response, &[0x10, 0x08]);
    }

    #[test]
    fn create_container_response_setting_the_cpuset() {
        let response = CreateContainerResponse {
            adjust: Some(ContainerAdjustment::resources(LinuxResources::cpuset(
                "3",
                Some("0"),
            ))),
            ..CreateContainerResponse::default()
        };
        let cpu = [0x32, 1, b'3', 0x3a, 1, b'0']; // LinuxCPU: cpus = 6, mems = 7
        let resources = [&[0x12, 6][..], &cpu].concat(); // LinuxResources: cpu = 2
        let linux = [&[0x12, 8][..], &resources].concat(); // LinuxContainerAdjustment: resources = 2
        let adjust = [&[0x32, 10][..], &linux].concat(); // ContainerAdjustment: linux = 6
        let golden = [&[0x0a, 12][..], &adjust].concat(); // CreateContainerResponse: adjust = 1
        round_trip(&response, &golden);
    }

    #[test]
    fn update_containers_request_with_one_cpuset() {
        let request = UpdateContainersRequest {
            update: vec![ContainerUpdate::resources(
                "c1",
                LinuxResources::cpuset("0-1", None),
            )],
            evict: vec![],
        };
        let resources = [0x12, 5, 0x32, 3, b'0', b'-', b'1'];
        let linux = [&[0x0a, 7][..], &resources].concat(); // LinuxContainerUpdate: resources = 1
        let update = [&[0x0a, 2, b'c', b'1', 0x12, 9][..], &linux].concat(); // id = 1, linux = 2
        let golden = [&[0x0a, 15][..], &update].concat(); // UpdateContainersRequest: update = 1
        round_trip(&request, &golden);
    }

    #[test]
    fn pod_annotations_decode_from_map_entries() {
        // id = 1; annotations = 6, each entry a message {1: key, 2: value}.
        let golden = [0x0a, 1, b'p', 0x32, 6, 0x0a, 1, b'k', 0x12, 1, b'v'];
        let pod = PodSandbox::decode(&golden[..]).unwrap();
        assert_eq!(pod.id, "p");
        assert_eq!(pod.annotations.get("k").map(String::as_str), Some("v"));
        round_trip(&pod, &golden);
    }

    #[test]
    fn container_state_and_state_change_event() {
        let container = Container::decode(&[0x0a, 1, b'c', 0x20, 3, 0x60, 42][..]).unwrap();
        assert_eq!(container.state(), ContainerState::Running);
        assert_eq!(container.pid, 42);
        let event = StateChangeEvent {
            event: Event::RemoveContainer as i32,
            ..Default::default()
        };
        round_trip(&event, &[0x08, 11]);
    }

    #[test]
    fn unknown_fields_of_newer_runtimes_are_skipped() {
        // Field 99 (a string) after the pod's id, as a later NRI version might add.
        let bytes = [0x0a, 1, b'p', 0x9a, 0x06, 1, b'x'];
        assert_eq!(PodSandbox::decode(&bytes[..]).unwrap().id, "p");
    }
}
