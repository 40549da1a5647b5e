//! Sweeping the leftovers of lab runs that died without cleaning up (`kill -9`, a power cut):
//! every registry file in the run directory whose owner is gone names what to remove.
//!
//! A registry whose owner still runs is left alone, as is anything a registry does not name.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nearnative_host::Root;
use nearnative_sys::durable::DurableError;

use crate::object::Remover;
use crate::registry::{self, owner_alive, remove_all, RegistryError};

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("cannot list the lab run directory {path}")]
    List {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read a lab registry")]
    Load(#[source] DurableError),
    #[error("{path}: cannot remove the leftovers it names")]
    Remove {
        path: PathBuf,
        #[source]
        source: RegistryError,
    },
    #[error("cannot remove the swept registry {path}")]
    Unlink {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What a sweep did.
#[derive(Debug, Default)]
pub struct SweepReport {
    /// Registries of dead runs whose objects are all gone now; the files are deleted.
    pub swept: Vec<PathBuf>,
    /// How many objects those registries named (removed now, or already gone).
    pub objects: usize,
    /// Registries of runs that are still alive, left alone.
    pub live: Vec<PathBuf>,
    /// Registries that could not be read or fully cleaned; their files stay.
    pub failed: Vec<SweepError>,
}

/// Removes the leftovers of every dead run registered in `run_dir`. A missing directory has
/// nothing to sweep.
pub fn sweep(run_dir: &Path, root: &Root) -> Result<SweepReport, SweepError> {
    let mut report = SweepReport::default();
    let entries = match fs::read_dir(run_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
        Err(source) => {
            return Err(SweepError::List {
                path: run_dir.to_owned(),
                source,
            })
        }
    };
    for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        if is_registry_file(&path) {
            sweep_one(&path, root, &mut report);
        } else if let Some(pid) = temporary_of(&path) {
            // A registry write cut short by a crash; its writer's pid ends the name.
            if !root.exists(format!("/proc/{pid}")) {
                let _ = fs::remove_file(&path);
            }
        }
    }
    Ok(report)
}

/// The writer's pid of a registry's temporary file (`.lab-<id>.json.tmp.<pid>`, as
/// `durable::write_atomically` names it).
fn temporary_of(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    let (stem, pid) = name.strip_prefix(".lab-")?.rsplit_once(".json.tmp.")?;
    if stem.is_empty() {
        return None;
    }
    pid.parse().ok()
}

fn is_registry_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("lab-") && n.ends_with(".json"))
}

fn sweep_one(path: &Path, root: &Root, report: &mut SweepReport) {
    let body = match registry::load(path) {
        Ok(Some(body)) => body,
        Ok(None) => return,
        Err(e) => return report.failed.push(SweepError::Load(e)),
    };
    if owner_alive(root, &body) {
        return report.live.push(path.to_owned());
    }
    if let Err(source) = remove_all(root, &body.objects, body.pid, Remover::Sweep) {
        return report.failed.push(SweepError::Remove {
            path: path.to_owned(),
            source,
        });
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => report.failed.push(SweepError::Unlink {
            path: path.to_owned(),
            source: e,
        }),
        _ => {
            report.swept.push(path.to_owned());
            report.objects += body.objects.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::LabObject;
    use crate::registry::{RegistryBody, REGISTRY_SCHEMA};
    use nearnative_sys::durable;

    #[test]
    fn leaves_live_runs_and_refuses_foreign_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::default();
        let pid = std::process::id();
        let live = RegistryBody {
            pid,
            start_time: crate::registry::start_time_of(&root, pid).unwrap(),
            objects: vec![],
        };
        durable::store(&dir.path().join("lab-1aa.json"), REGISTRY_SCHEMA, &live).unwrap();
        let tampered = RegistryBody {
            start_time: live.start_time + 1,
            objects: vec![LabObject::Netns {
                name: "default".into(),
            }],
            ..live.clone()
        };
        let tampered_path = dir.path().join("lab-2aa.json");
        durable::store(&tampered_path, REGISTRY_SCHEMA, &tampered).unwrap();
        let report = sweep(dir.path(), &root).unwrap();
        assert_eq!(report.live, vec![dir.path().join("lab-1aa.json")]);
        assert_eq!(report.failed.len(), 1);
        let err = format!("{:?}", report.failed[0]);
        assert!(err.contains("Foreign"), "{err}");
        assert!(tampered_path.exists());
    }

    #[test]
    fn removes_temporary_files_of_dead_writers_only() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join(".lab-1aa.json.tmp.4194304");
        let live = dir
            .path()
            .join(format!(".lab-2aa.json.tmp.{}", std::process::id()));
        let other = dir.path().join(".journal.json.tmp.4194304");
        for path in [&dead, &live, &other] {
            fs::write(path, "{").unwrap();
        }
        sweep(dir.path(), &Root::default()).unwrap();
        assert!(!dead.exists());
        assert!(live.exists() && other.exists());
    }

    #[test]
    fn missing_run_dir_has_nothing_to_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let report = sweep(&dir.path().join("absent"), &Root::default()).unwrap();
        assert!(report.swept.is_empty() && report.failed.is_empty());
    }
}
