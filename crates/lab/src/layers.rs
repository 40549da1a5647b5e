//! Building each layer's namespaces and interfaces with iproute2, registering every object
//! durably before it is created (see [`crate::registry`]).

use std::fs::File;
use std::net::Ipv4Addr;

use crate::ip::{ip, ip_in, IpError};
use crate::names::{NameTooLong, RunTag};
use crate::netns::{run_in, NetnsError};
use crate::object::LabObject;
use crate::path::{Layer, NetPath, PREFIX_LEN};
use crate::registry::{Registry, RegistryError};
use crate::tap::{open_tap, TapError};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Ip(#[from] IpError),
    #[error(transparent)]
    Name(#[from] NameTooLong),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Tap(#[from] TapError),
}

/// What building a layer made: the path, and for a tap the two tap fds the forwarder joins.
pub struct Built {
    pub path: NetPath,
    pub taps: Option<(File, File)>,
}

/// Builds `layer` for the run `tag`, recording every object in `registry` first.
pub fn build(registry: &mut Registry, tag: &RunTag, layer: Layer) -> Result<Built, BuildError> {
    let first = registry.objects().len();
    let (client_ip, server_ip) = layer.addresses();
    let (client_netns, server_netns, taps) = match layer {
        Layer::Loopback => (None, None, None),
        _ => {
            let client = add_netns(registry, &tag.netns(&format!("{}-c", layer.name())))?;
            let server = add_netns(registry, &tag.netns(&format!("{}-s", layer.name())))?;
            let ends = Ends {
                client: &client,
                server: &server,
                client_ip,
                server_ip,
            };
            let taps = match layer {
                Layer::Veth => add_veth(registry, tag, &ends).map(|()| None),
                Layer::Bridge => add_bridge(registry, tag, &ends).map(|()| None),
                _ => add_taps(registry, tag, &ends).map(Some),
            }?;
            (Some(client), Some(server), taps)
        }
    };
    Ok(Built {
        path: NetPath {
            layer,
            client_ip: client_ip.into(),
            server_ip: server_ip.into(),
            client_netns,
            server_netns,
            objects: registry.objects()[first..].to_vec(),
        },
        taps,
    })
}

/// The two namespaces of a path and the address each end gets.
pub struct Ends<'a> {
    pub client: &'a str,
    pub server: &'a str,
    pub client_ip: Ipv4Addr,
    pub server_ip: Ipv4Addr,
}

/// Adds a namespace with its loopback up.
pub fn add_netns(registry: &mut Registry, name: &str) -> Result<String, BuildError> {
    let object = LabObject::Netns { name: name.into() };
    registry.create_with(object, || {
        ip(&["netns", "add", name]).map_err(BuildError::from)
    })?;
    ip_in(name, &["link", "set", "lo", "up"])?;
    Ok(name.to_owned())
}

/// Adds a veth pair `client_link` (in `ends.client`) / `server_link` (in `ends.server`).
pub fn add_veth_pair(
    registry: &mut Registry,
    ends: &Ends,
    client_link: &str,
    server_link: &str,
) -> Result<(), BuildError> {
    register_link(registry, client_link, ends.client)?;
    let peer = LabObject::Link {
        name: server_link.into(),
        netns: ends.server.into(),
    };
    registry.create_with(peer, || {
        ip_in(
            ends.client,
            &[
                "link",
                "add",
                client_link,
                "type",
                "veth",
                "peer",
                "name",
                server_link,
                "netns",
                ends.server,
            ],
        )
        .map_err(BuildError::from)
    })?;
    Ok(())
}

/// Registers a link before the command that creates it runs.
fn register_link(registry: &mut Registry, name: &str, netns: &str) -> Result<(), BuildError> {
    let object = LabObject::Link {
        name: name.into(),
        netns: netns.into(),
    };
    registry.create_with(object, || Ok::<_, BuildError>(()))
}

fn add_veth(registry: &mut Registry, tag: &RunTag, ends: &Ends) -> Result<(), BuildError> {
    let (client_link, server_link) = (tag.link("v0")?, tag.link("v1")?);
    add_veth_pair(registry, ends, &client_link, &server_link)?;
    address_and_up(ends.client, &client_link, ends.client_ip)?;
    address_and_up(ends.server, &server_link, ends.server_ip)
}

fn add_bridge(registry: &mut Registry, tag: &RunTag, ends: &Ends) -> Result<(), BuildError> {
    let bridge = tag.link("br")?;
    let (port, server_link) = (tag.link("bp")?, tag.link("bq")?);
    let object = LabObject::Link {
        name: bridge.clone(),
        netns: ends.client.into(),
    };
    registry.create_with(object, || {
        ip_in(ends.client, &["link", "add", &bridge, "type", "bridge"]).map_err(BuildError::from)
    })?;
    add_veth_pair(registry, ends, &port, &server_link)?;
    ip_in(
        ends.client,
        &["link", "set", &port, "master", &bridge, "up"],
    )?;
    address_and_up(ends.client, &bridge, ends.client_ip)?;
    address_and_up(ends.server, &server_link, ends.server_ip)
}

fn add_taps(
    registry: &mut Registry,
    tag: &RunTag,
    ends: &Ends,
) -> Result<(File, File), BuildError> {
    let (client_tap, server_tap) = (tag.link("t0")?, tag.link("t1")?);
    let client_fd = add_tap(registry, ends.client, &client_tap)?;
    let server_fd = add_tap(registry, ends.server, &server_tap)?;
    address_and_up(ends.client, &client_tap, ends.client_ip)?;
    address_and_up(ends.server, &server_tap, ends.server_ip)?;
    Ok((client_fd, server_fd))
}

/// Creates the tap `name` in `netns`; it lives as long as the returned fd.
fn add_tap(registry: &mut Registry, netns: &str, name: &str) -> Result<File, BuildError> {
    let object = LabObject::Link {
        name: name.into(),
        netns: netns.into(),
    };
    let owned_name = name.to_owned();
    registry.create_with(object, || {
        run_in(Some(netns), "nn-lab-tapopen", move || open_tap(&owned_name))?
            .map_err(BuildError::from)
    })
}

/// Gives `link` in `netns` its address and brings it up.
pub fn address_and_up(netns: &str, link: &str, addr: Ipv4Addr) -> Result<(), BuildError> {
    let cidr = format!("{addr}/{PREFIX_LEN}");
    ip_in(netns, &["addr", "add", &cidr, "dev", link])?;
    ip_in(netns, &["link", "set", link, "up"])?;
    Ok(())
}
