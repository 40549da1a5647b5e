//! The switch: a pod's annotations say which of its containers are latency-sensitive, at
//! which level, and on how many exclusive cores.
//!
//! - `latency-sensitivity.nearnative.io/pod: high|high-ht`: every container of the pod.
//! - `latency-sensitivity.nearnative.io/container.NAME: high|high-ht`: container NAME; it
//!   wins over the pod's level for that container.
//! - `latency-sensitivity.nearnative.io/cores: "N"`: N exclusive cores for each
//!   latency-sensitive container of the pod, instead of its CPU limit rounded up.
//!
//! Every key under the prefix is checked for every container of the pod, so a typo
//! (`.../pods: high`) fails the pod's containers with a reason instead of leaving them plain.

use std::collections::HashMap;
use std::fmt;

use nearnative_plan::Level;
use thiserror::Error;

use crate::api::LinuxResources;

/// Every annotation of ours starts with this.
pub const PREFIX: &str = "latency-sensitivity.nearnative.io/";
/// The pod-wide switch.
pub const POD: &str = "latency-sensitivity.nearnative.io/pod";
/// The per-container switch, followed by the container's name.
pub const CONTAINER: &str = "latency-sensitivity.nearnative.io/container.";
/// The number of exclusive cores, overriding the CPU limit.
pub const CORES: &str = "latency-sensitivity.nearnative.io/cores";

/// The CFS period the kernel (and kubelet) uses when none is given: 100 ms.
const DEFAULT_CFS_PERIOD_US: u64 = 100_000;

/// What the annotations ask for one container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not latency-sensitive: it shares the CPUs no latency-sensitive container holds.
    Plain,
    /// Latency-sensitive: `cores` whole cores of its own at `level`.
    LatencySensitive { level: Level, cores: u32 },
}

/// An annotation of ours that cannot be followed; it fails the container's creation.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("annotation {key}: {reason}")]
pub struct AnnotationError {
    pub key: String,
    pub reason: String,
}

impl AnnotationError {
    fn new(key: &str, reason: impl fmt::Display) -> AnnotationError {
        AnnotationError {
            key: key.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// What the pod's `annotations` ask for its container `container_name`, whose requested
/// resources are `resources` (its CPU limit sizes the exclusive cores unless `cores` says).
pub fn decide(
    annotations: &HashMap<String, String>,
    container_name: &str,
    resources: Option<&LinuxResources>,
) -> Result<Decision, AnnotationError> {
    let switches = Switches::parse(annotations)?;
    let level = switches
        .containers
        .get(container_name)
        .or(switches.pod.as_ref())
        .copied();
    Ok(match level {
        None => Decision::Plain,
        Some(level) => Decision::LatencySensitive {
            level,
            cores: switches
                .cores
                .unwrap_or_else(|| cores_of_cpu_limit(resources)),
        },
    })
}

/// Every annotation of ours on one pod, each checked.
struct Switches {
    pod: Option<Level>,
    containers: HashMap<String, Level>,
    cores: Option<u32>,
}

impl Switches {
    fn parse(annotations: &HashMap<String, String>) -> Result<Switches, AnnotationError> {
        let mut switches = Switches {
            pod: None,
            containers: HashMap::new(),
            cores: None,
        };
        // Sorted, so that of several bad annotations the same one is named every time.
        let mut ours: Vec<(&String, &String)> = annotations
            .iter()
            .filter(|(key, _)| key.starts_with(PREFIX))
            .collect();
        ours.sort();
        for (key, value) in ours {
            switches.take(key, value)?;
        }
        if switches.cores.is_some() && switches.pod.is_none() && switches.containers.is_empty() {
            return Err(AnnotationError::new(
                CORES,
                format!("has no effect without {POD} or {CONTAINER}NAME"),
            ));
        }
        Ok(switches)
    }

    fn take(&mut self, key: &str, value: &str) -> Result<(), AnnotationError> {
        if key == POD {
            self.pod = Some(parse_level(key, value)?);
        } else if key == CORES {
            self.cores = Some(parse_cores(value)?);
        } else if let Some(name) = key.strip_prefix(CONTAINER) {
            if name.is_empty() {
                return Err(AnnotationError::new(key, "names no container"));
            }
            self.containers
                .insert(name.to_owned(), parse_level(key, value)?);
        } else {
            return Err(AnnotationError::new(
                key,
                format!("unknown; ours are {POD}, {CONTAINER}NAME and {CORES}"),
            ));
        }
        Ok(())
    }
}

fn parse_level(key: &str, value: &str) -> Result<Level, AnnotationError> {
    value
        .parse()
        .map_err(|_| AnnotationError::new(key, format!("{value:?} is not one of: high, high-ht")))
}

/// A count of cores as Kubernetes users write it in an annotation: decimal digits, at least 1.
fn parse_cores(value: &str) -> Result<u32, AnnotationError> {
    let bad = || {
        AnnotationError::new(
            CORES,
            format!("{value:?} is not a whole number of cores of at least 1"),
        )
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match value.parse::<u32>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(cores) => Ok(cores),
    }
}

/// The container's CPU limit (CFS quota over period) rounded up to whole cores, at least 1:
/// no limit (quota unset, -1 or 0) asks for one core.
pub fn cores_of_cpu_limit(resources: Option<&LinuxResources>) -> u32 {
    let cpu = resources.and_then(|r| r.cpu.as_ref());
    let quota = cpu.and_then(|c| c.quota).map_or(0, |q| q.value);
    let period = cpu
        .and_then(|c| c.period)
        .map(|p| p.value)
        .filter(|&p| p > 0)
        .unwrap_or(DEFAULT_CFS_PERIOD_US);
    match u64::try_from(quota) {
        Ok(quota) if quota > 0 => u32::try_from(quota.div_ceil(period).max(1)).unwrap_or(u32::MAX),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::{LinuxCpu, OptionalInt64, OptionalUInt64};

    fn annotations(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn limit(quota: Option<i64>, period: Option<u64>) -> LinuxResources {
        LinuxResources {
            cpu: Some(LinuxCpu {
                quota: quota.map(|value| OptionalInt64 { value }),
                period: period.map(|value| OptionalUInt64 { value }),
                ..LinuxCpu::default()
            }),
            ..LinuxResources::default()
        }
    }

    fn ls(level: Level, cores: u32) -> Decision {
        Decision::LatencySensitive { level, cores }
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        decide(&annotations(pairs), "app", None)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_pod_without_our_annotations_is_plain() {
        let other = annotations(&[("io.kubernetes.cri.sandbox-id", "x"), ("latency", "high")]);
        assert_eq!(decide(&other, "app", None), Ok(Decision::Plain));
    }

    #[test]
    fn the_pod_switch_applies_to_every_container() {
        let pod = annotations(&[(POD, "high")]);
        assert_eq!(decide(&pod, "app", None), Ok(ls(Level::High, 1)));
        assert_eq!(decide(&pod, "sidecar", None), Ok(ls(Level::High, 1)));
        let ht = annotations(&[(POD, "high-ht")]);
        assert_eq!(decide(&ht, "app", None), Ok(ls(Level::HighHt, 1)));
    }

    #[test]
    fn a_container_switch_applies_to_that_container_and_wins_over_the_pod() {
        let one = annotations(&[("latency-sensitivity.nearnative.io/container.app", "high")]);
        assert_eq!(decide(&one, "app", None), Ok(ls(Level::High, 1)));
        assert_eq!(decide(&one, "sidecar", None), Ok(Decision::Plain));
        let both = annotations(&[
            (POD, "high"),
            ("latency-sensitivity.nearnative.io/container.app", "high-ht"),
        ]);
        assert_eq!(decide(&both, "app", None), Ok(ls(Level::HighHt, 1)));
        assert_eq!(decide(&both, "sidecar", None), Ok(ls(Level::High, 1)));
    }

    #[test]
    fn cores_follow_the_cpu_limit_rounded_up() {
        let pod = annotations(&[(POD, "high")]);
        let cores = |quota, period| match decide(&pod, "app", Some(&limit(quota, period))).unwrap()
        {
            Decision::LatencySensitive { cores, .. } => cores,
            Decision::Plain => panic!("plain"),
        };
        assert_eq!(cores(Some(200_000), Some(100_000)), 2);
        assert_eq!(
            cores(Some(150_000), Some(100_000)),
            2,
            "1.5 CPUs need 2 cores"
        );
        assert_eq!(
            cores(Some(10_000), Some(100_000)),
            1,
            "100m is still one core"
        );
        assert_eq!(
            cores(Some(300_000), None),
            3,
            "the default period is 100 ms"
        );
        assert_eq!(
            cores(Some(300_000), Some(0)),
            3,
            "a zero period is the default"
        );
        assert_eq!(cores(Some(-1), Some(100_000)), 1, "-1: no limit");
        assert_eq!(cores(Some(0), Some(100_000)), 1, "0: no limit");
        assert_eq!(cores(None, None), 1);
        assert_eq!(cores_of_cpu_limit(None), 1);
        assert_eq!(cores(Some(i64::MAX), Some(1)), u32::MAX);
    }

    #[test]
    fn the_cores_annotation_overrides_the_limit() {
        let pod = annotations(&[(POD, "high"), (CORES, "3")]);
        let big_limit = limit(Some(800_000), Some(100_000));
        assert_eq!(
            decide(&pod, "app", Some(&big_limit)),
            Ok(ls(Level::High, 3))
        );
    }

    #[test]
    fn a_bad_level_names_the_annotation_and_the_value() {
        assert_eq!(
            error(&[(POD, "High")]),
            "annotation latency-sensitivity.nearnative.io/pod: \"High\" is not one of: high, high-ht"
        );
        assert_eq!(
            error(&[("latency-sensitivity.nearnative.io/container.db", "")]),
            "annotation latency-sensitivity.nearnative.io/container.db: \"\" is not one of: high, high-ht",
            "checked even for another container of the pod"
        );
    }

    #[test]
    fn odd_core_counts_are_refused() {
        for value in [
            "0",
            "-1",
            "+2",
            " 2",
            "2.5",
            "two",
            "",
            "99999999999",
            "0x2",
        ] {
            assert_eq!(
                error(&[(POD, "high"), (CORES, value)]),
                format!(
                    "annotation {CORES}: {value:?} is not a whole number of cores of at least 1"
                ),
            );
        }
        assert_eq!(
            decide(&annotations(&[(POD, "high"), (CORES, "007")]), "app", None),
            Ok(ls(Level::High, 7))
        );
    }

    #[test]
    fn cores_without_a_switch_is_refused() {
        assert_eq!(
            error(&[(CORES, "2")]),
            "annotation latency-sensitivity.nearnative.io/cores: has no effect without \
             latency-sensitivity.nearnative.io/pod or latency-sensitivity.nearnative.io/container.NAME"
        );
    }

    #[test]
    fn unknown_keys_under_our_prefix_are_refused() {
        assert_eq!(
            error(&[("latency-sensitivity.nearnative.io/pods", "high")]),
            "annotation latency-sensitivity.nearnative.io/pods: unknown; ours are \
             latency-sensitivity.nearnative.io/pod, latency-sensitivity.nearnative.io/container.NAME \
             and latency-sensitivity.nearnative.io/cores"
        );
        assert_eq!(
            error(&[("latency-sensitivity.nearnative.io/container.", "high")]),
            "annotation latency-sensitivity.nearnative.io/container.: names no container"
        );
    }

    #[test]
    fn of_several_bad_annotations_the_first_by_key_is_named() {
        let pairs = [
            (POD, "x"),
            ("latency-sensitivity.nearnative.io/container.a", "y"),
            (CORES, "0"),
        ];
        for _ in 0..8 {
            assert!(error(&pairs).starts_with(&format!("annotation {CONTAINER}a:")));
        }
    }
}
