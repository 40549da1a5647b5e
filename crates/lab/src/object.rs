//! The objects a lab creates and their idempotent removal.
//!
//! Removal succeeds when the object is gone afterwards, whether it was removed now, earlier,
//! or never came to exist (its creation failed after it was registered). Only names a lab
//! could have given are ever removed (see [`crate::names`]).

use nearnative_host::Root;
use serde::{Deserialize, Serialize};

use crate::ip::{ip, ip_in, parse_link_names, IpError};
use crate::names::{is_lab_link, is_lab_netns};

/// One thing a lab created, named as iproute2 names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LabObject {
    /// A named network namespace, `/run/netns/<name>`.
    Netns { name: String },
    /// An interface inside the lab namespace `netns`. It also disappears with that namespace;
    /// it is listed so that a registry names everything, and removed first all the same.
    Link { name: String, netns: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("{object} is not a name nearnative lab gives; refusing to remove it")]
    Foreign { object: String },
    #[error("cannot remove {object}")]
    Remove {
        object: String,
        #[source]
        source: IpError,
    },
}

impl std::fmt::Display for LabObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabObject::Netns { name } => write!(f, "network namespace {name}"),
            LabObject::Link { name, netns } => write!(f, "interface {name} in namespace {netns}"),
        }
    }
}

impl LabObject {
    /// True when every name in the object is one a lab gives.
    pub fn is_lab_owned(&self) -> bool {
        match self {
            LabObject::Netns { name } => is_lab_netns(name),
            LabObject::Link { name, netns } => is_lab_link(name) && is_lab_netns(netns),
        }
    }

    /// Removes the object if it exists. Idempotent.
    pub fn remove(&self, root: &Root) -> Result<(), ObjectError> {
        if !self.is_lab_owned() {
            return Err(ObjectError::Foreign {
                object: self.to_string(),
            });
        }
        if !self.exists(root) {
            return Ok(());
        }
        let result = match self {
            LabObject::Netns { name } => ip(&["netns", "delete", name]),
            LabObject::Link { name, netns } => ip_in(netns, &["link", "delete", "dev", name]),
        };
        match result {
            Err(_) if !self.exists(root) => Ok(()),
            Err(source) => Err(ObjectError::Remove {
                object: self.to_string(),
                source,
            }),
            Ok(_) => Ok(()),
        }
    }

    /// Whether the object is there now. A link is looked up in its namespace, which must
    /// exist for the link to.
    pub fn exists(&self, root: &Root) -> bool {
        match self {
            LabObject::Netns { name } => netns_exists(root, name),
            LabObject::Link { name, netns } => {
                netns_exists(root, netns)
                    && ip_in(netns, &["-o", "link", "show"])
                        .map(|text| parse_link_names(&text).iter().any(|n| n == name))
                        .unwrap_or(false)
            }
        }
    }
}

fn netns_exists(root: &Root, name: &str) -> bool {
    root.exists(format!("/run/netns/{name}"))
}
