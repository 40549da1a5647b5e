//! Integration tests of the `nearnative` binary, one module per command.

mod probe_rtt;
