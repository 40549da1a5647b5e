//! nearnative for libvirt domains: the switch a domain carries in its XML
//! (`<nn:latency xmlns:nn="urn:nearnative:latency:1" level="high"/>` under `<metadata>`),
//! and the domain XML with the pinning of its allocation merged in.

pub mod domain_xml;
pub mod metadata;
pub mod virsh;
