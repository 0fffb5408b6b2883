//! `haven log verify`: recompute the hash chain over every stored event and report the first
//! position that does not match — or OK with the count and the head hash.

use haven_eventlog_client::LogError;
use haven_kernel::Position;

use crate::record::{self, GENESIS_HASH};
use crate::store::{Scan, Store};

/// What a verification found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every event checked; the chain ends in `head_hash`.
    Intact { events: u64, head_hash: [u8; 32] },
    /// The first position whose record or hash does not match.
    Broken { position: Position, reason: String },
}

/// Walks `$all` from position 0. Reads the whole log; it does not stop other readers.
pub fn verify(store: &dyn Store) -> Result<Verdict, LogError> {
    let head = store.head()?;
    let mut expected_position = Position(0);
    let mut previous_hash = GENESIS_HASH;
    let mut broken = None;
    store.scan(Position(0), &mut |position, value| {
        if position != expected_position {
            broken = Some((expected_position, "event missing from $all".to_owned()));
            return Scan::Stop;
        }
        let raw = match record::check(position, value) {
            Ok(raw) => raw,
            Err(error) => {
                broken = Some((position, error.to_string()));
                return Scan::Stop;
            }
        };
        if record::chain_hash(&previous_hash, raw.body) != raw.hash {
            broken = Some((position, "hash does not chain to the previous event".to_owned()));
            return Scan::Stop;
        }
        if let Err(error) = record::decode(position, value) {
            broken = Some((position, error.to_string()));
            return Scan::Stop;
        }
        previous_hash = raw.hash;
        expected_position = Position(position.0 + 1);
        Scan::Continue
    })?;
    if let Some((position, reason)) = broken {
        return Ok(Verdict::Broken { position, reason });
    }
    if expected_position != head.next_position {
        return Ok(Verdict::Broken {
            position: expected_position,
            reason: format!("the head says {} events, {} were found", head.next_position, expected_position),
        });
    }
    if previous_hash != head.head_hash {
        return Ok(Verdict::Broken {
            position: expected_position,
            reason: "the head hash does not match the last event".into(),
        });
    }
    Ok(Verdict::Intact { events: expected_position.0, head_hash: previous_hash })
}
