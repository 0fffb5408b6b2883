//! The custody trail as evidence: a signed, hash-linked JSON document, its printable page,
//! and [`verify`], which the receiving officer runs offline (`haven custody verify FILE`).
//!
//! ```text
//!  trail steps ──export──▶ TrailDocument { entries[i].previous_entry_hash = entries[i-1].entry_hash,
//!                                          entry_hash = SHA-256(previous ‖ entry JSON with entry_hash "") ,
//!                                          signer { key_id, Ed25519 public key } }
//!              ──sign(SHA-512 inside Ed25519 over the document's compact JSON)──▶ SignedTrail
//!              ──to_json──▶ the file: pretty JSON + "\n", the only accepted form
//! ```
//! `verify` parses the file, rechecks every link and entry hash, the signature, and last that
//! the file is byte for byte the canonical encoding of what it parsed. So any edited byte
//! fails: either the content changed (a hash or the signature no longer matches) or it did not
//! (then the bytes are no longer canonical). The public key travels in the document and is
//! signed with it; whoever trusts the document compares it with Haven's published key
//! ([`VerifyOptions::trusted_public_key`]).

use base64::Engine;
use ed25519_dalek::Signer as _;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The format tag of version 1 documents.
pub const FORMAT: &str = "haven.custody-trail/1";
/// The signature algorithm.
pub const ALGORITHM: &str = "Ed25519";
/// The link before the first entry: 32 zero bytes, hex.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Most entries in one trail, and most bytes in one file: bounds on what `verify` reads.
pub const MAX_ENTRIES: usize = 10_000;
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;

/// One logged step, as the shell reads it from the custody stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrailStep {
    /// The event's global position in the log.
    pub position: u64,
    pub event_type: String,
    /// When it happened, seconds since the epoch (UTC).
    pub occurred_at: i64,
    /// Who recorded it (the envelope's actor).
    pub recorded_by: String,
    /// Who did it, and who witnessed it (empty when nobody).
    pub by_user_id: String,
    pub witness_user_id: String,
    /// A one-line rendering for people.
    pub summary: String,
    /// The event's protobuf payload, exactly as logged.
    pub payload: Vec<u8>,
    /// The event's hash in the log's chain (ADR 0003).
    pub log_hash: Vec<u8>,
}

/// What the trail is about and who asked for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrailHeader {
    pub custody_id: String,
    pub school_id: String,
    pub case_id: String,
    pub device_description: String,
    pub generated_at: i64,
    pub generated_by_user_id: String,
    pub purpose: String,
    /// The log's head when exported: the next position and the hash of the event before it.
    pub head_position: u64,
    pub head_hash: Vec<u8>,
}

/// One entry of the document, linked to the one before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrailEntry {
    pub seq: u32,
    pub position: u64,
    pub event_type: String,
    pub occurred_at: i64,
    pub occurred_at_utc: String,
    pub recorded_by: String,
    pub by_user_id: String,
    pub witness_user_id: String,
    pub summary: String,
    /// The protobuf payload, standard base64.
    pub payload_base64: String,
    /// Hex.
    pub log_hash: String,
    pub previous_entry_hash: String,
    pub entry_hash: String,
}

/// Who signed, with what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signer {
    pub key_id: String,
    pub algorithm: String,
    /// The 32-byte Ed25519 public key, hex.
    pub public_key: String,
}

/// Everything that is signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrailDocument {
    pub format: String,
    pub custody_id: String,
    pub school_id: String,
    pub case_id: String,
    pub device_description: String,
    pub generated_at: i64,
    pub generated_at_utc: String,
    pub generated_by_user_id: String,
    pub purpose: String,
    pub head_position: u64,
    pub head_hash: String,
    pub entries: Vec<TrailEntry>,
    /// The last entry's hash (the genesis hash when there are none): a cut trail shows.
    pub last_entry_hash: String,
    pub signer: Signer,
}

/// The document and its signature: the exported file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedTrail {
    pub document: TrailDocument,
    /// Ed25519 over the document's compact JSON, hex.
    pub signature: String,
}

/// The key custody signs exports with.
pub struct TrailSigner {
    key_id: String,
    key: SigningKey,
}

impl std::fmt::Debug for TrailSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrailSigner").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl TrailSigner {
    /// A signer from a 32-byte Ed25519 seed (kept by whoever runs custody, never logged).
    pub fn from_seed(key_id: impl Into<String>, seed: &[u8; 32]) -> Self {
        TrailSigner { key_id: key_id.into(), key: SigningKey::from_bytes(seed) }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }
}

/// Why a document does not verify. Each names where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the file is {0} bytes; at most {MAX_DOCUMENT_BYTES} are read")]
    TooLarge(usize),
    #[error("not a custody trail document (line {line}, column {column}): {reason}")]
    Malformed { line: usize, column: usize, reason: String },
    #[error("format {0:?} is not {FORMAT}")]
    UnknownFormat(String),
    #[error("algorithm {0:?} is not {ALGORITHM}")]
    UnknownAlgorithm(String),
    #[error("the public key is not a 32-byte Ed25519 key in hex")]
    BadPublicKey,
    #[error("the signature is not 64 bytes in lowercase hex")]
    BadSignatureEncoding,
    #[error("the trail has more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    #[error("entry {index} is numbered {seq}; entries are numbered 0, 1, 2 …")]
    SequenceBroken { index: usize, seq: u32 },
    #[error("entry {seq} does not come after the one before it in the log")]
    OutOfOrder { seq: u32 },
    #[error("entry {seq} does not link to the entry before it (entry removed, inserted or reordered)")]
    LinkBroken { seq: u32 },
    #[error("entry {seq} was altered: its content does not match its hash")]
    EntryAltered { seq: u32 },
    #[error("the last entry hash does not match the last entry (entries removed from the end)")]
    Truncated,
    #[error("the signature does not match the document: it was altered after signing")]
    SignatureInvalid,
    #[error("the file differs from the signed document's encoding at byte {offset}")]
    NotCanonical { offset: usize },
    #[error("signed by key {key_id} ({public_key}), not by the trusted key")]
    UntrustedKey { key_id: String, public_key: String },
}

/// What a caller may require of a document.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Haven's published public key; `None` accepts the key in the document.
    pub trusted_public_key: Option<[u8; 32]>,
}

/// What a verified document says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub trail: SignedTrail,
    pub key_id: String,
    pub public_key: [u8; 32],
}

/// Seconds since the epoch as RFC 3339 UTC; out-of-range times as the number.
pub fn utc(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds).map_or_else(|_| format!("{seconds} s"), |t| t.to_string())
}

fn entry_hash(entry: &TrailEntry) -> String {
    let mut unhashed = entry.clone();
    unhashed.entry_hash.clear();
    let mut hasher = Sha256::new();
    hasher.update(entry.previous_entry_hash.as_bytes());
    hasher.update(serde_json::to_vec(&unhashed).expect("a trail entry always encodes"));
    hex::encode(hasher.finalize())
}

fn signed_bytes(document: &TrailDocument) -> Vec<u8> {
    serde_json::to_vec(document).expect("a trail document always encodes")
}

/// Builds and signs the document for `steps` (oldest first).
pub fn export(header: &TrailHeader, steps: &[TrailStep], signer: &TrailSigner) -> SignedTrail {
    let mut previous = GENESIS_HASH.to_owned();
    let mut entries = Vec::with_capacity(steps.len());
    for (seq, step) in steps.iter().enumerate() {
        let mut entry = TrailEntry {
            seq: u32::try_from(seq).unwrap_or(u32::MAX),
            position: step.position,
            event_type: step.event_type.clone(),
            occurred_at: step.occurred_at,
            occurred_at_utc: utc(step.occurred_at),
            recorded_by: step.recorded_by.clone(),
            by_user_id: step.by_user_id.clone(),
            witness_user_id: step.witness_user_id.clone(),
            summary: step.summary.clone(),
            payload_base64: base64::engine::general_purpose::STANDARD.encode(&step.payload),
            log_hash: hex::encode(&step.log_hash),
            previous_entry_hash: previous.clone(),
            entry_hash: String::new(),
        };
        entry.entry_hash = entry_hash(&entry);
        previous = entry.entry_hash.clone();
        entries.push(entry);
    }
    let document = TrailDocument {
        format: FORMAT.to_owned(),
        custody_id: header.custody_id.clone(),
        school_id: header.school_id.clone(),
        case_id: header.case_id.clone(),
        device_description: header.device_description.clone(),
        generated_at: header.generated_at,
        generated_at_utc: utc(header.generated_at),
        generated_by_user_id: header.generated_by_user_id.clone(),
        purpose: header.purpose.clone(),
        head_position: header.head_position,
        head_hash: hex::encode(&header.head_hash),
        entries,
        last_entry_hash: previous,
        signer: Signer {
            key_id: signer.key_id.clone(),
            algorithm: ALGORITHM.to_owned(),
            public_key: hex::encode(signer.public_key()),
        },
    };
    let signature = signer.key.sign(&signed_bytes(&document));
    SignedTrail { document, signature: hex::encode(signature.to_bytes()) }
}

impl SignedTrail {
    /// The file: pretty JSON and a final newline, the only form [`verify`] accepts.
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a signed trail always encodes");
        bytes.push(b'\n');
        bytes
    }

    /// The exact bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(&self.document)
    }
}

/// Checks a file produced by [`SignedTrail::to_json`]; any edited byte fails, with the first
/// problem found.
pub fn verify(bytes: &[u8], options: &VerifyOptions) -> Result<Verified, VerifyError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(VerifyError::TooLarge(bytes.len()));
    }
    let trail: SignedTrail = serde_json::from_slice(bytes).map_err(|e| VerifyError::Malformed {
        line: e.line(),
        column: e.column(),
        reason: e.to_string(),
    })?;
    let document = &trail.document;
    if document.format != FORMAT {
        return Err(VerifyError::UnknownFormat(document.format.clone()));
    }
    if document.signer.algorithm != ALGORITHM {
        return Err(VerifyError::UnknownAlgorithm(document.signer.algorithm.clone()));
    }
    let public_key: [u8; 32] = hex::decode(&document.signer.public_key)
        .ok()
        .and_then(|raw| raw.try_into().ok())
        .ok_or(VerifyError::BadPublicKey)?;
    let verifying_key = VerifyingKey::from_bytes(&public_key).map_err(|_| VerifyError::BadPublicKey)?;
    let signature: [u8; 64] = hex::decode(&trail.signature)
        .ok()
        .and_then(|raw| raw.try_into().ok())
        .ok_or(VerifyError::BadSignatureEncoding)?;
    // The signature is the one field outside what is signed: only its lowercase form counts.
    if hex::encode(signature) != trail.signature {
        return Err(VerifyError::BadSignatureEncoding);
    }
    if document.entries.len() > MAX_ENTRIES {
        return Err(VerifyError::TooManyEntries);
    }
    let mut previous = GENESIS_HASH;
    let mut last_position = None;
    for (index, entry) in document.entries.iter().enumerate() {
        if usize::try_from(entry.seq).ok() != Some(index) {
            return Err(VerifyError::SequenceBroken { index, seq: entry.seq });
        }
        if last_position.is_some_and(|last| entry.position <= last) {
            return Err(VerifyError::OutOfOrder { seq: entry.seq });
        }
        if entry.previous_entry_hash != previous {
            return Err(VerifyError::LinkBroken { seq: entry.seq });
        }
        if entry_hash(entry) != entry.entry_hash {
            return Err(VerifyError::EntryAltered { seq: entry.seq });
        }
        previous = &entry.entry_hash;
        last_position = Some(entry.position);
    }
    if document.last_entry_hash != previous {
        return Err(VerifyError::Truncated);
    }
    verifying_key
        .verify_strict(&signed_bytes(document), &Signature::from_bytes(&signature))
        .map_err(|_| VerifyError::SignatureInvalid)?;
    // Same content, different bytes (an escape, a space, a letter's case in hex): refused too.
    let canonical = trail.to_json();
    if canonical != bytes {
        let offset = canonical.iter().zip(bytes).position(|(a, b)| a != b).unwrap_or(canonical.len().min(bytes.len()));
        return Err(VerifyError::NotCanonical { offset });
    }
    if let Some(trusted) = options.trusted_public_key
        && trusted != public_key
    {
        return Err(VerifyError::UntrustedKey {
            key_id: document.signer.key_id.clone(),
            public_key: document.signer.public_key.clone(),
        });
    }
    let key_id = document.signer.key_id.clone();
    Ok(Verified { trail, key_id, public_key })
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The printable page: the steps as a table, the hashes and the key to check them with.
pub fn render_html(trail: &SignedTrail) -> String {
    use std::fmt::Write;
    let document = &trail.document;
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Custody trail {id}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;width:100%}}\
         td,th{{border:1px solid #444;padding:4px;vertical-align:top;text-align:left}}\
         code{{font-size:8pt;word-break:break-all}}</style></head><body>\n\
         <h1>Chain of custody</h1>\n<p>Custody record <b>{id}</b>, school {school}, case {case}.<br>\
         Device: {device}.</p>\n<p>Generated {generated} by {by} for: {purpose}.</p>\n\
         <table><tr><th>#</th><th>When (UTC)</th><th>Step</th><th>By</th><th>Witness</th><th>Recorded by</th>\
         <th>Log position</th><th>Entry hash</th></tr>\n",
        id = escape(&document.custody_id),
        school = escape(&document.school_id),
        case = escape(if document.case_id.is_empty() { "none" } else { &document.case_id }),
        device = escape(&document.device_description),
        generated = escape(&document.generated_at_utc),
        by = escape(&document.generated_by_user_id),
        purpose = escape(&document.purpose),
    );
    for entry in &document.entries {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            entry.seq,
            escape(&entry.occurred_at_utc),
            escape(&entry.summary),
            escape(&entry.by_user_id),
            escape(&entry.witness_user_id),
            escape(&entry.recorded_by),
            entry.position,
            escape(&entry.entry_hash),
        );
    }
    let _ = write!(
        html,
        "</table>\n<p>Last entry hash <code>{last}</code>; log head {head_position} (<code>{head_hash}</code>).</p>\n\
         <p>Signed with {algorithm} key {key_id}, public key <code>{public_key}</code>.<br>Signature <code>{signature}</code>.</p>\n\
         <p>This page is a rendering. The evidence is the JSON file exported with it; check it offline with \
         <code>haven custody verify FILE</code> and compare the public key with the one Haven publishes.</p>\n\
         </body></html>\n",
        last = escape(&document.last_entry_hash),
        head_position = document.head_position,
        head_hash = escape(&document.head_hash),
        algorithm = escape(&document.signer.algorithm),
        key_id = escape(&document.signer.key_id),
        public_key = escape(&document.signer.public_key),
        signature = escape(&trail.signature),
    );
    html
}

#[cfg(test)]
mod tests;
