//! A helper process the test drives a line at a time: each command written to its stdin gets
//! a one-line answer on its stdout (a pid, `ok`). Live tests use one to make threads and
//! children appear exactly when they want them.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The running helper; killed on drop.
pub struct LineWorker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl LineWorker {
    /// Starts `command` with piped stdin and stdout; `need` names what it takes to start
    /// ("needs /usr/bin/python3").
    #[track_caller]
    pub fn spawn(command: &mut Command, need: &str) -> LineWorker {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{need}: {e}"));
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        LineWorker {
            child,
            stdin,
            stdout,
        }
    }

    /// Writes `command` as one line and returns the answer line, trimmed.
    #[track_caller]
    pub fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").expect("the worker reads its stdin");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("the worker answers on its stdout");
        line.trim().to_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the helper and reaps it, for a caller that needs it gone before its own
    /// clean-up (a cgroup is removed only once empty); dropping it does the same.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LineWorker {
    fn drop(&mut self) {
        self.kill();
    }
}
