//! What a plan decided to leave alone, recorded for the stages after it: a typed [`Note`] per
//! knob left as it was (with its numbers, so verify and the daemon can act on it without
//! parsing a sentence), and the [`ProtectedIrq`]s of the default-route interface, which verify
//! must excuse on the exclusive CPUs as the plan saw them, not as the routes are at verify time.

use std::fmt;
use std::path::PathBuf;

use nearnative_host::CpuSet;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// An IRQ of an interface that carried a default route when the plan was made: never
/// steered (unless `--nic` named the interface), so it may fire on the exclusive CPUs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProtectedIrq {
    pub irq: u32,
    /// The interface whose IRQ it is.
    pub nic: String,
}

/// Why a knob the plan could have changed was left as it was. `Display` gives the one-line
/// sentence the CLI prints; the JSON carries the variant as `kind` and the numbers as fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Note {
    /// An IRQ of the default-route interface that reaches the exclusive CPUs.
    DefaultRouteIrq {
        irq: u32,
        /// "IRQ 37 virtio2-input.0".
        label: String,
        affinity: CpuSet,
        nic: String,
    },
    /// An IRQ whose affinity the kernel does not let user space set.
    UnmovableIrq { irq: u32, label: String },
    /// Under cgroup v2, the plan's cpusets are not partitions: the thread root is none.
    NotPartitions { thread_root: String, taken: CpuSet },
    /// A process whose main thread exited cannot be moved through `cgroup.procs`.
    MainThreadGone { pid: u32, comm: String },
    /// `--rt`: a thread whose scheduling policy could not be restored exactly.
    PolicyKept { pid: u32, tid: u32, policy: String },
    /// A cpuset whose path is not a plain cgroup path.
    CpusetNotPlain { path: String, why: String },
    /// Under cgroup v1, the scope is not CPU-exclusive, so neither are the plan's cpusets.
    NotCpuExclusive { scope: String },
    /// Under cgroup v1, a sibling on the target's chain keeps the exclusive CPUs too, so the
    /// plan's cpusets cannot be CPU-exclusive.
    SiblingKeepsCpus { sibling: String },
    /// A thread whose cgroup could not be read.
    CgroupUnreadable { pid: u32, tid: u32 },
    /// A thread whose cgroup is not a plain path.
    CgroupNotPlain { pid: u32, tid: u32, cgroup: String },
    /// PM QoS is not set on idle siblings: a polling sibling slows its core's thread.
    IdleSiblingsPmQos { cpus: CpuSet },
    /// The kvm module is not loaded.
    KvmNotLoaded,
    /// KVM's `halt_poll_ns` is already at least what the plan would set.
    HaltPollKept { ns: u64, at_least: u64 },
    /// `--nic` named an interface whose name the knobs refuse.
    NicBadName { nic: String },
    /// The interface's coalescing could not be read.
    CoalescingUnreadable { nic: String },
    /// The admission ledger could not be read (`plan` without root).
    LedgerUnreadable { path: PathBuf },
    /// A note recorded as plain text, before notes were typed.
    Text { text: String },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::DefaultRouteIrq {
                label,
                affinity,
                nic,
                ..
            } => write!(
                f,
                "{label} left on CPUs {affinity}: {nic} carries the default route (name it \
                 with --nic to steer its IRQs)"
            ),
            Note::UnmovableIrq { label, .. } => write!(
                f,
                "{label} is kernel-managed or per-CPU and cannot be moved live; \
                 isolcpus=managed_irq (see the advisory) keeps it off at boot"
            ),
            Note::NotPartitions { thread_root, taken } => write!(
                f,
                "the plan's cpusets are not made partitions: a local partition needs its parent \
                 to be a valid partition root, and {thread_root} is not (a remote one needs \
                 cpuset.cpus.exclusive on every cgroup above it, which this version does not \
                 plan); the cgroups still pin each thread, and the other cgroups lost CPUs \
                 {taken}"
            ),
            Note::MainThreadGone { pid, comm } => write!(
                f,
                "process {pid} ({comm}) left in the root cgroup: its main thread is gone"
            ),
            Note::PolicyKept { pid, tid, policy } => write!(
                f,
                "thread {tid} of process {pid} left under its {policy} policy, which cannot be \
                 restored exactly"
            ),
            Note::CpusetNotPlain { path, why } => write!(f, "cpuset {path:?} left alone: {why}"),
            Note::NotCpuExclusive { scope } => write!(
                f,
                "the plan's cpusets are not made CPU-exclusive: the kernel allows that only \
                 under an exclusive parent, and {scope} is not (the cgroups still pin each \
                 thread)"
            ),
            Note::SiblingKeepsCpus { sibling } => write!(
                f,
                "the plan's cpusets are not made CPU-exclusive: their sibling {sibling} keeps \
                 the exclusive CPUs for the target's cgroup, and the kernel refuses an \
                 exclusive cpuset that a sibling overlaps (the cgroups still pin each thread)"
            ),
            Note::CgroupUnreadable { pid, tid } => write!(
                f,
                "thread {tid} of process {pid} left alone: its cgroup could not be read"
            ),
            Note::CgroupNotPlain { pid, tid, cgroup } => write!(
                f,
                "thread {tid} of process {pid} left alone: cgroup {cgroup:?} is not a plain path"
            ),
            Note::IdleSiblingsPmQos { cpus } => write!(
                f,
                "PM QoS left alone on the idle siblings {cpus}: a polling sibling would take \
                 execution resources from the thread on its core, a deeply idle one takes none"
            ),
            Note::KvmNotLoaded => {
                f.write_str("KVM halt polling left alone: the kvm module is not loaded")
            }
            Note::HaltPollKept { ns, at_least } => write!(
                f,
                "KVM halt_poll_ns left at {ns}: already at least {at_least} ns"
            ),
            Note::NicBadName { nic } => {
                write!(f, "NIC {nic:?} left alone: not a valid interface name")
            }
            Note::CoalescingUnreadable { nic } => {
                write!(f, "{nic} coalescing left alone: it could not be read here")
            }
            Note::LedgerUnreadable { path } => write!(
                f,
                "{} could not be read (permission denied): cores other workloads hold were not \
                 taken into account; apply, as root, will",
                path.display()
            ),
            Note::Text { text } => f.write_str(text),
        }
    }
}

impl From<String> for Note {
    fn from(text: String) -> Self {
        Note::Text { text }
    }
}

/// A note as stored: typed, or a plain sentence from a record made before notes were typed.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredNote<T> {
    Typed(T),
    Text(String),
}

/// Reads notes, typed or (in a plan or ledger recorded before they were) plain sentences.
pub(crate) fn deserialize_notes<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + From<String>,
{
    let stored = Vec::<StoredNote<T>>::deserialize(deserializer)?;
    Ok(stored
        .into_iter()
        .map(|note| match note {
            StoredNote::Typed(note) => note,
            StoredNote::Text(text) => T::from(text),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<Note> {
        vec![
            Note::DefaultRouteIrq {
                irq: 37,
                label: "IRQ 37 virtio2-input.0".into(),
                affinity: CpuSet::from_ids([0, 1, 2, 3]),
                nic: "eth0".into(),
            },
            Note::UnmovableIrq {
                irq: 9,
                label: "IRQ 9 acpi".into(),
            },
            Note::NotPartitions {
                thread_root: "/machine".into(),
                taken: CpuSet::from_ids([2, 3]),
            },
            Note::MainThreadGone {
                pid: 7,
                comm: "gone".into(),
            },
            Note::PolicyKept {
                pid: 7,
                tid: 8,
                policy: "Deadline".into(),
            },
            Note::CpusetNotPlain {
                path: "a\nb".into(),
                why: "has a newline".into(),
            },
            Note::NotCpuExclusive { scope: "/S".into() },
            Note::CgroupUnreadable { pid: 7, tid: 8 },
            Note::CgroupNotPlain {
                pid: 7,
                tid: 8,
                cgroup: "/a b".into(),
            },
            Note::IdleSiblingsPmQos {
                cpus: CpuSet::from_ids([5]),
            },
            Note::KvmNotLoaded,
            Note::HaltPollKept {
                ns: 400_000,
                at_least: 200_000,
            },
            Note::NicBadName { nic: "a/b".into() },
            Note::CoalescingUnreadable { nic: "eth0".into() },
            Note::LedgerUnreadable {
                path: "/var/lib/nearnative/ledger.json".into(),
            },
            Note::SiblingKeepsCpus {
                sibling: "/S/a".into(),
            },
            Note::Text {
                text: "an old sentence".into(),
            },
        ]
    }

    #[test]
    fn every_note_round_trips_through_json_with_its_kind() {
        for note in every_kind() {
            let json = serde_json::to_value(&note).unwrap();
            assert!(json["kind"].is_string(), "{json}");
            let back: Note = serde_json::from_value(json).unwrap();
            assert_eq!(back, note);
        }
    }

    #[test]
    fn notes_read_as_sentences_with_their_numbers() {
        let cases = [
            (
                every_kind()[0].clone(),
                "IRQ 37 virtio2-input.0 left on CPUs 0-3: eth0 carries the default route (name \
                 it with --nic to steer its IRQs)",
            ),
            (
                every_kind()[11].clone(),
                "KVM halt_poll_ns left at 400000: already at least 200000 ns",
            ),
            (
                every_kind()[4].clone(),
                "thread 8 of process 7 left under its Deadline policy, which cannot be restored \
                 exactly",
            ),
        ];
        for (note, text) in cases {
            assert_eq!(note.to_string(), text);
        }
    }

    #[derive(Deserialize)]
    struct Notes {
        #[serde(deserialize_with = "deserialize_notes")]
        notes: Vec<Note>,
    }

    #[test]
    fn plain_text_notes_of_old_plans_still_load() {
        let json = r#"{"notes": ["KVM halt polling left alone: the kvm module is not loaded",
            {"kind": "kvm_not_loaded"}]}"#;
        let notes: Notes = serde_json::from_str(json).unwrap();
        assert_eq!(notes.notes.len(), 2);
        assert!(matches!(&notes.notes[0], Note::Text { .. }));
        assert_eq!(notes.notes[0].to_string(), notes.notes[1].to_string());
    }
}
