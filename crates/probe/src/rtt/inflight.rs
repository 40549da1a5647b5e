//! The fixed-rate client's record of requests awaiting a reply: a ring indexed by request
//! number, holding each one's intended and actual send time.
//!
//! Invariants: requests are inserted in order (0, 1, 2, ...); every request between `oldest`
//! and `next` is either awaiting (its slot holds its index) or answered (its slot is empty);
//! `next - oldest <= capacity`, so a slot is never shared. Memory is fixed at creation. When the
//! ring is full the oldest awaiting request is evicted and counts as lost: it has been waiting
//! for `capacity` sends, far more than a healthy server needs.

const EMPTY: u64 = u64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub intended_ns: u64,
    pub sent_ns: u64,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    index: u64,
    pending: Pending,
}

pub struct InFlight {
    slots: Vec<Slot>,
    oldest: u64,
    next: u64,
}

impl InFlight {
    pub fn with_capacity(capacity: usize) -> InFlight {
        let empty = Slot {
            index: EMPTY,
            pending: Pending {
                intended_ns: 0,
                sent_ns: 0,
            },
        };
        InFlight {
            slots: vec![empty; capacity.max(1)],
            oldest: 0,
            next: 0,
        }
    }

    /// Records request `next` (the one after the last inserted). Returns the index of a request
    /// evicted to make room, if the ring was full.
    pub fn insert(&mut self, pending: Pending) -> Option<u64> {
        self.skip_answered();
        let evicted = (self.next - self.oldest == self.slots.len() as u64).then(|| {
            let index = self.oldest;
            self.clear(index);
            self.oldest += 1;
            index
        });
        let index = self.next;
        let at = self.at(index);
        self.slots[at] = Slot { index, pending };
        self.next += 1;
        evicted
    }

    /// Takes request `index` out if it is still awaiting a reply.
    pub fn complete(&mut self, index: u64) -> Option<Pending> {
        if index >= self.next {
            return None;
        }
        let at = self.at(index);
        let slot = self.slots[at];
        (slot.index == index).then(|| {
            self.slots[at].index = EMPTY;
            slot.pending
        })
    }

    /// Removes every awaiting request sent at or before `cutoff_ns`, oldest first, calling
    /// `on_lost` with each one's index. Sends are in time order, so this stops at the first
    /// request sent later.
    pub fn expire(&mut self, cutoff_ns: u64, mut on_lost: impl FnMut(u64)) {
        loop {
            self.skip_answered();
            if self.oldest == self.next
                || self.slots[self.at(self.oldest)].pending.sent_ns > cutoff_ns
            {
                return;
            }
            on_lost(self.oldest);
            self.clear(self.oldest);
            self.oldest += 1;
        }
    }

    /// When the oldest awaiting request was sent, or `None` if nothing awaits a reply.
    pub fn oldest_sent_ns(&mut self) -> Option<u64> {
        self.skip_answered();
        (self.oldest < self.next).then(|| self.slots[self.at(self.oldest)].pending.sent_ns)
    }

    /// Whether `index` was handed to [`insert`](Self::insert) at some point.
    pub fn was_sent(&self, index: u64) -> bool {
        index < self.next
    }

    fn skip_answered(&mut self) {
        while self.oldest < self.next && self.slots[self.at(self.oldest)].index != self.oldest {
            self.oldest += 1;
        }
    }

    fn clear(&mut self, index: u64) {
        let at = self.at(index);
        self.slots[at].index = EMPTY;
    }

    fn at(&self, index: u64) -> usize {
        (index % self.slots.len() as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent_at(ns: u64) -> Pending {
        Pending {
            intended_ns: ns,
            sent_ns: ns,
        }
    }

    #[test]
    fn answers_come_back_out_of_order() {
        let mut ring = InFlight::with_capacity(4);
        for t in [10, 20, 30] {
            assert_eq!(ring.insert(sent_at(t)), None);
        }
        assert_eq!(ring.complete(1), Some(sent_at(20)));
        assert_eq!(ring.complete(1), None, "a duplicate reply finds nothing");
        assert_eq!(ring.complete(7), None, "never sent");
        assert_eq!(ring.oldest_sent_ns(), Some(10));
        assert_eq!(ring.complete(0), Some(sent_at(10)));
        assert_eq!(ring.oldest_sent_ns(), Some(30), "answered 1 is skipped");
    }

    #[test]
    fn expiry_stops_at_the_first_fresh_request() {
        let mut ring = InFlight::with_capacity(8);
        for t in [10, 20, 30, 40] {
            ring.insert(sent_at(t));
        }
        ring.complete(1);
        let mut lost = Vec::new();
        ring.expire(30, |i| lost.push(i));
        assert_eq!(lost, vec![0, 2]);
        assert_eq!(
            ring.complete(2),
            None,
            "a late reply after expiry is not a sample"
        );
        assert_eq!(ring.oldest_sent_ns(), Some(40));
        assert!(ring.was_sent(2) && !ring.was_sent(4));
    }

    #[test]
    fn a_full_ring_evicts_the_oldest_and_never_grows() {
        let mut ring = InFlight::with_capacity(2);
        assert_eq!(ring.insert(sent_at(1)), None);
        assert_eq!(ring.insert(sent_at(2)), None);
        assert_eq!(ring.insert(sent_at(3)), Some(0));
        assert_eq!(ring.complete(0), None);
        assert_eq!(ring.complete(2), Some(sent_at(3)));
        assert_eq!(
            ring.insert(sent_at(4)),
            Some(1),
            "1 still awaits, spanning the ring"
        );
        assert_eq!(ring.complete(3), Some(sent_at(4)));
        assert_eq!(
            ring.insert(sent_at(5)),
            None,
            "everything answered: room again"
        );
        assert_eq!(ring.slots.len(), 2);
    }
}
