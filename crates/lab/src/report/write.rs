//! Writing the report's files: the only I/O of the report module.

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

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|source| ReportError::Write {
        path: path.to_owned(),
        source,
    })
}
