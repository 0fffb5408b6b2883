//! Backups: every stored record below one position, verbatim, in one file — and the restore
//! that turns such a file into a new node's store.
//!
//! ```text
//!  "HAVEN-BACKUP 1\n"
//!  header   u32 LE length ‖ JSON {"next_position": N, "head_hash": hex, "created_at": unix s}
//!  records  len:u32 LE ‖ stored value (checksum ‖ hash ‖ body)      for positions 0..N
//!  trailer  "HAVEN-END\n" ‖ u64 LE record count ‖ head hash [32]
//! ```
//! A backup is taken online from a running node (`Cluster.Backup`, `haven log backup`): the
//! node fixes its head after a linearizable read barrier and streams what lies below it. The
//! writer checks every record's checksum and chain link as it arrives and writes to
//! `FILE.partial`, fsyncs, then renames — a file named FILE is always whole. Restore checks
//! the same again (the file may have rotted since) and writes into an empty directory only;
//! on any error it removes what it wrote.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use haven_eventlog_client::LogError;
use haven_kernel::Position;
use serde::{Deserialize, Serialize};

use crate::store::{SegmentStore, Store, StoreHead, check_link, install_records};

const MAGIC: &[u8] = b"HAVEN-BACKUP 1\n";
const TRAILER: &[u8] = b"HAVEN-END\n";
/// A header longer than this is not one of ours.
const MAX_HEADER_BYTES: u32 = 64 * 1024;
/// A stored value is at most an event's limit plus its envelope; anything larger is damage.
const MAX_RECORD_BYTES: u32 = 64 * 1024 * 1024;

/// What a backup file says of itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    /// The backup holds positions `0..next_position`.
    pub next_position: u64,
    /// The hash of the event at `next_position - 1` (the chain's genesis for an empty log), hex.
    pub head_hash: String,
    /// When the backup was taken, Unix seconds.
    pub created_at: i64,
}

impl BackupHeader {
    fn head(&self) -> Result<StoreHead, LogError> {
        let hash = hex::decode(&self.head_hash)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| LogError::invalid("backup header", "head_hash is not 32 bytes of hex"))?;
        Ok(StoreHead { next_position: Position(self.next_position), head_hash: hash })
    }
}

/// Writes a backup file from the chunks a node streams, checking each record on the way.
#[derive(Debug)]
pub struct BackupWriter {
    partial: PathBuf,
    path: PathBuf,
    out: BufWriter<File>,
    target: StoreHead,
    head: StoreHead,
}

impl BackupWriter {
    /// Starts `path` (as `path.partial` until [`BackupWriter::finish`]) for a backup ending
    /// before `target`. Refuses to overwrite an existing file.
    pub fn create(path: &Path, target: StoreHead, created_at: i64) -> Result<Self, LogError> {
        if path.exists() {
            return Err(LogError::invalid(
                "out",
                format!("{} already exists; a backup never overwrites", path.display()),
            ));
        }
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = File::create(&partial)
            .map_err(|e| LogError::invalid("out", format!("cannot create {}: {e}", partial.display())))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let header = BackupHeader {
            next_position: target.next_position.0,
            head_hash: hex::encode(target.head_hash),
            created_at,
        };
        let json = serde_json::to_vec(&header).expect("a header serialises");
        let write = |out: &mut BufWriter<File>| -> std::io::Result<()> {
            out.write_all(MAGIC)?;
            out.write_all(&(json.len() as u32).to_le_bytes())?;
            out.write_all(&json)
        };
        write(&mut out).map_err(|e| io_error(&partial, e))?;
        Ok(BackupWriter { partial, path: path.to_owned(), out, target, head: StoreHead::EMPTY })
    }

    /// Appends a chunk of `len:u32 LE ‖ stored value` records, each checked against the chain.
    pub fn write_records(&mut self, records: &[u8]) -> Result<(), LogError> {
        let mut at = 0usize;
        while at < records.len() {
            let position = self.head.next_position;
            let value = records
                .get(at..at + 4)
                .map(|len| u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize)
                .and_then(|len| records.get(at + 4..at + 4 + len))
                .ok_or_else(|| LogError::Corrupt { position, reason: "a backup chunk ends inside a record".into() })?;
            self.head = check_link(self.head, value)?;
            if self.head.next_position > self.target.next_position {
                return Err(LogError::Corrupt {
                    position,
                    reason: "the node sent records past the backup's end".into(),
                });
            }
            at += 4 + value.len();
        }
        self.out.write_all(records).map_err(|e| io_error(&self.partial, e))
    }

    /// Checks the backup reached its end, writes the trailer, fsyncs and renames the file into
    /// place. Returns the head it ends at.
    pub fn finish(mut self) -> Result<StoreHead, LogError> {
        if self.head != self.target {
            return Err(LogError::Corrupt {
                position: self.head.next_position,
                reason: format!("the stream ended at position {} before the backup's end", self.head.next_position.0),
            });
        }
        let mut trailer = TRAILER.to_vec();
        trailer.extend_from_slice(&self.head.next_position.0.to_le_bytes());
        trailer.extend_from_slice(&self.head.head_hash);
        self.out.write_all(&trailer).map_err(|e| io_error(&self.partial, e))?;
        let file = self.out.into_inner().map_err(|e| io_error(&self.partial, e.into_error()))?;
        file.sync_all().map_err(|e| io_error(&self.partial, e))?;
        std::fs::rename(&self.partial, &self.path).map_err(|e| io_error(&self.path, e))?;
        if let Some(dir) = self.path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            File::open(dir).and_then(|dir| dir.sync_all()).map_err(|e| io_error(dir, e))?;
        }
        Ok(self.head)
    }

    /// Removes the partial file (after a failed backup).
    pub fn abandon(self) {
        drop(self.out);
        let _ = std::fs::remove_file(&self.partial);
    }
}

/// Takes an online backup from the node behind `channel` (its `haven.v1.Cluster` service)
/// into `out`, which must not exist: `out.partial` is written, checked record by record,
/// fsynced and renamed; on any error it is removed. Returns the head the backup ends at.
pub async fn take(channel: tonic::transport::Channel, out: &Path, created_at: i64) -> Result<StoreHead, LogError> {
    let unavailable = |what: &str, e: tonic::Status| LogError::Unavailable(format!("{what}: {}", e.message()));
    let mut client = haven_proto::v1::cluster_client::ClusterClient::new(channel)
        .max_decoding_message_size(MAX_RECORD_BYTES as usize + 1024);
    let mut stream = client
        .backup(haven_runtime::internal::request(haven_proto::v1::BackupRequest {}))
        .await
        .map_err(|e| unavailable("the node refused the backup", e))?
        .into_inner();
    let first = stream
        .message()
        .await
        .map_err(|e| unavailable("reading the backup's first chunk", e))?
        .ok_or_else(|| LogError::Unavailable("the node closed the backup stream at once".into()))?;
    let head_hash: [u8; 32] = first
        .head_hash
        .as_slice()
        .try_into()
        .map_err(|_| LogError::Unavailable("the node sent a head hash that is not 32 bytes".into()))?;
    let target = StoreHead { next_position: Position(first.next_position), head_hash };
    let mut writer = BackupWriter::create(out, target, created_at)?;
    let copied = async {
        writer.write_records(&first.records)?;
        while let Some(chunk) = stream.message().await.map_err(|e| unavailable("reading the backup stream", e))? {
            writer.write_records(&chunk.records)?;
        }
        Ok(())
    }
    .await;
    match copied {
        Ok(()) => writer.finish(),
        Err(error) => {
            writer.abandon();
            Err(error)
        }
    }
}

fn io_error(path: &Path, e: std::io::Error) -> LogError {
    LogError::Unavailable(format!("{}: {e}", path.display()))
}

/// What a restore wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    pub header: BackupHeader,
    pub head: StoreHead,
}

/// Restores the backup `file` into `store_dir`, which must not exist or be empty: every
/// record is checked (checksum, chain, the header's head and the trailer) as it is written.
/// On any error nothing is left behind in `store_dir`.
pub fn restore(file: &Path, store_dir: &Path) -> Result<Restored, LogError> {
    let non_empty = std::fs::read_dir(store_dir).map(|mut entries| entries.next().is_some()).unwrap_or(false);
    if non_empty {
        return Err(LogError::invalid(
            "data_dir",
            format!("{} is not empty; a restore writes only into a new directory", store_dir.display()),
        ));
    }
    let opened =
        File::open(file).map_err(|e| LogError::invalid("from", format!("cannot open {}: {e}", file.display())))?;
    let mut input = BufReader::with_capacity(1 << 20, opened);
    let header = read_header(&mut input)?;
    let target = header.head()?;
    let created = !store_dir.exists();
    let result = (|| {
        let store = SegmentStore::open(store_dir, 16 * 1024 * 1024)?;
        let mut value = Vec::new();
        let head = install_records(
            &store,
            &mut |visit| {
                for position in 0..target.next_position.0 {
                    read_record(&mut input, Position(position), &mut value)?;
                    visit(Position(position), &value)?;
                }
                Ok(())
            },
            target,
        )?;
        read_trailer(&mut input, head)?;
        store.sync()?;
        Ok(head)
    })();
    match result {
        Ok(head) => Ok(Restored { header, head }),
        Err(error) => {
            if created {
                let _ = std::fs::remove_dir_all(store_dir);
            } else if let Ok(entries) = std::fs::read_dir(store_dir) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
                }
            }
            Err(error)
        }
    }
}

/// Reads a backup file's header without reading the rest.
pub fn read_header(input: &mut impl Read) -> Result<BackupHeader, LogError> {
    let not_ours = |reason: &str| LogError::invalid("from", format!("not a Haven backup: {reason}"));
    let mut magic = vec![0; MAGIC.len()];
    input.read_exact(&mut magic).map_err(|_| not_ours("too short"))?;
    if magic != MAGIC {
        return Err(not_ours("it does not start with HAVEN-BACKUP 1"));
    }
    let mut len = [0; 4];
    input.read_exact(&mut len).map_err(|_| not_ours("the header is cut short"))?;
    let len = u32::from_le_bytes(len);
    if len > MAX_HEADER_BYTES {
        return Err(not_ours("the header is too long"));
    }
    let mut json = vec![0; len as usize];
    input.read_exact(&mut json).map_err(|_| not_ours("the header is cut short"))?;
    serde_json::from_slice(&json).map_err(|e| not_ours(&format!("the header is unreadable: {e}")))
}

fn read_record(input: &mut impl Read, position: Position, value: &mut Vec<u8>) -> Result<(), LogError> {
    let cut = || LogError::Corrupt { position, reason: "the backup ends before this record".into() };
    let mut len = [0; 4];
    input.read_exact(&mut len).map_err(|_| cut())?;
    let len = u32::from_le_bytes(len);
    if len > MAX_RECORD_BYTES {
        return Err(LogError::Corrupt { position, reason: format!("a record claims {len} bytes") });
    }
    value.resize(len as usize, 0);
    input.read_exact(value).map_err(|_| cut())
}

fn read_trailer(input: &mut impl Read, head: StoreHead) -> Result<(), LogError> {
    let position = head.next_position;
    let mut trailer = vec![0; TRAILER.len() + 8 + 32];
    input
        .read_exact(&mut trailer)
        .map_err(|_| LogError::Corrupt { position, reason: "the backup has no trailer (cut short?)".into() })?;
    let count = u64::from_le_bytes(trailer[TRAILER.len()..TRAILER.len() + 8].try_into().expect("8 bytes"));
    if &trailer[..TRAILER.len()] != TRAILER
        || count != head.next_position.0
        || trailer[TRAILER.len() + 8..] != head.head_hash
    {
        return Err(LogError::Corrupt { position, reason: "the backup's trailer does not match its records".into() });
    }
    if input.read(&mut [0; 1]).map_err(|e| LogError::Unavailable(e.to_string()))? != 0 {
        return Err(LogError::Corrupt { position, reason: "bytes follow the backup's trailer".into() });
    }
    Ok(())
}
