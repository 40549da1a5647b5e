//! The `nearnative apply` options a `[[workload]]` table may carry, by apply's long name, and
//! the values they take, parsed by the plan crate's own parsers so the two never disagree.

use nearnative_host::cgroup::parse_scope;
use nearnative_host::CpuSet;
use nearnative_plan::{IoPlacement, Level, NumaSpill, PlanRequest};
use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::Deserialize;
use toml::de::DeValue;

/// Every option of `nearnative apply` a policy accepts, by apply's long name. `threads` is
/// not one: it names thread ids, which a glob target has none of until a process matches.
/// `root`, `state-dir` and `json` belong to the command line, not to a workload.
pub const OPTION_NAMES: &[&str] = &[
    "level",
    "vcpus",
    "cores",
    "io",
    "nic",
    "housekeeping",
    "scope",
    "rt",
    "numa-spill",
    "allow-cpu0",
    "libvirt-uri",
];

/// The options of one table, as apply would take them from its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Options {
    level: Level,
    vcpus: Option<CpuSet>,
    cores: Option<u32>,
    io: IoPlacement,
    nic: Option<String>,
    housekeeping: Option<CpuSet>,
    /// A cgroup path (the `cgroup:` prefix taken off).
    scope: Option<String>,
    rt: Option<u32>,
    spill: NumaSpill,
    allow_cpu0: bool,
    libvirt_uri: Option<String>,
}

impl Default for Options {
    /// Apply's defaults.
    fn default() -> Self {
        Options::from_request(&PlanRequest::new(nearnative_plan::Target::Pid(0)))
    }
}

/// The canonical (apply) name of `key`, which may also be spelled in snake_case.
pub(super) fn canonical(key: &str) -> Option<&'static str> {
    let kebab = key.replace('_', "-");
    OPTION_NAMES.iter().copied().find(|name| *name == kebab)
}

impl Options {
    fn from_request(request: &PlanRequest) -> Self {
        Options {
            level: request.level,
            vcpus: request.vcpus.clone(),
            cores: request.cores,
            io: request.io,
            nic: request.nic.clone(),
            housekeeping: request.housekeeping.clone(),
            scope: request.scope.clone(),
            rt: request.rt,
            spill: request.spill,
            allow_cpu0: request.allow_cpu0,
            libvirt_uri: request.libvirt_uri.clone(),
        }
    }

    /// Sets option `name` (canonical) from `value`; the error says what was expected.
    pub(super) fn set(&mut self, name: &str, value: &DeValue) -> Result<(), String> {
        match name {
            "level" => self.level = string(value)?.parse()?,
            "vcpus" => self.vcpus = Some(cpu_list(value)?),
            "cores" => self.cores = Some(integer(value, 1, u32::MAX.into())?),
            "io" => self.io = variant(value)?,
            "nic" => self.nic = Some(non_empty(value)?),
            "housekeeping" => self.housekeeping = Some(cpu_list(value)?),
            "scope" => self.scope = Some(scope(value)?),
            "rt" => self.rt = Some(integer(value, 1, 99)?),
            "numa-spill" => self.spill = variant(value)?,
            "allow-cpu0" => self.allow_cpu0 = boolean(value)?,
            "libvirt-uri" => self.libvirt_uri = Some(non_empty(value)?),
            _ => return Err(format!("no option {name:?}")),
        }
        Ok(())
    }

    pub(super) fn has_vcpus(&self) -> bool {
        self.vcpus.is_some()
    }

    pub(super) fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// Every option written into `request`.
    pub(super) fn fill(&self, request: &mut PlanRequest) {
        request.level = self.level;
        request.vcpus = self.vcpus.clone();
        request.cores = self.cores;
        request.io = self.io;
        request.nic = self.nic.clone();
        request.housekeeping = self.housekeeping.clone();
        request.scope = self.scope.clone();
        request.rt = self.rt;
        request.spill = self.spill;
        request.allow_cpu0 = self.allow_cpu0;
        request.libvirt_uri = self.libvirt_uri.clone();
    }
}

fn string<'v>(value: &'v DeValue) -> Result<&'v str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("expected a string, not {}", value.type_str()))
}

fn non_empty(value: &DeValue) -> Result<String, String> {
    match string(value)? {
        "" => Err("expected a name, not an empty string".to_owned()),
        text => Ok(text.to_owned()),
    }
}

fn boolean(value: &DeValue) -> Result<bool, String> {
    value
        .as_bool()
        .ok_or_else(|| format!("expected true or false, not {}", value.type_str()))
}

fn integer(value: &DeValue, min: u64, max: u64) -> Result<u32, String> {
    let expected = || format!("expected an integer from {min} to {max}");
    let integer = value
        .as_integer()
        .ok_or_else(|| format!("{}, not {}", expected(), value.type_str()))?;
    let parsed = u64::from_str_radix(integer.as_str(), integer.radix()).ok();
    let number = parsed.filter(|n| (min..=max).contains(n));
    let number = number.and_then(|n| u32::try_from(n).ok());
    number.ok_or_else(|| format!("{}, not {integer}", expected()))
}

/// A CPU list as a string (`"0-3,8"`): as on apply's command line, an empty one is a mistake.
fn cpu_list(value: &DeValue) -> Result<CpuSet, String> {
    let text = string(value)?;
    match CpuSet::parse_list(text) {
        Ok(set) if set.is_empty() => Err("expected a CPU list, not an empty one".to_owned()),
        parsed => parsed.map_err(|e| e.to_string()),
    }
}

/// `cgroup:/PATH`, as apply's `--scope` takes it.
fn scope(value: &DeValue) -> Result<String, String> {
    parse_scope(string(value)?).map_err(|e| e.to_string())
}

/// One of the plan crate's named choices (`"dedicated"`, `"nearest"`), by its serde name.
fn variant<T: for<'de> Deserialize<'de>>(value: &DeValue) -> Result<T, String> {
    let text = string(value)?;
    T::deserialize(StrDeserializer::<ValueError>::new(text)).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_name_the_option() {
        assert_eq!(canonical("numa_spill"), Some("numa-spill"));
        assert_eq!(canonical("numa-spill"), Some("numa-spill"));
        assert_eq!(canonical("allow_cpu0"), Some("allow-cpu0"));
        assert_eq!(canonical("level"), Some("level"));
        for refused in ["threads", "root", "state-dir", "json", "target"] {
            assert_eq!(canonical(refused), None, "{refused}");
        }
    }

    #[test]
    fn defaults_are_applys() {
        let mut request = PlanRequest::new(nearnative_plan::Target::Vm("a".into()));
        Options::default().fill(&mut request);
        assert_eq!(
            request,
            PlanRequest::new(nearnative_plan::Target::Vm("a".into()))
        );
    }
}
