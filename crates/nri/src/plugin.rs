//! The Plugin service as a Rust trait, and the dispatch of the runtime's ttrpc requests to it.

use prost::Message;

use crate::api::plugin as service;
use crate::api::{
    ConfigureRequest, ConfigureResponse, CreateContainerRequest, CreateContainerResponse, Empty,
    StateChangeEvent, StopContainerRequest, StopContainerResponse, SynchronizeRequest,
    SynchronizeResponse, UpdateContainerRequest, UpdateContainerResponse,
};
use crate::ttrpc::{code, Request, Status};

/// A plugin's answer that fails the runtime's operation (CreateContainer fails the
/// container's creation). The message reaches the runtime's caller, so it says why in one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

impl Refusal {
    pub fn new(reason: impl Into<String>) -> Refusal {
        Refusal(reason.into())
    }
}

/// What the runtime calls, one method per call of NRI v0.6.1's Plugin service.
///
/// Methods are called one at a time, from the connection's server thread, in the order the
/// runtime sends them. A method must not wait for [`crate::RuntimeClient`] calls: the runtime
/// holds its own locks while it waits for the answer, so an UpdateContainers sent from
/// inside a handler deadlocks it. Return the updates in the response instead.
pub trait Plugin: Send + Sync {
    /// The first call after registration; the answer subscribes to events.
    fn configure(&self, request: ConfigureRequest) -> Result<ConfigureResponse, Refusal>;

    /// Every pod and container the runtime knows, once after Configure.
    fn synchronize(&self, request: SynchronizeRequest) -> Result<SynchronizeResponse, Refusal>;

    /// A container about to be created; a refusal fails its creation.
    fn create_container(
        &self,
        request: CreateContainerRequest,
    ) -> Result<CreateContainerResponse, Refusal>;

    /// A container's resources about to change.
    fn update_container(
        &self,
        request: UpdateContainerRequest,
    ) -> Result<UpdateContainerResponse, Refusal>;

    /// A container stopping.
    fn stop_container(
        &self,
        request: StopContainerRequest,
    ) -> Result<StopContainerResponse, Refusal>;

    /// Every other subscribed event, RemoveContainer among them.
    fn state_change(&self, event: StateChangeEvent) -> Result<(), Refusal>;

    /// The runtime is going down; the connection closes after this.
    fn shutdown(&self);

    /// The answer to the last call is on its way to the runtime: from here on, work the
    /// call left for later (an UpdateContainers) may be handed to another thread. It must not
    /// wait for the runtime itself, which may be about to call the plugin again.
    fn answered(&self) {}
}

/// Runs `request` against `plugin`: the encoded answer, or the status the runtime gets.
pub(crate) fn dispatch(plugin: &dyn Plugin, request: &Request) -> Result<Vec<u8>, Status> {
    if request.service != service::SERVICE {
        return Err(unimplemented(format!("service {}", request.service)));
    }
    let payload = request.payload.as_slice();
    match request.method.as_str() {
        service::CONFIGURE => answer(payload, |r| plugin.configure(r)),
        service::SYNCHRONIZE => answer(payload, |r| plugin.synchronize(r)),
        service::CREATE_CONTAINER => answer(payload, |r| plugin.create_container(r)),
        service::UPDATE_CONTAINER => answer(payload, |r| plugin.update_container(r)),
        service::STOP_CONTAINER => answer(payload, |r| plugin.stop_container(r)),
        service::STATE_CHANGE => answer(payload, |e| plugin.state_change(e).map(|()| Empty {})),
        service::SHUTDOWN => answer(payload, |Empty {}| {
            plugin.shutdown();
            Ok(Empty {})
        }),
        other => Err(unimplemented(format!("method {other}"))),
    }
}

fn answer<Req, Resp>(
    payload: &[u8],
    handler: impl FnOnce(Req) -> Result<Resp, Refusal>,
) -> Result<Vec<u8>, Status>
where
    Req: Message + Default,
    Resp: Message,
{
    let request = Req::decode(payload).map_err(|err| Status {
        code: code::INVALID_ARGUMENT,
        message: format!("cannot decode {}: {err}", short_type_name::<Req>()),
    })?;
    match handler(request) {
        Ok(response) => Ok(response.encode_to_vec()),
        Err(Refusal(message)) => Err(Status {
            code: code::UNKNOWN,
            message,
        }),
    }
}

/// What ttrpc's server answers for a service or method it does not have.
fn unimplemented(what: String) -> Status {
    Status {
        code: code::UNIMPLEMENTED,
        message: what,
    }
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}
