//! A minimal QMP client: which thread runs each vCPU and iothread of a QEMU.
//!
//! It connects to the unix socket, reads the greeting, leaves capabilities negotiation with
//! `qmp_capabilities`, then asks `query-cpus-fast` and `query-iothreads`. Every read and
//! write shares one deadline, because a monitor that another client (libvirt) holds accepts
//! the connection but never greets us. Only ever used on the live host.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

/// Longer lines are refused: even a 4096-vCPU `query-cpus-fast` reply is well under 2 MiB.
const MAX_LINE: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("cannot connect")]
    Connect(#[source] io::Error),
    #[error("no answer within {0:?} (is another client holding the monitor?)")]
    Timeout(Duration),
    #[error("connection closed by QEMU")]
    Closed,
    #[error("I/O failed")]
    Io(#[source] io::Error),
    #[error("a message longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("not JSON")]
    Json(#[source] serde_json::Error),
    #[error("no QMP greeting, got {0}")]
    NotQmp(String),
    #[error("{command} failed: {desc}")]
    Command { command: &'static str, desc: String },
    #[error("unexpected reply to {command}: {reason}")]
    Reply {
        command: &'static str,
        reason: String,
    },
}

/// What QMP says about a QEMU's threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QmpThreads {
    /// (vCPU index, thread id), in QEMU's order.
    pub vcpus: Vec<(u32, u32)>,
    /// (iothread id, thread id) for each `-object iothread`.
    pub io_threads: Vec<(String, u32)>,
}

#[derive(Deserialize)]
struct CpuInfoFast {
    #[serde(rename = "cpu-index")]
    cpu_index: u32,
    #[serde(rename = "thread-id")]
    thread_id: u32,
}

#[derive(Deserialize)]
struct IoThreadInfo {
    id: String,
    #[serde(rename = "thread-id")]
    thread_id: u32,
}

/// Asks the QEMU behind `socket` for its vCPU and iothread thread ids, within `timeout`.
pub fn query_threads(socket: &Path, timeout: Duration) -> Result<QmpThreads, QmpError> {
    let mut session = Session::connect(socket, timeout)?;
    let greeting = session.read_message()?;
    if greeting.get("QMP").is_none() {
        return Err(QmpError::NotQmp(greeting.to_string()));
    }
    session.execute("qmp_capabilities")?;
    let vcpus: Vec<CpuInfoFast> = session.execute_as("query-cpus-fast")?;
    let io_threads: Vec<IoThreadInfo> = session.execute_as("query-iothreads")?;
    Ok(QmpThreads {
        vcpus: vcpus.iter().map(|c| (c.cpu_index, c.thread_id)).collect(),
        io_threads: io_threads
            .into_iter()
            .map(|t| (t.id, t.thread_id))
            .collect(),
    })
}

struct Session {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    timeout: Duration,
    deadline: Instant,
}

impl Session {
    fn connect(socket: &Path, timeout: Duration) -> Result<Self, QmpError> {
        let writer = UnixStream::connect(socket).map_err(QmpError::Connect)?;
        let reader = BufReader::new(writer.try_clone().map_err(QmpError::Connect)?);
        Ok(Session {
            reader,
            writer,
            timeout,
            deadline: Instant::now() + timeout,
        })
    }

    fn remaining(&self) -> Result<Duration, QmpError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(QmpError::Timeout(self.timeout));
        }
        Ok(left)
    }

    fn read_message(&mut self) -> Result<Value, QmpError> {
        let left = self.remaining()?;
        self.reader
            .get_ref()
            .set_read_timeout(Some(left))
            .map_err(QmpError::Io)?;
        let mut line = String::new();
        let read = (&mut self.reader)
            .take(MAX_LINE)
            .read_line(&mut line)
            .map_err(|e| io_error(self.timeout, e))?;
        match read {
            0 => Err(QmpError::Closed),
            _ if !line.ends_with('\n') && read as u64 == MAX_LINE => Err(QmpError::TooLong),
            _ => serde_json::from_str(&line).map_err(QmpError::Json),
        }
    }

    /// Runs `command` and returns its `return` value, skipping asynchronous events.
    fn execute(&mut self, command: &'static str) -> Result<Value, QmpError> {
        let left = self.remaining()?;
        self.writer
            .set_write_timeout(Some(left))
            .map_err(QmpError::Io)?;
        let request = format!("{{\"execute\":\"{command}\"}}\n");
        self.writer
            .write_all(request.as_bytes())
            .map_err(|e| io_error(self.timeout, e))?;
        loop {
            let mut message = self.read_message()?;
            if let Some(value) = message.get_mut("return") {
                return Ok(value.take());
            }
            if let Some(error) = message.get("error") {
                let desc = error
                    .get("desc")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given");
                return Err(QmpError::Command {
                    command,
                    desc: desc.to_owned(),
                });
            }
            if message.get("event").is_none() {
                return Err(QmpError::Reply {
                    command,
                    reason: message.to_string(),
                });
            }
        }
    }

    fn execute_as<T: for<'de> Deserialize<'de>>(
        &mut self,
        command: &'static str,
    ) -> Result<T, QmpError> {
        let value = self.execute(command)?;
        serde_json::from_value(value).map_err(|e| QmpError::Reply {
            command,
            reason: e.to_string(),
        })
    }
}

/// A read or write timeout shows as WouldBlock or TimedOut depending on the call.
fn io_error(timeout: Duration, err: io::Error) -> QmpError {
    match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => QmpError::Timeout(timeout),
        _ => QmpError::Io(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// Serves one scripted QMP conversation: for each request line read, writes the next
    /// reply lines.
    fn fake_qemu(script: Vec<&'static str>) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::Builder::new()
            .name("fake-qemu".into())
            .spawn(move || {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                for (i, reply) in script.into_iter().enumerate() {
                    if i > 0 {
                        let mut request = String::new();
                        reader.read_line(&mut request).unwrap();
                    }
                    writer.write_all(reply.as_bytes()).unwrap();
                }
                std::thread::sleep(Duration::from_secs(2));
            })
            .unwrap();
        (dir, path)
    }

    const GREETING: &str = "{\"QMP\": {\"version\": {}, \"capabilities\": [\"oob\"]}}\r\n";

    #[test]
    fn maps_vcpu_indexes_and_iothreads_to_thread_ids_skipping_events() {
        let (_dir, path) = fake_qemu(vec![
            GREETING,
            "{\"return\": {}}\r\n",
            "{\"event\": \"RESUME\", \"timestamp\": {}}\r\n{\"return\": [\
             {\"cpu-index\": 1, \"thread-id\": 502, \"target\": \"x86_64\"},\
             {\"cpu-index\": 0, \"thread-id\": 501, \"target\": \"x86_64\"}]}\r\n",
            "{\"return\": [{\"id\": \"io0\", \"thread-id\": 510, \"poll-max-ns\": 0}]}\r\n",
        ]);
        let threads = query_threads(&path, Duration::from_secs(2)).unwrap();
        assert_eq!(threads.vcpus, [(1, 502), (0, 501)]);
        assert_eq!(threads.io_threads, [("io0".to_owned(), 510)]);
    }

    #[test]
    fn failures_say_why() {
        let cases = [
            ("silent monitor", vec![], "no answer within"),
            ("not qmp", vec!["{\"hello\": 1}\n"], "no QMP greeting"),
            ("garbage", vec!["<html>\n"], "not JSON"),
            (
                "command error",
                vec![
                    GREETING,
                    "{\"return\": {}}\n",
                    "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"nope\"}}\n",
                ],
                "query-cpus-fast failed: nope",
            ),
            (
                "wrong shape",
                vec![GREETING, "{\"return\": {}}\n", "{\"return\": 5}\n"],
                "unexpected reply to query-cpus-fast",
            ),
        ];
        for (what, script, expected) in cases {
            let (_dir, path) = fake_qemu(script);
            let err = query_threads(&path, Duration::from_millis(300)).unwrap_err();
            assert!(err.to_string().contains(expected), "{what}: {err}");
        }
    }

    #[test]
    fn missing_socket_is_a_connect_error() {
        let err = query_threads(Path::new("/nonexistent/q.sock"), Duration::from_millis(100))
            .unwrap_err();
        assert!(matches!(err, QmpError::Connect(_)), "{err}");
    }
}
