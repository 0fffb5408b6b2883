//! How one event is stored: checksummed, hash-chained bytes.
//!
//! ```text
//!  value = crc32(hash ‖ body) : u32 LE ‖ hash : [u8; 32] ‖ body
//!  body  = protobuf EventEnvelope with `hash` empty, exactly as first written
//!  hash  = SHA-256(previous event's hash ‖ body)      (32 zero bytes before position 0)
//! ```
//! The body is kept verbatim, so the chain is recomputed over the same bytes years later
//! whatever the protobuf library does with re-encoding. The checksum catches a torn or rotted
//! record cheaply on every read; the hash chain catches deliberate edits (`haven log verify`).

use haven_eventlog_client::LogError;
use haven_kernel::Position;
use haven_proto::v1::EventEnvelope;
use prost::Message;

/// The chain's genesis and step, shared with readers that verify from envelopes.
pub use haven_eventlog_client::chain::{GENESIS_HASH, chain_hash};
const HEADER_BYTES: usize = 4 + 32;

/// Encodes an envelope (whose `hash` must be empty) chained to `prev`; returns the stored
/// value and the event's hash.
pub fn encode(envelope: &EventEnvelope, prev: &[u8; 32]) -> (Vec<u8>, [u8; 32]) {
    debug_assert!(envelope.hash.is_empty(), "the hash is computed here, never supplied");
    let body_len = envelope.encoded_len();
    let mut value = Vec::with_capacity(HEADER_BYTES + body_len);
    value.extend_from_slice(&[0; 4]);
    value.extend_from_slice(&[0; 32]);
    envelope.encode(&mut value).expect("a Vec grows to fit");
    let hash = chain_hash(prev, &value[HEADER_BYTES..]);
    value[4..HEADER_BYTES].copy_from_slice(&hash);
    let crc = crc32fast::hash(&value[4..]);
    value[..4].copy_from_slice(&crc.to_le_bytes());
    (value, hash)
}

/// A stored record, checked and split, not yet decoded.
#[derive(Debug)]
pub struct RawRecord<'a> {
    pub hash: [u8; 32],
    pub body: &'a [u8],
}

/// Checks a stored value's checksum and splits it. Never returns bad data.
pub fn check(position: Position, value: &[u8]) -> Result<RawRecord<'_>, LogError> {
    let corrupt = |reason: &str| LogError::Corrupt { position, reason: reason.to_owned() };
    if value.len() < HEADER_BYTES {
        return Err(corrupt("record shorter than its header"));
    }
    let stored_crc = u32::from_le_bytes(value[..4].try_into().expect("4 bytes"));
    if crc32fast::hash(&value[4..]) != stored_crc {
        return Err(corrupt("checksum mismatch"));
    }
    let hash: [u8; 32] = value[4..HEADER_BYTES].try_into().expect("32 bytes");
    Ok(RawRecord { hash, body: &value[HEADER_BYTES..] })
}

/// Checks and decodes a stored value into the envelope served to readers (hash filled in).
pub fn decode(position: Position, value: &[u8]) -> Result<EventEnvelope, LogError> {
    let raw = check(position, value)?;
    let mut envelope = EventEnvelope::decode(raw.body)
        .map_err(|e| LogError::Corrupt { position, reason: format!("undecodable envelope: {e}") })?;
    if envelope.position != position.0 {
        return Err(LogError::Corrupt { position, reason: format!("record claims position {}", envelope.position) });
    }
    envelope.hash = raw.hash.to_vec();
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(position: u64) -> EventEnvelope {
        EventEnvelope {
            event_id: vec![7; 16],
            stream_id: "school-oak".into(),
            position,
            event_type: "identity.SchoolRegistered".into(),
            schema_version: 1,
            payload: b"payload".to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn round_trips_and_chains() {
        let (value, hash) = encode(&envelope(0), &GENESIS_HASH);
        let decoded = decode(Position(0), &value).unwrap();
        assert_eq!(decoded.hash, hash.to_vec());
        assert_eq!(decoded.payload, b"payload");
        assert_eq!(hash, chain_hash(&GENESIS_HASH, check(Position(0), &value).unwrap().body));
        let (_, next) = encode(&envelope(1), &hash);
        let (_, other_prev) = encode(&envelope(1), &GENESIS_HASH);
        assert_ne!(next, other_prev, "the hash depends on the previous one");
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let (value, _) = encode(&envelope(3), &GENESIS_HASH);
        for byte in 0..value.len() {
            for bit in 0..8 {
                let mut bad = value.clone();
                bad[byte] ^= 1 << bit;
                assert!(decode(Position(3), &bad).is_err(), "flip of bit {bit} in byte {byte} went unnoticed");
            }
        }
        assert!(matches!(decode(Position(3), &value[..10]), Err(LogError::Corrupt { .. })));
        assert!(matches!(decode(Position(4), &value), Err(LogError::Corrupt { .. })), "wrong position");
    }
}
