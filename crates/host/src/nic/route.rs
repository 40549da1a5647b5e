//! Which interfaces carry a default route, from `/proc/net/route` and `/proc/net/ipv6_route`.
//!
//! apply refuses to touch the IRQs or link of such an interface unless told to by name, so
//! the host stays reachable. A default route is an up (RTF_UP) route to the all-zero prefix
//! of length zero; IPv6 reject routes (RTF_REJECT, the kernel's `::/0 ... lo` placeholder)
//! are not routes out.

use serde::{Deserialize, Serialize};

const RTF_UP: u32 = 0x0001;
const RTF_REJECT: u32 = 0x0200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    Ipv4,
    Ipv6,
}

/// Interfaces with an IPv4 default route, from `/proc/net/route` (hex fields after a header).
pub fn ipv4_default_interfaces(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [iface, destination, _gateway, flags, _, _, _, mask, ..] = fields[..] else {
            continue;
        };
        let flags = u32::from_str_radix(flags, 16).unwrap_or(0);
        let zero = |hex: &str| u32::from_str_radix(hex, 16) == Ok(0);
        if zero(destination) && zero(mask) && flags & RTF_UP != 0 {
            push_unique(&mut found, iface);
        }
    }
    found
}

/// Interfaces with an IPv6 default route, from `/proc/net/ipv6_route` (no header).
pub fn ipv6_default_interfaces(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [destination, prefix_len, _, _, _, _, _, _, flags, iface] = fields[..] else {
            continue;
        };
        let flags = u32::from_str_radix(flags, 16).unwrap_or(0);
        let is_default = destination.len() == 32
            && destination.bytes().all(|b| b == b'0')
            && u8::from_str_radix(prefix_len, 16) == Ok(0);
        if is_default && flags & RTF_UP != 0 && flags & RTF_REJECT == 0 {
            push_unique(&mut found, iface);
        }
    }
    found
}

fn push_unique(found: &mut Vec<String>, iface: &str) {
    if !found.iter().any(|f| f == iface) {
        found.push(iface.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Captured on the 2-CPU KVM guest these tests run on.
    const ROUTE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";

    const IPV6_ROUTE: &str = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";

    #[test]
    fn finds_default_routes_of_both_families() {
        assert_eq!(ipv4_default_interfaces(ROUTE), ["eth0"]);
        assert_eq!(
            ipv6_default_interfaces(IPV6_ROUTE),
            ["eth0"],
            "lo's reject route is not one"
        );
    }

    #[test]
    fn down_routes_and_other_prefixes_are_not_default() {
        let cases = [
            (
                "down route",
                "h\neth1\t00000000\t0\t0000\t0\t0\t0\t00000000\n",
            ),
            (
                "host route",
                "h\neth1\t0100000A\t0\t0001\t0\t0\t0\tFFFFFFFF\n",
            ),
            ("short line", "h\neth1\t00000000\n"),
            ("header only", "Iface\tDestination\n"),
        ];
        for (what, text) in cases {
            assert!(ipv4_default_interfaces(text).is_empty(), "{what}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(text in "(?s).{0,300}") {
            let _ = ipv4_default_interfaces(&text);
            let _ = ipv6_default_interfaces(&text);
        }
    }
}
