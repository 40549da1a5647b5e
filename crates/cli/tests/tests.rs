//! Tests of the `nearnative` binary as a user runs it, one module per command.

mod probe_jitter;
