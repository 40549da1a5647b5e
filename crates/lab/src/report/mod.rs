//! The lab's report: a data model of the measured cells (path × condition × configuration)
//! built from the probe's own reports, and pure functions from it to a whitepaper-style table,
//! a one-line verdict and a self-contained HTML page with percentile-spectrum plots. The only
//! I/O is writing the files a caller names ([`write_json`], [`write_html`]).
//!
//! ```
//! use nearnative_lab::report::{render_text, HostLine, LabReport};
//! let host = HostLine { cpus_online: "0-1".parse()?, cpu_model: "QEMU".into(), kernel: "6.1".into() };
//! let report = LabReport::new("2026-11-24T10:00:00Z".into(), host, "CPU 1 exclusive".into(), true, 2000);
//! assert!(render_text(&report).contains("verdict: no measurements"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod escape;
mod from_probe;
mod html;
mod model;
mod plot;
mod table;
mod text;
mod units;
mod verdict;
mod write;

pub use from_probe::spectrum_of;
pub use html::html;
pub use model::{
    Condition, Config, FixedRate, HostLine, Jitter, LabReport, Percentiles, Row, SpectrumPoint,
    UnknownConfig, SCHEMA_VERSION,
};
pub use table::{
    details_table, interference_table, latency_table, native_baseline, sorted_rows, Baseline, Table,
};
pub use text::render_text;
pub use verdict::{ls_vs, ls_vs_default, verdict, LsVs};
pub use write::{check_writable, write_html, write_json, ReportError};
