//! kubelet's CPU manager, which fights the plugin under its `static` policy: it reconciles
//! containers' cpusets back through the CRI every 10 s. The node must run
//! `cpuManagerPolicy: none`; the daemon warns (log and status) when the state file says not.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// Where kubelet records its CPU manager's policy and assignments.
pub const CPU_MANAGER_STATE: &str = "/var/lib/kubelet/cpu_manager_state";

/// The largest state file read: a node's assignments fit in far less.
const MOST_STATE_BYTES: u64 = 4 << 20;

#[derive(Debug, Error)]
pub enum KubeletStateError {
    #[error("{}: cannot read kubelet's CPU manager state: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: over {MOST_STATE_BYTES} bytes, not kubelet's CPU manager state", path.display())]
    TooLarge { path: PathBuf },
    #[error("{}: not kubelet's CPU manager state: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
struct CpuManagerState {
    #[serde(rename = "policyName")]
    policy_name: String,
}

/// The CPU manager policy kubelet's state file at `path` records; `None` without the file
/// (no kubelet on this node, or one that never started).
pub fn cpu_manager_policy(path: &Path) -> Result<Option<String>, KubeletStateError> {
    let size = match fs::metadata(path) {
        Ok(metadata) => metadata.len(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(KubeletStateError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    if size > MOST_STATE_BYTES {
        return Err(KubeletStateError::TooLarge {
            path: path.to_owned(),
        });
    }
    let text = fs::read_to_string(path).map_err(|source| KubeletStateError::Read {
        path: path.to_owned(),
        source,
    })?;
    let state: CpuManagerState =
        serde_json::from_str(&text).map_err(|source| KubeletStateError::Parse {
            path: path.to_owned(),
            source,
        })?;
    Ok(Some(state.policy_name))
}

/// The warning for a policy that fights the plugin, `None` for one that does not.
pub fn cpu_manager_warning(policy: &str) -> Option<String> {
    (policy != "none").then(|| {
        format!(
            "kubelet's CPU manager policy is {policy:?}: it pushes its own cpusets back every \
             10 s and undoes the fence; set cpuManagerPolicy: none on this node"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_of(text: &str) -> Result<Option<String>, KubeletStateError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cpu_manager_state");
        fs::write(&path, text).unwrap();
        cpu_manager_policy(&path)
    }

    #[test]
    fn the_policy_is_read_from_the_state_file() {
        let none = r#"{"policyName":"none","defaultCpuSet":"","checksum":1353318690}"#;
        assert_eq!(policy_of(none).unwrap().as_deref(), Some("none"));
        let static_ = r#"{"policyName":"static","defaultCpuSet":"0,3","entries":{"uid":{"app":"1-2"}},"checksum":2}"#;
        assert_eq!(policy_of(static_).unwrap().as_deref(), Some("static"));
    }

    #[test]
    fn no_state_file_is_no_kubelet() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            cpu_manager_policy(&dir.path().join("absent")).unwrap(),
            None
        );
    }

    #[test]
    fn a_file_that_is_not_the_state_names_itself() {
        let err = policy_of("policy=static").unwrap_err();
        assert!(
            err.to_string()
                .contains("cpu_manager_state: not kubelet's CPU manager state: "),
            "{err}"
        );
    }

    #[test]
    fn only_none_is_quiet() {
        assert_eq!(cpu_manager_warning("none"), None);
        assert_eq!(
            cpu_manager_warning("static").unwrap(),
            "kubelet's CPU manager policy is \"static\": it pushes its own cpusets back every \
             10 s and undoes the fence; set cpuManagerPolicy: none on this node"
        );
    }
}
