//! Writing the report's files: the only I/O of the report module.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::html::html;
use super::model::LabReport;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write the lab report to {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode the lab report as JSON")]
    Json(#[source] serde_json::Error),
}

/// `report` as pretty JSON (docs/lab-report.md), newline-terminated, to `path`.
pub fn write_json(report: &LabReport, path: &Path) -> Result<(), ReportError> {
    let mut json = serde_json::to_string_pretty(report).map_err(ReportError::Json)?;
    json.push('\n');
    write(path, &json)
}

/// `report` as one self-contained HTML page to `path`.
pub fn write_html(report: &LabReport, path: &Path) -> Result<(), ReportError> {
    write(path, &html(report))
}

/// Fails now, before a run of minutes, if a report cannot be written to `path`: opens it for
/// writing without changing it, or creates it and removes it again.
pub fn check_writable(path: &Path) -> Result<(), ReportError> {
    let failed = |source| ReportError::Write {
        path: path.to_owned(),
        source,
    };
    let opened = OpenOptions::new().append(true).open(path);
    match opened {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(failed)?;
            std::fs::remove_file(path).map_err(failed)
        }
        Err(e) => Err(failed(e)),
    }
}

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|source| ReportError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checking_a_report_path_changes_nothing_and_names_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("lab.html");
        check_writable(&fresh).unwrap();
        assert!(!fresh.exists(), "the check left a file");
        std::fs::write(&fresh, "kept").unwrap();
        check_writable(&fresh).unwrap();
        assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "kept");
        let bad = dir.path().join("absent/lab.html");
        let err = check_writable(&bad).unwrap_err();
        assert!(err.to_string().contains("absent/lab.html"), "{err}");
    }
}
