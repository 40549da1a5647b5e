//! Integration tests of the lab: every path carries a probe, and nothing is ever left behind.

mod child;
mod cleanup;
mod common;
mod noise;
mod paths;
mod preflight;
mod report;
