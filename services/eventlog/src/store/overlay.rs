//! The index entries of the newest groups, in memory, until they are flushed to redb in one
//! transaction. Indexing a group costs a few map inserts instead of a redb commit; the
//! segments stay the record, so a crash loses nothing but this cache (recovery re-indexes
//! from the segments).
//!
//! ```text
//!  writer ─▶ active overlay ──(every FLUSH_EVENTS or FLUSH_EVERY)──▶ frozen queue
//!                                         flusher thread ──redb commit, oldest first──▶ dropped
//!  reads:   active ─▶ frozen (newest first) ─▶ redb   (a miss in memory means redb has it)
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

/// One group's worth of entries (or more), for positions `base..base + len`.
#[derive(Debug, Default)]
pub(super) struct Overlay {
    pub base: u64,
    /// Location (offset, len) of each position from `base` on.
    pub locations: Vec<(u64, u32)>,
    /// Per stream: (version, position), ascending.
    pub streams: HashMap<String, Vec<(u64, u64)>>,
    pub ids: HashMap<u128, u64>,
    /// When the first entry arrived.
    pub since: Option<Instant>,
    /// The store's checkpoint after the last group held, encoded: written with the entries.
    pub checkpoint: Vec<u8>,
}

impl Overlay {
    pub fn starting_at(base: u64) -> Self {
        Overlay { base, ..Overlay::default() }
    }

    pub fn len(&self) -> usize {
        self.locations.len()
    }

    pub fn add(&mut self, position: u64, location: (u64, u32), stream_id: &str, version: u64, event_id: u128) {
        debug_assert_eq!(position, self.base + self.locations.len() as u64, "positions arrive in order");
        self.since.get_or_insert_with(Instant::now);
        self.locations.push(location);
        match self.streams.get_mut(stream_id) {
            Some(entries) => entries.push((version, position)),
            None => {
                self.streams.insert(stream_id.to_owned(), vec![(version, position)]);
            }
        }
        self.ids.insert(event_id, position);
    }

    fn location(&self, position: u64) -> Option<(u64, u32)> {
        let index = usize::try_from(position.checked_sub(self.base)?).ok()?;
        self.locations.get(index).copied()
    }
}

/// The active overlay and the frozen ones waiting for (or in) their redb commit, oldest first.
#[derive(Debug)]
pub(super) struct Overlays {
    pub active: Overlay,
    pub frozen: VecDeque<Arc<Overlay>>,
}

impl Overlays {
    pub fn starting_at(base: u64) -> Self {
        Overlays { active: Overlay::starting_at(base), frozen: VecDeque::new() }
    }

    fn both(&self) -> impl Iterator<Item = &Overlay> {
        // Newest first.
        std::iter::once(&self.active).chain(self.frozen.iter().rev().map(|frozen| frozen.as_ref()))
    }

    /// Moves the active overlay to the back of the frozen queue, stamped with `checkpoint`.
    pub fn freeze(&mut self, checkpoint: Vec<u8>) -> Arc<Overlay> {
        let next = self.active.base + self.active.len() as u64;
        let mut frozen = std::mem::replace(&mut self.active, Overlay::starting_at(next));
        frozen.checkpoint = checkpoint;
        let frozen = Arc::new(frozen);
        self.frozen.push_back(Arc::clone(&frozen));
        frozen
    }

    pub fn location(&self, position: u64) -> Option<(u64, u32)> {
        self.both().find_map(|overlay| overlay.location(position))
    }

    pub fn last_version(&self, stream_id: &str) -> Option<u64> {
        self.both().find_map(|overlay| overlay.streams.get(stream_id)?.last().map(|(version, _)| *version))
    }

    pub fn find(&self, event_id: u128) -> Option<u64> {
        self.both().find_map(|overlay| overlay.ids.get(&event_id).copied())
    }

    /// The stream's entries held in memory, oldest first, and the first position held: redb
    /// entries at or past it are duplicates of these (flushed meanwhile) and are skipped.
    pub fn stream_entries(&self, stream_id: &str) -> (Vec<(u64, u64)>, u64) {
        let mut entries = Vec::new();
        for overlay in self.frozen.iter().map(|frozen| frozen.as_ref()).chain(std::iter::once(&self.active)) {
            entries.extend_from_slice(overlay.streams.get(stream_id).map_or(&[][..], Vec::as_slice));
        }
        let base = self.frozen.front().map_or(self.active.base, |frozen| frozen.base);
        (entries, base)
    }
}
