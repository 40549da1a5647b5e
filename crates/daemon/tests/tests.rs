//! The daemon's integration tests, one module per concern.

mod discover;
