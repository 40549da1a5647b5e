//! What a knob read or write can come to, beyond success. Every outcome names the knob (what
//! it is and where it lives) and the reason, so a message alone tells the user what to look at.
//!
//! The kernel refusing a value ([`KnobError::Refused`]) is kept apart from failure, as tuned
//! keeps its "unchangeable" list: a managed IRQ answers EIO to any affinity write, and that is
//! a fact about the host, not a bug in the plan. A task that exited ([`KnobError::Gone`]) is
//! also its own case: there is nothing left to restore, so `revert` counts it as done.

use std::fmt;
use std::io;

use nearnative_host::ReadError;
use serde::{Deserialize, Serialize};

/// A knob, in words: the object ("IRQ 36 affinity") and where it lives, which is a host file
/// (`/proc/irq/36/smp_affinity_list`) or the call that reaches it ("SIOCETHTOOL on eth1").
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Described {
    pub object: String,
    pub location: String,
}

impl Described {
    pub fn new(object: impl Into<String>, location: impl Into<String>) -> Self {
        Described {
            object: object.into(),
            location: location.into(),
        }
    }
}

impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.object, self.location)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KnobError {
    #[error("{knob}: does not exist on this host")]
    Missing { knob: Described },
    #[error("{knob}: the kernel refuses the change: {source}")]
    Refused {
        knob: Described,
        #[source]
        source: io::Error,
    },
    #[error("{knob}: the task is gone ({reason})")]
    Gone { knob: Described, reason: String },
    #[error("{knob}: not writable ({source}); apply and revert must run as root")]
    ReadOnly {
        knob: Described,
        #[source]
        source: io::Error,
    },
    #[error("{knob}: not available here ({reason})")]
    NotAvailable { knob: Described, reason: String },
    #[error("{knob}: {source}")]
    Io {
        knob: Described,
        #[source]
        source: io::Error,
    },
    #[error("{knob}: cannot parse {value:?}: {reason}")]
    Parse {
        knob: Described,
        value: String,
        reason: String,
    },
    #[error("{knob}: refusing to write {value:?}: {reason}")]
    Invalid {
        knob: Described,
        value: String,
        reason: String,
    },
}

/// How a knob's object answers errno values that mean different things for different kernel
/// objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// A sysfs, procfs or cgroupfs file: ENOENT means the knob does not exist here.
    File,
    /// A task: ENOENT or ESRCH mean it exited.
    Task,
}

impl KnobError {
    /// The knob this error is about.
    pub fn knob(&self) -> &Described {
        match self {
            KnobError::Missing { knob }
            | KnobError::Refused { knob, .. }
            | KnobError::Gone { knob, .. }
            | KnobError::ReadOnly { knob, .. }
            | KnobError::NotAvailable { knob, .. }
            | KnobError::Io { knob, .. }
            | KnobError::Parse { knob, .. }
            | KnobError::Invalid { knob, .. } => knob,
        }
    }

    pub fn is_refused(&self) -> bool {
        matches!(self, KnobError::Refused { .. })
    }

    pub fn is_gone(&self) -> bool {
        matches!(self, KnobError::Gone { .. })
    }

    /// Classifies a failed write by errno. EPERM is a refusal rather than a missing privilege
    /// because every write path checks privilege first (apply refuses to run live as non-root),
    /// so an EPERM that still comes back is the kernel's word on this object (a per-CPU IRQ).
    pub fn from_write(knob: Described, object: Object, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::Unsupported {
            return KnobError::NotAvailable {
                knob,
                reason: source.to_string(),
            };
        }
        match (source.raw_os_error(), object) {
            (Some(libc::ENOENT | libc::ESRCH), Object::Task) => KnobError::Gone {
                knob,
                reason: source.to_string(),
            },
            (Some(libc::ENOENT), Object::File) => KnobError::Missing { knob },
            (Some(libc::EIO | libc::EPERM | libc::EINVAL | libc::EBUSY), _) => {
                KnobError::Refused { knob, source }
            }
            (Some(libc::EACCES | libc::EROFS), _) => KnobError::ReadOnly { knob, source },
            (Some(libc::EOPNOTSUPP | libc::ENODEV), _) => KnobError::NotAvailable {
                knob,
                reason: source.to_string(),
            },
            _ => KnobError::Io { knob, source },
        }
    }

    /// Classifies a failed read through a [`nearnative_host::Root`].
    pub fn from_read(knob: Described, object: Object, err: ReadError) -> Self {
        match (err, object) {
            (ReadError::NotFound { .. }, Object::Task) => KnobError::Gone {
                knob,
                reason: "no such task in /proc".to_owned(),
            },
            (ReadError::NotFound { .. }, Object::File) => KnobError::Missing { knob },
            // A task's /proc files answer ESRCH once it has exited but is not yet reaped.
            (ReadError::Io { source, .. }, Object::Task)
                if source.raw_os_error() == Some(libc::ESRCH) =>
            {
                KnobError::Gone {
                    knob,
                    reason: source.to_string(),
                }
            }
            (ReadError::PermissionDenied { path }, _) => KnobError::ReadOnly {
                knob,
                source: io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("{}: permission denied", path.display()),
                ),
            },
            (ReadError::Io { source, .. }, _) => KnobError::Io { knob, source },
            (ReadError::Parse { value, reason, .. }, _) => KnobError::Parse {
                knob,
                value,
                reason,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn irq() -> Described {
        Described::new("IRQ 36 affinity", "/proc/irq/36/smp_affinity_list")
    }

    #[test]
    fn errno_values_map_to_outcomes() {
        let cases = [
            ("managed IRQ", libc::EIO, Object::File, "refuses"),
            ("file gone", libc::ENOENT, Object::File, "does not exist"),
            ("task exited", libc::ESRCH, Object::Task, "gone"),
            ("task dir gone", libc::ENOENT, Object::Task, "gone"),
            ("read-only fs", libc::EROFS, Object::File, "run as root"),
            ("odd errno", libc::ENOSPC, Object::File, "No space"),
        ];
        for (what, errno, object, expected) in cases {
            let err = KnobError::from_write(irq(), object, io::Error::from_raw_os_error(errno));
            let msg = err.to_string();
            assert!(msg.contains(expected), "{what}: {msg}");
            assert!(msg.starts_with("IRQ 36 affinity (/proc/irq/36/smp_affinity_list): "));
        }
    }

    #[test]
    fn esrch_reading_an_exited_tasks_file_means_gone() {
        let read = |object| {
            let err = ReadError::Io {
                path: "/proc/7/task/9/status".into(),
                source: io::Error::from_raw_os_error(libc::ESRCH),
            };
            KnobError::from_read(irq(), object, err)
        };
        assert!(read(Object::Task).is_gone());
        assert!(!read(Object::File).is_gone());
    }
}
