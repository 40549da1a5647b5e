//! One definition per kernel file nearnative reads and writes: where the file is, the typed
//! value it holds, how that value is parsed from the kernel's text and formatted back. Inspect
//! reads through these definitions and the knobs in nearnative-knob write through them, so a
//! file can never be typed or spelled two ways.
//!
//! A definition is a [`KernelFile`]: a constant [`Fixed`] for a file with one path (a sysctl,
//! a module parameter), or a small struct with the fields its path is built from (a CPU, an
//! IRQ, a cgroup directory). Values that many files share (CPU lists, `0`/`1` flags, numbers)
//! implement [`KernelValue`] once. Nothing here writes: writing belongs to the knob crate's
//! backends.

pub mod cgroup;
pub mod irq;
pub mod memory;
pub mod power;
pub mod sysctl;

use std::marker::PhantomData;
use std::path::PathBuf;

use crate::{CpuSet, ReadError, Root};

/// A value in its kernel text form, the same in every file that holds it.
pub trait KernelValue: Sized {
    /// Parses the file's text, trimmed of surrounding whitespace.
    fn parse(text: &str) -> Result<Self, String>;
    /// The text to write, without a trailing newline.
    fn format(&self) -> String;
}

/// One kernel file: its path, its value, and that value's text form.
pub trait KernelFile {
    type Value;

    /// The file in the host's namespace (`/proc/irq/36/smp_affinity_list`); a [`Root`]
    /// joins it to the directory it reads, so the same definition works on a captured tree.
    fn path(&self) -> PathBuf;

    /// What the file is, for messages: "PM QoS resume latency of CPU 3".
    fn object(&self) -> String;

    fn parse(&self, text: &str) -> Result<Self::Value, String>;

    fn format(&self, value: &Self::Value) -> String;

    /// Reads and parses the file through `root`.
    fn read(&self, root: &Root) -> Result<Self::Value, ReadError> {
        root.read_parsed(self.path(), |text| self.parse(text))
    }
}

/// A file with one fixed path, holding a [`KernelValue`].
#[derive(Debug)]
pub struct Fixed<V> {
    object: &'static str,
    path: &'static str,
    value: PhantomData<fn() -> V>,
}

impl<V> Fixed<V> {
    pub const fn new(object: &'static str, path: &'static str) -> Self {
        Fixed {
            object,
            path,
            value: PhantomData,
        }
    }
}

impl<V: KernelValue> KernelFile for Fixed<V> {
    type Value = V;

    fn path(&self) -> PathBuf {
        PathBuf::from(self.path)
    }

    fn object(&self) -> String {
        self.object.to_owned()
    }

    fn parse(&self, text: &str) -> Result<V, String> {
        V::parse(text)
    }

    fn format(&self, value: &V) -> String {
        value.format()
    }
}

/// A fixed file holding a CPU set in the kernel's hex mask form (`ff,ffffffff`).
#[derive(Debug)]
pub struct FixedMask {
    object: &'static str,
    path: &'static str,
}

impl FixedMask {
    pub const fn new(object: &'static str, path: &'static str) -> Self {
        FixedMask { object, path }
    }

    /// The mask form of `cpus` as wide as `current` (the file's text now): the kernel prints
    /// masks padded to nr_cpu_ids whatever was written, so writing that width makes a restored
    /// file read exactly as before, on the live host and on a captured tree alike.
    pub fn format_like(&self, cpus: &CpuSet, current: &str) -> String {
        cpus.to_mask(current.trim().split(',').count())
    }
}

impl KernelFile for FixedMask {
    type Value = CpuSet;

    fn path(&self) -> PathBuf {
        PathBuf::from(self.path)
    }

    fn object(&self) -> String {
        self.object.to_owned()
    }

    fn parse(&self, text: &str) -> Result<CpuSet, String> {
        CpuSet::parse_mask(text).map_err(|e| e.to_string())
    }

    fn format(&self, cpus: &CpuSet) -> String {
        cpus.to_mask(1)
    }
}

/// CPU (or NUMA node) sets in list form: `0-3,8`.
impl KernelValue for CpuSet {
    fn parse(text: &str) -> Result<Self, String> {
        CpuSet::parse_list(text).map_err(|e| e.to_string())
    }
    fn format(&self) -> String {
        self.to_list()
    }
}

/// Flags written `0` or `1`.
impl KernelValue for bool {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "0" => Ok(false),
            "1" => Ok(true),
            _ => Err("neither 0 nor 1".to_owned()),
        }
    }
    fn format(&self) -> String {
        u8::from(*self).to_string()
    }
}

impl KernelValue for u32 {
    fn parse(text: &str) -> Result<Self, String> {
        text.parse()
            .map_err(|_| "not an unsigned 32-bit number".to_owned())
    }
    fn format(&self) -> String {
        self.to_string()
    }
}

impl KernelValue for u64 {
    fn parse(text: &str) -> Result<Self, String> {
        text.parse()
            .map_err(|_| "not an unsigned 64-bit number".to_owned())
    }
    fn format(&self) -> String {
        self.to_string()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Parses `text` (captured from the kernel) as `file` reads it and checks that formatting
    /// gives `written`; where the kernel shows what was written, that text parses back to the
    /// same value.
    pub(crate) fn round_trip<F: KernelFile>(file: &F, text: &str, written: &str) -> F::Value
    where
        F::Value: std::fmt::Debug + PartialEq,
    {
        let value = file
            .parse(text.trim())
            .unwrap_or_else(|e| panic!("{}: {text:?}: {e}", file.object()));
        assert_eq!(file.format(&value), written, "{}", file.object());
        if text.trim() == written {
            assert_eq!(
                file.parse(written).as_ref(),
                Ok(&value),
                "{}",
                file.object()
            );
        }
        value
    }

    #[test]
    fn shared_values_round_trip_in_kernel_form() {
        assert_eq!(<bool as KernelValue>::parse("1"), Ok(true));
        assert_eq!(false.format(), "0");
        assert!(<bool as KernelValue>::parse("yes").is_err());
        assert_eq!(CpuSet::from_ids([0, 1, 2, 5]).format(), "0-2,5");
        assert!(<u32 as KernelValue>::parse("-1").is_err());
        assert!(<u32 as KernelValue>::parse("4294967296").is_err());
        assert_eq!(<u64 as KernelValue>::parse("4294967296"), Ok(1 << 32));
    }

    #[test]
    fn masks_are_written_as_wide_as_the_kernel_prints_them() {
        let mask = FixedMask::new("a mask", "/m");
        let cpus = round_trip(&mask, "00000000,00000005\n", "00000005");
        assert_eq!(cpus, CpuSet::from_ids([0, 2]));
        assert_eq!(
            mask.format_like(&cpus, "ffffffff,ffffffff\n"),
            "00000000,00000005"
        );
        assert!(mask.parse("xyz").is_err());
    }
}
