//! Reading many independent host values in one pass, keeping going past failures.
//!
//! Inspect reads hundreds of small files, any of which may be missing, empty or odd on a
//! given kernel. A [`Collector`] turns each failed read into an [`Unknown`] that names the
//! object and the file, and hands back `None` for the value, so one bad file never hides the
//! rest of the host.

use std::fmt::Display;
use std::path::Path;

use crate::kernel::KernelFile;
use crate::{ReadError, Root, Unknown};

pub(crate) struct Collector<'a> {
    pub(crate) root: &'a Root,
    unknowns: Vec<Unknown>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(root: &'a Root) -> Self {
        Collector {
            root,
            unknowns: Vec::new(),
        }
    }

    /// Reads and parses one value; any failure is recorded as unknown `object`.
    pub(crate) fn parsed<T, E: Display>(
        &mut self,
        object: impl Into<String>,
        host_path: impl AsRef<Path>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let result = self.root.read_parsed(host_path, parse);
        self.keep(object, result)
    }

    /// Like [`Collector::parsed`], but a missing file means the kernel has no such object
    /// (no cpufreq driver, kvm not loaded), which is a fact rather than an unknown.
    pub(crate) fn parsed_if_present<T, E: Display>(
        &mut self,
        object: impl Into<String>,
        host_path: impl AsRef<Path>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        match self.root.read_parsed(host_path, parse) {
            Ok(value) => Some(value),
            Err(err) if err.is_not_found() => None,
            Err(err) => self.failed(object, &err),
        }
    }

    /// Reads one kernel file through its definition; a failure is recorded under its name.
    pub(crate) fn file<F: KernelFile>(&mut self, file: &F) -> Option<F::Value> {
        let result = file.read(self.root);
        self.keep(file.object(), result)
    }

    /// [`Collector::file`] for a file whose absence is a fact (kvm not loaded).
    pub(crate) fn file_if_present<F: KernelFile>(&mut self, file: &F) -> Option<F::Value> {
        match file.read(self.root) {
            Ok(value) => Some(value),
            Err(err) if err.is_not_found() => None,
            Err(err) => self.failed(file.object(), &err),
        }
    }

    pub(crate) fn trimmed(
        &mut self,
        object: impl Into<String>,
        host_path: impl AsRef<Path>,
    ) -> Option<String> {
        self.parsed(object, host_path, |s| Ok::<_, ReadError>(s.to_owned()))
    }

    pub(crate) fn text(
        &mut self,
        object: impl Into<String>,
        host_path: impl AsRef<Path>,
    ) -> Option<String> {
        let result = self.root.read_to_string(host_path);
        self.keep(object, result)
    }

    pub(crate) fn list_dir(
        &mut self,
        object: impl Into<String>,
        host_path: impl AsRef<Path>,
    ) -> Option<Vec<String>> {
        let result = self.root.list_dir(host_path);
        self.keep(object, result)
    }

    /// Records a failure that is not a read error: a line or field the parser refused.
    pub(crate) fn malformed(
        &mut self,
        object: impl Into<String>,
        host_path: impl AsRef<Path>,
        reason: impl Into<String>,
    ) {
        self.unknowns.push(Unknown {
            object: object.into(),
            path: self.root.path(host_path),
            reason: reason.into(),
        });
    }

    /// The value of a read, or `None` with the failure recorded as unknown `object`.
    pub(crate) fn keep<T>(
        &mut self,
        object: impl Into<String>,
        result: Result<T, ReadError>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => self.failed(object, &err),
        }
    }

    pub(crate) fn failed<T>(&mut self, object: impl Into<String>, err: &ReadError) -> Option<T> {
        self.unknowns.push(Unknown::from_error(object, err));
        None
    }

    pub(crate) fn finish(self) -> Vec<Unknown> {
        self.unknowns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_unknown_unless_absence_is_normal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("n"), "12\n").unwrap();
        std::fs::write(dir.path().join("bad"), "x\n").unwrap();
        let root = Root::new(dir.path());
        let mut collect = Collector::new(&root);
        assert_eq!(collect.parsed("n", "/n", str::parse::<u32>), Some(12));
        assert_eq!(collect.parsed("bad", "/bad", str::parse::<u32>), None);
        assert_eq!(
            collect.parsed_if_present("gone", "/gone", str::parse::<u32>),
            None
        );
        assert_eq!(collect.trimmed("gone too", "/gone"), None);
        let unknowns = collect.finish();
        let objects: Vec<_> = unknowns.iter().map(|u| u.object.as_str()).collect();
        assert_eq!(objects, ["bad", "gone too"]);
        assert!(unknowns[0].path.ends_with("bad"));
    }
}
