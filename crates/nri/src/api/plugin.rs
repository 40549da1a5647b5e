//! The Plugin service (`nri.pkg.api.v1alpha1.Plugin` in NRI v0.6.1 `pkg/api/api.proto`):
//! the calls the runtime makes to the plugin, and the events a plugin subscribes to.
//!
//! NRI v0.6.1 has no RemoveContainer call: removal (and every event without a call of its
//! own) arrives as StateChange with its [`Event`].

use super::adjust::{ContainerAdjustment, ContainerUpdate};
use super::pod::{Container, PodSandbox};
use super::resources::LinuxResources;
use super::runtime::ContainerEviction;

/// The service name on the wire.
pub const SERVICE: &str = "nri.pkg.api.v1alpha1.Plugin";
/// `rpc Configure(ConfigureRequest) returns (ConfigureResponse)`.
pub const CONFIGURE: &str = "Configure";
/// `rpc Synchronize(SynchronizeRequest) returns (SynchronizeResponse)`.
pub const SYNCHRONIZE: &str = "Synchronize";
/// `rpc Shutdown(Empty) returns (Empty)`.
pub const SHUTDOWN: &str = "Shutdown";
/// `rpc CreateContainer(CreateContainerRequest) returns (CreateContainerResponse)`.
pub const CREATE_CONTAINER: &str = "CreateContainer";
/// `rpc UpdateContainer(UpdateContainerRequest) returns (UpdateContainerResponse)`.
pub const UPDATE_CONTAINER: &str = "UpdateContainer";
/// `rpc StopContainer(StopContainerRequest) returns (StopContainerResponse)`.
pub const STOP_CONTAINER: &str = "StopContainer";
/// `rpc StateChange(StateChangeEvent) returns (Empty)`.
pub const STATE_CHANGE: &str = "StateChange";

/// `message ConfigureRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfigureRequest {
    /// The plugin's own configuration from the runtime's NRI drop-ins, if any.
    #[prost(string, tag = "1")]
    pub config: String,
    #[prost(string, tag = "2")]
    pub runtime_name: String,
    #[prost(string, tag = "3")]
    pub runtime_version: String,
}

/// `message ConfigureResponse`. The mask is field 2: field 1 is unused in v0.6.1.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfigureResponse {
    /// An [`EventMask`]; zero subscribes to every event.
    #[prost(int32, tag = "2")]
    pub events: i32,
}

/// `message SynchronizeRequest`: every pod and container the runtime knows.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SynchronizeRequest {
    #[prost(message, repeated, tag = "1")]
    pub pods: Vec<PodSandbox>,
    #[prost(message, repeated, tag = "2")]
    pub containers: Vec<Container>,
}

/// `message SynchronizeResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SynchronizeResponse {
    #[prost(message, repeated, tag = "1")]
    pub update: Vec<ContainerUpdate>,
}

/// `message CreateContainerRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateContainerRequest {
    #[prost(message, optional, tag = "1")]
    pub pod: Option<PodSandbox>,
    #[prost(message, optional, tag = "2")]
    pub container: Option<Container>,
}

/// `message CreateContainerResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateContainerResponse {
    /// Changes to the container being created.
    #[prost(message, optional, tag = "1")]
    pub adjust: Option<ContainerAdjustment>,
    /// Changes to other, existing containers.
    #[prost(message, repeated, tag = "2")]
    pub update: Vec<ContainerUpdate>,
    #[prost(message, repeated, tag = "3")]
    pub evict: Vec<ContainerEviction>,
}

/// `message UpdateContainerRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateContainerRequest {
    #[prost(message, optional, tag = "1")]
    pub pod: Option<PodSandbox>,
    #[prost(message, optional, tag = "2")]
    pub container: Option<Container>,
    /// The resources the runtime is about to give the container.
    #[prost(message, optional, tag = "3")]
    pub linux_resources: Option<LinuxResources>,
}

/// `message UpdateContainerResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateContainerResponse {
    #[prost(message, repeated, tag = "1")]
    pub update: Vec<ContainerUpdate>,
    #[prost(message, repeated, tag = "2")]
    pub evict: Vec<ContainerEviction>,
}

/// `message StopContainerRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StopContainerRequest {
    #[prost(message, optional, tag = "1")]
    pub pod: Option<PodSandbox>,
    #[prost(message, optional, tag = "2")]
    pub container: Option<Container>,
}

/// `message StopContainerResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StopContainerResponse {
    #[prost(message, repeated, tag = "1")]
    pub update: Vec<ContainerUpdate>,
}

/// `message StateChangeEvent`: pod events, and the container events without a call.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StateChangeEvent {
    #[prost(enumeration = "Event", tag = "1")]
    pub event: i32,
    #[prost(message, optional, tag = "2")]
    pub pod: Option<PodSandbox>,
    /// Unset for pod events.
    #[prost(message, optional, tag = "3")]
    pub container: Option<Container>,
}

/// `enum Event` of v0.6.1. Its sentinel `LAST = 12` is left out: it is no event, and
/// [`EventMask::ALL`] stands for "every event below it".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Event {
    Unknown = 0,
    RunPodSandbox = 1,
    StopPodSandbox = 2,
    RemovePodSandbox = 3,
    CreateContainer = 4,
    PostCreateContainer = 5,
    StartContainer = 6,
    PostStartContainer = 7,
    UpdateContainer = 8,
    PostUpdateContainer = 9,
    StopContainer = 10,
    RemoveContainer = 11,
}

/// The events a plugin subscribes to, as `ConfigureResponse.events` carries them: event `e`
/// is bit `e - 1`. The runtime refuses bits at or above `LAST - 1`, so the mask never has them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventMask(i32);

impl EventMask {
    /// Every event of v0.6.1 (`ValidEvents` in the runtime).
    pub const ALL: EventMask = EventMask((1 << (Event::RemoveContainer as i32)) - 1);

    /// The mask of exactly these events; [`Event::Unknown`] has no bit and adds nothing.
    pub fn of(events: &[Event]) -> EventMask {
        EventMask(
            events
                .iter()
                .fold(0, |mask, &event| mask | Self::bit(event)),
        )
    }

    pub fn contains(self, event: Event) -> bool {
        let bit = Self::bit(event);
        bit != 0 && self.0 & bit == bit
    }

    /// The value for `ConfigureResponse.events`.
    pub fn bits(self) -> i32 {
        self.0
    }

    fn bit(event: Event) -> i32 {
        match event {
            Event::Unknown => 0,
            other => 1 << (other as i32 - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_mask_sets_bit_event_minus_one() {
        let mask = EventMask::of(&[Event::CreateContainer, Event::RemoveContainer]);
        assert_eq!(mask.bits(), (1 << 3) | (1 << 10));
        assert!(mask.contains(Event::CreateContainer));
        assert!(!mask.contains(Event::StopContainer));
        assert!(!mask.contains(Event::Unknown));
    }

    #[test]
    fn all_events_is_the_runtimes_valid_mask() {
        // The runtime's ValidEvents is (1 << (LAST - 1)) - 1 with LAST = 12.
        assert_eq!(EventMask::ALL.bits(), 0x7ff);
        assert_eq!(EventMask::of(&[Event::Unknown]).bits(), 0);
    }
}
