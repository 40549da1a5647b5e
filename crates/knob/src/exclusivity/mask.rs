//! Knobs held in the kernel's hex mask form (`ff,ffffffff`), written back as wide as the
//! kernel prints them so a restored file reads exactly as before.

use std::path::Path;

use nearnative_host::CpuSet;

use crate::backend::Backend;
use crate::error::{Described, KnobError, Object};

pub(crate) fn read_mask(
    backend: &dyn Backend,
    knob: Described,
    host_path: &Path,
) -> Result<CpuSet, KnobError> {
    backend
        .root()
        .read_parsed(host_path, CpuSet::parse_mask)
        .map_err(|e| KnobError::from_read(knob, Object::File, e))
}

pub(crate) fn write_mask(
    backend: &dyn Backend,
    knob: Described,
    host_path: &Path,
    cpus: &CpuSet,
) -> Result<(), KnobError> {
    if cpus.is_empty() {
        return Err(KnobError::Invalid {
            knob,
            value: String::new(),
            reason: "an empty mask would leave no CPU for this work".to_owned(),
        });
    }
    let words = backend
        .root()
        .read_trimmed(host_path)
        .map_err(|e| KnobError::from_read(knob.clone(), Object::File, e))?
        .split(',')
        .count();
    backend
        .write_file(host_path, &cpus.to_mask(words))
        .map_err(|e| KnobError::from_write(knob, Object::File, e))
}

/// Implements [`crate::Knob`] for a fixed file in mask form.
macro_rules! mask_knob {
    ($(#[$doc:meta])* $knob:ident, $object:literal, $path:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub struct $knob;

        impl $crate::knob::Knob for $knob {
            type Value = nearnative_host::CpuSet;

            fn describe(&self) -> $crate::error::Described {
                $crate::error::Described::new($object, $path)
            }

            fn read(
                &self,
                backend: &dyn $crate::backend::Backend,
            ) -> Result<nearnative_host::CpuSet, $crate::error::KnobError> {
                $crate::exclusivity::mask::read_mask(
                    backend,
                    self.describe(),
                    std::path::Path::new($path),
                )
            }

            fn write(
                &self,
                backend: &dyn $crate::backend::Backend,
                cpus: &nearnative_host::CpuSet,
            ) -> Result<(), $crate::error::KnobError> {
                $crate::exclusivity::mask::write_mask(
                    backend,
                    self.describe(),
                    std::path::Path::new($path),
                    cpus,
                )
            }
        }
    };
}
pub(crate) use mask_knob;
