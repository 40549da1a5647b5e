//! A network path the experiment measures across, and how to run each end of the probe on it.
//!
//! The layout is the same for every layer but loopback, so that only the layer differs: the
//! client runs in a namespace of its own and the server in another, both created for the
//! path, with the layer between them. Nothing is added to the host namespace (no address, no
//! route, no interface), so a lab can never disturb the host's own networking or another
//! run's. Loopback ("native") is the host's own `127.0.0.1`, both ends in the host namespace.
//!
//! Each end runs on a thread that entered its namespace (see [`crate::netns`]). The server's
//! socket is bound there and then served by the probe's own pinned server thread; the client
//! runs whole on its entering thread and pins itself as `ClientConfig::cpus` says.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use nearnative_probe::rtt::{
    run_client, ClientConfig, RttError, RttReport, Server, ServerConfig, ServerStats,
};
use serde::Serialize;

use crate::netns::{run_in, NetnsError};
use crate::object::LabObject;

/// The layer between client and server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// Host loopback, `127.0.0.1`: the native baseline.
    Loopback,
    /// One veth pair between the client's namespace and the server's.
    Veth,
    /// A Linux bridge in the client's namespace (holding the client's address, as docker0
    /// does) with one veth port whose peer is the server's interface.
    Bridge,
    /// Two taps, one per namespace, joined by a user-space frame forwarder (a VM's shape).
    Tap,
}

impl Layer {
    pub const ALL: [Layer; 4] = [Layer::Loopback, Layer::Veth, Layer::Bridge, Layer::Tap];

    pub fn name(&self) -> &'static str {
        match self {
            Layer::Loopback => "loopback",
            Layer::Veth => "veth",
            Layer::Bridge => "bridge",
            Layer::Tap => "tap",
        }
    }

    /// The client's and the server's address on this layer, each in its own namespace, all
    /// within 198.18.0.0/15 (RFC 2544's benchmarking range).
    pub fn addresses(&self) -> (Ipv4Addr, Ipv4Addr) {
        match self {
            Layer::Loopback => (Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST),
            Layer::Veth => (Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 2)),
            Layer::Bridge => (Ipv4Addr::new(198, 18, 2, 1), Ipv4Addr::new(198, 18, 2, 2)),
            Layer::Tap => (Ipv4Addr::new(198, 18, 3, 1), Ipv4Addr::new(198, 18, 3, 2)),
        }
    }
}

/// A layer name that is not one of [`Layer::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown layer {given:?} (expected loopback, veth, bridge or tap)")]
pub struct UnknownLayer {
    pub given: String,
}

impl std::str::FromStr for Layer {
    type Err = UnknownLayer;

    fn from_str(text: &str) -> Result<Layer, UnknownLayer> {
        Layer::ALL
            .into_iter()
            .find(|layer| layer.name() == text)
            .ok_or_else(|| UnknownLayer {
                given: text.to_owned(),
            })
    }
}

/// The prefix length of every lab subnet: two hosts each.
pub const PREFIX_LEN: u8 = 30;

#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("{layer} path: {source}")]
    Namespace {
        layer: &'static str,
        #[source]
        source: NetnsError,
    },
    #[error("{layer} path: probe failed")]
    Probe {
        layer: &'static str,
        #[source]
        source: RttError,
    },
}

/// One built path. Invariant: its namespaces and interfaces exist until the [`crate::Lab`]
/// that built it is cleaned up; `objects` lists them in order of creation.
#[derive(Debug, Clone)]
pub struct NetPath {
    pub layer: Layer,
    /// The client's own address on the path.
    pub client_ip: IpAddr,
    /// The address the server binds (any port) and the client targets: no NAT on any layer.
    pub server_ip: IpAddr,
    /// The namespace the client runs in; `None` is the host's.
    pub client_netns: Option<String>,
    /// The namespace the server runs in; `None` is the host's.
    pub server_netns: Option<String>,
    pub objects: Vec<LabObject>,
}

impl NetPath {
    /// Binds a probe server inside the server's namespace at `server_ip:port` (port 0 for
    /// any), whatever `config.bind` said. Serve it with [`Server::spawn`]; it pins itself to
    /// `config.cpus`. Its `local_addr()` is the client's target.
    pub fn bind_server(&self, port: u16, mut config: ServerConfig) -> Result<Server, PathError> {
        config.bind = SocketAddr::new(self.server_ip, port).to_string();
        let bound = run_in(self.server_netns.as_deref(), "nn-lab-bind", move || {
            Server::bind(config)
        });
        self.flatten(bound)
    }

    /// Runs a probe client to completion inside the client's namespace.
    pub fn run_client(&self, config: ClientConfig) -> Result<RttReport, PathError> {
        let report = run_in(self.client_netns.as_deref(), "nn-lab-client", move || {
            run_client(&config)
        });
        self.flatten(report)
    }

    /// One measurement: binds and spawns a server as [`NetPath::bind_server`] does (port 0),
    /// runs `client` against it (its target is replaced by the server's address), and stops
    /// the server. Returns the client's report and the server's counts.
    pub fn probe(
        &self,
        server: ServerConfig,
        mut client: ClientConfig,
    ) -> Result<(RttReport, ServerStats), PathError> {
        let layer = self.layer.name();
        let probe_err = |source| PathError::Probe { layer, source };
        let server = self.bind_server(0, server)?.spawn().map_err(probe_err)?;
        client.target = server.local_addr().to_string();
        let report = self.run_client(client);
        let stats = server.stop().map_err(probe_err)?;
        Ok((report?, stats))
    }

    fn flatten<T>(&self, result: Result<Result<T, RttError>, NetnsError>) -> Result<T, PathError> {
        let layer = self.layer.name();
        result
            .map_err(|source| PathError::Namespace { layer, source })?
            .map_err(|source| PathError::Probe { layer, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_names_round_trip_and_unknown_ones_are_named() {
        for layer in Layer::ALL {
            assert_eq!(layer.name().parse::<Layer>().unwrap(), layer);
        }
        let err = "vhost".parse::<Layer>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown layer \"vhost\" (expected loopback, veth, bridge or tap)"
        );
    }

    #[test]
    fn lab_addresses_stay_in_the_benchmarking_range() {
        let range = u32::from(Ipv4Addr::new(198, 18, 0, 0)) >> 17;
        for layer in [Layer::Veth, Layer::Bridge, Layer::Tap] {
            let (client, server) = layer.addresses();
            assert_eq!(u32::from(client) >> 17, range, "{layer:?}");
            assert_eq!(u32::from(server) >> 17, range, "{layer:?}");
            let mask = u32::MAX << (32 - PREFIX_LEN);
            assert_eq!(
                u32::from(client) & mask,
                u32::from(server) & mask,
                "{layer:?}"
            );
            assert_ne!(client, server, "{layer:?}");
        }
    }
}
