//! What a server has seen: messages answered, and messages dropped by reason.
//!
//! The serving loop keeps its counts in a plain struct and publishes them after each message
//! with relaxed stores (plain moves on x86 and arm64, no locked instruction), so another thread
//! can watch a live server without slowing it.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::wire::Malformed;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStats {
    /// Datagrams (UDP) or framed messages (TCP) received, well-formed or not.
    pub received: u64,
    pub answered: u64,
    pub malformed: MalformedCounts,
    /// Replies the kernel refused to send (e.g. the client's port vanished).
    pub send_errors: u64,
    /// TCP connections accepted.
    pub accepted: u64,
    /// TCP connections closed at once because the connection limit was reached.
    pub refused: u64,
    /// TCP connections closed because the client stopped reading its replies.
    pub stalled: u64,
}

/// Dropped messages by [`Malformed`] reason. A malformed TCP message also closes its
/// connection: a byte stream cannot be resynchronised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MalformedCounts {
    pub foreign: u64,
    pub truncated: u64,
    pub oversized: u64,
    pub invalid: u64,
}

impl MalformedCounts {
    pub fn total(&self) -> u64 {
        self.foreign + self.truncated + self.oversized + self.invalid
    }
}

impl ServerStats {
    pub fn count_malformed(&mut self, why: Malformed) {
        let m = &mut self.malformed;
        match why {
            Malformed::Foreign => m.foreign += 1,
            Malformed::Truncated => m.truncated += 1,
            Malformed::Oversized => m.oversized += 1,
            Malformed::Invalid => m.invalid += 1,
        }
    }
}

/// The live copy of a server's [`ServerStats`], readable from any thread.
#[derive(Debug, Default)]
pub struct SharedStats {
    fields: [AtomicU64; 10],
}

impl SharedStats {
    pub fn publish(&self, stats: &ServerStats) {
        for (cell, value) in self.fields.iter().zip(flatten(stats)) {
            cell.store(value, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> ServerStats {
        let v: Vec<u64> = self
            .fields
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        ServerStats {
            received: v[0],
            answered: v[1],
            malformed: MalformedCounts {
                foreign: v[2],
                truncated: v[3],
                oversized: v[4],
                invalid: v[5],
            },
            send_errors: v[6],
            accepted: v[7],
            refused: v[8],
            stalled: v[9],
        }
    }
}

fn flatten(s: &ServerStats) -> [u64; 10] {
    let m = &s.malformed;
    [
        s.received,
        s.answered,
        m.foreign,
        m.truncated,
        m.oversized,
        m.invalid,
        s.send_errors,
        s.accepted,
        s.refused,
        s.stalled,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_returns_what_was_published() {
        let mut stats = ServerStats {
            received: 1,
            answered: 2,
            send_errors: 7,
            accepted: 8,
            refused: 9,
            stalled: 10,
            ..Default::default()
        };
        stats.count_malformed(Malformed::Foreign);
        stats.count_malformed(Malformed::Oversized);
        stats.count_malformed(Malformed::Oversized);
        let shared = SharedStats::default();
        shared.publish(&stats);
        assert_eq!(shared.snapshot(), stats);
        assert_eq!(stats.malformed.total(), 3);
    }
}
