//! Schema 2 of the journal: an append-only log of checksummed records, one per line,
//! `<sha256 of the JSON, in hex> <JSON>\n`.
//!
//! An apply appends a record and fsyncs it before the knob writes it covers, so the prior
//! values reach the disk first without rewriting what is already there: the cost of an apply
//! grows with its steps, not with their square. One `changes` record holds a whole batch of
//! independent steps and costs one fsync.
//!
//! A crash (or a power cut) can tear only what was written after the last fsync, and no knob
//! was written for that: so damaged lines at the end are ignored on load. A damaged line with
//! an intact one after it is not a torn tail but a damaged file, and is refused as corrupt.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nearnative_knob::Step;
use nix::libc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::compact;
use crate::journal::{Journal, JournalStatus, Unchangeable};
use crate::state::JournalId;
use nearnative_sys::durable::{self, DurableError};
use nearnative_sys::trust;

/// The schema this module writes.
pub const SCHEMA_VERSION: u32 = 2;

/// One line of the log.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub(crate) enum Record {
    /// Always the first line.
    Header {
        schema_version: u32,
        id: JournalId,
        started_unix_ms: u64,
        /// Absent in a log written before boots were recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        boot_id: Option<String>,
    },
    /// Steps with their prior values, appended to the list of changes, made durable before
    /// any of them is written.
    Changes {
        steps: Vec<Value>,
    },
    /// The change at this position of the list (counting every step of every `changes`
    /// record from 0) was never made: the kernel refused it or its thread exited.
    Retracted {
        change: usize,
    },
    Unchangeable {
        unchangeable: Unchangeable,
    },
    /// The journal's status from here on.
    Status {
        status: JournalStatus,
    },
}

impl Record {
    pub(crate) fn changes(steps: &[Step]) -> Result<Record, serde_json::Error> {
        let steps = steps
            .iter()
            .map(compact::to_journal)
            .collect::<Result<_, _>>()?;
        Ok(Record::Changes { steps })
    }

    fn header(journal: &Journal) -> Record {
        Record::Header {
            schema_version: SCHEMA_VERSION,
            id: journal.id.clone(),
            started_unix_ms: journal.started_unix_ms,
            boot_id: journal.boot_id.clone(),
        }
    }
}

/// The log of one apply, open for appending.
pub(crate) struct LogWriter {
    file: File,
    path: PathBuf,
}

impl LogWriter {
    /// Creates the log (it must not exist) holding `journal`'s header, durably and whole: a
    /// crash leaves no log or one with its header, never an empty file that reads as corrupt.
    pub(crate) fn create(path: &Path, journal: &Journal) -> Result<LogWriter, DurableError> {
        let header = encode_line(&Record::header(journal)).map_err(|e| DurableError::Write {
            path: path.to_owned(),
            source: e.into(),
        })?;
        durable::create_atomically(path, header.as_bytes())
            .map_err(|e| DurableError::Untrusted(trust::open_error(path, e)))?;
        LogWriter::append_to(path)
    }

    /// Opens an existing log to append to it. The caller has just rewritten it whole (see
    /// [`Journal::store`]): appending after a torn tail would make that tail a damaged line
    /// with an intact one after it, which reads as corrupt.
    pub(crate) fn append_to(path: &Path) -> Result<LogWriter, DurableError> {
        trust::check_parent(path)?;
        let file = OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| DurableError::Untrusted(trust::open_error(path, e)))?;
        Ok(LogWriter {
            file,
            path: path.to_owned(),
        })
    }

    /// Appends `record` and waits until it is on disk.
    pub(crate) fn append_durable(&mut self, record: &Record) -> Result<(), DurableError> {
        self.append(record)?;
        self.file.sync_data().map_err(|e| self.write_err(e))
    }

    /// Appends `record` without waiting for the disk: for what only narrows the journal (a
    /// change never made), which the next durable append or a crash may or may not keep.
    pub(crate) fn append(&mut self, record: &Record) -> Result<(), DurableError> {
        let line = encode_line(record).map_err(|e| self.write_err(e.into()))?;
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| self.write_err(e))
    }

    fn write_err(&self, source: io::Error) -> DurableError {
        DurableError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

/// The whole of `journal` as a fresh log, for a journal rewritten at once (what a rollback
/// or a revert left).
pub(crate) fn encode(journal: &Journal) -> Result<Vec<u8>, serde_json::Error> {
    let mut records = vec![Record::header(journal), Record::changes(&journal.changes)?];
    records.extend(journal.unchangeable.iter().map(|u| Record::Unchangeable {
        unchangeable: u.clone(),
    }));
    records.push(Record::Status {
        status: journal.status,
    });
    let mut text = String::new();
    for record in &records {
        text.push_str(&encode_line(record)?);
    }
    Ok(text.into_bytes())
}

fn encode_line(record: &Record) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string(record)?;
    Ok(format!("{} {json}\n", sha256_hex(json.as_bytes())))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads a log written by [`LogWriter`] or [`encode`] back into the journal it describes.
pub(crate) fn decode(path: &Path, bytes: &[u8]) -> Result<Journal, DurableError> {
    let corrupt = |reason: String| DurableError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let records = intact_records(bytes).map_err(corrupt)?;
    let mut records = records.into_iter();
    let journal = match records.next() {
        Some(Record::Header {
            schema_version: SCHEMA_VERSION,
            id,
            started_unix_ms,
            boot_id,
        }) => Journal {
            id,
            status: JournalStatus::InProgress,
            started_unix_ms,
            boot_id,
            changes: Vec::new(),
            unchangeable: Vec::new(),
        },
        Some(Record::Header { schema_version, .. }) => {
            return Err(DurableError::Version {
                path: path.to_owned(),
                found: schema_version,
                supported: SCHEMA_VERSION,
            })
        }
        _ => {
            return Err(corrupt(
                "the first record is not a journal header".to_owned(),
            ))
        }
    };
    replay(journal, records).map_err(corrupt)
}

/// Applies the records after the header, in order.
fn replay(mut journal: Journal, records: impl Iterator<Item = Record>) -> Result<Journal, String> {
    let mut retracted = Vec::new();
    for record in records {
        match record {
            Record::Header { .. } => return Err("a second journal header".to_owned()),
            Record::Changes { steps } => {
                for step in steps {
                    journal.changes.push(compact::from_journal(step)?);
                }
            }
            Record::Retracted { change } => retracted.push(change),
            Record::Unchangeable { unchangeable } => journal.unchangeable.push(unchangeable),
            Record::Status { status } => journal.status = status,
        }
    }
    retracted.sort_unstable();
    retracted.dedup();
    for change in retracted.into_iter().rev() {
        if change >= journal.changes.len() {
            return Err(format!("retracts change {change}, which was never made"));
        }
        journal.changes.remove(change);
    }
    Ok(journal)
}

/// The records of every intact line, up to the torn tail if there is one.
fn intact_records(bytes: &[u8]) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    let mut torn_at = None;
    for (number, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let number = number + 1;
        match checked_json(line) {
            Some(_) if torn_at.is_some() => {
                return Err(format!(
                    "checksum mismatch on line {}, with the intact line {number} after it",
                    torn_at.unwrap_or(0)
                ))
            }
            Some(json) => records.push(
                parse_record(json)
                    .map_err(|e| format!("line {number}: unexpected content: {e}"))?,
            ),
            None if line.is_empty() => {}
            None => {
                torn_at.get_or_insert(number);
            }
        }
    }
    Ok(records)
}

/// The start of a `changes` line as [`encode_line`] writes it: the tag comes first.
const CHANGES_START: &str = r#"{"record":"changes","#;

/// One record from its JSON. A `changes` line, which holds nearly all of a journal, is read
/// straight into its steps: through the tagged enum serde would first buffer the whole line
/// in a generic form, a fifth of a revert of 10 000 threads. Any other spelling takes the
/// general path, which reads the same records.
fn parse_record(json: &str) -> Result<Record, serde_json::Error> {
    #[derive(Deserialize)]
    struct Changes {
        steps: Vec<Value>,
    }
    match json.starts_with(CHANGES_START) {
        true => {
            let Changes { steps } = serde_json::from_str(json)?;
            Ok(Record::Changes { steps })
        }
        false => serde_json::from_str(json),
    }
}

/// The JSON of a line whose checksum matches it.
fn checked_json(line: &[u8]) -> Option<&str> {
    let line = std::str::from_utf8(line).ok()?;
    let (sum, json) = line.split_once(' ')?;
    (sum.len() == 64 && sha256_hex(json.as_bytes()) == sum).then_some(json)
}

/// When the journal at `path` began, from its first line alone (a log's header), so that an
/// apply need not read every step of every other journal; `None` when there is no journal or
/// its first line is not an intact header.
pub(crate) fn started_unix_ms(path: &Path) -> Result<Option<u64>, DurableError> {
    trust::check_parent(path)?;
    let Some(file) = trust::open_for_reading(path)? else {
        return Ok(None);
    };
    let mut first = Vec::new();
    BufReader::new(file)
        .read_until(b'\n', &mut first)
        .map_err(|source| DurableError::Read {
            path: path.to_owned(),
            source,
        })?;
    if first.last() == Some(&b'\n') {
        first.pop();
    }
    let header = checked_json(&first).and_then(|json| parse_record(json).ok());
    Ok(match header {
        Some(Record::Header {
            started_unix_ms, ..
        }) => Some(started_unix_ms),
        _ => None,
    })
}

/// True when `bytes` look like a schema-2 log rather than a schema-1 JSON envelope.
pub(crate) fn is_log(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(u8::is_ascii_hexdigit)
}

/// Reads the file at `path`, `None` when it does not exist. Only a file root alone could have
/// written is read, and never through a link: a journal decides what revert writes.
pub(crate) fn read(path: &Path) -> Result<Option<Vec<u8>>, DurableError> {
    trust::check_parent(path)?;
    let Some(mut file) = trust::open_for_reading(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|source| DurableError::Read {
            path: path.to_owned(),
            source,
        })?;
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nearnative_host::CpuSet;
    use nearnative_knob::exclusivity::irq::IrqAffinity;
    use nearnative_knob::{Change, Described};

    fn irq(irq: u32) -> Step {
        Step::from(Change {
            knob: IrqAffinity { irq },
            from: CpuSet::from_ids([0, 1]),
            to: CpuSet::from_ids([1]),
        })
    }

    fn journal() -> Journal {
        let mut journal = Journal::new(JournalId::try_from("j").unwrap());
        journal.changes = vec![irq(1), irq(2)];
        journal
    }

    fn decoded(bytes: &[u8]) -> Result<Journal, DurableError> {
        decode(Path::new("/state/journals/j.json"), bytes)
    }

    #[test]
    fn a_log_reads_back_as_the_journal_it_was_made_from() {
        let mut journal = journal();
        journal.status = JournalStatus::Applied;
        journal.boot_id = Some("0f6c3b1e-3d52-4bd6-9a57-2f2b0d1c9e11".to_owned());
        journal.unchangeable = vec![Unchangeable {
            knob: Described::new("IRQ 3 affinity", "/proc/irq/3/smp_affinity_list"),
            reason: "refused".to_owned(),
        }];
        let bytes = encode(&journal).unwrap();
        assert!(is_log(&bytes));
        assert_eq!(decoded(&bytes).unwrap(), journal);
    }

    #[test]
    fn a_torn_last_record_is_ignored() {
        let journal = journal();
        let mut bytes = encode(&journal).unwrap();
        let more = encode_line(&Record::changes(&[irq(3)]).unwrap()).unwrap();
        let cases = [
            ("cut short", more.as_bytes()[..more.len() / 2].to_vec()),
            ("zeros", vec![0u8; 300]),
        ];
        bytes.truncate(bytes.len() - 1);
        for (what, tail) in cases {
            let mut torn = bytes.clone();
            torn.push(b'\n');
            torn.extend(&tail);
            let read = decoded(&torn).unwrap();
            assert_eq!(read.changes, journal.changes, "{what}");
        }
    }

    #[test]
    fn a_damaged_record_before_an_intact_one_is_corrupt() {
        let text = String::from_utf8(encode(&journal()).unwrap()).unwrap();
        let damaged = text.replacen("\"irq\":2", "\"irq\":7", 1);
        let err = decoded(damaged.as_bytes()).unwrap_err();
        assert!(matches!(err, DurableError::Corrupt { .. }), "{err}");
        assert!(
            err.to_string().contains("checksum mismatch on line 2"),
            "{err}"
        );
    }

    #[test]
    fn retracted_changes_are_left_out() {
        let journal = journal();
        let mut text = String::from_utf8(encode(&journal).unwrap()).unwrap();
        text.push_str(&encode_line(&Record::Retracted { change: 0 }).unwrap());
        assert_eq!(decoded(text.as_bytes()).unwrap().changes, vec![irq(2)]);
        text.push_str(&encode_line(&Record::Retracted { change: 5 }).unwrap());
        let err = decoded(text.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("never made"), "{err}");
    }

    #[test]
    fn a_changes_line_reads_the_same_whatever_the_order_of_its_fields() {
        let record = Record::changes(&[irq(1), irq(2)]).unwrap();
        let written = serde_json::to_string(&record).unwrap();
        assert!(written.starts_with(CHANGES_START), "{written}");
        let steps = serde_json::to_string(&serde_json::to_value(&record).unwrap()["steps"]);
        let reordered = format!(r#"{{"steps":{},"record":"changes"}}"#, steps.unwrap());
        for json in [&written, &reordered] {
            let Record::Changes { steps } = parse_record(json).unwrap() else {
                panic!("not a changes record: {json}");
            };
            let read: Vec<Step> = steps
                .into_iter()
                .map(|s| compact::from_journal(s).unwrap())
                .collect();
            assert_eq!(read, vec![irq(1), irq(2)], "{json}");
        }
    }

    #[test]
    fn another_schema_is_refused_by_number() {
        let header = Record::Header {
            schema_version: 3,
            id: JournalId::try_from("j").unwrap(),
            started_unix_ms: 0,
            boot_id: None,
        };
        let err = decoded(encode_line(&header).unwrap().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("schema version 3"), "{err}");
    }
}
