//! The lab report: its JSON, table, verdict and HTML, on synthetic data (no root needed), and
//! the HTML as chromium renders it.

mod chromium;
mod html;
mod model;
mod properties;
mod sample;
mod table;
mod verdict;
