//! The hash chain over `$all`, as a reader recomputes it (DESIGN.md §4, ADR 0004).
//!
//! ```text
//!  hash(n) = SHA-256(hash(n-1) ‖ body(n))     hash(-1) = 32 zero bytes
//!  body(n) = the protobuf EventEnvelope at position n with `hash` empty
//! ```
//! The log node checks its stored bytes with the same [`chain_hash`] (`haven log verify`); a
//! reader that has only envelopes re-encodes each one with its hash cleared, which gives the
//! stored body back because prost's encoding of a decoded message is deterministic.

use haven_proto::prost::Message;
use haven_proto::v1::EventEnvelope;
use sha2::{Digest, Sha256};

/// The hash the first event chains to.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// SHA-256(prev ‖ body).
pub fn chain_hash(prev: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(body);
    hasher.finalize().into()
}

/// The chain hash of an envelope as served (its own `hash` ignored), chained to `prev`.
pub fn envelope_hash(prev: &[u8; 32], envelope: &EventEnvelope) -> [u8; 32] {
    let mut body = envelope.clone();
    body.hash.clear();
    chain_hash(prev, &body.encode_to_vec())
}
