//! [`Policy`]: a thread's scheduling policy with the parameter that goes with it (the nice
//! value of the fair classes, the priority of the real-time ones), as `stat` shows it and as
//! `sched_setscheduler` takes it. Inspect keeps the class ([`SchedPolicy`]) and both numbers
//! apart; this is the one place they are put together, for the planner and for the knob that
//! writes a policy and restores it.

use serde::{Deserialize, Serialize};

use super::stat::{parse_stat, SchedPolicy, TaskStat};

/// The policies a thread can be set and restored to. SCHED_DEADLINE is not among them: its
/// runtime, deadline and period are not in `/proc`, so it could not be restored exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "policy")]
pub enum Policy {
    Other { nice: i32 },
    Batch { nice: i32 },
    Idle { nice: i32 },
    Fifo { priority: u32 },
    Rr { priority: u32 },
}

impl Policy {
    /// The policy a thread of class `class` with these numbers has; `None` for a class that
    /// could not be restored exactly (deadline, or a number this build does not know).
    pub fn of(class: SchedPolicy, nice: i32, rt_priority: u32) -> Option<Policy> {
        match class {
            SchedPolicy::Other => Some(Policy::Other { nice }),
            SchedPolicy::Batch => Some(Policy::Batch { nice }),
            SchedPolicy::Idle => Some(Policy::Idle { nice }),
            SchedPolicy::Fifo => Some(Policy::Fifo {
                priority: rt_priority,
            }),
            SchedPolicy::Rr => Some(Policy::Rr {
                priority: rt_priority,
            }),
            SchedPolicy::Deadline | SchedPolicy::Unknown(_) => None,
        }
    }

    /// The policy of a parsed stat line.
    pub fn of_stat(stat: &TaskStat) -> Result<Policy, String> {
        Policy::of(stat.policy, stat.nice, stat.rt_priority)
            .ok_or_else(|| format!("{:?} cannot be restored exactly", stat.policy))
    }

    /// The policy from a `/proc/PID/task/TID/stat` line.
    pub fn parse_stat(text: &str) -> Result<Policy, String> {
        Policy::of_stat(&parse_stat(text).map_err(|e| e.to_string())?)
    }

    pub fn class(self) -> SchedPolicy {
        match self {
            Policy::Other { .. } => SchedPolicy::Other,
            Policy::Batch { .. } => SchedPolicy::Batch,
            Policy::Idle { .. } => SchedPolicy::Idle,
            Policy::Fifo { .. } => SchedPolicy::Fifo,
            Policy::Rr { .. } => SchedPolicy::Rr,
        }
    }

    /// `sched_priority`: 1..=99 for the real-time policies, 0 otherwise.
    pub fn rt_priority(self) -> u32 {
        match self {
            Policy::Fifo { priority } | Policy::Rr { priority } => priority,
            _ => 0,
        }
    }

    /// The nice value, for the policies that have one.
    pub fn nice(self) -> Option<i32> {
        match self {
            Policy::Other { nice } | Policy::Batch { nice } | Policy::Idle { nice } => Some(nice),
            Policy::Fifo { .. } | Policy::Rr { .. } => None,
        }
    }

    /// Whether the kernel would take the numbers: nice in -20..19, priority in 1..99.
    pub fn check(self) -> Result<(), String> {
        match (self.nice(), self.rt_priority()) {
            (Some(nice), _) if !(-20..=19).contains(&nice) => {
                Err(format!("nice {nice} is outside -20..19"))
            }
            (None, priority) if !(1..=99).contains(&priority) => {
                Err(format!("real-time priority {priority} is outside 1..99"))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(nice: &str, rt: &str, policy: &str) -> String {
        let mut fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        fields[19 - 3] = nice.into();
        fields[40 - 3] = rt.into();
        fields[41 - 3] = policy.into();
        format!("9 (t) {}\n", fields.join(" "))
    }

    #[test]
    fn policies_parse_from_stat() {
        let cases = [
            (
                "normal niced",
                stat("-5", "0", "0"),
                Ok(Policy::Other { nice: -5 }),
            ),
            (
                "fifo",
                stat("0", "50", "1"),
                Ok(Policy::Fifo { priority: 50 }),
            ),
            ("rr", stat("0", "2", "2"), Ok(Policy::Rr { priority: 2 })),
            ("batch", stat("3", "0", "3"), Ok(Policy::Batch { nice: 3 })),
            ("idle", stat("0", "0", "5"), Ok(Policy::Idle { nice: 0 })),
        ];
        for (what, text, expected) in cases {
            let parsed = Policy::parse_stat(&text);
            assert_eq!(parsed, expected, "{what}");
            let policy = parsed.unwrap();
            let class = SchedPolicy::from_number(policy.class().number());
            assert_eq!(class, policy.class(), "{what}: one numbering both ways");
        }
        assert!(
            Policy::parse_stat(&stat("0", "0", "6")).is_err(),
            "deadline"
        );
        assert!(Policy::parse_stat("9 (t) S").is_err());
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert!(Policy::Fifo { priority: 0 }.check().is_err());
        assert!(Policy::Other { nice: 20 }.check().is_err());
        assert!(Policy::Rr { priority: 99 }.check().is_ok());
    }

    #[test]
    fn journal_form_is_tagged_by_policy() {
        let json = serde_json::to_string(&Policy::Fifo { priority: 10 }).unwrap();
        assert_eq!(json, r#"{"policy":"fifo","priority":10}"#);
        let old: Policy = serde_json::from_str(r#"{"policy":"other","nice":-5}"#).unwrap();
        assert_eq!(old, Policy::Other { nice: -5 });
    }
}
