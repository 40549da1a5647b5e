//! Shared helpers: root detection, host network state, closed-loop probes over a path.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use nearnative_lab::ip::{ip, parse_link_names, parse_netns_names};
use nearnative_probe::rtt::{ClientConfig, RunLength};

/// Root tests change the host's namespace list, so they run one at a time to compare it.
static ROOT_TESTS: Mutex<()> = Mutex::new(());

/// Serialises root tests; `None` (with a loud message) when not root, the one case to skip.
pub fn root_test(name: &str) -> Option<MutexGuard<'static, ()>> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED {name}: needs root to create network namespaces");
        return None;
    }
    Some(ROOT_TESTS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The host's namespaces and host-namespace interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetState {
    pub netns: BTreeSet<String>,
    pub links: BTreeSet<String>,
}

pub fn net_state() -> NetState {
    NetState {
        netns: parse_netns_names(&ip(&["netns", "list"]).unwrap())
            .into_iter()
            .collect(),
        links: parse_link_names(&ip(&["-o", "link"]).unwrap())
            .into_iter()
            .collect(),
    }
}

impl NetState {
    /// Names belonging to the run `id` (from `RunTag::id`).
    pub fn of_run(&self, id: &str) -> Vec<String> {
        let ns = format!("nnlab-{id}-");
        let link = format!("nnl{id}");
        self.netns
            .iter()
            .filter(|n| n.starts_with(&ns))
            .chain(self.links.iter().filter(|l| l.starts_with(&link)))
            .cloned()
            .collect()
    }

    /// Fails unless nothing a lab names was added or removed since `before`, and nothing else
    /// that was there before is gone (other software may add its own meanwhile).
    pub fn assert_restored(&self, before: &NetState) {
        let lab = |set: &BTreeSet<String>| -> BTreeSet<String> {
            set.iter()
                .filter(|n| n.starts_with("nnl"))
                .cloned()
                .collect()
        };
        assert_eq!(lab(&self.netns), lab(&before.netns), "lab namespaces");
        assert_eq!(lab(&self.links), lab(&before.links), "lab interfaces");
        assert!(before.netns.is_subset(&self.netns), "a namespace vanished");
        assert!(before.links.is_subset(&self.links), "an interface vanished");
    }
}

/// A closed-loop UDP probe of `count` round trips with a short warm-up.
pub fn closed_loop(target: String, count: u64) -> ClientConfig {
    let mut config = ClientConfig::new(target);
    config.length = RunLength::Count(count);
    config.warmup = Duration::from_millis(100);
    config.timeout = Duration::from_millis(200);
    config
}
