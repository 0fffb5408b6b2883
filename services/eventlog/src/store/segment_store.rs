//! The event store: event bodies in append-only segment files, which are the record of what
//! is committed, and the indexes in redb, which can always be rebuilt from the segments
//! (docs/adr/0007-segments-and-redb.md says why sled was replaced).
//!
//! ```text
//!  <dir>/segments/<first position:020>.seg
//!      one group per Store::write, one fsync:
//!      record  = len:u32 LE ‖ value             (value: record.rs — crc, hash, envelope)
//!      group*  = record* ‖ tag? ‖ trailer
//!      tag     = 0xFFFFFFFE ‖ len:u32 LE ‖ bytes  (the owner's note for the group: raft's applied log id)
//!      trailer = 0xFFFFFFFF ‖ count:u32 LE ‖ next position:u64 LE ‖ crc32(group bytes):u32 LE
//!  <dir>/index.redb
//!      positions     position          → (offset in its segment, len)
//!      streams       (stream, version) → position
//!      event_ids     event id as u128  → position     (UUIDv7 ids sort by time: edge appends)
//!      meta          "checkpoint"      → next position ‖ head hash ‖ segment ‖ end offset ‖ tag
//! ```
//! A write appends one group (its records and a trailer) to the active segment and fsyncs it:
//! that is the commit. Its index entries go to an in-memory overlay (overlay.rs) that reads
//! consult first. Every [`FLUSH_EVENTS`] events or [`FLUSH_EVERY`] the overlay is frozen and a
//! background thread (`haven-eventlog-index`) writes it to redb in one transaction, made
//! durable at most every [`CHECKPOINT_EVERY`] (redb's `Durability::None` in between); when
//! [`MAX_FROZEN`] overlays wait for it, the writer waits too, so memory stays bounded. One
//! fsync per group is the cost of durability. On open, the groups after the last durable
//! index checkpoint are read back from the segments and indexed again; a group without a
//! whole, matching trailer (a write cut by a crash) is cut off, so a group is all there or
//! not there.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use haven_eventlog_client::LogError;
use haven_kernel::{EventId, Position, StreamId, Version};
use haven_proto::v1::EventEnvelope;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::overlay::{Overlay, Overlays};
use super::{NewRecord, Scan, Store, StoreHead, WriteSet};
use crate::record;

const POSITIONS: TableDefinition<u64, (u64, u32)> = TableDefinition::new("positions");
const STREAMS: TableDefinition<(&str, u64), u64> = TableDefinition::new("streams");
const EVENT_IDS: TableDefinition<u128, u64> = TableDefinition::new("event_ids");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const CHECKPOINT_KEY: &str = "checkpoint";
/// Marks a group trailer where a record length would be.
const TRAILER_MARK: u32 = u32::MAX;
/// Marks a group's tag where a record length would be.
const TAG_MARK: u32 = u32::MAX - 1;
const TRAILER_BYTES: usize = 4 + 4 + 8 + 4;
/// A new segment is started by the first write after the active one reaches this size.
const SEGMENT_BYTES: u64 = 256 * 1024 * 1024;
/// The overlay is flushed to redb once it holds this many events...
const FLUSH_EVENTS: usize = 16_384;
/// ...or its oldest entry is this old.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Frozen overlays allowed to wait for the flusher before the writer waits too.
const MAX_FROZEN: usize = 4;
/// Recovery reads the segment past the last checkpoint in windows of this size.
const RECOVERY_CHUNK_BYTES: u64 = 4 * 1024 * 1024;
/// How often the index is made durable; between checkpoints it is rebuilt from the segments
/// after a crash.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

fn index_error(error: impl Into<redb::Error>) -> LogError {
    LogError::Internal(format!("storage: index: {}", error.into()))
}

fn io_error(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> LogError {
    let context = format!("storage: {what} {}", path.display());
    move |error| LogError::Internal(format!("{context}: {error}"))
}

fn id_key(event_id: &EventId) -> u128 {
    u128::from_be_bytes(*event_id.as_bytes())
}

/// One segment file: the records from position `first` on.
#[derive(Debug)]
struct Segment {
    first: u64,
    file: File,
    path: PathBuf,
}

impl Segment {
    fn path(dir: &Path, first: u64) -> PathBuf {
        dir.join(format!("{first:020}.seg"))
    }

    fn open(dir: &Path, first: u64, create: bool) -> Result<Segment, LogError> {
        let path = Self::path(dir, first);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(&path)
            .map_err(io_error("opening", &path))?;
        Ok(Segment { first, file, path })
    }

    fn len(&self) -> Result<u64, LogError> {
        Ok(self.file.metadata().map_err(io_error("reading", &self.path))?.len())
    }
}

/// Where the log stands: its head and where the next group goes. Written with the index.
#[derive(Clone, Copy, Debug)]
struct Checkpoint {
    head: StoreHead,
    /// First position of the active segment, and its length.
    segment: u64,
    end: u64,
}

impl Checkpoint {
    /// The checkpoint followed by the last group's tag, as stored in the index.
    fn encode_with(&self, tag: &[u8]) -> Vec<u8> {
        let mut bytes = self.encode().to_vec();
        bytes.extend_from_slice(tag);
        bytes
    }

    fn encode(&self) -> [u8; 56] {
        let mut bytes = [0u8; 56];
        bytes[..8].copy_from_slice(&self.head.next_position.0.to_be_bytes());
        bytes[8..40].copy_from_slice(&self.head.head_hash);
        bytes[40..48].copy_from_slice(&self.segment.to_be_bytes());
        bytes[48..].copy_from_slice(&self.end.to_be_bytes());
        bytes
    }

    /// The checkpoint and the tag after it.
    fn decode(bytes: &[u8]) -> Result<(Checkpoint, Vec<u8>), LogError> {
        let (bytes, tag) = bytes
            .split_first_chunk::<56>()
            .ok_or_else(|| LogError::Internal("storage: index checkpoint is shorter than 56 bytes".into()))?;
        let u64_at = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let checkpoint = Checkpoint {
            head: StoreHead {
                next_position: Position(u64_at(0)),
                head_hash: bytes[8..40].try_into().expect("32 bytes"),
            },
            segment: u64_at(40),
            end: u64_at(48),
        };
        Ok((checkpoint, tag.to_vec()))
    }
}

/// What only the writer changes.
#[derive(Debug)]
struct Tail {
    checkpoint: Checkpoint,
    /// The last group's tag (empty when no group had one).
    tag: Vec<u8>,
    /// The active segment holds groups written by [`Store::write_deferred`] and not fsynced
    /// yet. Fsynced before the segment is left behind and before an index checkpoint names
    /// them, so no checkpoint ever runs ahead of what is on disk.
    unsynced: bool,
}

/// Event storage: segment files and a redb index.
#[derive(Debug)]
pub struct SegmentStore {
    index: Arc<Database>,
    index_path: PathBuf,
    segments_dir: PathBuf,
    /// Every segment, oldest first; the last one is written to.
    segments: RwLock<Vec<Arc<Segment>>>,
    /// Positions below this are committed and indexed: reads never pass it.
    committed: AtomicU64,
    head: RwLock<StoreHead>,
    /// Index entries not yet in redb.
    overlays: Arc<RwLock<Overlays>>,
    flusher: Mutex<Option<Flusher>>,
    tail: Mutex<Tail>,
}

/// The thread that writes frozen overlays to redb, and what it reports.
#[derive(Debug)]
struct Flusher {
    queue: std::sync::mpsc::Sender<Arc<Overlay>>,
    thread: std::thread::JoinHandle<()>,
    failed: Arc<Mutex<Option<String>>>,
}

impl Flusher {
    fn start(index: Arc<Database>, overlays: Arc<RwLock<Overlays>>) -> Flusher {
        let (queue, frozen) = std::sync::mpsc::channel::<Arc<Overlay>>();
        let failed = Arc::new(Mutex::new(None));
        let report = Arc::clone(&failed);
        let thread = std::thread::Builder::new()
            .name("haven-eventlog-index".into())
            .spawn(move || {
                let mut last_durable = Instant::now();
                while let Ok(overlay) = frozen.recv() {
                    let durable = last_durable.elapsed() >= CHECKPOINT_EVERY;
                    if let Err(error) = write_overlay(&index, &overlay, durable) {
                        // The entries stay in memory (reads keep working); writes stop, and a
                        // restart re-indexes from the segments.
                        tracing::error!(%error, "event index flush failed");
                        *report.lock().expect("flusher report lock") = Some(error.to_string());
                        return;
                    }
                    overlays.write().expect("overlay lock").frozen.pop_front();
                    if durable {
                        last_durable = Instant::now();
                    }
                }
            })
            .expect("the OS can start one thread");
        Flusher { queue, thread, failed }
    }
}

/// Writes one frozen overlay's entries and checkpoint to redb in one transaction.
fn write_overlay(index: &Database, frozen: &Overlay, durable: bool) -> Result<(), LogError> {
    let mut txn = index.begin_write().map_err(index_error)?;
    let durability = if durable { Durability::Immediate } else { Durability::None };
    txn.set_durability(durability).map_err(|e| LogError::Internal(format!("storage: index: {e}")))?;
    {
        let mut positions = txn.open_table(POSITIONS).map_err(index_error)?;
        for (i, location) in frozen.locations.iter().enumerate() {
            positions.insert(frozen.base + i as u64, *location).map_err(index_error)?;
        }
        let mut streams = txn.open_table(STREAMS).map_err(index_error)?;
        for (stream_id, entries) in &frozen.streams {
            for (version, position) in entries {
                streams.insert((stream_id.as_str(), *version), *position).map_err(index_error)?;
            }
        }
        let mut ids: Vec<(u128, u64)> = frozen.ids.iter().map(|(id, position)| (*id, *position)).collect();
        ids.sort_unstable();
        let mut table = txn.open_table(EVENT_IDS).map_err(index_error)?;
        for (id, position) in ids {
            table.insert(id, position).map_err(index_error)?;
        }
        if !frozen.checkpoint.is_empty() {
            let mut meta = txn.open_table(META).map_err(index_error)?;
            meta.insert(CHECKPOINT_KEY, frozen.checkpoint.as_slice()).map_err(index_error)?;
        }
    }
    txn.commit().map_err(index_error)
}

impl SegmentStore {
    /// Opens (or creates) the store in `dir`, with redb's cache bounded to `cache_bytes`;
    /// indexes the groups written after the last durable checkpoint and cuts off a torn one.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, LogError> {
        let unavailable =
            |e: String| LogError::Unavailable(format!("cannot open the event store in {}: {e}", dir.display()));
        let segments_dir = dir.join("segments");
        std::fs::create_dir_all(&segments_dir).map_err(|e| unavailable(e.to_string()))?;
        let mut builder = Database::builder();
        builder.set_cache_size(usize::try_from(cache_bytes).unwrap_or(usize::MAX));
        let index_path = dir.join("index.redb");
        let index = builder.create(&index_path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                unavailable(format!("{} is in use (is another haven running on it?)", index_path.display()))
            }
            other => unavailable(other.to_string()),
        })?;
        // Every table exists from the start, so readers never meet a missing one.
        let txn = index.begin_write().map_err(index_error)?;
        txn.open_table(POSITIONS).map_err(index_error)?;
        txn.open_table(STREAMS).map_err(index_error)?;
        txn.open_table(EVENT_IDS).map_err(index_error)?;
        let (checkpoint, tag) =
            match txn.open_table(META).map_err(index_error)?.get(CHECKPOINT_KEY).map_err(index_error)? {
                Some(bytes) => Checkpoint::decode(bytes.value())?,
                None => (Checkpoint { head: StoreHead::EMPTY, segment: 0, end: 0 }, Vec::new()),
            };
        txn.commit().map_err(index_error)?;
        let (segments, checkpoint, tag) = recover(&index, &segments_dir, checkpoint, tag)?;
        let index = Arc::new(index);
        let overlays = Arc::new(RwLock::new(Overlays::starting_at(checkpoint.head.next_position.0)));
        let flusher = Flusher::start(Arc::clone(&index), Arc::clone(&overlays));
        Ok(SegmentStore {
            index,
            index_path,
            segments_dir,
            segments: RwLock::new(segments),
            committed: AtomicU64::new(checkpoint.head.next_position.0),
            head: RwLock::new(checkpoint.head),
            overlays,
            flusher: Mutex::new(Some(flusher)),
            tail: Mutex::new(Tail { checkpoint, tag, unsynced: false }),
        })
    }

    /// The segment holding `position`, if any.
    fn segment_of(&self, position: u64) -> Option<Arc<Segment>> {
        let segments = self.segments.read().expect("segments lock");
        let index = segments.partition_point(|s| s.first <= position);
        index.checked_sub(1).map(|i| Arc::clone(&segments[i]))
    }

    fn location(&self, position: u64) -> Result<(u64, u32), LogError> {
        if let Some(location) = self.overlays.read().expect("overlay lock").location(position) {
            return Ok(location);
        }
        let txn = self.index.begin_read().map_err(index_error)?;
        let positions = txn.open_table(POSITIONS).map_err(index_error)?;
        let location = positions.get(position).map_err(index_error)?.map(|v| v.value());
        location.ok_or_else(|| LogError::Corrupt {
            position: Position(position),
            reason: "committed but missing from the position index".into(),
        })
    }

    /// Hands the active overlay to the flusher. Waits while several are queued, so memory
    /// stays bounded when redb falls behind.
    fn freeze(&self, checkpoint: &Checkpoint, tag: &[u8]) -> Result<(), LogError> {
        let flusher = self.flusher.lock().expect("flusher lock");
        let Some(flusher) = flusher.as_ref() else {
            return Err(LogError::Unavailable("the event store is closing".into()));
        };
        loop {
            if let Some(error) = flusher.failed.lock().expect("flusher report lock").clone() {
                return Err(LogError::Internal(format!("storage: index flush failed: {error}")));
            }
            if self.overlays.read().expect("overlay lock").frozen.len() < MAX_FROZEN {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let frozen = self.overlays.write().expect("overlay lock").freeze(checkpoint.encode_with(tag));
        flusher.queue.send(frozen).map_err(|_| LogError::Internal("storage: the index flusher stopped".into()))
    }

    /// Fsyncs the active segment if deferred writes are waiting in it.
    fn sync_active(&self, tail: &mut Tail) -> Result<(), LogError> {
        if tail.unsynced {
            if let Some(segment) = self.segments.read().expect("segments lock").last() {
                segment.file.sync_data().map_err(io_error("syncing", &segment.path))?;
            }
            tail.unsynced = false;
        }
        Ok(())
    }

    /// One group: `durable` fsyncs it before returning.
    fn write_group(&self, set: WriteSet, durable: bool) -> Result<(), LogError> {
        if set.records.is_empty() && set.tag.is_none() {
            return Ok(());
        }
        let mut tail = self.tail.lock().expect("tail lock");
        let mut checkpoint = tail.checkpoint;
        let active = self.segments.read().expect("segments lock").last().cloned();
        let segment = match active {
            Some(segment) if checkpoint.end < SEGMENT_BYTES => segment,
            _ => {
                self.sync_active(&mut tail)?;
                let first = set.records.first().map_or(set.head.next_position.0, |r| r.position.0);
                checkpoint.segment = first;
                checkpoint.end = 0;
                self.roll(first)?
            }
        };
        let (group, locations) =
            encode_group(&set.records, set.tag.as_deref(), set.head.next_position.0, checkpoint.end);
        let end = checkpoint.end;
        checkpoint = Checkpoint { head: set.head, segment: segment.first, end: end + group.len() as u64 };
        // The commit: the group's bytes, fsynced (deferred: the owner's own log is the commit,
        // and the bytes are fsynced with the next write that needs it).
        segment.file.write_all_at(&group, end).map_err(io_error("writing", &segment.path))?;
        if durable {
            segment.file.sync_data().map_err(io_error("syncing", &segment.path))?;
        }
        tail.unsynced = !durable;
        // The index: in memory now, in redb at the next flush; a crash rebuilds it from the
        // segments.
        {
            let mut overlays = self.overlays.write().expect("overlay lock");
            for (record, location) in set.records.iter().zip(&locations) {
                overlays.active.add(
                    record.position.0,
                    *location,
                    record.stream_id.as_str(),
                    record.version.0,
                    id_key(&record.event_id),
                );
            }
        }
        tail.checkpoint = checkpoint;
        if let Some(tag) = set.tag {
            tail.tag = tag;
        }
        *self.head.write().expect("head lock") = set.head;
        self.committed.store(set.head.next_position.0, Ordering::Release);
        let due = {
            let overlays = self.overlays.read().expect("overlay lock");
            overlays.active.len() >= FLUSH_EVENTS || overlays.active.since.is_some_and(|t| t.elapsed() >= FLUSH_EVERY)
        };
        if due {
            self.sync_active(&mut tail)?;
            self.freeze(&checkpoint, &tail.tag)?;
        }
        Ok(())
    }

    /// Starts a new segment at `first` and makes its name durable.
    fn roll(&self, first: u64) -> Result<Arc<Segment>, LogError> {
        let segment = Arc::new(Segment::open(&self.segments_dir, first, true)?);
        File::open(&self.segments_dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error("syncing", &self.segments_dir))?;
        self.segments.write().expect("segments lock").push(Arc::clone(&segment));
        Ok(segment)
    }
}

/// A group as it is written: records, then the trailer.
fn encode_group(
    records: &[NewRecord],
    tag: Option<&[u8]>,
    next_position: u64,
    start: u64,
) -> (Vec<u8>, Vec<(u64, u32)>) {
    let bytes: usize =
        records.iter().map(|r| r.value.len() + 4).sum::<usize>() + tag.map_or(0, |tag| tag.len() + 8) + TRAILER_BYTES;
    let mut group = Vec::with_capacity(bytes);
    let mut locations = Vec::with_capacity(records.len());
    for record in records {
        let len = u32::try_from(record.value.len()).expect("records are far smaller than 4 GiB");
        debug_assert!(len < TAG_MARK);
        locations.push((start + group.len() as u64, len));
        group.extend_from_slice(&len.to_le_bytes());
        group.extend_from_slice(&record.value);
    }
    if let Some(tag) = tag {
        group.extend_from_slice(&TAG_MARK.to_le_bytes());
        group.extend_from_slice(&(tag.len() as u32).to_le_bytes());
        group.extend_from_slice(tag);
    }
    let crc = crc32fast::hash(&group);
    group.extend_from_slice(&TRAILER_MARK.to_le_bytes());
    group.extend_from_slice(&(records.len() as u32).to_le_bytes());
    group.extend_from_slice(&next_position.to_le_bytes());
    group.extend_from_slice(&crc.to_le_bytes());
    (group, locations)
}

/// Index entries for one record.
struct Indexed<'a> {
    position: u64,
    location: (u64, u32),
    stream_id: &'a str,
    version: u64,
    event_id: u128,
}

fn index_records<'a>(txn: &WriteTransaction, records: impl Iterator<Item = Indexed<'a>>) -> Result<(), LogError> {
    let mut positions = txn.open_table(POSITIONS).map_err(index_error)?;
    let mut streams = txn.open_table(STREAMS).map_err(index_error)?;
    let mut ids = txn.open_table(EVENT_IDS).map_err(index_error)?;
    for record in records {
        positions.insert(record.position, record.location).map_err(index_error)?;
        streams.insert((record.stream_id, record.version), record.position).map_err(index_error)?;
        ids.insert(record.event_id, record.position).map_err(index_error)?;
    }
    Ok(())
}

/// The segments, the checkpoint and the last tag, as recovery found them.
type Recovered = (Vec<Arc<Segment>>, Checkpoint, Vec<u8>);

/// Reads the groups after `checkpoint` back from the segments and indexes them; cuts off a
/// torn group and any segment after it. Returns the segments, the recovered checkpoint and the
/// last group's tag.
fn recover(index: &Database, dir: &Path, mut checkpoint: Checkpoint, mut tag: Vec<u8>) -> Result<Recovered, LogError> {
    let mut firsts: Vec<u64> = std::fs::read_dir(dir)
        .map_err(io_error("listing", dir))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok()?.strip_suffix(".seg")?.parse().ok())
        .collect();
    firsts.sort_unstable();
    let corrupt = |position: u64, reason: String| LogError::Corrupt { position: Position(position), reason };
    let known = firsts.iter().position(|&first| first == checkpoint.segment);
    let mut segments: Vec<Segment> = Vec::new();
    let Some(known) = known else {
        if checkpoint.head.next_position.0 > 0 {
            return Err(corrupt(checkpoint.segment, format!("segment file {:020}.seg is missing", checkpoint.segment)));
        }
        // An empty log: whatever is there was never committed.
        for first in firsts {
            let path = Segment::path(dir, first);
            std::fs::remove_file(&path).map_err(io_error("removing", &path))?;
        }
        return Ok((Vec::new(), checkpoint, tag));
    };
    for &first in &firsts[..=known] {
        segments.push(Segment::open(dir, first, false)?);
    }
    let mut later = firsts[known + 1..].iter().copied().peekable();
    let txn = index.begin_write().map_err(index_error)?;
    loop {
        let segment = segments.last().expect("the checkpoint's segment");
        let len = segment.len()?;
        if len < checkpoint.end {
            return Err(corrupt(
                checkpoint.head.next_position.0,
                format!("{} is shorter than the index says ({len} < {} bytes)", segment.path.display(), checkpoint.end),
            ));
        }
        // The rest of the segment is read a window at a time, so memory stays near one group.
        let start = checkpoint.end;
        let mut buffer: Vec<u8> = Vec::new();
        let mut buffer_start = start;
        let mut file_pos = start;
        let mut at = 0usize;
        let torn = loop {
            match read_group(&buffer[at..], checkpoint.head) {
                Some(Group { len: group_len, records, tag: group_tag }) => {
                    if let Some(group_tag) = group_tag {
                        tag = buffer[at + group_tag.0..at + group_tag.1].to_vec();
                    }
                    let base = buffer_start + at as u64;
                    let mut head = checkpoint.head;
                    let mut decoded = Vec::with_capacity(records.len());
                    for (offset, len) in records {
                        let value = &buffer[at + offset + 4..at + offset + 4 + len as usize];
                        let envelope = record::decode(head.next_position, value)?;
                        let hash: [u8; 32] = envelope.hash.as_slice().try_into().expect("32-byte hash");
                        decoded.push((head.next_position.0, (base + offset as u64, len), envelope));
                        head = StoreHead { next_position: Position(head.next_position.0 + 1), head_hash: hash };
                    }
                    checkpoint = Checkpoint { head, segment: segment.first, end: base + group_len as u64 };
                    let indexed = decoded.iter().map(|(position, location, envelope)| Indexed {
                        position: *position,
                        location: *location,
                        stream_id: &envelope.stream_id,
                        version: envelope.version,
                        event_id: u128::from_be_bytes(envelope.event_id.as_slice().try_into().unwrap_or_default()),
                    });
                    index_records(&txn, indexed)?;
                    at += group_len;
                }
                // Not a whole group yet: read more of the segment, if there is more.
                None if file_pos < len => {
                    buffer.drain(..at);
                    buffer_start += at as u64;
                    at = 0;
                    let chunk = (len - file_pos).min(RECOVERY_CHUNK_BYTES) as usize;
                    let filled = buffer.len();
                    buffer.resize(filled + chunk, 0);
                    segment
                        .file
                        .read_exact_at(&mut buffer[filled..], file_pos)
                        .map_err(io_error("reading", &segment.path))?;
                    file_pos += chunk as u64;
                }
                // The end of the segment: cleanly after the last group, or inside a torn one.
                None => break at < buffer.len(),
            }
        };
        if torn || later.peek().is_none_or(|&first| first != checkpoint.head.next_position.0) {
            // Cut a torn group, and drop segments no committed group reaches.
            segment.file.set_len(checkpoint.end).map_err(io_error("truncating", &segment.path))?;
            segment.file.sync_all().map_err(io_error("syncing", &segment.path))?;
            for first in later {
                let path = Segment::path(dir, first);
                std::fs::remove_file(&path).map_err(io_error("removing", &path))?;
            }
            break;
        }
        let first = later.next().expect("peeked");
        segments.push(Segment::open(dir, first, false)?);
        checkpoint.segment = first;
        checkpoint.end = 0;
    }
    txn.open_table(META)
        .map_err(index_error)?
        .insert(CHECKPOINT_KEY, checkpoint.encode_with(&tag).as_slice())
        .map_err(index_error)?;
    txn.commit().map_err(index_error)?;
    Ok((segments.into_iter().map(Arc::new).collect(), checkpoint, tag))
}

/// One whole group, parsed: offsets are from the group's start.
struct Group {
    len: usize,
    /// Each record: the offset of its length prefix, and its value's length.
    records: Vec<(usize, u32)>,
    /// Where the tag's bytes are, if the group has one.
    tag: Option<(usize, usize)>,
}

/// Parses one whole group at the start of `bytes`.
/// `None` when it is cut short or its trailer does not match (a write that never completed).
fn read_group(bytes: &[u8], head: StoreHead) -> Option<Group> {
    let mut at = 0usize;
    let mut records = Vec::new();
    let mut tag = None;
    loop {
        let len = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
        if len == TAG_MARK {
            let tag_len = u32::from_le_bytes(bytes.get(at + 4..at + 8)?.try_into().ok()?) as usize;
            bytes.get(at + 8..at + 8 + tag_len)?;
            tag = Some((at + 8, at + 8 + tag_len));
            at += 8 + tag_len;
            continue;
        }
        if len == TRAILER_MARK {
            let trailer = bytes.get(at..at + TRAILER_BYTES)?;
            let count = u32::from_le_bytes(trailer[4..8].try_into().ok()?) as usize;
            let next = u64::from_le_bytes(trailer[8..16].try_into().ok()?);
            let crc = u32::from_le_bytes(trailer[16..20].try_into().ok()?);
            let whole = count == records.len()
                && next == head.next_position.0 + count as u64
                && crc == crc32fast::hash(&bytes[..at]);
            return whole.then_some(Group { len: at + TRAILER_BYTES, records, tag });
        }
        bytes.get(at + 4..at + 4 + len as usize)?;
        records.push((at, len));
        at += 4 + len as usize;
    }
}

impl Store for SegmentStore {
    fn head(&self) -> Result<StoreHead, LogError> {
        Ok(*self.head.read().expect("head lock"))
    }

    fn last_version(&self, stream_id: &StreamId) -> Result<Option<Version>, LogError> {
        let name = stream_id.as_str();
        if let Some(version) = self.overlays.read().expect("overlay lock").last_version(name) {
            return Ok(Some(Version(version)));
        }
        let txn = self.index.begin_read().map_err(index_error)?;
        // A stream's last version is its last key in the stream index: one lookup, and one
        // insert fewer per event than keeping the heads in a table of their own.
        let streams = txn.open_table(STREAMS).map_err(index_error)?;
        let last = streams.range((name, 0)..=(name, u64::MAX)).map_err(index_error)?.next_back();
        last.transpose().map_err(index_error).map(|entry| entry.map(|(key, _)| Version(key.value().1)))
    }

    fn find_event(&self, event_id: &EventId) -> Result<Option<Position>, LogError> {
        Ok(self.find_events(std::slice::from_ref(event_id))?.pop().flatten())
    }

    fn find_events(&self, event_ids: &[EventId]) -> Result<Vec<Option<Position>>, LogError> {
        let mut found: Vec<Option<Position>> = {
            let overlays = self.overlays.read().expect("overlay lock");
            event_ids.iter().map(|id| overlays.find(id_key(id)).map(Position)).collect()
        };
        if found.iter().all(Option::is_some) {
            return Ok(found);
        }
        let txn = self.index.begin_read().map_err(index_error)?;
        let ids = txn.open_table(EVENT_IDS).map_err(index_error)?;
        for (id, slot) in event_ids.iter().zip(found.iter_mut()) {
            if slot.is_none() {
                *slot = ids.get(id_key(id)).map_err(index_error)?.map(|v| Position(v.value()));
            }
        }
        Ok(found)
    }

    fn get(&self, position: Position) -> Result<Option<EventEnvelope>, LogError> {
        if position.0 >= self.committed.load(Ordering::Acquire) {
            return Ok(None);
        }
        let (offset, len) = self.location(position.0)?;
        let segment = self
            .segment_of(position.0)
            .ok_or_else(|| LogError::Corrupt { position, reason: "no segment holds this position".into() })?;
        let mut value = vec![0u8; len as usize];
        segment.file.read_exact_at(&mut value, offset + 4).map_err(|e| LogError::Corrupt {
            position,
            reason: format!("record unreadable in {}: {e}", segment.path.display()),
        })?;
        record::decode(position, &value).map(Some)
    }

    fn stream_positions(
        &self,
        stream_id: &StreamId,
        from: Version,
        backwards: bool,
        limit: usize,
    ) -> Result<Vec<Position>, LogError> {
        let name = stream_id.as_str();
        // The newest entries are in memory; redb holds the older ones (and, after a flush that
        // raced this read, copies of some in-memory ones: those at or past `base` are skipped).
        let (memory, base) = self.overlays.read().expect("overlay lock").stream_entries(name);
        let txn = self.index.begin_read().map_err(index_error)?;
        let streams = txn.open_table(STREAMS).map_err(index_error)?;
        let range = if backwards { streams.range((name, 0)..=(name, from.0)) } else { streams.range((name, from.0)..) }
            .map_err(index_error)?;
        let mut stored = Vec::new();
        let entries: Box<dyn Iterator<Item = _>> = if backwards { Box::new(range.rev()) } else { Box::new(range) };
        for entry in entries {
            let (key, position) = entry.map_err(index_error)?;
            if key.value().0 != name || stored.len() >= limit {
                break;
            }
            if position.value() < base {
                stored.push(Position(position.value()));
            }
        }
        let in_memory =
            memory.iter().filter(|(version, _)| if backwards { *version <= from.0 } else { *version >= from.0 });
        let positions: Vec<Position> = if backwards {
            in_memory.rev().map(|(_, position)| Position(*position)).chain(stored).take(limit).collect()
        } else {
            stored.into_iter().chain(in_memory.map(|(_, position)| Position(*position))).take(limit).collect()
        };
        Ok(positions)
    }

    fn scan(&self, from: Position, visit: &mut dyn FnMut(Position, &[u8]) -> Scan) -> Result<(), LogError> {
        let committed = self.committed.load(Ordering::Acquire);
        let mut position = from.0;
        while position < committed {
            let Some(segment) = self.segment_of(position) else { break };
            let next_first = {
                let segments = self.segments.read().expect("segments lock");
                segments.iter().find(|s| s.first > segment.first).map_or(committed, |s| s.first.min(committed))
            };
            let (offset, _) = self.location(position)?;
            let mut chunks = Chunks::new(&segment.file, offset);
            while position < next_first {
                let corrupt = |e: std::io::Error| LogError::Corrupt {
                    position: Position(position),
                    reason: format!("record unreadable in {}: {e}", segment.path.display()),
                };
                let len = u32::from_le_bytes(chunks.take(4).map_err(corrupt)?.try_into().expect("4 bytes"));
                if len == TRAILER_MARK {
                    chunks.take(TRAILER_BYTES - 4).map_err(corrupt)?;
                    continue;
                }
                if len == TAG_MARK {
                    let tag_len = u32::from_le_bytes(chunks.take(4).map_err(corrupt)?.try_into().expect("4 bytes"));
                    chunks.take(tag_len as usize).map_err(corrupt)?;
                    continue;
                }
                // Visited in place in the chunk: no copy per record.
                let value = chunks.take(len as usize).map_err(corrupt)?;
                if visit(Position(position), value) == Scan::Stop {
                    return Ok(());
                }
                position += 1;
            }
        }
        Ok(())
    }

    fn write(&self, set: WriteSet) -> Result<(), LogError> {
        self.write_group(set, true)
    }

    fn write_deferred(&self, set: WriteSet) -> Result<(), LogError> {
        self.write_group(set, false)
    }

    fn sync(&self) -> Result<(), LogError> {
        let mut tail = self.tail.lock().expect("tail lock");
        self.sync_active(&mut tail)
    }

    fn tag(&self) -> Result<Vec<u8>, LogError> {
        Ok(self.tail.lock().expect("tail lock").tag.clone())
    }

    fn size_on_disk(&self) -> Result<u64, LogError> {
        let mut bytes = std::fs::metadata(&self.index_path).map_err(io_error("reading", &self.index_path))?.len();
        for segment in self.segments.read().expect("segments lock").iter() {
            bytes += segment.len()?;
        }
        Ok(bytes)
    }
}

impl Drop for SegmentStore {
    /// A clean stop makes the index durable, so the next open has nothing to rebuild.
    fn drop(&mut self) {
        // Let the flusher finish what is queued, then write the rest durably here.
        if let Some(flusher) = self.flusher.lock().ok().and_then(|mut flusher| flusher.take()) {
            drop(flusher.queue);
            let _ = flusher.thread.join();
        }
        let flushed = match (self.overlays.write(), self.tail.lock()) {
            (Ok(mut overlays), Ok(mut tail)) if overlays.frozen.is_empty() => {
                self.sync_active(&mut tail).and_then(|()| {
                    let rest = overlays.freeze(tail.checkpoint.encode_with(&tail.tag));
                    write_overlay(&self.index, &rest, true)
                })
            }
            _ => Err(LogError::Internal("an earlier index flush failed".into())),
        };
        if let Err(error) = flushed {
            tracing::warn!(%error, "the event index was not flushed on close; it will be rebuilt from the segments on open");
        }
    }
}

/// Sequential reads of a segment from an offset in chunks, handing out slices of the chunk.
struct Chunks<'f> {
    file: &'f File,
    /// File offset of `buffer[end]`.
    offset: u64,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
}

impl<'f> Chunks<'f> {
    /// The first read is small (a page of a few records is the common case); later ones grow.
    const FIRST: usize = 64 * 1024;
    const MAX: usize = 1024 * 1024;

    fn new(file: &'f File, offset: u64) -> Self {
        Chunks { file, offset, buffer: Vec::new(), start: 0, end: 0 }
    }

    /// The next `n` bytes; an error if the file ends first.
    fn take(&mut self, n: usize) -> std::io::Result<&[u8]> {
        if self.end - self.start < n {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            let want = (self.buffer.len() * 2).clamp(Self::FIRST, Self::MAX).max(n);
            if self.buffer.len() < want {
                self.buffer.resize(want, 0);
            }
            while self.end < n {
                let read = self.file.read_at(&mut self.buffer[self.end..], self.offset)?;
                if read == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                self.end += read;
                self.offset += read as u64;
            }
        }
        let slice = &self.buffer[self.start..self.start + n];
        self.start += n;
        Ok(slice)
    }
}

#[cfg(test)]
mod tests {
    use haven_proto::v1::EventEnvelope;

    use super::*;

    /// Writes `groups` groups of three events each, chained, through the store.
    fn write_groups(store: &SegmentStore, groups: u64) {
        write_groups_of(store, groups, 40);
    }

    fn write_groups_of(store: &SegmentStore, groups: u64, payload_bytes: usize) {
        write_tagged_groups(store, groups, payload_bytes, |_| None);
    }

    /// Writes groups of three events, group `g` tagged with `tag(g)`.
    fn write_tagged_groups(
        store: &SegmentStore,
        groups: u64,
        payload_bytes: usize,
        tag: impl Fn(u64) -> Option<Vec<u8>>,
    ) {
        for group in 0..groups {
            let mut head = store.head().unwrap();
            let mut records = Vec::new();
            for i in 0..3u64 {
                let position = head.next_position;
                let event_id = uuid::Uuid::now_v7();
                let envelope = EventEnvelope {
                    event_id: event_id.as_bytes().to_vec(),
                    stream_id: "seg-a".into(),
                    version: position.0,
                    position: position.0,
                    payload: vec![i as u8; payload_bytes],
                    ..Default::default()
                };
                let (value, hash) = record::encode(&envelope, &head.head_hash);
                records.push(NewRecord {
                    position,
                    stream_id: StreamId::parse("seg-a").unwrap(),
                    version: Version(position.0),
                    event_id: EventId::from_slice(event_id.as_bytes()).unwrap(),
                    value,
                });
                head = StoreHead { next_position: Position(position.0 + 1), head_hash: hash };
            }
            store
                .write(WriteSet {
                    records,
                    stream_heads: vec![(StreamId::parse("seg-a").unwrap(), Version(head.next_position.0 - 1))],
                    head,
                    tag: tag(group),
                })
                .unwrap();
        }
    }

    fn payloads(store: &SegmentStore) -> Vec<u64> {
        let mut seen = Vec::new();
        store
            .scan(Position(0), &mut |position, value| {
                record::decode(position, value).unwrap();
                seen.push(position.0);
                Scan::Continue
            })
            .unwrap();
        seen
    }

    #[test]
    fn a_torn_group_is_cut_off_and_the_rest_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = SegmentStore::open(dir.path(), 1 << 20).unwrap();
        write_groups(&store, 4);
        let head = store.head().unwrap();
        drop(store);
        // A fifth group cut short by a crash: records but no trailer, then half a record.
        let path = Segment::path(&dir.path().join("segments"), 0);
        let file = OpenOptions::new().append(true).open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        file.write_all_at(&[9, 0, 0, 0, 1, 2, 3], len).unwrap();
        let store = SegmentStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.head().unwrap(), head, "the torn group is not part of the log");
        assert_eq!(payloads(&store), (0..12).collect::<Vec<_>>());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len, "the torn bytes were cut off");
        write_groups(&store, 1);
        assert_eq!(payloads(&store), (0..15).collect::<Vec<_>>(), "writing goes on after the cut");
    }

    #[test]
    fn a_lost_index_is_rebuilt_from_the_segments() {
        let dir = tempfile::tempdir().unwrap();
        let store = SegmentStore::open(dir.path(), 1 << 20).unwrap();
        write_groups(&store, 5);
        let head = store.head().unwrap();
        drop(store);
        std::fs::remove_file(dir.path().join("index.redb")).unwrap();
        let store = SegmentStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.head().unwrap(), head);
        assert_eq!(store.last_version(&StreamId::parse("seg-a").unwrap()).unwrap(), Some(Version(14)));
        let positions = store.stream_positions(&StreamId::parse("seg-a").unwrap(), Version(14), true, 3).unwrap();
        assert_eq!(positions, vec![Position(14), Position(13), Position(12)]);
        assert_eq!(store.get(Position(7)).unwrap().unwrap().position, 7);
        assert_eq!(payloads(&store), (0..15).collect::<Vec<_>>());
    }

    #[test]
    fn a_rebuild_reads_groups_across_recovery_windows() {
        let dir = tempfile::tempdir().unwrap();
        let store = SegmentStore::open(dir.path(), 1 << 20).unwrap();
        // 8 groups of 3 × 300 KB: about 7 MB, so groups straddle the 4 MiB read windows.
        write_groups_of(&store, 8, 300_000);
        let head = store.head().unwrap();
        drop(store);
        std::fs::remove_file(dir.path().join("index.redb")).unwrap();
        let store = SegmentStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.head().unwrap(), head);
        assert_eq!(payloads(&store), (0..24).collect::<Vec<_>>());
        assert_eq!(store.get(Position(23)).unwrap().unwrap().payload.len(), 300_000);
    }

    #[test]
    fn reads_join_the_flushed_index_and_the_overlay() {
        let dir = tempfile::tempdir().unwrap();
        let store = SegmentStore::open(dir.path(), 1 << 20).unwrap();
        write_groups(&store, 3); // versions 0..=8
        let checkpoint = store.tail.lock().unwrap().checkpoint;
        store.freeze(&checkpoint, &[]).unwrap();
        // Wait for the flusher to move them to redb (not a speed assertion: it only waits).
        while !store.overlays.read().unwrap().frozen.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        write_groups(&store, 2); // versions 9..=14, in memory only
        let stream = StreamId::parse("seg-a").unwrap();
        let read = |from: u64, backwards: bool, limit: usize| -> Vec<u64> {
            store.stream_positions(&stream, Version(from), backwards, limit).unwrap().iter().map(|p| p.0).collect()
        };
        assert_eq!(read(0, false, 100), (0..15).collect::<Vec<_>>());
        assert_eq!(read(7, false, 5), vec![7, 8, 9, 10, 11]);
        assert_eq!(read(14, true, 100), (0..15).rev().collect::<Vec<_>>());
        assert_eq!(read(10, true, 4), vec![10, 9, 8, 7]);
        assert_eq!(read(3, true, 2), vec![3, 2]);
        assert_eq!(read(12, false, 100), vec![12, 13, 14]);
        assert_eq!(store.last_version(&stream).unwrap(), Some(Version(14)));
        for position in [0u64, 8, 9, 14] {
            let envelope = store.get(Position(position)).unwrap().unwrap();
            let id = EventId::from_slice(&envelope.event_id).unwrap();
            assert_eq!(store.find_events(&[id]).unwrap(), vec![Some(Position(position))]);
        }
        assert_eq!(payloads(&store), (0..15).collect::<Vec<_>>());
    }

    #[test]
    fn the_last_tag_survives_reopening_and_rebuilding_and_reads_skip_tags() {
        let dir = tempfile::tempdir().unwrap();
        let store = SegmentStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.tag().unwrap(), Vec::<u8>::new());
        write_tagged_groups(&store, 4, 40, |g| (g % 2 == 0).then(|| format!("applied {g}").into_bytes()));
        assert_eq!(store.tag().unwrap(), b"applied 2", "untagged groups keep the last tag");
        // A tag with no records: the head stays, the tag moves.
        let head = store.head().unwrap();
        store
            .write(WriteSet { records: vec![], stream_heads: vec![], head, tag: Some(b"membership".to_vec()) })
            .unwrap();
        assert_eq!(store.head().unwrap(), head);
        write_groups(&store, 1);
        let head = store.head().unwrap();
        assert_eq!(payloads(&store), (0..15).collect::<Vec<_>>(), "scans step over tags");
        drop(store);
        let store = SegmentStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!((store.head().unwrap(), store.tag().unwrap()), (head, b"membership".to_vec()));
        drop(store);
        std::fs::remove_file(dir.path().join("index.redb")).unwrap();
        let store = SegmentStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!((store.head().unwrap(), store.tag().unwrap()), (head, b"membership".to_vec()), "rebuilt");
        assert_eq!(payloads(&store), (0..15).collect::<Vec<_>>());
    }

    #[test]
    fn a_group_with_a_bad_trailer_is_refused() {
        let records = vec![NewRecord {
            position: Position(0),
            stream_id: StreamId::parse("seg-a").unwrap(),
            version: Version(0),
            event_id: EventId::from_slice(&[1; 16]).unwrap(),
            value: vec![7; 10],
        }];
        let (group, _) = encode_group(&records, Some(b"applied"), 1, 0);
        assert!(read_group(&group, StoreHead::EMPTY).is_some());
        for cut in 0..group.len() {
            assert!(read_group(&group[..cut], StoreHead::EMPTY).is_none(), "a group cut at {cut} bytes was accepted");
        }
        for byte in 0..group.len() {
            let mut bad = group.clone();
            bad[byte] ^= 0x10;
            assert!(read_group(&bad, StoreHead::EMPTY).is_none(), "a flipped byte {byte} was accepted");
        }
    }
}
