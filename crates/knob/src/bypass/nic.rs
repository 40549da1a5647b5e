//! NIC interrupt coalescing and receive offloads (LRO, GRO), through SIOCETHTOOL on the live
//! host; a captured tree has no NIC to ask, so they are [`KnobError::NotAvailable`] there.

use std::io;

use nearnative_host::nic::Coalescing;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, Offload};
use crate::error::{Described, KnobError, Object};
use crate::knob::Knob;

/// A network interface name. Invariant: what the kernel accepts in `ifr_name` (1 to 15 bytes,
/// no `/`, whitespace or NUL).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Interface(String);

impl Interface {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Interface {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        let ok = (1..16).contains(&name.len())
            && !name.contains(|c: char| c == '/' || c == '\0' || c.is_whitespace());
        match ok {
            true => Ok(Interface(name)),
            false => Err(format!("{name:?} is not an interface name")),
        }
    }
}

impl From<Interface> for String {
    fn from(iface: Interface) -> String {
        iface.0
    }
}

fn read_error(knob: Described, err: io::Error) -> KnobError {
    KnobError::from_write(knob, Object::File, err)
}

/// rx/tx usecs and frames and adaptive rx/tx (ETHTOOL_GCOALESCE / ETHTOOL_SCOALESCE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicCoalesce {
    pub iface: Interface,
}

impl Knob for NicCoalesce {
    type Value = Coalescing;

    fn describe(&self) -> Described {
        Described::new(
            format!("interrupt coalescing of {}", self.iface.0),
            format!("SIOCETHTOOL ETHTOOL_SCOALESCE on {}", self.iface.0),
        )
    }

    fn read(&self, backend: &dyn Backend) -> Result<Coalescing, KnobError> {
        backend
            .coalescing(self.iface.as_str())
            .map_err(|e| read_error(self.describe(), e))
    }

    fn write(&self, backend: &dyn Backend, value: &Coalescing) -> Result<(), KnobError> {
        backend
            .set_coalescing(self.iface.as_str(), value)
            .map_err(|e| KnobError::from_write(self.describe(), Object::File, e))
    }
}

/// LRO or GRO on or off (ETHTOOL_SFEATURES, or the legacy SFLAGS / SGRO).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicFeature {
    pub iface: Interface,
    pub feature: Offload,
}

impl Knob for NicFeature {
    type Value = bool;

    fn describe(&self) -> Described {
        let name = match self.feature {
            Offload::Lro => "LRO",
            Offload::Gro => "GRO",
        };
        Described::new(
            format!("{name} of {}", self.iface.0),
            format!("SIOCETHTOOL ETHTOOL_SFEATURES on {}", self.iface.0),
        )
    }

    fn read(&self, backend: &dyn Backend) -> Result<bool, KnobError> {
        backend
            .offload(self.iface.as_str(), self.feature)
            .map_err(|e| read_error(self.describe(), e))
    }

    /// SFEATURES succeeds for a feature the driver cannot change (it only flags it), so the
    /// state is read back: a feature left as it was is the kernel refusing.
    fn write(&self, backend: &dyn Backend, on: &bool) -> Result<(), KnobError> {
        backend
            .set_offload(self.iface.as_str(), self.feature, *on)
            .map_err(|e| KnobError::from_write(self.describe(), Object::File, e))?;
        match self.read(backend)? == *on {
            true => Ok(()),
            false => Err(KnobError::Refused {
                knob: self.describe(),
                source: io::Error::other("the driver cannot change this feature"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked() {
        let cases = [
            ("plain", "eth1", true),
            ("empty", "", false),
            ("too long", "abcdefghijklmnop", false),
            ("slash", "a/b", false),
            ("space", "a b", false),
        ];
        for (what, name, ok) in cases {
            assert_eq!(Interface::try_from(name.to_owned()).is_ok(), ok, "{what}");
        }
    }
}
