//! The [`Knob`] trait: tuned's get/set plugin pair, statically typed, and [`Change`], one
//! planned write of one knob.

use std::fmt::Debug;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::{Described, KnobError, Object};

/// One writable host setting, identified by its fields (which IRQ, which thread). `read` and
/// `write` speak the typed [`Knob::Value`]; parsing and formatting the kernel's text lives in
/// the implementation, so no caller ever builds a write from a string.
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

/// A value kept in one kernel file in one text form.
pub(crate) trait FileValue: Sized {
    fn parse(text: &str) -> Result<Self, String>;
    fn format(&self) -> String;
}

/// Reads and parses a file knob through the backend's root.
pub(crate) fn read_file<V: FileValue>(
    backend: &dyn Backend,
    knob: Described,
    object: Object,
    host_path: &Path,
) -> Result<V, KnobError> {
    backend
        .root()
        .read_parsed(host_path, V::parse)
        .map_err(|e| KnobError::from_read(knob, object, e))
}

/// Formats and writes a file knob.
pub(crate) fn write_file<V: FileValue>(
    backend: &dyn Backend,
    knob: Described,
    host_path: &Path,
    value: &V,
) -> Result<(), KnobError> {
    backend
        .write_file(host_path, &value.format())
        .map_err(|e| KnobError::from_write(knob, Object::File, e))
}

/// Implements [`Knob`] for a knob whose value lives in one file: `$path` is an expression over
/// `self` giving the host path, `$object` the words for messages.
macro_rules! file_knob {
    ($knob:ty, $value:ty, |$this:ident| $object:expr, $path:expr) => {
        impl $crate::knob::Knob for $knob {
            type Value = $value;

            fn describe(&self) -> $crate::error::Described {
                let $this = self;
                $crate::error::Described::new($object, $path.display().to_string())
            }

            fn read(
                &self,
                backend: &dyn $crate::backend::Backend,
            ) -> Result<$value, $crate::error::KnobError> {
                let $this = self;
                $crate::knob::read_file(
                    backend,
                    self.describe(),
                    $crate::error::Object::File,
                    &$path,
                )
            }

            fn write(
                &self,
                backend: &dyn $crate::backend::Backend,
                value: &$value,
            ) -> Result<(), $crate::error::KnobError> {
                let $this = self;
                $crate::knob::write_file(backend, self.describe(), &$path, value)
            }
        }
    };
}
pub(crate) use file_knob;

/// A knob that is one fixed file with no fields (a sysctl, a module parameter).
macro_rules! fixed_file_knob {
    ($(#[$doc:meta])* $knob:ident, $value:ty, $object:expr, $path:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub struct $knob;
        $crate::knob::file_knob!($knob, $value, |_this| $object, std::path::Path::new($path));
    };
}
pub(crate) use fixed_file_knob;
