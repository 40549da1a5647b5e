//! Kernel knobs that cost latency host-wide: transparent huge pages, KSM, NUMA balancing,
//! timer migration, the watchdogs, RT throttling, socket busy polling, the workqueue CPU
//! mask, and the KVM module parameters (halt polling above all).
//!
//! Each value is typed and `None` when its file is missing or odd (then listed as unknown),
//! except the KVM parameters, whose absence just means the module is not loaded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::collect::Collector;
use crate::wording::cpus_phrase;
use crate::{CpuSet, Finding, Mechanism, Root, Severity, Unknown};

const THP: &str = "/sys/kernel/mm/transparent_hugepage";
const KVM_MODULES: [&str; 3] = ["kvm", "kvm_intel", "kvm_amd"];

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
    pub kvm_halt_poll_ns: Option<u64>,
    /// Every parameter of kvm, kvm_intel and kvm_amd that is loaded, by module then name.
    pub kvm_parameters: BTreeMap<String, BTreeMap<String, ParamValue>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThpEnabled {
    Always,
    Madvise,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThpDefrag {
    Always,
    Defer,
    DeferMadvise,
    Madvise,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KsmRun {
    Stopped,
    Running,
    /// `2`: stop and unmerge every shared page.
    Unmerge,
}

/// `kernel.numa_balancing`, a bit mask since 6.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumaBalancing {
    Disabled,
    Normal,
    MemoryTiering,
    NormalAndMemoryTiering,
}

/// `kernel.sched_rt_runtime_us`: how much of each period RT tasks may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RtRuntime {
    /// `-1`: RT tasks are never throttled.
    Unlimited,
    Microseconds(u64),
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

/// The `[bracketed]` choice of a sysfs selector such as `always [madvise] never`.
pub fn selected(text: &str) -> Result<&str, String> {
    let mut choices = text
        .split_whitespace()
        .filter_map(|w| w.strip_prefix('[')?.strip_suffix(']'));
    match (choices.next(), choices.next()) {
        (Some(choice), None) => Ok(choice),
        _ => Err("not exactly one [selected] choice".to_owned()),
    }
}

impl ThpEnabled {
    pub fn parse(text: &str) -> Result<Self, String> {
        match selected(text)? {
            "always" => Ok(ThpEnabled::Always),
            "madvise" => Ok(ThpEnabled::Madvise),
            "never" => Ok(ThpEnabled::Never),
            other => Err(format!("unknown THP mode {other:?}")),
        }
    }
}

impl ThpDefrag {
    pub fn parse(text: &str) -> Result<Self, String> {
        match selected(text)? {
            "always" => Ok(ThpDefrag::Always),
            "defer" => Ok(ThpDefrag::Defer),
            "defer+madvise" => Ok(ThpDefrag::DeferMadvise),
            "madvise" => Ok(ThpDefrag::Madvise),
            "never" => Ok(ThpDefrag::Never),
            other => Err(format!("unknown THP defrag mode {other:?}")),
        }
    }
}

impl KsmRun {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "0" => Ok(KsmRun::Stopped),
            "1" => Ok(KsmRun::Running),
            "2" => Ok(KsmRun::Unmerge),
            _ => Err("not 0, 1 or 2".to_owned()),
        }
    }
}

impl NumaBalancing {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "0" => Ok(NumaBalancing::Disabled),
            "1" => Ok(NumaBalancing::Normal),
            "2" => Ok(NumaBalancing::MemoryTiering),
            "3" => Ok(NumaBalancing::NormalAndMemoryTiering),
            _ => Err("not 0 to 3".to_owned()),
        }
    }
}

impl RtRuntime {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "-1" => Ok(RtRuntime::Unlimited),
            other => other
                .parse()
                .map(RtRuntime::Microseconds)
                .map_err(|_| "neither -1 nor microseconds".to_owned()),
        }
    }
}

pub fn parse_flag(text: &str) -> Result<bool, String> {
    match text {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err("neither 0 nor 1".to_owned()),
    }
}

pub fn read(root: &Root) -> (Knobs, Vec<Unknown>) {
    let mut collect = Collector::new(root);
    let c = &mut collect;
    let number = |s: &str| s.parse::<u64>();
    let micros = |s: &str| s.parse::<u32>();
    let knobs = Knobs {
        thp_enabled: c.parsed("THP mode", format!("{THP}/enabled"), ThpEnabled::parse),
        thp_defrag: c.parsed("THP defrag", format!("{THP}/defrag"), ThpDefrag::parse),
        ksm: c.parsed("KSM", "/sys/kernel/mm/ksm/run", KsmRun::parse),
        numa_balancing: c.parsed(
            "kernel.numa_balancing",
            "/proc/sys/kernel/numa_balancing",
            NumaBalancing::parse,
        ),
        timer_migration: sysctl_flag(c, "kernel.timer_migration"),
        watchdog: sysctl_flag(c, "kernel.watchdog"),
        nmi_watchdog: sysctl_flag(c, "kernel.nmi_watchdog"),
        watchdog_cpumask: c.parsed(
            "kernel.watchdog_cpumask",
            "/proc/sys/kernel/watchdog_cpumask",
            CpuSet::parse_list,
        ),
        sched_rt_runtime: c.parsed(
            "kernel.sched_rt_runtime_us",
            "/proc/sys/kernel/sched_rt_runtime_us",
            RtRuntime::parse,
        ),
        sched_rt_period_us: c.parsed(
            "kernel.sched_rt_period_us",
            "/proc/sys/kernel/sched_rt_period_us",
            number,
        ),
        busy_poll_us: c.parsed("net.core.busy_poll", "/proc/sys/net/core/busy_poll", micros),
        busy_read_us: c.parsed("net.core.busy_read", "/proc/sys/net/core/busy_read", micros),
        workqueue_cpumask: c.parsed(
            "workqueue cpumask",
            "/sys/devices/virtual/workqueue/cpumask",
            CpuSet::parse_mask,
        ),
        kvm_halt_poll_ns: c.parsed_if_present(
            "kvm halt_poll_ns",
            "/sys/module/kvm/parameters/halt_poll_ns",
            number,
        ),
        kvm_parameters: read_kvm_parameters(c),
    };
    (knobs, collect.finish())
}

fn sysctl_flag(collect: &mut Collector, name: &str) -> Option<bool> {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    collect.parsed(name, path, parse_flag)
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
    use proptest::prelude::*;

    #[test]
    fn selectors_parse_the_bracketed_choice() {
        let cases = [
            (
                "debian default",
                "always [madvise] never\n",
                Ok(ThpEnabled::Madvise),
            ),
            ("always", "[always] madvise never", Ok(ThpEnabled::Always)),
            ("none selected", "always madvise never", Err(())),
            ("two selected", "[always] [never]", Err(())),
            ("unknown mode", "always [sometimes]", Err(())),
            ("empty", "", Err(())),
        ];
        for (what, text, want) in cases {
            assert_eq!(ThpEnabled::parse(text).map_err(|_| ()), want, "{what}");
        }
        let defrag = "always defer defer+madvise [madvise] never";
        assert_eq!(ThpDefrag::parse(defrag), Ok(ThpDefrag::Madvise));
        assert_eq!(
            ThpDefrag::parse("always defer [defer+madvise] madvise never"),
            Ok(ThpDefrag::DeferMadvise)
        );
    }

    #[test]
    fn scalar_knobs_parse() {
        assert_eq!(RtRuntime::parse("-1"), Ok(RtRuntime::Unlimited));
        assert_eq!(
            RtRuntime::parse("950000"),
            Ok(RtRuntime::Microseconds(950000))
        );
        assert!(RtRuntime::parse("-2").is_err());
        assert_eq!(
            NumaBalancing::parse("3"),
            Ok(NumaBalancing::NormalAndMemoryTiering)
        );
        assert!(NumaBalancing::parse("4").is_err());
        assert_eq!(KsmRun::parse("2"), Ok(KsmRun::Unmerge));
        assert!(parse_flag("yes").is_err());
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
