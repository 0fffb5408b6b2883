//! Hash-chain verification over envelopes read from the log: pure, fed a page at a time.
//!
//! The log node verifies its stored bytes (`haven log verify`); this is the auditor's check
//! through the public read API, with the same [`haven_eventlog_client::chain`] step.

use haven_eventlog_client::chain::envelope_hash;
use haven_proto::v1::EventEnvelope;

/// Where a verification stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainCheck {
    /// The next position expected.
    pub next_position: u64,
    /// The recomputed hash at `next_position - 1` (or the starting hash).
    pub last_hash: [u8; 32],
    pub events_checked: u64,
    /// The first event that did not chain, once found; checking stops there.
    pub broken: Option<BrokenLink>,
}

/// The first event whose stored hash differs from the recomputed one, or a missing position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenLink {
    pub position: u64,
    pub recomputed_hash: [u8; 32],
    pub stored_hash: Vec<u8>,
}

impl ChainCheck {
    /// Starts at `from_position`, whose predecessor's hash is `previous_hash`.
    pub fn new(from_position: u64, previous_hash: [u8; 32]) -> Self {
        ChainCheck { next_position: from_position, last_hash: previous_hash, events_checked: 0, broken: None }
    }

    /// Checks the next events in position order; stops at the first break.
    pub fn feed(&mut self, events: &[EventEnvelope]) {
        for event in events {
            if self.broken.is_some() {
                return;
            }
            if event.position != self.next_position {
                self.broken = Some(BrokenLink {
                    position: self.next_position,
                    recomputed_hash: self.last_hash,
                    stored_hash: Vec::new(),
                });
                return;
            }
            let recomputed = envelope_hash(&self.last_hash, event);
            if event.hash.as_slice() != recomputed {
                self.broken = Some(BrokenLink {
                    position: event.position,
                    recomputed_hash: recomputed,
                    stored_hash: event.hash.clone(),
                });
                return;
            }
            self.last_hash = recomputed;
            self.next_position += 1;
            self.events_checked += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use haven_eventlog_client::chain::GENESIS_HASH;

    use super::*;

    fn chained(count: u64) -> Vec<EventEnvelope> {
        let mut previous = GENESIS_HASH;
        (0..count)
            .map(|position| {
                let mut event = EventEnvelope {
                    position,
                    stream_id: format!("incident-{position}"),
                    event_type: "incidents.CaseOpened".into(),
                    payload: vec![position as u8; 4],
                    ..Default::default()
                };
                previous = envelope_hash(&previous, &event);
                event.hash = previous.to_vec();
                event
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies_in_any_page_size() {
        let events = chained(10);
        for page in 1..=10 {
            let mut check = ChainCheck::new(0, GENESIS_HASH);
            for chunk in events.chunks(page) {
                check.feed(chunk);
            }
            assert_eq!(check.broken, None);
            assert_eq!(check.events_checked, 10);
            assert_eq!(check.last_hash.as_slice(), events[9].hash.as_slice());
        }
    }

    #[test]
    fn an_altered_payload_is_found_at_its_position() {
        let mut events = chained(6);
        events[3].payload[0] ^= 1;
        let mut check = ChainCheck::new(0, GENESIS_HASH);
        check.feed(&events);
        let broken = check.broken.expect("the edit is found");
        assert_eq!(broken.position, 3);
        assert_eq!(broken.stored_hash, events[3].hash);
        assert_eq!(check.events_checked, 3);
    }

    #[test]
    fn a_missing_event_breaks_the_chain() {
        let mut events = chained(5);
        events.remove(2);
        let mut check = ChainCheck::new(0, GENESIS_HASH);
        check.feed(&events);
        assert_eq!(check.broken.map(|b| b.position), Some(2));
    }
}
