//! Kernel knobs that cost latency host-wide: transparent huge pages, KSM, NUMA balancing,
//! timer migration, the watchdogs, RT throttling, socket busy polling, the workqueue CPU
//! mask, and the KVM module parameters (halt polling above all).
//!
//! Each file's path, type and text form is defined once in [`crate::kernel`]; the value types
//! are re-exported here. Each value is typed and `None` when its file is missing or odd (then listed as unknown),
//! except the KVM parameters, whose absence just means the module is not loaded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::collect::Collector;
use crate::kernel::{memory, sysctl};
use crate::wording::cpus_phrase;
use crate::{CpuSet, Finding, Mechanism, Root, Severity, Unknown};

const KVM_MODULES: [&str; 3] = ["kvm", "kvm_intel", "kvm_amd"];

pub use crate::kernel::memory::{KsmRun, NumaBalancing, ThpDefrag, ThpEnabled};
pub use crate::kernel::sysctl::RtRuntime;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Knobs {
    pub thp_enabled: Option<ThpEnabled>,
    pub thp_defrag: Option<ThpDefrag>,
    pub ksm: Option<KsmRun>,
    pub numa_balancing: Option<NumaBalancing>,
    pub timer_migration: Option<bool>,
    /// `kernel.watchdog`: the soft and hard lockup detectors together.
    pub watchdog: Option<bool>,
    pub nmi_watchdog: Option<bool>,
    /// The CPUs the lockup detectors' per-CPU timers run on.
    pub watchdog_cpumask: Option<CpuSet>,
    pub sched_rt_runtime: Option<RtRuntime>,
    pub sched_rt_period_us: Option<u64>,
    /// `net.core.busy_poll`: µs poll() and select() spin on a socket; 0 = off.
    pub busy_poll_us: Option<u32>,
    /// `net.core.busy_read`: µs a blocking read spins; 0 = off.
    pub busy_read_us: Option<u32>,
    /// Where unbound workqueue work may run.
    pub workqueue_cpumask: Option<CpuSet>,
    /// `/sys/module/kvm/parameters/halt_poll_ns`: how long a halted vCPU polls before the
    /// host thread sleeps. `None` when kvm is not loaded.
    pub kvm_halt_poll_ns: Option<u32>,
    /// Every parameter of kvm, kvm_intel and kvm_amd that is loaded, by module then name.
    pub kvm_parameters: BTreeMap<String, BTreeMap<String, ParamValue>>,
}

/// A module parameter: `Y`/`N` flags, integers, or anything else as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Integer(i64),
    Text(String),
}

impl ParamValue {
    pub fn parse(text: &str) -> ParamValue {
        match text.trim() {
            "Y" => ParamValue::Bool(true),
            "N" => ParamValue::Bool(false),
            other => other
                .parse()
                .map(ParamValue::Integer)
                .unwrap_or_else(|_| ParamValue::Text(other.to_owned())),
        }
    }
}

pub fn read(root: &Root) -> (Knobs, Vec<Unknown>) {
    let mut collect = Collector::new(root);
    let c = &mut collect;
    let knobs = Knobs {
        thp_enabled: c.file(&memory::THP_ENABLED),
        thp_defrag: c.file(&memory::THP_DEFRAG),
        ksm: c.file(&memory::KSM_RUN),
        numa_balancing: c.file(&memory::NUMA_BALANCING),
        timer_migration: c.file(&sysctl::TIMER_MIGRATION),
        watchdog: c.file(&sysctl::WATCHDOG),
        nmi_watchdog: c.file(&sysctl::NMI_WATCHDOG),
        watchdog_cpumask: c.file(&sysctl::WATCHDOG_CPUMASK),
        sched_rt_runtime: c.file(&sysctl::SCHED_RT_RUNTIME),
        sched_rt_period_us: c.file(&sysctl::SCHED_RT_PERIOD_US),
        busy_poll_us: c.file(&sysctl::BUSY_POLL),
        busy_read_us: c.file(&sysctl::BUSY_READ),
        workqueue_cpumask: c.file(&sysctl::WORKQUEUE_CPUMASK),
        kvm_halt_poll_ns: c.file_if_present(&sysctl::KVM_HALT_POLL_NS),
        kvm_parameters: read_kvm_parameters(c),
    };
    (knobs, collect.finish())
}

fn read_kvm_parameters(collect: &mut Collector) -> BTreeMap<String, BTreeMap<String, ParamValue>> {
    let mut modules = BTreeMap::new();
    for module in KVM_MODULES {
        let dir = format!("/sys/module/{module}/parameters");
        let Ok(names) = collect.root.list_dir(&dir) else {
            continue;
        };
        let mut parameters = BTreeMap::new();
        for name in names {
            let object = format!("{module} parameter {name}");
            let value = collect.parsed(object, format!("{dir}/{name}"), |s| {
                Ok::<_, String>(ParamValue::parse(s))
            });
            if let Some(value) = value {
                parameters.insert(name, value);
            }
        }
        modules.insert(module.to_owned(), parameters);
    }
    modules
}

impl Knobs {
    /// Host-wide risks, whatever CPUs the workload gets.
    pub fn findings(&self) -> Vec<Finding> {
        let mut findings = Vec::new();
        let mut add = |severity, object: &str, evidence: String, mechanism| {
            findings.push(Finding {
                severity,
                object: object.to_owned(),
                evidence,
                mechanism,
            })
        };
        use Mechanism::{Bypass, Exclusivity, Memory};
        use Severity::{Info, Warning};
        if self.thp_enabled == Some(ThpEnabled::Always) {
            let why = "THP always: page faults may stall on compaction, khugepaged scans";
            add(
                Warning,
                "transparent_hugepage/enabled",
                why.to_owned(),
                Memory,
            );
        }
        if self.thp_defrag == Some(ThpDefrag::Always) {
            let why = "defrag always: allocations stall on direct compaction";
            add(
                Warning,
                "transparent_hugepage/defrag",
                why.to_owned(),
                Memory,
            );
        }
        if self.ksm == Some(KsmRun::Running) {
            let why = "KSM running: ksmd merges pages, and writes to them fault";
            add(Warning, "ksm", why.to_owned(), Memory);
        }
        if let Some(mode) = self
            .numa_balancing
            .filter(|m| *m != NumaBalancing::Disabled)
        {
            let why = format!("numa_balancing {mode:?}: hinting page faults move memory");
            add(Warning, "kernel.numa_balancing", why, Memory);
        }
        if self.timer_migration == Some(true) {
            let why = "timer_migration 1: timers may move onto busy CPUs".to_owned();
            add(Info, "kernel.timer_migration", why, Exclusivity);
        }
        if self.nmi_watchdog == Some(true) {
            let why = "nmi_watchdog 1: a perf NMI interrupts every watched CPU".to_owned();
            add(Info, "kernel.nmi_watchdog", why, Exclusivity);
        }
        if let Some(RtRuntime::Microseconds(runtime)) = self.sched_rt_runtime {
            let why = format!("sched_rt_runtime_us {runtime}: a spinning RT task is throttled");
            add(Info, "kernel.sched_rt_runtime_us", why, Exclusivity);
        }
        if self.busy_poll_us == Some(0) {
            let why = "busy_poll 0: poll/select sleep instead of spinning".to_owned();
            add(Info, "net.core.busy_poll", why, Bypass);
        }
        if self.busy_read_us == Some(0) {
            let why = "busy_read 0: blocking reads sleep instead of spinning".to_owned();
            add(Info, "net.core.busy_read", why, Bypass);
        }
        if self.kvm_halt_poll_ns == Some(0) {
            let why = "halt_poll_ns 0: a halted vCPU's thread sleeps at once".to_owned();
            add(Warning, "kvm halt_poll_ns", why, Bypass);
        }
        findings
    }

    /// [`Knobs::findings`] plus the per-CPU masks that reach into `exclusive`; replaces
    /// `findings` once the exclusive set is known.
    pub fn findings_for(&self, exclusive: &CpuSet) -> Vec<Finding> {
        let mut findings = self.findings();
        let watched = match self.watchdog {
            Some(false) => None,
            _ => self.watchdog_cpumask.as_ref(),
        };
        let masks = [
            (
                "kernel.watchdog_cpumask",
                watched,
                "lockup detector timers run on",
            ),
            (
                "workqueue cpumask",
                self.workqueue_cpumask.as_ref(),
                "unbound kernel work may run on",
            ),
        ];
        for (object, mask, what) in masks {
            let Some(overlap) = mask.map(|m| m.intersection(exclusive)) else {
                continue;
            };
            if !overlap.is_empty() {
                findings.push(Finding {
                    severity: Severity::Warning,
                    object: object.to_owned(),
                    evidence: format!("{what} {}", cpus_phrase(&overlap)),
                    mechanism: Mechanism::Exclusivity,
                });
            }
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::KernelValue;
    use proptest::prelude::*;

    #[test]
    fn module_parameters_parse() {
        assert_eq!(ParamValue::parse("Y\n"), ParamValue::Bool(true));
        assert_eq!(ParamValue::parse("-1"), ParamValue::Integer(-1));
        assert_eq!(
            ParamValue::parse("auto"),
            ParamValue::Text("auto".to_owned())
        );
    }

    #[test]
    fn findings_name_each_risky_knob() {
        let knobs = Knobs {
            thp_enabled: Some(ThpEnabled::Always),
            busy_poll_us: Some(0),
            kvm_halt_poll_ns: Some(0),
            watchdog: Some(true),
            watchdog_cpumask: Some(CpuSet::from_ids([0, 1])),
            workqueue_cpumask: Some(CpuSet::from_ids([0])),
            ..Knobs::default()
        };
        let objects: Vec<String> = knobs.findings().into_iter().map(|f| f.object).collect();
        assert_eq!(
            objects,
            [
                "transparent_hugepage/enabled",
                "net.core.busy_poll",
                "kvm halt_poll_ns"
            ]
        );
        let extra = knobs.findings_for(&CpuSet::from_ids([1]));
        assert_eq!(extra.len(), 4);
        assert_eq!(extra[3].evidence, "lockup detector timers run on CPU 1");
    }

    proptest! {
        #[test]
        fn parsers_never_panic(text in "(?s).{0,40}") {
            let _ = ThpEnabled::parse(&text);
            let _ = ThpDefrag::parse(&text);
            let _ = RtRuntime::parse(&text);
            let _ = ParamValue::parse(&text);
        }
    }
}
