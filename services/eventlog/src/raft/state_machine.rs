//! The raft state machine: the event store itself.
//!
//! Applying entries plans their calls with the same [`Planner`] as the single writer and
//! writes the result as one store group whose tag is `(last applied log id, membership)`,
//! so the applied point is always exactly the events on disk. Entries that write no events
//! (blank entries, refused calls) leave the tag behind; re-applying them after a restart
//! meets the same store and gives the same answer, so that is safe. Membership changes and
//! snapshots write a tag-only group, so a purged raft log never holds the only record of
//! where the store stands.
//!
//! Applied groups are written with [`Store::write_deferred`]: the raft log, fsynced on a
//! majority before an entry commits, is what makes an append durable, so the store is not
//! fsynced again on the reply's path. It is fsynced before a snapshot (the applied tag is
//! written durably first), so the raft log is never purged past what the store holds on
//! disk; after a power loss the store ends at an earlier group and raft applies the rest
//! again, the same way.
//!
//! A snapshot is the store's events below a position. Because every node applies the same
//! committed entries in the same order, a follower's store is always a prefix of the
//! leader's: sending a snapshot sends only the records the follower lacks (network.rs), and
//! installing it appends them, checking the hash chain as it goes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use haven_eventlog_client::LogError;
use haven_kernel::Position;
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Entry, LogId, Membership, Reply, StorageError, TypeConfig, decode, encode};
use crate::metrics::LogMetrics;
use crate::planner::Planner;
use crate::store::{Scan, Store, StoreHead, Visit, WriteSet, install_records};

/// Most bytes written in one group while applying.
const GROUP_BYTES: usize = crate::store::INSTALL_GROUP_BYTES;

/// What the store's tag holds in raft mode.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Applied {
    log_id: Option<LogId>,
    membership: Membership,
}

/// A snapshot's contents: the store's records below `head`.
#[derive(Debug)]
pub enum SnapshotData {
    /// Built on this node: read from the store when sent.
    Built { store: Arc<dyn Store>, head: StoreHead },
    /// Received from the leader: the records from `from` on, staged in `path` as
    /// `len:u32 LE ‖ value` each.
    Received { path: PathBuf, from: Position, head: StoreHead },
}

/// The latest snapshot: its metadata and the store head it covers.
type Current = (SnapshotMeta<u64, openraft::BasicNode>, StoreHead);

/// The state machine over one store.
#[derive(Debug)]
pub struct StateMachine {
    store: Arc<dyn Store>,
    head: Arc<watch::Sender<StoreHead>>,
    applied: Applied,
    /// The latest snapshot (shared with its builders).
    current: Arc<Mutex<Option<Current>>>,
    metrics: LogMetrics,
    in_use: InUse,
    /// Entry bytes applied since the last snapshot, and who is told when they pass
    /// [`SNAPSHOT_EVERY_BYTES`].
    since_snapshot: usize,
    snapshot_due: Arc<tokio::sync::Notify>,
}

/// A snapshot is asked for once this many entry bytes were applied since the last one, as
/// well as every `snapshot_every` entries: openraft 0.9 counts entries only, and with entries
/// of up to a MiB its count alone would let the raft log reach gigabytes before a purge.
pub(crate) const SNAPSHOT_EVERY_BYTES: usize = 64 * 1024 * 1024;

/// A copy is held by the state machine and by each snapshot builder. openraft ends its
/// state-machine task only after `Raft::shutdown` has returned, and the store stays open
/// (its files locked) until that task has dropped it; [`Released::wait`] is how a node that
/// shuts down waits for it, so the directory can be opened again at once.
#[derive(Clone, Debug)]
struct InUse(#[allow(dead_code)] tokio::sync::mpsc::Sender<()>);

/// Resolves once the state machine and every snapshot builder are dropped.
#[derive(Debug)]
pub(crate) struct Released(tokio::sync::mpsc::Receiver<()>);

impl Released {
    /// Waits until every copy is dropped, up to `timeout`; false if one is still held.
    pub(crate) async fn wait(&mut self, timeout: std::time::Duration) -> bool {
        tokio::time::timeout(timeout, self.0.recv()).await.is_ok()
    }
}

fn sm_error(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(&std::io::Error::other(e.to_string())).into()
}

fn snapshot_id(log_id: Option<LogId>, head: StoreHead) -> String {
    match log_id {
        Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, head.next_position.0),
        None => format!("0-0-{}", head.next_position.0),
    }
}

impl StateMachine {
    /// The state machine over `store`, where the last write's tag says what was applied. The
    /// store's head is published on `head` after every write.
    pub fn open(store: Arc<dyn Store>, head: Arc<watch::Sender<StoreHead>>) -> Result<Self, LogError> {
        Self::with_metrics(store, head, LogMetrics::default()).map(|(state_machine, _)| state_machine)
    }

    pub(crate) fn with_metrics(
        store: Arc<dyn Store>,
        head: Arc<watch::Sender<StoreHead>>,
        metrics: LogMetrics,
    ) -> Result<(Self, Released), LogError> {
        let tag = store.tag()?;
        let applied: Applied = if tag.is_empty() { Applied::default() } else { decode(&tag, "applied log id")? };
        let store_head = store.head()?;
        let current = applied.log_id.map(|log_id| {
            let meta = SnapshotMeta {
                last_log_id: Some(log_id),
                last_membership: applied.membership.clone(),
                snapshot_id: snapshot_id(Some(log_id), store_head),
            };
            (meta, store_head)
        });
        let (in_use, released) = tokio::sync::mpsc::channel(1);
        let current = Arc::new(Mutex::new(current));
        let state_machine = StateMachine {
            store,
            head,
            applied,
            current,
            metrics,
            in_use: InUse(in_use),
            since_snapshot: 0,
            snapshot_due: Arc::new(tokio::sync::Notify::new()),
        };
        Ok((state_machine, Released(released)))
    }

    /// Notified when [`SNAPSHOT_EVERY_BYTES`] were applied since the last snapshot.
    pub(crate) fn snapshot_due(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.snapshot_due)
    }

    fn tag(&self) -> Vec<u8> {
        encode(&self.applied)
    }

    /// Writes a group with no events, only the tag: the applied point made durable.
    fn write_tag(&self) -> Result<(), StorageError> {
        let head = self.store.head().map_err(sm_error)?;
        let set = WriteSet { records: Vec::new(), stream_heads: Vec::new(), head, tag: Some(self.tag()) };
        self.store.write(set).map_err(sm_error)
    }

    fn publish(&self, head: StoreHead, events: usize) {
        self.head.send_replace(head);
        if events > 0 {
            self.metrics.events_appended.inc_by(events as u64);
            self.metrics.group_commits.inc();
            self.metrics.group_events.observe(events as f64);
        }
        self.metrics.head_position.set(head.next_position.0 as i64);
    }
}

/// Applies entries: plans every call, writes groups of at most [`GROUP_BYTES`], each tagged
/// with the log id of the last entry it completes.
fn apply_entries(
    store: &dyn Store,
    entries: Vec<Entry>,
    applied: &mut Applied,
) -> Result<(Vec<Reply>, StoreHead, usize), StorageError> {
    let mut head = store.head().map_err(sm_error)?;
    let mut replies = Vec::with_capacity(entries.len());
    let mut planner = Planner::new(store, head, prost_types::Timestamp::default());
    let mut written = 0usize;
    let mut tag_due = false;
    let count = entries.len();
    for (i, entry) in entries.into_iter().enumerate() {
        applied.log_id = Some(entry.log_id);
        match entry.payload {
            EntryPayload::Blank => replies.push(Reply::default()),
            EntryPayload::Normal(command) => {
                let calls = match command.decode() {
                    Ok((recorded_at, calls)) => {
                        planner.set_recorded_at(recorded_at);
                        calls.iter().map(|call| planner.plan(call)).collect()
                    }
                    // Every node refuses the same bytes the same way.
                    Err(error) => {
                        tracing::error!(%error, index = entry.log_id.index, "raft entry refused");
                        Vec::new()
                    }
                };
                replies.push(Reply { calls });
            }
            EntryPayload::Membership(membership) => {
                applied.membership = Membership::new(Some(entry.log_id), membership);
                tag_due = true;
                replies.push(Reply::default());
            }
        }
        if planner.bytes() >= GROUP_BYTES || i + 1 == count {
            let finished = std::mem::replace(&mut planner, Planner::new(store, head, Default::default()));
            let (set, new_head) = finished.finish();
            head = new_head;
            match set {
                Some(mut set) => {
                    written += set.records.len();
                    set.tag = Some(encode(applied));
                    // Not fsynced here: the committed raft log holds these entries on a
                    // majority until a snapshot (which fsyncs the store first) lets it purge.
                    store.write_deferred(set).map_err(sm_error)?;
                    tag_due = false;
                }
                None if tag_due => {
                    let set =
                        WriteSet { records: Vec::new(), stream_heads: Vec::new(), head, tag: Some(encode(applied)) };
                    store.write(set).map_err(sm_error)?;
                    tag_due = false;
                }
                None => {}
            }
            planner = Planner::new(store, head, Default::default());
        }
    }
    Ok((replies, head, written))
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), StorageError> {
        Ok((self.applied.log_id, self.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        self.since_snapshot += entries
            .iter()
            .map(|entry| match &entry.payload {
                EntryPayload::Normal(command) => command.encoded.len(),
                _ => 0,
            })
            .sum::<usize>();
        if self.since_snapshot >= SNAPSHOT_EVERY_BYTES {
            self.since_snapshot = 0;
            self.snapshot_due.notify_one();
        }
        let store = Arc::clone(&self.store);
        let mut applied = std::mem::take(&mut self.applied);
        let started = std::time::Instant::now();
        let (result, applied) = tokio::task::spawn_blocking(move || {
            let result = apply_entries(store.as_ref(), entries, &mut applied);
            (result, applied)
        })
        .await
        .map_err(sm_error)?;
        self.applied = applied;
        let (replies, head, written) = result.inspect_err(|_| {
            self.metrics.failed_writes.inc();
        })?;
        if written > 0 {
            self.metrics.write_seconds.observe(started.elapsed().as_secs_f64());
        }
        self.publish(head, written);
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        // The applied point is made durable before a snapshot can let raft purge its log.
        self.since_snapshot = 0;
        let durable = self.write_tag();
        let head = self.store.head();
        SnapshotBuilder {
            store: Arc::clone(&self.store),
            log_id: self.applied.log_id,
            membership: self.applied.membership.clone(),
            head: durable.and_then(|()| head.map_err(sm_error)),
            current: Arc::clone(&self.current),
            _in_use: self.in_use.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotData>, StorageError> {
        // Snapshots arrive through the Raft service's InstallSnapshot stream, never here.
        let head = self.store.head().map_err(sm_error)?;
        Ok(Box::new(SnapshotData::Built { store: Arc::clone(&self.store), head }))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<SnapshotData>,
    ) -> Result<(), StorageError> {
        let own = self.store.head().map_err(sm_error)?;
        let head = match *snapshot {
            SnapshotData::Built { store, head } => {
                let from = own.next_position;
                install_records(
                    self.store.as_ref(),
                    &mut |visit| {
                        let mut failed = Ok(());
                        store.scan(from, &mut |position, value| {
                            if position >= head.next_position {
                                return Scan::Stop;
                            }
                            failed = visit(position, value);
                            if failed.is_ok() { Scan::Continue } else { Scan::Stop }
                        })?;
                        failed
                    },
                    head,
                )
            }
            SnapshotData::Received { path, from, head } => {
                if from != own.next_position {
                    return Err(sm_error(format!(
                        "snapshot starts at position {} but this node's log ends at {}",
                        from.0, own.next_position.0
                    )));
                }
                let result = install_records(self.store.as_ref(), &mut |visit| read_staged(&path, from, visit), head);
                let _ = std::fs::remove_file(&path);
                result
            }
        }
        .map_err(sm_error)?;
        self.applied = Applied { log_id: meta.last_log_id, membership: meta.last_membership.clone() };
        self.write_tag()?;
        *self.current.lock().expect("snapshot lock") = Some((meta.clone(), head));
        self.publish(head, 0);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current = self.current.lock().expect("snapshot lock").clone();
        Ok(current.map(|(meta, head)| Snapshot {
            meta,
            snapshot: Box::new(SnapshotData::Built { store: Arc::clone(&self.store), head }),
        }))
    }
}

/// Visits the records staged in `path`, in order from `from`.
fn read_staged(path: &std::path::Path, from: Position, visit: &mut Visit<'_>) -> Result<(), LogError> {
    let bytes = std::fs::read(path).map_err(|e| LogError::Internal(format!("reading {}: {e}", path.display())))?;
    let mut at = 0usize;
    let mut position = from;
    while at < bytes.len() {
        let len = bytes.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize);
        let value = len.and_then(|len| bytes.get(at + 4..at + 4 + len));
        let Some(value) = value else {
            return Err(LogError::Corrupt { position, reason: "staged snapshot cut short".into() });
        };
        visit(position, value)?;
        at += 4 + value.len();
        position = Position(position.0 + 1);
    }
    Ok(())
}

/// Builds a snapshot: the store below the head when it was asked for (made durable first).
#[derive(Debug)]
pub struct SnapshotBuilder {
    store: Arc<dyn Store>,
    log_id: Option<LogId>,
    membership: Membership,
    head: Result<StoreHead, StorageError>,
    current: Arc<Mutex<Option<Current>>>,
    _in_use: InUse,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let head = self.head.clone()?;
        let meta = SnapshotMeta {
            last_log_id: self.log_id,
            last_membership: self.membership.clone(),
            snapshot_id: snapshot_id(self.log_id, head),
        };
        *self.current.lock().expect("snapshot lock") = Some((meta.clone(), head));
        Ok(Snapshot { meta, snapshot: Box::new(SnapshotData::Built { store: Arc::clone(&self.store), head }) })
    }
}
