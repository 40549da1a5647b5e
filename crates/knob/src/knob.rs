//! The [`Knob`] trait: tuned's get/set plugin pair, statically typed, and [`Change`], one
//! planned write of one knob.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

use nearnative_host::kernel::KernelFile;

use crate::backend::Backend;
use crate::error::{Described, KnobError, Object};

/// One writable host setting, identified by its fields (which IRQ, which thread). `read` and
/// `write` speak the typed [`Knob::Value`]; parsing and formatting the kernel's text lives in
/// the file's definition in `nearnative_host::kernel` (for file knobs) or in the backend (for
/// syscalls), so no caller ever builds a write from a string.
pub trait Knob: Clone + Debug + PartialEq + Serialize + DeserializeOwned {
    type Value: Clone + PartialEq + Debug + Serialize + DeserializeOwned;

    /// What and where, for messages: "IRQ 36 affinity (/proc/irq/36/smp_affinity_list)".
    fn describe(&self) -> Described;

    fn read(&self, backend: &dyn Backend) -> Result<Self::Value, KnobError>;

    fn write(&self, backend: &dyn Backend, value: &Self::Value) -> Result<(), KnobError>;

    /// Whether the knob now holds `value`.
    fn verify(&self, backend: &dyn Backend, value: &Self::Value) -> Result<bool, KnobError> {
        Ok(self.read(backend)? == *value)
    }

    /// True when the kernel may legitimately refuse this knob (a managed IRQ): apply records
    /// the refusal as "unchangeable" and carries on instead of rolling back.
    fn best_effort(&self) -> bool {
        false
    }
}

/// One planned write: `knob` goes from `from` to `to`. The planner fills `from` with what it
/// saw; the executor replaces it with a fresh read just before writing, and that fresh value is
/// what the journal keeps and `revert` restores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Change<K: Knob> {
    pub knob: K,
    pub from: K::Value,
    pub to: K::Value,
}

/// What a file knob's messages name: the definition's object and path.
pub(crate) fn described<F: KernelFile>(file: &F) -> Described {
    Described::new(file.object(), file.path().display().to_string())
}

/// Reads and parses a file knob through its definition and the backend's root.
pub(crate) fn read_file<F: KernelFile>(
    backend: &dyn Backend,
    file: &F,
) -> Result<F::Value, KnobError> {
    file.read(backend.root())
        .map_err(|e| KnobError::from_read(described(file), Object::File, e))
}

/// Formats a value through its definition and writes it.
pub(crate) fn write_file<F: KernelFile>(
    backend: &dyn Backend,
    file: &F,
    value: &F::Value,
) -> Result<(), KnobError> {
    backend
        .write_file(&file.path(), &file.format(value))
        .map_err(|e| KnobError::from_write(described(file), Object::File, e))
}

/// Implements [`Knob`] for a knob whose value lives in one file: `$file` is an expression over
/// `self` giving the file's definition (a [`KernelFile`] of type `$def`), which holds the
/// path, the value type and its text form.
macro_rules! file_knob {
    ($knob:ty, $def:ty, |$this:ident| $file:expr) => {
        impl $knob {
            /// The kernel file this knob is.
            pub fn file(&self) -> $def {
                let $this = self;
                $file
            }
        }

        impl $crate::knob::Knob for $knob {
            type Value = <$def as nearnative_host::kernel::KernelFile>::Value;

            fn describe(&self) -> $crate::error::Described {
                $crate::knob::described(&self.file())
            }

            fn read(
                &self,
                backend: &dyn $crate::backend::Backend,
            ) -> Result<Self::Value, $crate::error::KnobError> {
                $crate::knob::read_file(backend, &self.file())
            }

            fn write(
                &self,
                backend: &dyn $crate::backend::Backend,
                value: &Self::Value,
            ) -> Result<(), $crate::error::KnobError> {
                $crate::knob::write_file(backend, &self.file(), value)
            }
        }
    };
}
pub(crate) use file_knob;

/// A knob that is one fixed file with no fields (a sysctl, a module parameter): `$def` is
/// the definition's constant in `nearnative_host::kernel`.
macro_rules! fixed_file_knob {
    ($(#[$doc:meta])* $knob:ident, $def:ty, $file:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub struct $knob;
        $crate::knob::file_knob!($knob, $def, |_this| $file);
    };
}
pub(crate) use fixed_file_knob;
