//! Integration tests of the `nearnative` binary, one module per command.

mod inspect;
