//! The sled 0.34 engine: one tree, keys prefixed by what they index, one atomic batch and one
//! fsync per group commit.
//!
//! ```text
//!  E ‖ position:u64be                 → record (see record.rs)
//!  S ‖ stream ‖ 0x00 ‖ version:u64be  → position:u64be
//!  H ‖ stream                         → last version:u64be
//!  I ‖ event id:[u8;16]               → position:u64be
//!  M ‖ "head"                         → next position:u64be ‖ head hash:[u8;32]
//! ```
//! Stream ids never contain 0x00 (their character set is checked), so the separator is safe.
//! One tree keeps every write of a group in one `apply_batch`, which sled makes atomic.

use std::path::Path;

use haven_eventlog_client::LogError;
use haven_kernel::{EventId, Position, StreamId, Version};
use haven_proto::v1::EventEnvelope;

use super::{Scan, Store, StoreHead, WriteSet};
use crate::record;

const EVENT: u8 = b'E';
const STREAM: u8 = b'S';
const STREAM_HEAD: u8 = b'H';
const EVENT_ID: u8 = b'I';
const HEAD_KEY: &[u8] = b"Mhead";

/// Event storage on sled.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
}

fn storage_error(error: sled::Error) -> LogError {
    LogError::Internal(format!("storage: {error}"))
}

fn event_key(position: Position) -> [u8; 9] {
    let mut key = [EVENT; 9];
    key[1..].copy_from_slice(&position.0.to_be_bytes());
    key
}

fn stream_key(stream_id: &StreamId, version: Version) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream_id.as_str().len() + 10);
    key.push(STREAM);
    key.extend_from_slice(stream_id.as_str().as_bytes());
    key.push(0);
    key.extend_from_slice(&version.0.to_be_bytes());
    key
}

fn stream_head_key(stream_id: &StreamId) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream_id.as_str().len() + 1);
    key.push(STREAM_HEAD);
    key.extend_from_slice(stream_id.as_str().as_bytes());
    key
}

fn event_id_key(event_id: &EventId) -> [u8; 17] {
    let mut key = [EVENT_ID; 17];
    key[1..].copy_from_slice(event_id.as_bytes());
    key
}

fn read_u64(bytes: &[u8], what: &str) -> Result<u64, LogError> {
    let array: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| LogError::Internal(format!("storage: {what} is not 8 bytes")))?;
    Ok(u64::from_be_bytes(array))
}

impl SledStore {
    /// Opens (or creates) the store in `dir`, with sled's page cache bounded to `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, LogError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            // We fsync once per group commit ourselves; no background flusher is needed.
            .flush_every_ms(None)
            .open()
            .map_err(|e| LogError::Unavailable(format!("cannot open the event store in {}: {e}", dir.display())))?;
        Ok(SledStore { db })
    }
}

impl Store for SledStore {
    fn head(&self) -> Result<StoreHead, LogError> {
        let Some(value) = self.db.get(HEAD_KEY).map_err(storage_error)? else {
            return Ok(StoreHead::EMPTY);
        };
        if value.len() != 40 {
            return Err(LogError::Internal("storage: head record is not 40 bytes".into()));
        }
        let next_position = Position(read_u64(&value, "head position")?);
        let head_hash: [u8; 32] = value[8..40].try_into().expect("checked length");
        Ok(StoreHead { next_position, head_hash })
    }

    fn last_version(&self, stream_id: &StreamId) -> Result<Option<Version>, LogError> {
        let value = self.db.get(stream_head_key(stream_id)).map_err(storage_error)?;
        value.map(|v| read_u64(&v, "stream head").map(Version)).transpose()
    }

    fn find_event(&self, event_id: &EventId) -> Result<Option<Position>, LogError> {
        let value = self.db.get(event_id_key(event_id)).map_err(storage_error)?;
        value.map(|v| read_u64(&v, "event id index").map(Position)).transpose()
    }

    fn get(&self, position: Position) -> Result<Option<EventEnvelope>, LogError> {
        let value = self.db.get(event_key(position)).map_err(storage_error)?;
        value.map(|v| record::decode(position, &v)).transpose()
    }

    fn stream_positions(
        &self,
        stream_id: &StreamId,
        from: Version,
        backwards: bool,
        limit: usize,
    ) -> Result<Vec<Position>, LogError> {
        let range = if backwards {
            stream_key(stream_id, Version(0))..=stream_key(stream_id, from)
        } else {
            stream_key(stream_id, from)..=stream_key(stream_id, Version(u64::MAX))
        };
        let iter = self.db.range(range);
        let positions: Result<Vec<Position>, LogError> = if backwards {
            iter.rev()
                .take(limit)
                .map(|entry| read_u64(&entry.map_err(storage_error)?.1, "stream index").map(Position))
                .collect()
        } else {
            iter.take(limit)
                .map(|entry| read_u64(&entry.map_err(storage_error)?.1, "stream index").map(Position))
                .collect()
        };
        positions
    }

    fn scan(&self, from: Position, visit: &mut dyn FnMut(Position, &[u8]) -> Scan) -> Result<(), LogError> {
        for entry in self.db.range(event_key(from)..=event_key(Position(u64::MAX))) {
            let (key, value) = entry.map_err(storage_error)?;
            let position = Position(read_u64(&key[1..], "event key")?);
            if visit(position, &value) == Scan::Stop {
                break;
            }
        }
        Ok(())
    }

    fn write(&self, set: WriteSet) -> Result<(), LogError> {
        let mut batch = sled::Batch::default();
        for record in set.records {
            let position = record.position.0.to_be_bytes();
            batch.insert(&event_key(record.position)[..], record.value);
            batch.insert(stream_key(&record.stream_id, record.version), &position[..]);
            batch.insert(&event_id_key(&record.event_id)[..], &position[..]);
        }
        for (stream_id, version) in set.stream_heads {
            batch.insert(stream_head_key(&stream_id), &version.0.to_be_bytes()[..]);
        }
        let mut head = Vec::with_capacity(40);
        head.extend_from_slice(&set.head.next_position.0.to_be_bytes());
        head.extend_from_slice(&set.head.head_hash);
        batch.insert(HEAD_KEY, head);
        self.db.apply_batch(batch).map_err(storage_error)?;
        self.db.flush().map_err(storage_error)?;
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, LogError> {
        self.db.size_on_disk().map_err(storage_error)
    }
}
