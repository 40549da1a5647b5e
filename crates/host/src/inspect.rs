//! The `Host` aggregate: everything inspect reads, in one serializable value with a stable,
//! versioned JSON schema (docs/inspect-schema.md).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::irq::{self, Irqs};
use crate::isolation::{self, Isolation, WalkLimits};
use crate::knobs::{self, Knobs};
use crate::nic::{self, Nics};
use crate::power::{self, Power};
use crate::tasks::{read_tasks, Tasks};
use crate::topology::{self, Topology};
use crate::workloads::{self, read_workloads, Workload};
use crate::{Finding, Root, Unknown};

/// Bumped on any change that could break a reader of the JSON: a field removed, renamed or
/// retyped. Adding a field does not bump it.
pub const SCHEMA_VERSION: u32 = 1;

/// What inspect reads and how far it goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InspectOptions {
    /// Bounds of the cgroup cpuset walk.
    pub cpusets: WalkLimits,
    /// QMP sockets to ask for vCPU threads, for QEMUs whose command line opens none (live
    /// host only; check them first with [`workloads::check_qmp_sockets`]).
    pub qmp_sockets: Vec<PathBuf>,
}

/// The host as inspect sees it.
///
/// # Adding a part
///
/// Each part (topology, isolation, ...) is a field of its own type, read by one step of
/// [`Host::read`] that has the signature `fn(&Root, ..., &mut Vec<Unknown>) -> Part` and never
/// fails: a file that is missing, empty or malformed becomes an [`Unknown`] naming its path,
/// and the part keeps what it could read. Findings are drawn in a second step,
/// [`Host::findings_of`], from the finished parts (one line per part, as a finding may need
/// several parts, e.g. isolation needs the topology's cores). To add a part:
///
/// 1. a field here (with `#[serde(default)]` if older JSON must still load) and its line in
///    `docs/inspect-schema.md`;
/// 2. one `let` line in [`Host::read`] and, if it has findings, one line in
///    [`Host::findings_of`];
/// 3. one section function in the CLI summary (`crates/cli/src/inspect_cmd/summary.rs`).
///
/// The same steps run on `/` and on a captured tree, so a part must read only through the
/// [`Root`] it is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    pub schema_version: u32,
    /// The directory read as `/`.
    pub root: PathBuf,
    pub topology: Topology,
    pub isolation: Isolation,
    #[serde(default)]
    pub irqs: Irqs,
    #[serde(default)]
    pub nics: Nics,
    #[serde(default)]
    pub power: Power,
    #[serde(default)]
    pub knobs: Knobs,
    /// Every process and thread.
    #[serde(default)]
    pub tasks: Tasks,
    /// The running VMs, by pid.
    #[serde(default)]
    pub workloads: Vec<Workload>,
    /// Latency risks, most severe first.
    pub findings: Vec<Finding>,
    /// What could not be read, with the file and the reason.
    pub unknowns: Vec<Unknown>,
}

impl Host {
    /// Reads every part under `root`. Never fails as a whole.
    pub fn read(root: &Root, options: &InspectOptions) -> Host {
        let mut unknowns = Vec::new();
        let topology = Topology::read(root, &mut unknowns);
        let isolation = Isolation::read(root, options.cpusets, &mut unknowns);
        let irqs = part(irq::read, root, &mut unknowns);
        let nics = part(nic::read, root, &mut unknowns);
        let power = part(power::read, root, &mut unknowns);
        let knobs = part(knobs::read, root, &mut unknowns);
        let tasks = read_tasks(root, &mut unknowns);
        let workloads = read_workloads(root, &tasks, &options.qmp_sockets, &mut unknowns);
        let mut host = Host {
            schema_version: SCHEMA_VERSION,
            root: root.dir().to_owned(),
            topology,
            isolation,
            irqs,
            nics,
            power,
            knobs,
            tasks,
            workloads,
            findings: Vec::new(),
            unknowns,
        };
        host.findings = host.findings_of();
        host
    }

    /// The IRQs (number → interface) of every interface that carries a default route, except
    /// `except`: nearnative leaves them where they are unless told to take that NIC over,
    /// so the plan does not steer them and verify does not blame them.
    pub fn default_route_irqs(&self, except: Option<&str>) -> BTreeMap<u32, &str> {
        let mut irqs = BTreeMap::new();
        let protected = self.nics.interfaces.iter();
        for nic in
            protected.filter(|n| !n.default_route.is_empty() && Some(n.name.as_str()) != except)
        {
            for irq in &nic.irqs {
                irqs.insert(irq.irq, nic.name.as_str());
            }
            let Some(device) = nic.bus_device.as_deref() else {
                continue;
            };
            for irq in &self.irqs.lines {
                if irq.device.as_deref() == Some(device) {
                    irqs.insert(irq.number, nic.name.as_str());
                }
            }
        }
        irqs
    }

    /// The findings of every part, most severe first (stable within a severity).
    fn findings_of(&self) -> Vec<Finding> {
        let mut findings = topology::findings(&self.topology);
        findings.extend(isolation::findings(&self.isolation, &self.topology));
        findings.extend(self.irqs.findings());
        findings.extend(self.nics.findings());
        findings.extend(self.power.findings());
        findings.extend(self.knobs.findings());
        findings.extend(workloads::findings(&self.workloads));
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        findings
    }
}

/// Runs a part's reader that returns its own unknowns, adding them to the host's.
fn part<T>(read: fn(&Root) -> (T, Vec<Unknown>), root: &Root, unknowns: &mut Vec<Unknown>) -> T {
    let (value, part_unknowns) = read(root);
    unknowns.extend(part_unknowns);
    value
}
