//! libvirt domains that carry the `<nn:latency>` switch: admitted at `prepare`, applied once
//! `started`, reverted and released at `release`, and adopted at `reconnect` or when the
//! daemon starts (from libvirt's status XML of its running domains).
//!
//! The qemu hook ([`hook`]) only reports; the daemon keeps, in memory, what the hooks said:
//! - the domains declared latency-sensitive, which the loop wants exactly as it wants a
//!   policy's instance (origin `libvirt:NAME`): the VM waits for its vCPU threads, then is
//!   applied, kept true and, when its threads are gone, released;
//! - the admissions made at `prepare` and not applied yet, which count as held for the next
//!   `prepare` so two domains starting together are not both promised the same cores. One is
//!   dropped once its domain is applied (the ledger holds it then), at `release`, or after
//!   [`PENDING_FOR`].
//!
//! A workload applied for a domain stays held when the daemon forgets the domain (a restart):
//! the loop keeps workloads of other origins than policies, and only `release` (or its
//! threads being gone) reverts it.

pub mod answer;
pub mod hook;
pub mod install;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use nearnative_host::Root;
use nearnative_libvirt::metadata::Domain;
use nearnative_plan::{Allocation, PlanRequest, WorkloadKey};

use crate::reconcile::Wanted;

/// The origin of applies made for a libvirt domain starts with this (`libvirt:NAME`).
pub const LIBVIRT_ORIGIN: &str = "libvirt:";

/// Where libvirt keeps the status XML of the QEMU domains it runs (root's alone).
pub const DEFAULT_STATUS_DIR: &str = "/run/libvirt/qemu";

/// How long an admission made at `prepare` holds its cores without the domain being applied:
/// libvirt fires `started` within a second of `prepare`, and always `release` after a start
/// that failed; this only bounds a hook event lost on the way.
pub const PENDING_FOR: Duration = Duration::from_secs(60);

/// The ledger key of domain `name`.
pub fn key_of(name: &str) -> WorkloadKey {
    WorkloadKey(format!("vm:{name}"))
}

/// The origin recorded for domain `name`'s apply.
pub fn origin_of(name: &str) -> String {
    format!("{LIBVIRT_ORIGIN}{name}")
}

#[derive(Debug, Clone)]
struct Pending {
    allocation: Allocation,
    since: Instant,
}

/// What the hooks said, shared by the control socket's threads and the loop.
#[derive(Debug, Default)]
pub struct Domains {
    /// The request of each domain declared latency-sensitive, by domain name.
    declared: BTreeMap<String, PlanRequest>,
    pending: BTreeMap<WorkloadKey, Pending>,
}

impl Domains {
    /// Domain `name` runs with its switch: the loop wants `request` applied.
    pub fn declare(&mut self, name: &str, request: PlanRequest) {
        self.declared.insert(name.to_owned(), request);
    }

    /// Domain `name` stopped: neither wanted nor admitted any more.
    pub fn forget(&mut self, name: &str) {
        self.declared.remove(name);
        self.pending.remove(&key_of(name));
    }

    /// `allocation` was promised to its workload at `now`.
    pub fn admitted(&mut self, allocation: Allocation, now: Instant) {
        let key = allocation.workload().clone();
        self.pending.insert(
            key,
            Pending {
                allocation,
                since: now,
            },
        );
    }

    /// `key` is applied: the ledger holds its cores now.
    pub fn applied(&mut self, key: &WorkloadKey) {
        self.pending.remove(key);
    }

    /// The admissions still pending at `now` of every workload but `key`; expired ones go.
    pub fn pending_except(&mut self, key: &WorkloadKey, now: Instant) -> Vec<Allocation> {
        self.pending
            .retain(|_, p| now.saturating_duration_since(p.since) < PENDING_FOR);
        self.pending
            .iter()
            .filter(|(k, _)| *k != key)
            .map(|(_, p)| p.allocation.clone())
            .collect()
    }

    /// The declared domains, as the loop wants them: one admitted at `prepare` and not
    /// applied yet on exactly the CPUs it was admitted on (`exact`), so its apply cannot land
    /// on cores another admission holds, nor refuse what `prepare` promised.
    pub fn wanted(&self) -> Vec<Wanted> {
        self.declared
            .iter()
            .map(|(name, request)| {
                let key = key_of(name);
                let mut request = request.clone();
                if let Some(pending) = self.pending.get(&key) {
                    request.exact = Some(pending.allocation.exclusive_cpus.clone());
                }
                Wanted {
                    key,
                    request,
                    origin: origin_of(name),
                    policy: None,
                }
            })
            .collect()
    }

    /// Whether the domain of ledger key `key` is declared.
    pub fn declares(&self, key: &WorkloadKey) -> bool {
        self.declared.keys().any(|name| key_of(name) == *key)
    }

    pub fn is_declared(&self, name: &str) -> bool {
        self.declared.contains_key(name)
    }
}

/// The daemon's request for a domain's switch: its own scope and libvirt URI, whatever the
/// hook sent.
pub fn in_daemon(
    mut request: PlanRequest,
    scope: Option<&str>,
    libvirt_uri: Option<&str>,
) -> PlanRequest {
    request.scope = scope.map(str::to_owned);
    request.libvirt_uri = libvirt_uri.map(str::to_owned);
    request
}

/// The running domains with a switch, from libvirt's status XML in `dir` (`NAME.xml`, a
/// `<domstatus>` around the live `<domain>`), for a daemon that starts while they run. A
/// file that cannot be read or parsed, or an invalid switch, is one line in the second list.
pub fn running_with_switch(root: &Root, dir: &Path) -> (Vec<Domain>, Vec<String>) {
    let mut domains = Vec::new();
    let mut problems = Vec::new();
    let names = match root.list_dir(dir) {
        Ok(names) => names,
        Err(err) if err.is_not_found() => return (domains, problems),
        Err(err) => {
            problems.push(format!("libvirt status {}: {err}", dir.display()));
            return (domains, problems);
        }
    };
    for name in names.iter().filter(|n| n.ends_with(".xml")) {
        let path = dir.join(name);
        let parsed = root
            .read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|xml| Domain::parse(&xml).map_err(|e| e.to_string()));
        match parsed {
            Ok(domain) if domain.switch.is_some() => domains.push(domain),
            Ok(_) => {}
            Err(reason) => problems.push(format!("libvirt status {}: {reason}", path.display())),
        }
    }
    (domains, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nearnative_plan::{allocate, AllocationRequest, Ledger, Level, Target};
    use nearnative_testkit::Shape;

    fn allocation(key: &str) -> Allocation {
        let topology = Shape::server(1, 1, 4, 1).build();
        let request = AllocationRequest::new(key, 1, Level::High);
        allocate(&topology, &Ledger::new(), &request).unwrap()
    }

    #[test]
    fn pending_admissions_last_until_applied_released_or_expired() {
        let t0 = Instant::now();
        let mut domains = Domains::default();
        domains.admitted(allocation("vm:a"), t0);
        domains.admitted(allocation("vm:b"), t0);
        let asking = key_of("c");
        assert_eq!(domains.pending_except(&asking, t0).len(), 2);
        assert_eq!(
            domains.pending_except(&key_of("a"), t0).len(),
            1,
            "a domain's own admission does not count against it"
        );
        domains.applied(&key_of("a"));
        domains.forget("b");
        assert!(domains.pending_except(&asking, t0).is_empty());
        domains.admitted(allocation("vm:a"), t0);
        assert!(domains.pending_except(&asking, t0 + PENDING_FOR).is_empty());
    }

    #[test]
    fn a_declared_domain_is_wanted_as_libvirts() {
        let mut domains = Domains::default();
        let request = PlanRequest::new(Target::Vm("nn1".to_owned()));
        domains.declare("nn1", in_daemon(request, Some("/machine"), None));
        let wanted = domains.wanted();
        assert_eq!(wanted.len(), 1);
        assert_eq!(wanted[0].key, key_of("nn1"));
        assert_eq!(wanted[0].origin, "libvirt:nn1");
        assert_eq!(wanted[0].policy, None);
        assert_eq!(wanted[0].request.scope.as_deref(), Some("/machine"));
        assert_eq!(wanted[0].request.exact, None, "not admitted here");
        domains.forget("nn1");
        assert!(domains.wanted().is_empty());
    }

    #[test]
    fn a_domain_admitted_at_prepare_is_wanted_on_exactly_its_admitted_cpus() {
        let t0 = Instant::now();
        let mut domains = Domains::default();
        let admitted = allocation("vm:nn1");
        let cpus = admitted.exclusive_cpus.clone();
        domains.admitted(admitted, t0);
        domains.declare("nn1", PlanRequest::new(Target::Vm("nn1".to_owned())));
        assert_eq!(domains.wanted()[0].request.exact, Some(cpus));
        domains.applied(&key_of("nn1"));
        assert_eq!(
            domains.wanted()[0].request.exact,
            None,
            "once applied, a re-plan takes any free cores"
        );
    }

    #[test]
    fn the_status_dir_gives_the_running_domains_with_a_switch() {
        let dir = tempfile::tempdir().unwrap();
        let domain = |name: &str, metadata: &str| {
            format!(
                "<domstatus state='running' pid='1'><domain type='kvm' id='1'><name>{name}</name>\
                 <vcpu>2</vcpu><metadata>{metadata}</metadata></domain></domstatus>"
            )
        };
        let switch = r#"<nn:latency xmlns:nn="urn:nearnative:latency:1" level="high"/>"#;
        let write = |file: &str, text: &str| std::fs::write(dir.path().join(file), text).unwrap();
        write("nn1.xml", &domain("nn1", switch));
        write("plain.xml", &domain("plain", ""));
        write(
            "bad.xml",
            &domain(
                "bad",
                r#"<nn:latency xmlns:nn="urn:nearnative:latency:1"/>"#,
            ),
        );
        write("nn1.pid", "1");
        let (domains, problems) = running_with_switch(&Root::default(), dir.path());
        let names: Vec<&str> = domains.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["nn1"]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("domain bad: <nn:latency>: level is required"));
        let missing = dir.path().join("none");
        assert_eq!(running_with_switch(&Root::default(), &missing).0, vec![]);
    }
}
