//! Knobs held in the kernel's hex mask form (`ff,ffffffff`), written back as wide as the
//! kernel prints them (see [`FixedMask::format_like`]) so a restored file reads exactly as
//! before.

use nearnative_host::kernel::{FixedMask, KernelFile};
use nearnative_host::CpuSet;

use crate::backend::Backend;
use crate::error::{KnobError, Object};
use crate::knob::described;

pub(crate) fn write_mask(
    backend: &dyn Backend,
    file: &FixedMask,
    cpus: &CpuSet,
) -> Result<(), KnobError> {
    if cpus.is_empty() {
        return Err(KnobError::Invalid {
            knob: described(file),
            value: String::new(),
            reason: "an empty mask would leave no CPU for this work".to_owned(),
        });
    }
    let current = backend
        .root()
        .read_trimmed(file.path())
        .map_err(|e| KnobError::from_read(described(file), Object::File, e))?;
    backend
        .write_file(&file.path(), &file.format_like(cpus, &current))
        .map_err(|e| KnobError::from_write(described(file), Object::File, e))
}

/// Implements [`crate::Knob`] for a fixed file in mask form, `$file` its definition.
macro_rules! mask_knob {
    ($(#[$doc:meta])* $knob:ident, $file:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub struct $knob;

        impl $knob {
            /// The kernel file this knob is.
            pub fn file(&self) -> nearnative_host::kernel::FixedMask {
                $file
            }
        }

        impl $crate::knob::Knob for $knob {
            type Value = nearnative_host::CpuSet;

            fn describe(&self) -> $crate::error::Described {
                $crate::knob::described(&self.file())
            }

            fn read(
                &self,
                backend: &dyn $crate::backend::Backend,
            ) -> Result<nearnative_host::CpuSet, $crate::error::KnobError> {
                $crate::knob::read_file(backend, &self.file())
            }

            fn write(
                &self,
                backend: &dyn $crate::backend::Backend,
                cpus: &nearnative_host::CpuSet,
            ) -> Result<(), $crate::error::KnobError> {
                $crate::exclusivity::mask::write_mask(backend, &self.file(), cpus)
            }
        }
    };
}
pub(crate) use mask_knob;
