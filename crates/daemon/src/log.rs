//! The daemon's log: one line per event on stderr, prefixed `nearnative: `, which journald
//! stores as the unit's messages. Standing conditions are said once by the caller
//! ([`crate::book::Book::is_news`]).

/// Writes one event line.
pub fn line(text: &str) {
    eprintln!("nearnative: {text}");
}
