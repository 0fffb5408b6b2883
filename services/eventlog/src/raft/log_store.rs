//! The raft log and vote, on disk.
//!
//! ```text
//!  <dir>/log/<first index:020>.log   entry* = len:u32 LE ‖ crc32(body):u32 LE ‖ body (postcard Entry)
//!  <dir>/vote                          crc32 ‖ postcard Vote          (written to a temporary file,
//!  <dir>/purged                        crc32 ‖ postcard LogId          fsynced, renamed, dir fsynced)
//! ```
//! `append` writes the entries (readable at once) and hands the fsync to the flusher thread,
//! which reports them flushed (openraft's callback) only after the fsync: an entry is never
//! acknowledged before it is on disk. Raft's core does not wait for the disk meanwhile, and
//! the flusher covers every append queued behind one fsync with that one fsync (group commit
//! at the raft log; the batcher does it in front of raft). A vote is written and fsynced
//! before `save_vote` returns. A new file is started once
//! the active one passes [`FILE_BYTES`]; purging deletes whole files below the purge point.
//! On open, a torn entry at the end of the last file (a crash mid-append) is cut off.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, StorageIOError, Vote};

use super::{Entry, LogId, NodeId, StorageError, TypeConfig, decode, encode};

/// A new log file is started once the active one reaches this size.
const FILE_BYTES: u64 = 64 * 1024 * 1024;
const ENTRY_HEADER: usize = 8;

/// Where one entry is.
#[derive(Clone, Copy, Debug)]
struct Location {
    file: u64,
    offset: u64,
    len: u32,
    log_id: LogId,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// Open log files by their first index; the last one is written to.
    files: BTreeMap<u64, Arc<File>>,
    /// End of the active file.
    end: u64,
    entries: BTreeMap<u64, Location>,
    purged: Option<LogId>,
    vote: Option<Vote<NodeId>>,
}

/// The raft log storage. Clones share one log (the reader is a clone).
#[derive(Clone, Debug)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
    flusher: std::sync::mpsc::Sender<Flush>,
}

/// An append waiting for its fsync: the file it was written to and whom to tell.
struct Flush {
    file: Arc<File>,
    callback: LogFlushed<TypeConfig>,
}

impl std::fmt::Debug for Flush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flush").finish_non_exhaustive()
    }
}

/// The flusher thread: takes every append queued, fsyncs each file they wrote once, then
/// reports them flushed in order. Ends when the last `LogStore` clone is dropped.
fn start_flusher() -> std::io::Result<std::sync::mpsc::Sender<Flush>> {
    let (sender, queue) = std::sync::mpsc::channel::<Flush>();
    std::thread::Builder::new().name("haven-raft-log-fsync".into()).spawn(move || {
        while let Ok(first) = queue.recv() {
            let mut batch = vec![first];
            batch.extend(queue.try_iter());
            let mut synced: Vec<&Arc<File>> = Vec::new();
            let mut result: std::io::Result<()> = Ok(());
            for flush in &batch {
                if result.is_ok() && !synced.iter().any(|f| Arc::ptr_eq(f, &flush.file)) {
                    result = flush.file.sync_data();
                    synced.push(&flush.file);
                }
            }
            let failed = result.err().map(|e| (e.kind(), e.to_string()));
            for flush in batch {
                let outcome = match &failed {
                    None => Ok(()),
                    Some((kind, message)) => Err(std::io::Error::new(*kind, message.clone())),
                };
                flush.callback.log_io_completed(outcome);
            }
        }
    })?;
    Ok(sender)
}

fn io_error(e: std::io::Error) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

fn read_error(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_logs(&std::io::Error::other(e.to_string())).into()
}

fn log_path(dir: &Path, first: u64) -> PathBuf {
    dir.join("log").join(format!("{first:020}.log"))
}

/// Writes `bytes` (with a crc) to `dir/name` atomically and durably.
fn write_small(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut framed = crc32fast::hash(bytes).to_le_bytes().to_vec();
    framed.extend_from_slice(bytes);
    let file = File::create(&tmp)?;
    file.write_all_at(&framed, 0)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

fn read_small(dir: &Path, name: &str) -> std::io::Result<Option<Vec<u8>>> {
    let bytes = match std::fs::read(dir.join(name)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let (crc, body) = bytes.split_first_chunk::<4>().ok_or_else(|| std::io::Error::other(format!("{name}: short")))?;
    if u32::from_le_bytes(*crc) != crc32fast::hash(body) {
        return Err(std::io::Error::other(format!("{name}: checksum mismatch")));
    }
    Ok(Some(body.to_vec()))
}

impl LogStore {
    /// Opens (or creates) the raft log in `dir`.
    pub fn open(dir: &Path) -> Result<LogStore, StorageError> {
        std::fs::create_dir_all(dir.join("log")).map_err(io_error)?;
        let vote = read_small(dir, "vote").map_err(io_error)?.map(|b| decode(&b, "raft vote")).transpose();
        let vote = vote.map_err(read_error)?;
        let purged = read_small(dir, "purged").map_err(io_error)?.map(|b| decode(&b, "raft purge point")).transpose();
        let purged: Option<LogId> = purged.map_err(read_error)?;
        let mut firsts: Vec<u64> = std::fs::read_dir(dir.join("log"))
            .map_err(io_error)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".log")?.parse().ok())
            .collect();
        firsts.sort_unstable();
        let mut inner =
            Inner { dir: dir.to_owned(), files: BTreeMap::new(), end: 0, entries: BTreeMap::new(), purged, vote };
        let count = firsts.len();
        for (i, first) in firsts.into_iter().enumerate() {
            let path = log_path(dir, first);
            let file = OpenOptions::new().read(true).write(true).open(&path).map_err(io_error)?;
            let bytes = std::fs::read(&path).map_err(io_error)?;
            let mut at = 0usize;
            while let Some((len, entry)) = parse_entry(&bytes[at..]) {
                let index = entry.log_id.index;
                if purged.is_none_or(|p| index > p.index) {
                    inner.entries.insert(index, Location { file: first, offset: at as u64, len, log_id: entry.log_id });
                }
                at += ENTRY_HEADER + len as usize;
            }
            if at < bytes.len() {
                if i + 1 < count {
                    return Err(read_error(format!("{}: damaged entry at byte {at}", path.display())));
                }
                // A torn append: it was never reported flushed.
                file.set_len(at as u64).map_err(io_error)?;
                file.sync_all().map_err(io_error)?;
            }
            inner.end = at as u64;
            inner.files.insert(first, Arc::new(file));
        }
        Ok(LogStore { inner: Arc::new(Mutex::new(inner)), flusher: start_flusher().map_err(io_error)? })
    }
}

fn parse_entry(bytes: &[u8]) -> Option<(u32, Entry)> {
    let header = bytes.get(..ENTRY_HEADER)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?);
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let body = bytes.get(ENTRY_HEADER..ENTRY_HEADER + len as usize)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    Some((len, postcard::from_bytes(body).ok()?))
}

impl Inner {
    fn read(&self, range: impl RangeBounds<u64>) -> Result<Vec<Entry>, StorageError> {
        let mut out = Vec::new();
        for location in self.entries.range(range).map(|(_, l)| *l) {
            let file = &self.files[&location.file];
            let mut bytes = vec![0u8; ENTRY_HEADER + location.len as usize];
            file.read_exact_at(&mut bytes, location.offset).map_err(io_error)?;
            let (_, entry) = parse_entry(&bytes)
                .ok_or_else(|| read_error(format!("raft log entry {} fails its checksum", location.log_id.index)))?;
            out.push(entry);
        }
        Ok(out)
    }

    /// Writes the entries to the active file, not yet fsynced; returns that file.
    fn append(&mut self, entries: Vec<Entry>) -> std::io::Result<Option<Arc<File>>> {
        let Some(first) = entries.first() else { return Ok(None) };
        if self.files.is_empty() || self.end >= FILE_BYTES {
            let index = first.log_id.index;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(log_path(&self.dir, index))?;
            File::open(self.dir.join("log"))?.sync_all()?;
            self.files.insert(index, Arc::new(file));
            self.end = 0;
        }
        let (&active, file) = self.files.last_key_value().expect("an active file");
        let mut bytes = Vec::new();
        let mut locations = Vec::with_capacity(entries.len());
        for entry in &entries {
            let body = encode(entry);
            let len = u32::try_from(body.len()).map_err(|_| std::io::Error::other("raft entry over 4 GiB"))?;
            locations.push(Location { file: active, offset: self.end + bytes.len() as u64, len, log_id: entry.log_id });
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
            bytes.extend_from_slice(&body);
        }
        file.write_all_at(&bytes, self.end)?;
        self.end += bytes.len() as u64;
        for location in locations {
            self.entries.insert(location.log_id.index, location);
        }
        Ok(Some(Arc::clone(file)))
    }

    /// Removes the entries from `index` on.
    fn truncate(&mut self, index: u64) -> std::io::Result<()> {
        let Some(location) = self.entries.get(&index).copied() else { return Ok(()) };
        let later: Vec<u64> = self.files.range(location.file + 1..).map(|(first, _)| *first).collect();
        for first in later {
            self.files.remove(&first);
            std::fs::remove_file(log_path(&self.dir, first))?;
        }
        let file = &self.files[&location.file];
        file.set_len(location.offset)?;
        file.sync_all()?;
        self.end = location.offset;
        self.entries.split_off(&index);
        Ok(())
    }

    /// Forgets the entries up to `log_id` and deletes files that hold nothing newer.
    fn purge(&mut self, log_id: LogId) -> std::io::Result<()> {
        write_small(&self.dir, "purged", &encode(&log_id))?;
        self.purged = Some(log_id);
        self.entries = self.entries.split_off(&(log_id.index + 1));
        let firsts: Vec<u64> = self.files.keys().copied().collect();
        for pair in firsts.windows(2) {
            // Every entry of `pair[0]` is below `pair[1]`: all purged when pair[1] <= index + 1.
            if pair[1] <= log_id.index + 1 {
                self.files.remove(&pair[0]);
                std::fs::remove_file(log_path(&self.dir, pair[0]))?;
            }
        }
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let range = (clone_bound(range.start_bound()), clone_bound(range.end_bound()));
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.lock().expect("raft log lock").read(range)).await
    }
}

fn clone_bound(bound: Bound<&u64>) -> Bound<u64> {
    bound.cloned()
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| read_error(format!("raft log task failed: {e}")))?
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.inner.lock().expect("raft log lock");
        let last = inner.entries.last_key_value().map(|(_, l)| l.log_id).or(inner.purged);
        Ok(LogState { last_purged_log_id: inner.purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let inner = Arc::clone(&self.inner);
        let vote = *vote;
        blocking(move || {
            let mut inner = inner.lock().expect("raft log lock");
            write_small(&inner.dir, "vote", &encode(&vote)).map_err(|e| StorageIOError::write_vote(&e))?;
            inner.vote = Some(vote);
            Ok(())
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        Ok(self.inner.lock().expect("raft log lock").vote)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        // Into the page cache (readable at once); reported flushed by the flusher after fsync.
        let written = self.inner.lock().expect("raft log lock").append(entries);
        match written {
            Ok(Some(file)) => {
                self.flusher
                    .send(Flush { file, callback })
                    .map_err(|_| io_error(std::io::Error::other("the raft log's flusher thread stopped")))?;
                Ok(())
            }
            Ok(None) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let error = io_error(std::io::Error::new(e.kind(), e.to_string()));
                callback.log_io_completed(Err(e));
                Err(error)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.lock().expect("raft log lock").truncate(log_id.index).map_err(io_error)).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.lock().expect("raft log lock").purge(log_id).map_err(io_error)).await
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn blank(term: u64, index: u64) -> Entry {
        Entry { log_id: LogId::new(CommittedLeaderId::new(term, 1), index), payload: EntryPayload::Blank }
    }

    #[test]
    fn a_torn_append_is_cut_off_and_files_roll_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LogStore::open(dir.path()).unwrap();
            let mut inner = store.inner.lock().unwrap();
            inner.append((1..=5).map(|i| blank(1, i)).collect()).unwrap();
            // Force a second file.
            inner.end = FILE_BYTES;
            inner.append((6..=8).map(|i| blank(1, i)).collect()).unwrap();
            assert_eq!(inner.files.len(), 2);
        }
        // Half an entry at the end, as if the process died mid-write.
        let path = log_path(dir.path(), 6);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        file.write_all_at(&[40, 0, 0, 0, 1, 2], len).unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        {
            let inner = store.inner.lock().unwrap();
            assert_eq!(inner.entries.keys().copied().collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
            assert_eq!(std::fs::metadata(&path).unwrap().len(), len, "the torn bytes are gone");
        }
        {
            let mut inner = store.inner.lock().unwrap();
            inner.truncate(7).unwrap();
            inner.append(vec![blank(2, 7)]).unwrap();
            let read = inner.read(6..).unwrap();
            assert_eq!(
                read.iter().map(|e| (e.log_id.leader_id.term, e.log_id.index)).collect::<Vec<_>>(),
                vec![(1, 6), (2, 7)]
            );
            inner.purge(blank(1, 6).log_id).unwrap();
            assert_eq!(inner.files.len(), 1, "the first file held only purged entries");
        }
        drop(store);
        let store = LogStore::open(dir.path()).unwrap();
        let inner = store.inner.lock().unwrap();
        assert_eq!(inner.entries.keys().copied().collect::<Vec<_>>(), vec![7]);
        assert_eq!(inner.purged.map(|p| p.index), Some(6));
        assert_eq!(inner.read(7..).unwrap()[0].log_id.leader_id.term, 2);
    }
}
