//! [`Step`]: one planned change of any whitelisted knob, as a closed enum.
//!
//! This is the type the planner emits (an ordered `Vec<Step>`), the executor runs and the
//! journal stores. It is serde-tagged by `kind`, so a journal is self-describing, and closed,
//! so only the knob kinds listed here can ever be deserialized from a journal and written.

use serde::{Deserialize, Serialize};

use nearnative_host::CpuSet;
use serde_json::Value;

use crate::backend::Backend;
use crate::bypass::nic::{NicCoalesce, NicFeature};
use crate::bypass::power::{CpufreqGovernor, PmQosResumeLatency};
use crate::bypass::sysctl::{BusyPoll, BusyRead, KvmHaltPollNs};
use crate::error::{Described, KnobError};
use crate::exclusivity::cgroup::{
    CgroupDir, CpusetCpuExclusive, CpusetCpus, CpusetMems, CpusetPartition, TaskCgroup,
};
use crate::exclusivity::cgroup_v2::{CgroupType, SubtreeCpuset};
use crate::exclusivity::housekeeping::{TimerMigration, WatchdogCpumask, WorkqueueCpumask};
use crate::exclusivity::irq::{DefaultSmpAffinity, IrqAffinity};
use crate::exclusivity::libvirt::LibvirtPin;
use crate::exclusivity::sched::SchedPolicy;
use crate::exclusivity::task::ThreadAffinity;
use crate::knob::{Change, Knob};
use crate::memory::{KsmRun, NumaBalancing, ThpDefrag, ThpEnabled};

macro_rules! steps {
    ($($variant:ident($knob:ty)),* $(,)?) => {
        /// One change of one whitelisted knob: `from` (the prior value) and `to` (the target).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        pub enum Step {
            $($variant(Change<$knob>),)*
        }

        $(
            impl From<Change<$knob>> for Step {
                fn from(change: Change<$knob>) -> Step {
                    Step::$variant(change)
                }
            }
        )*

        impl Step {
            pub fn describe(&self) -> Described {
                match self {
                    $(Step::$variant(c) => c.knob.describe(),)*
                }
            }

            /// The knob kind, as the journal's `kind` tag names it.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Step::$variant(_) => stringify!($variant),)*
                }
            }

            /// Whether the kernel may refuse this knob without the apply failing.
            pub fn best_effort(&self) -> bool {
                match self {
                    $(Step::$variant(c) => c.knob.best_effort(),)*
                }
            }

            /// True when the step would change nothing.
            pub fn is_noop(&self) -> bool {
                match self {
                    $(Step::$variant(c) => c.from == c.to,)*
                }
            }

            /// True when `other` is the same knob and both expect the same prior value: the
            /// executor uses it to report where the host moved since the plan was made.
            pub fn same_prior(&self, other: &Step) -> bool {
                match (self, other) {
                    $((Step::$variant(a), Step::$variant(b)) => a.knob == b.knob && a.from == b.from,)*
                    _ => false,
                }
            }

            /// True when `other` changes the same knob (the same thread, with the same start
            /// time, for a thread's knob), whatever the values.
            pub fn same_knob(&self, other: &Step) -> bool {
                match (self, other) {
                    $((Step::$variant(a), Step::$variant(b)) => a.knob == b.knob,)*
                    _ => false,
                }
            }

            /// The same step with `from` replaced by the knob's value read now.
            pub fn with_current(&self, backend: &dyn Backend) -> Result<Step, KnobError> {
                match self {
                    $(Step::$variant(c) => Ok(Step::$variant(Change {
                        knob: c.knob.clone(),
                        from: c.knob.read(backend)?,
                        to: c.to.clone(),
                    })),)*
                }
            }

            /// The same step with `from` replaced by `earlier`'s, when `earlier` changes the
            /// same knob: a revert hands an older journal's prior to a newer one this way.
            pub fn with_prior_of(&self, earlier: &Step) -> Option<Step> {
                self.with_from_of(earlier, false)
            }

            /// The same step with `from` set to `earlier`'s target, or `None` when `earlier`
            /// changes another knob: for a knob an apply found already at that target, so
            /// that target is what was there before it.
            pub fn with_prior_at_target_of(&self, earlier: &Step) -> Option<Step> {
                self.with_from_of(earlier, true)
            }

            fn with_from_of(&self, earlier: &Step, its_target: bool) -> Option<Step> {
                match (self, earlier) {
                    $((Step::$variant(c), Step::$variant(e)) if c.knob == e.knob => {
                        Some(Step::$variant(Change {
                            knob: c.knob.clone(),
                            from: if its_target { e.to.clone() } else { e.from.clone() },
                            to: c.to.clone(),
                        }))
                    })*
                    _ => None,
                }
            }

            pub fn write_target(&self, backend: &dyn Backend) -> Result<(), KnobError> {
                match self {
                    $(Step::$variant(c) => c.knob.write(backend, &c.to),)*
                }
            }

            pub fn write_prior(&self, backend: &dyn Backend) -> Result<(), KnobError> {
                match self {
                    $(Step::$variant(c) => c.knob.write(backend, &c.from),)*
                }
            }

            pub fn holds_target(&self, backend: &dyn Backend) -> Result<bool, KnobError> {
                match self {
                    $(Step::$variant(c) => c.knob.verify(backend, &c.to),)*
                }
            }

            pub fn holds_prior(&self, backend: &dyn Backend) -> Result<bool, KnobError> {
                match self {
                    $(Step::$variant(c) => c.knob.verify(backend, &c.from),)*
                }
            }

            /// The prior and target values as people read them: CPU lists as `0-3,8`, words
            /// as words, anything else in its JSON form.
            pub fn values(&self) -> (String, String) {
                match self {
                    $(Step::$variant(c) => (shown(&c.from), shown(&c.to)),)*
                }
            }
        }
    };
}

steps! {
    ThreadAffinity(ThreadAffinity),
    TaskCgroup(TaskCgroup),
    CgroupDir(CgroupDir),
    CpusetCpus(CpusetCpus),
    CpusetMems(CpusetMems),
    CpusetCpuExclusive(CpusetCpuExclusive),
    CpusetPartition(CpusetPartition),
    CgroupType(CgroupType),
    SubtreeCpuset(SubtreeCpuset),
    LibvirtPin(LibvirtPin),
    IrqAffinity(IrqAffinity),
    DefaultSmpAffinity(DefaultSmpAffinity),
    WorkqueueCpumask(WorkqueueCpumask),
    WatchdogCpumask(WatchdogCpumask),
    TimerMigration(TimerMigration),
    SchedPolicy(SchedPolicy),
    PmQosResumeLatency(PmQosResumeLatency),
    CpufreqGovernor(CpufreqGovernor),
    KvmHaltPollNs(KvmHaltPollNs),
    BusyPoll(BusyPoll),
    BusyRead(BusyRead),
    NicCoalesce(NicCoalesce),
    NicFeature(NicFeature),
    ThpEnabled(ThpEnabled),
    ThpDefrag(ThpDefrag),
    KsmRun(KsmRun),
    NumaBalancing(NumaBalancing),
}

/// One value for messages: its JSON form, with id arrays as CPU lists.
fn shown<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value).unwrap_or(Value::Null) {
        Value::Array(items) if items.iter().all(Value::is_u64) => {
            let ids = items.iter().filter_map(Value::as_u64);
            let set: CpuSet = ids.filter_map(|id| u32::try_from(id).ok()).collect();
            match set.is_empty() {
                true => "(none)".to_owned(),
                false => set.to_list(),
            }
        }
        Value::String(text) => text,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nearnative_host::CpuSet;

    #[test]
    fn steps_serialize_tagged_by_kind_and_unknown_kinds_are_refused() {
        let step = Step::from(Change {
            knob: IrqAffinity { irq: 36 },
            from: CpuSet::from_ids([0, 1]),
            to: CpuSet::from_ids([1]),
        });
        let json = serde_json::to_string(&step).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"irq_affinity","knob":{"irq":36},"from":[0,1],"to":[1]}"#
        );
        assert_eq!(serde_json::from_str::<Step>(&json).unwrap(), step);
        let foreign = r#"{"kind":"raw_file","knob":{"path":"/etc/shadow"},"from":"","to":""}"#;
        assert!(serde_json::from_str::<Step>(foreign).is_err());
        assert!(step.best_effort());
        assert_eq!(step.describe().location, "/proc/irq/36/smp_affinity_list");
    }

    #[test]
    fn a_prior_is_taken_only_from_the_same_knob() {
        let irq = |irq, from: u32, to: u32| {
            Step::from(Change {
                knob: IrqAffinity { irq },
                from: CpuSet::from_ids([from]),
                to: CpuSet::from_ids([to]),
            })
        };
        let handed = irq(36, 1, 2).with_prior_of(&irq(36, 0, 1));
        assert_eq!(handed, Some(irq(36, 0, 2)));
        assert_eq!(irq(36, 1, 2).with_prior_of(&irq(37, 0, 1)), None);
    }

    /// Steps as journals written before the definitions moved to `nearnative_host::kernel`
    /// hold them: each still deserializes to the same value and serializes back unchanged.
    #[test]
    fn journal_steps_keep_their_serde_shape() {
        let cgroup = r#"{"cgroup":{"mount":"/sys/fs/cgroup","path":"/a"}}"#;
        let thread = r#"{"pid":9,"tid":10,"start_time":77}"#;
        let old = [
            format!(r#"{{"kind":"cpuset_partition","knob":{cgroup},"from":"member","to":"root"}}"#),
            format!(r#"{{"kind":"cgroup_type","knob":{cgroup},"from":"domain","to":"threaded"}}"#),
            format!(
                r#"{{"kind":"subtree_cpuset","knob":{cgroup},"from":"disabled","to":"enabled"}}"#
            ),
            r#"{"kind":"cpufreq_governor","knob":{"cpu":1},"from":"schedutil","to":"performance"}"#
                .to_owned(),
            r#"{"kind":"kvm_halt_poll_ns","knob":null,"from":0,"to":200000}"#.to_owned(),
            r#"{"kind":"thp_enabled","knob":null,"from":"always","to":"never"}"#.to_owned(),
            format!(
                r#"{{"kind":"sched_policy","knob":{thread},"from":{{"policy":"other","nice":-5}},"to":{{"policy":"fifo","priority":10}}}}"#
            ),
            r#"{"kind":"pm_qos_resume_latency","knob":{"cpu":0},"from":"no_limit","to":"zero_latency"}"#
                .to_owned(),
        ];
        for json in old {
            let step: Step = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(serde_json::to_string(&step).unwrap(), json);
        }
    }
}
