//! Policy files: `workloads.d/*.toml`, each with `[[workload]]` tables that name a target
//! pattern (`vm:GLOB`, `cgroup:/GLOB`, `process:GLOB`) and the `nearnative apply` options
//! its instances get (docs/daemon.md, "Policy files").
//!
//! Loading is all or nothing per file: a file with one bad table is rejected whole, with its
//! file:line and reason, and the other files stay in force. Matching the patterns against a
//! host is [`crate::discover`].

mod options;
mod parse;

use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use nearnative_host::cgroup::is_within;
use nearnative_plan::{PlanRequest, Target};
use nearnative_sys::trust::{self, TrustError};
use serde::Deserialize;

use crate::status::Source;
use options::Options;

pub use options::OPTION_NAMES;
pub use parse::parse_file;

/// One `[[workload]]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub file: PathBuf,
    /// The line of the table's `[[workload]]` header.
    pub line: usize,
    pub target: TargetPattern,
    pub on_drift: OnDrift,
    options: Options,
}

impl Policy {
    /// The PlanRequest for one concrete instance (`vm:NAME`, `cgroup:/PATH`, or `pid:PID` for
    /// `process:` policies), with every option of the table applied. Its scope is the
    /// table's own; [`crate::discover::desired`] puts in the daemon's when the table has none.
    pub fn request(&self, target: Target) -> PlanRequest {
        let mut request = PlanRequest::new(target);
        self.options.fill(&mut request);
        request
    }

    pub fn source(&self) -> Source {
        Source::Policy {
            file: self.file.clone(),
            line: self.line,
        }
    }

    /// The table's `scope` (a cgroup path), if it set one.
    pub fn scope(&self) -> Option<&str> {
        self.options.scope()
    }

    /// The scope the policy's instances are planned in: its own, else the daemon's.
    pub fn effective_scope<'s>(&'s self, daemon_scope: Option<&'s str>) -> Option<&'s str> {
        self.scope().or(daemon_scope)
    }

    /// Whether the table's `scope` lies within the daemon's `--scope` (always, when either is
    /// unset): a daemon confined to a cgroup must not share out CPUs outside it.
    pub fn check_scope(&self, daemon_scope: Option<&str>) -> Result<(), PolicyError> {
        match (self.scope(), daemon_scope) {
            (Some(own), Some(daemon)) if !is_within(own, daemon) => Err(PolicyError {
                file: self.file.clone(),
                line: Some(self.line),
                reason: format!(
                    "scope cgroup:{own} lies outside the daemon's scope cgroup:{daemon}"
                ),
            }),
            _ => Ok(()),
        }
    }
}

/// What a policy matches: a glob over VM names, cgroup paths, or process names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPattern {
    /// A VM's name (QEMU `-name`, ...).
    Vm(glob::Pattern),
    /// A cgroup path in the cpuset hierarchy; `*` stays within one path component.
    Cgroup(glob::Pattern),
    /// A process's `comm` or its executable's basename.
    Process(glob::Pattern),
}

impl fmt::Display for TargetPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetPattern::Vm(glob) => write!(f, "vm:{}", glob.as_str()),
            TargetPattern::Cgroup(glob) => write!(f, "cgroup:{}", glob.as_str()),
            TargetPattern::Process(glob) => write!(f, "process:{}", glob.as_str()),
        }
    }
}

/// What the daemon does when a knob of an applied plan reads back otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDrift {
    /// Write the planned value again (the journal keeps the first prior value).
    #[default]
    Repair,
    /// Only report it, in the log, `status` and the metrics.
    Report,
}

/// The policies of a directory, and the files it rejected.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicySet {
    /// In file-name order, then table order: the first to match an instance wins it.
    pub policies: Vec<Policy>,
    pub errors: Vec<PolicyError>,
}

impl PolicySet {
    /// Rejects, whole, each file with a table whose `scope` lies outside the daemon's scope
    /// (see [`Policy::check_scope`]), as a file with a bad value is; the others stay.
    pub fn confine(&mut self, daemon_scope: Option<&str>) {
        let mut rejected: Vec<PathBuf> = Vec::new();
        for policy in &self.policies {
            if rejected.contains(&policy.file) {
                continue;
            }
            if let Err(error) = policy.check_scope(daemon_scope) {
                rejected.push(policy.file.clone());
                self.errors.push(error);
            }
        }
        self.policies.retain(|p| !rejected.contains(&p.file));
    }

    /// This set, reloaded, with the policies `previous` held from each file that is now
    /// rejected (or from every file, when the directory itself is unreadable): a bad edit
    /// changes nothing already applied, and the errors still show until it is fixed. A file
    /// removed is gone, errors or not.
    pub fn with_last_good(mut self, previous: &PolicySet) -> PolicySet {
        let failed = |file: &Path| self.errors.iter().any(|e| file.starts_with(&e.file));
        let kept: Vec<Policy> = previous
            .policies
            .iter()
            .filter(|p| failed(&p.file))
            .cloned()
            .collect();
        self.policies.extend(kept);
        // Stable: each file's tables keep their order.
        self.policies.sort_by(|a, b| a.file.cmp(&b.file));
        self
    }
}

/// Why a file was rejected: `FILE:LINE: reason`, or `FILE: reason` when no line applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub reason: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.reason),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

impl std::error::Error for PolicyError {}

/// The most a policy file may hold; a few tables take a few hundred bytes.
pub const MAX_POLICY_BYTES: u64 = 1 << 20;

/// Every `*.toml` file of `dir`, in file-name order; other files are ignored. A missing
/// directory is an empty set (a host without policies); an untrusted or unreadable one is one
/// error. The daemon applies what the files say as root, so the directory must be as closed
/// as the state directory (owned by root, writable by no group or other user, nor any
/// directory above it), and each file a regular file, not a link, owned and closed the same
/// way, and at most [`MAX_POLICY_BYTES`]: a link to `/dev/zero` or a FIFO is refused, not read.
pub fn load_dir(dir: &Path) -> PolicySet {
    let mut set = PolicySet::default();
    let dir_error = |reason: String| PolicyError {
        file: dir.to_owned(),
        line: None,
        reason,
    };
    match fs::symlink_metadata(dir) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return set,
        Err(error) => {
            set.errors.push(dir_error(format!(
                "cannot list the policy directory: {error}"
            )));
            return set;
        }
        Ok(_) => {}
    }
    if let Err(error) = trust::check_dir(dir) {
        set.errors
            .push(dir_error(untrusted_dir_reason(dir, &error)));
        return set;
    }
    let files = match policy_files(dir) {
        Ok(files) => files,
        Err(error) => {
            set.errors.push(dir_error(format!(
                "cannot list the policy directory: {error}"
            )));
            return set;
        }
    };
    for file in files {
        match read_policy(&file) {
            Ok(Some(text)) => match parse_file(&file, &text) {
                Ok(policies) => set.policies.extend(policies),
                Err(error) => set.errors.push(error),
            },
            // Removed since it was listed: it is gone, as a file removed before the reload.
            Ok(None) => {}
            Err(reason) => set.errors.push(PolicyError {
                file,
                line: None,
                reason,
            }),
        }
    }
    set
}

/// Why the policy directory is not trusted; the path refused is named when it is not the
/// directory itself (a directory or link above it).
fn untrusted_dir_reason(dir: &Path, error: &TrustError) -> String {
    let reason = match error.path() == dir {
        true => error.reason(),
        false => error.to_string(),
    };
    format!("not trusted as the policy directory: {reason}")
}

/// The text of one policy file, opened without following a link and checked on the open
/// descriptor; `Ok(None)` when it no longer exists. `Err` is the reason, without the path.
fn read_policy(path: &Path) -> Result<Option<String>, String> {
    let Some(file) = trust::open_for_reading(path).map_err(|e| e.reason())? else {
        return Ok(None);
    };
    let mut text = String::new();
    file.take(MAX_POLICY_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|error| format!("cannot read: {error}"))?;
    match text.len() as u64 > MAX_POLICY_BYTES {
        true => Err(format!(
            "larger than {} KiB, the most a policy file may hold",
            MAX_POLICY_BYTES / 1024
        )),
        false => Ok(Some(text)),
    }
}

/// The `*.toml` entries of `dir`, sorted by name, links and special files included (each is
/// refused when read, by name). Hidden files (an editor's `.x.toml.swp`, a half-written
/// `.x.toml`) are not policies, nor are directories.
fn policy_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".toml") && !name.starts_with('.') && !entry.file_type()?.is_dir() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests;
