//! Printing results: JSON for machines, tables for people.
//!
//! A reader that goes away early (`| head`, `| true`) is no failure: the work is done, and
//! what is left to print has nobody to read it. So everything on stdout goes through
//! [`out!`] and [`outln!`], which drop output once the pipe is closed (where `print!` would
//! panic with exit 101). Any other write error is reported once on stderr and makes the
//! command fail at exit, after its work.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

/// Set when stdout failed for a reason other than a closed pipe.
static WRITE_FAILED: AtomicBool = AtomicBool::new(false);

/// Like `print!`, but a closed pipe is no failure; see the module doc.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*))
    };
}

/// Like `println!`, but a closed pipe is no failure; see the module doc.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};

pub fn write_stdout(args: fmt::Arguments<'_>) {
    let written = io::stdout().lock().write_fmt(args);
    match written {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            if !WRITE_FAILED.swap(true, Ordering::Relaxed) {
                eprintln!("nearnative: cannot write to stdout: {e}");
            }
        }
        Ok(()) => {}
    }
}

/// Whether some output could not be written (a closed pipe excepted).
pub fn write_failed() -> bool {
    WRITE_FAILED.load(Ordering::Relaxed)
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
