//! Frames captured from a real containerd 1.7.24 (Debian 13's, NRI v0.6.1) on 2026-12-08: a
//! `nearnative daemon --nri` registering through a recording proxy, being configured and
//! synchronized with no pods, then stopping. Both directions are kept as they crossed the
//! socket, so a later NRI version's frames can sit beside them.

use nearnative_nri::api::plugin::{self, CONFIGURE, SYNCHRONIZE};
use nearnative_nri::api::runtime::{self, REGISTER_PLUGIN};
use nearnative_nri::api::{
    ConfigureRequest, ConfigureResponse, EventMask, RegisterPluginRequest, SynchronizeRequest,
    SynchronizeResponse,
};
use nearnative_nri::mux::{read_frame, ConnId};
use nearnative_nri::nri_plugin::EVENTS;
use nearnative_nri::ttrpc::{self, MessageReader, TYPE_REQUEST, TYPE_RESPONSE};
use prost::Message as _;

const FROM_CONTAINERD: &[u8] = include_bytes!("captured/containerd-1.7.24-to-plugin.bin");
const TO_CONTAINERD: &[u8] = include_bytes!("captured/plugin-to-containerd-1.7.24.bin");

/// Every ttrpc message in `bytes`, with the logical connection it came on.
fn messages(mut bytes: &[u8]) -> Vec<(ConnId, ttrpc::Message)> {
    let mut readers: Vec<(ConnId, MessageReader)> = Vec::new();
    let mut found = Vec::new();
    while let Some((conn, payload)) = read_frame(&mut bytes).unwrap() {
        let at = match readers.iter().position(|(c, _)| *c == conn) {
            Some(at) => at,
            None => {
                readers.push((conn, MessageReader::default()));
                readers.len() - 1
            }
        };
        let reader = &mut readers[at].1;
        reader.push(&payload);
        while let Some(message) = reader.next_message().unwrap() {
            found.push((conn, message));
        }
    }
    found
}

fn request(message: &ttrpc::Message) -> ttrpc::Request {
    assert_eq!(message.kind, TYPE_REQUEST);
    ttrpc::Request::decode(message.body.as_slice()).unwrap()
}

fn response(message: &ttrpc::Message) -> ttrpc::Response {
    assert_eq!(message.kind, TYPE_RESPONSE);
    let response = ttrpc::Response::decode(message.body.as_slice()).unwrap();
    assert_eq!(response.status.as_ref().map_or(0, |s| s.code), 0);
    response
}

#[test]
fn containerd_answers_the_registration_then_configures_and_synchronizes_the_plugin() {
    let found = messages(FROM_CONTAINERD);
    assert_eq!(found.len(), 3, "{found:?}");

    let (conn, registered) = &found[0];
    assert_eq!(*conn, ConnId::RUNTIME_SERVICE);
    assert_eq!(registered.stream_id, 1);
    response(registered);

    let (conn, configure) = &found[1];
    assert_eq!(*conn, ConnId::PLUGIN_SERVICE);
    let configure = request(configure);
    assert_eq!(
        (configure.service.as_str(), configure.method.as_str()),
        (plugin::SERVICE, CONFIGURE)
    );
    let config = ConfigureRequest::decode(configure.payload.as_slice()).unwrap();
    assert_eq!(config.runtime_name, "containerd");
    assert_eq!(config.runtime_version, "1.7.24~ds1");
    assert!(
        configure.timeout_nano > 0,
        "containerd sets its plugin timeout"
    );

    let (conn, synchronize) = &found[2];
    assert_eq!(*conn, ConnId::PLUGIN_SERVICE);
    let synchronize = request(synchronize);
    assert_eq!(synchronize.method, SYNCHRONIZE);
    let state = SynchronizeRequest::decode(synchronize.payload.as_slice()).unwrap();
    assert_eq!((state.pods.len(), state.containers.len()), (0, 0));
}

#[test]
fn the_plugin_registers_and_answers_as_containerd_accepted() {
    let found = messages(TO_CONTAINERD);
    assert_eq!(found.len(), 3, "{found:?}");

    let (conn, register) = &found[0];
    assert_eq!(*conn, ConnId::RUNTIME_SERVICE);
    let register = request(register);
    assert_eq!(
        (register.service.as_str(), register.method.as_str()),
        (runtime::SERVICE, REGISTER_PLUGIN)
    );
    let plugin = RegisterPluginRequest::decode(register.payload.as_slice()).unwrap();
    assert_eq!(
        (plugin.plugin_name.as_str(), plugin.plugin_idx.as_str()),
        ("nearnative", "10")
    );

    let (conn, configured) = &found[1];
    assert_eq!(*conn, ConnId::PLUGIN_SERVICE);
    let configured = ConfigureResponse::decode(response(configured).payload.as_slice()).unwrap();
    assert_eq!(configured.events, EventMask::of(&EVENTS).bits());

    let (conn, synchronized) = &found[2];
    assert_eq!(*conn, ConnId::PLUGIN_SERVICE);
    let synchronized =
        SynchronizeResponse::decode(response(synchronized).payload.as_slice()).unwrap();
    assert!(synchronized.update.is_empty());
}
