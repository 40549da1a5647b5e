//! The switch a libvirt domain carries in its XML, under `<metadata>`:
//!
//! ```xml
//! <nn:latency xmlns:nn="urn:nearnative:latency:1" level="high" io="dedicated"/>
//! ```
//!
//! Its attributes are `nearnative apply`'s options by their long names, and their values are
//! checked by the same parsers apply uses, so the two never disagree. Any prefix may stand for
//! the namespace; only the namespace and the local name `latency` count.
//!
//! [`Domain::parse`] takes the XML libvirt hands a hook on stdin (`<domain>`) as well as the
//! status XML it keeps for a running domain (`<domstatus>` wrapping the `<domain>`).

use nearnative_host::CpuSet;
use nearnative_plan::{IoPlacement, Level, PlanRequest, Target};
use roxmltree::{Document, Node};
use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::Deserialize;

/// The switch's XML namespace.
pub const NAMESPACE: &str = "urn:nearnative:latency:1";
/// The switch's local name.
pub const ELEMENT: &str = "latency";
/// The attributes the switch accepts, named as apply's options.
pub const ATTRIBUTES: &[&str] = &["level", "io", "vcpus", "cores", "nic", "rt"];

/// What nearnative needs of a domain's XML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub name: String,
    /// The vCPUs libvirt starts it with: `<vcpu current='N'>`, else the `<vcpu>` count.
    pub vcpus: u32,
    /// `None`: the domain does not ask to be latency-sensitive.
    pub switch: Option<Switch>,
}

/// The `<nn:latency>` element, parsed: apply's options for the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    pub level: Level,
    pub io: IoPlacement,
    pub vcpus: Option<CpuSet>,
    pub cores: Option<u32>,
    pub nic: Option<String>,
    pub rt: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("domain XML: {reason}")]
    Xml { reason: String },
    #[error("domain XML: no <domain> element (the root is <{root}>)")]
    NoDomain { root: String },
    #[error("domain XML: <domain> has no <name>")]
    NoName,
    #[error("domain {domain}: <vcpu>: {reason}")]
    Vcpu { domain: String, reason: String },
    #[error("domain {domain}: <metadata> holds more than one <nn:latency> of {NAMESPACE}")]
    TwoSwitches { domain: String },
    #[error("domain {domain}: <nn:latency>: level is required (high or high-ht)")]
    NoLevel { domain: String },
    #[error("domain {domain}: <nn:latency {attribute}=\"{value}\">: {reason}")]
    Attribute {
        domain: String,
        attribute: String,
        value: String,
        reason: String,
    },
}

impl Domain {
    /// The domain in `xml`: a `<domain>`, or a `<domstatus>` holding one.
    pub fn parse(xml: &str) -> Result<Domain, MetadataError> {
        let document = Document::parse(xml).map_err(|e| MetadataError::Xml {
            reason: e.to_string(),
        })?;
        let root = document.root_element();
        let domain = match root.has_tag_name("domain") {
            true => Some(root),
            false => root.children().find(|n| n.has_tag_name("domain")),
        };
        let domain = domain.ok_or_else(|| MetadataError::NoDomain {
            root: root.tag_name().name().to_owned(),
        })?;
        let name = child(domain, "name")
            .and_then(|n| n.text())
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .ok_or(MetadataError::NoName)?
            .to_owned();
        let vcpus = vcpu_count(domain, &name)?;
        let switch = switch_element(domain, &name)?
            .map(|element| Switch::parse(element, &name))
            .transpose()?;
        Ok(Domain {
            name,
            vcpus,
            switch,
        })
    }
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|n| n.has_tag_name(name))
}

/// `<vcpu current='1'>2</vcpu>` starts with 1; `<vcpu>2</vcpu>` with 2; no `<vcpu>`, with 1
/// (libvirt's default).
fn vcpu_count(domain: Node, name: &str) -> Result<u32, MetadataError> {
    let Some(vcpu) = child(domain, "vcpu") else {
        return Ok(1);
    };
    let bad = |reason: String| MetadataError::Vcpu {
        domain: name.to_owned(),
        reason,
    };
    let text = match vcpu.attribute("current") {
        Some(current) => current,
        None => vcpu.text().unwrap_or_default(),
    };
    match text.trim().parse::<u32>() {
        Ok(count) if count >= 1 => Ok(count),
        _ => Err(bad(format!("{:?} is not a vCPU count", text.trim()))),
    }
}

/// The `latency` element of [`NAMESPACE`] under `<metadata>`, whatever its prefix.
fn switch_element<'a, 'i>(
    domain: Node<'a, 'i>,
    name: &str,
) -> Result<Option<Node<'a, 'i>>, MetadataError> {
    let Some(metadata) = child(domain, "metadata") else {
        return Ok(None);
    };
    let mut switches = metadata
        .children()
        .filter(|n| n.has_tag_name((NAMESPACE, ELEMENT)));
    let first = switches.next();
    match switches.next() {
        Some(_) => Err(MetadataError::TwoSwitches {
            domain: name.to_owned(),
        }),
        None => Ok(first),
    }
}

impl Switch {
    fn parse(element: Node, domain: &str) -> Result<Switch, MetadataError> {
        let mut level = None;
        let mut switch = Switch {
            level: Level::High,
            io: IoPlacement::Housekeeping,
            vcpus: None,
            cores: None,
            nic: None,
            rt: None,
        };
        // Namespace declarations are not attributes to roxmltree; a namespaced attribute
        // (`nn:level`) is not one of ours, and is refused as unknown like any other.
        for attribute in element.attributes() {
            let value = attribute.value();
            let named = match attribute.namespace() {
                None => attribute.name(),
                Some(_) => "",
            };
            let set = match named {
                "level" => value.parse().map(|l| level = Some(l)),
                "io" => variant(value).map(|io| switch.io = io),
                "vcpus" => cpu_list(value).map(|v| switch.vcpus = Some(v)),
                "cores" => integer(value, 1, u32::MAX).map(|c| switch.cores = Some(c)),
                "nic" => name(value).map(|n| switch.nic = Some(n)),
                "rt" => integer(value, 1, 99).map(|p| switch.rt = Some(p)),
                _ => Err(format!(
                    "unknown attribute; accepted: {}",
                    ATTRIBUTES.join(", ")
                )),
            };
            set.map_err(|reason| MetadataError::Attribute {
                domain: domain.to_owned(),
                attribute: qualified(&attribute),
                value: value.to_owned(),
                reason,
            })?;
        }
        switch.level = level.ok_or_else(|| MetadataError::NoLevel {
            domain: domain.to_owned(),
        })?;
        Ok(switch)
    }

    /// The request that makes domain `name` latency-sensitive: target `vm:NAME` with the
    /// switch's options, planned in `scope` and pinned through libvirt at `libvirt_uri`.
    pub fn request(
        &self,
        name: &str,
        scope: Option<&str>,
        libvirt_uri: Option<&str>,
    ) -> PlanRequest {
        let mut request = PlanRequest::new(Target::Vm(name.to_owned()));
        request.level = self.level;
        request.io = self.io;
        request.vcpus = self.vcpus.clone();
        request.cores = self.cores;
        request.nic = self.nic.clone();
        request.rt = self.rt;
        request.scope = scope.map(str::to_owned);
        request.libvirt_uri = libvirt_uri.map(str::to_owned);
        request
    }
}

/// How many of a domain's `count` vCPUs get an exclusive CPU: those `vcpus` lists (all when
/// `None`) that the domain has.
pub fn exclusive_vcpus(vcpus: Option<&CpuSet>, count: u32) -> u32 {
    match vcpus {
        None => count,
        Some(listed) => {
            let below = listed.iter().filter(|v| *v < count).count();
            u32::try_from(below).unwrap_or(u32::MAX)
        }
    }
}

/// An attribute's name as written (`level`, `nn:level`), for messages.
fn qualified(attribute: &roxmltree::Attribute) -> String {
    match attribute.namespace() {
        None => attribute.name().to_owned(),
        Some(namespace) => format!("{{{namespace}}}{}", attribute.name()),
    }
}

/// A CPU list as apply's `--vcpus` takes it: an empty one is a mistake.
fn cpu_list(text: &str) -> Result<CpuSet, String> {
    match CpuSet::parse_list(text) {
        Ok(set) if set.is_empty() => Err("expected a CPU list, not an empty one".to_owned()),
        parsed => parsed.map_err(|e| e.to_string()),
    }
}

fn integer(text: &str, min: u32, max: u32) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("expected an integer from {min} to {max}"))
}

fn name(text: &str) -> Result<String, String> {
    match text.trim() {
        "" => Err("expected a name, not an empty string".to_owned()),
        name => Ok(name.to_owned()),
    }
}

/// One of the plan crate's named choices (`dedicated`), by its serde name, as policies take it.
fn variant<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, String> {
    T::deserialize(StrDeserializer::<ValueError>::new(text)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recipe's domain, as `virsh start` hands it to a hook.
    fn domain(metadata: &str) -> String {
        format!(
            r#"<domain type='kvm' id='3'>
  <name>nn1</name>
  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>
  <memory unit='KiB'>65536</memory>
  <vcpu placement='static' current='1'>2</vcpu>
  <iothreads>1</iothreads>
  <metadata>{metadata}</metadata>
  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os>
  <features><acpi/></features>
  <cpu mode='host-passthrough' check='none' migratable='on'/>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator><controller type='usb' index='0' model='none'/><memballoon model='none'/></devices>
</domain>"#
        )
    }

    fn switch(attributes: &str) -> Result<Domain, MetadataError> {
        Domain::parse(&domain(&format!(
            r#"<nn:latency xmlns:nn="urn:nearnative:latency:1" {attributes}/>"#
        )))
    }

    fn refusal(attributes: &str) -> String {
        switch(attributes).unwrap_err().to_string()
    }

    #[test]
    fn the_recipes_domain_asks_for_high_with_its_current_vcpus() {
        let parsed = switch(r#"level="high""#).unwrap();
        assert_eq!(parsed.name, "nn1");
        assert_eq!(parsed.vcpus, 1, "current='1' of 2");
        let switch = parsed.switch.unwrap();
        assert_eq!(switch.level, Level::High);
        assert_eq!(switch.io, IoPlacement::Housekeeping);
        let request = switch.request("nn1", Some("/machine"), Some("qemu:///system"));
        assert_eq!(request.target, Target::Vm("nn1".to_owned()));
        assert_eq!(request.scope.as_deref(), Some("/machine"));
        assert_eq!(request.libvirt_uri.as_deref(), Some("qemu:///system"));
    }

    #[test]
    fn every_option_is_read_by_applys_parsers() {
        let parsed =
            switch(r#"level="high-ht" io="dedicated" vcpus="0-1" cores="1" nic="eth1" rt="10""#)
                .unwrap();
        let request = parsed.switch.unwrap().request("nn1", None, None);
        assert_eq!(request.level, Level::HighHt);
        assert_eq!(request.io, IoPlacement::Dedicated);
        assert_eq!(request.vcpus, Some(CpuSet::parse_list("0-1").unwrap()));
        assert_eq!(request.cores, Some(1));
        assert_eq!(request.nic.as_deref(), Some("eth1"));
        assert_eq!(request.rt, Some(10));
        assert_eq!(request.scope, None);
    }

    #[test]
    fn any_prefix_names_the_namespace_and_other_metadata_is_ignored() {
        let xml = domain(
            r#"<app:info xmlns:app="http://example.org/app"><x/></app:info>
               <lat:latency xmlns:lat="urn:nearnative:latency:1" level="high"/>"#,
        );
        assert!(Domain::parse(&xml).unwrap().switch.is_some());
        let other = domain(r#"<nn:latency xmlns:nn="urn:other:1" level="bogus"/>"#);
        assert_eq!(Domain::parse(&other).unwrap().switch, None);
        assert_eq!(Domain::parse(&domain("")).unwrap().switch, None);
    }

    #[test]
    fn a_bad_attribute_is_one_line_naming_the_domain_and_the_attribute() {
        assert_eq!(
            refusal(r#"level="medium""#),
            r#"domain nn1: <nn:latency level="medium">: level "medium" is not one of: high, high-ht"#
        );
        let cases = [
            (r#"level="high" vcpus="0-x""#, r#"<nn:latency vcpus="0-x">"#),
            (r#"level="high" vcpus="""#, "not an empty one"),
            (r#"level="high" cores="0""#, "from 1 to"),
            (r#"level="high" rt="100""#, "from 1 to 99"),
            (r#"level="high" io="fast""#, r#"<nn:latency io="fast">"#),
            (r#"level="high" nic="""#, "<nn:latency nic=\"\">"),
            (
                r#"level="high" speed="9""#,
                "unknown attribute; accepted: level",
            ),
        ];
        for (attributes, expected) in cases {
            let message = refusal(attributes);
            assert!(message.contains(expected), "{attributes}: {message}");
            assert!(message.starts_with("domain nn1: "), "{message}");
            assert_eq!(message.lines().count(), 1, "{message}");
        }
        assert_eq!(
            refusal(r#"io="dedicated""#),
            "domain nn1: <nn:latency>: level is required (high or high-ht)"
        );
    }

    #[test]
    fn the_status_xml_of_a_running_domain_holds_its_switch() {
        let status = format!(
            "<domstatus state='running' reason='booted' pid='4242'>\n  <taint flag='high-privileges'/>\n  \
             <monitor path='/var/lib/libvirt/qemu/domain-3-nn1/monitor.sock' type='unix'/>\n  \
             <vcpus>\n    <vcpu id='0' pid='4250'/>\n  </vcpus>\n  {}\n</domstatus>",
            domain(r#"<nn:latency xmlns:nn="urn:nearnative:latency:1" level="high"/>"#)
        );
        let parsed = Domain::parse(&status).unwrap();
        assert_eq!(parsed.name, "nn1");
        assert!(parsed.switch.is_some());
    }

    #[test]
    fn broken_xml_and_vcpu_counts_are_refused() {
        assert!(Domain::parse("<domain>").is_err());
        assert_eq!(
            Domain::parse("<capabilities/>").unwrap_err(),
            MetadataError::NoDomain {
                root: "capabilities".to_owned()
            }
        );
        let no_vcpu = "<domain type='kvm'><name>a</name></domain>";
        assert_eq!(Domain::parse(no_vcpu).unwrap().vcpus, 1);
        let four = "<domain type='kvm'><name>a</name><vcpu>4</vcpu></domain>";
        assert_eq!(Domain::parse(four).unwrap().vcpus, 4);
        let bad = "<domain type='kvm'><name>a</name><vcpu>x</vcpu></domain>";
        assert!(Domain::parse(bad)
            .unwrap_err()
            .to_string()
            .starts_with("domain a: <vcpu>"));
    }

    #[test]
    fn exclusive_vcpus_are_those_listed_that_the_domain_has() {
        assert_eq!(exclusive_vcpus(None, 2), 2);
        let listed = CpuSet::parse_list("1-3").unwrap();
        assert_eq!(exclusive_vcpus(Some(&listed), 2), 1);
    }
}
