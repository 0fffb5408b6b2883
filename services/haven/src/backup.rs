//! `haven log backup` and `haven log restore` (docs/operations/backup-and-restore.md).
//!
//! ```text
//!  backup:  Cluster.Backup on a running node ─▶ read barrier, head fixed at N
//!           ─▶ records 0..N streamed verbatim ─▶ each checked (checksum, chain) ─▶ FILE.partial
//!           ─▶ trailer, fsync, rename to FILE
//!  restore: FILE ─▶ header, every record checked again ─▶ a new store in DATA_DIR/eventlog
//!           ─▶ `haven up --data-dir DATA_DIR` (or `serve eventlog --bootstrap`) starts a new
//!              one-node cluster on it; projections rebuild from the log
//! ```

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use haven_eventlog::backup::restore;
use tonic::transport::Endpoint;

/// Takes an online backup of the node at `grpc_addr` into `out` (which must not exist).
pub async fn backup(grpc_addr: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let channel = Endpoint::from_shared(format!("http://{grpc_addr}"))?.connect_lazy();
    let created_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let head = haven_eventlog::backup::take(channel, out, created_at as i64)
        .await
        .with_context(|| format!("backup of the node at {grpc_addr} failed; no file was left at {}", out.display()))?;
    println!(
        "backup of {grpc_addr}: {} events (positions 0..{}), head hash {}, written to {}",
        head.next_position.0,
        head.next_position.0,
        hex::encode(head.head_hash),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Restores `from` into `data_dir`'s event log (`data_dir/eventlog`, which must be new).
pub fn restore_into(from: &Path, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let store_dir = data_dir.join("eventlog");
    let restored = restore(from, &store_dir)
        .with_context(|| format!("restoring {} into {}; nothing was written", from.display(), store_dir.display()))?;
    println!(
        "restored {} events from {} (taken at unix time {}), head hash {}, into {}",
        restored.head.next_position.0,
        from.display(),
        restored.header.created_at,
        hex::encode(restored.head.head_hash),
        store_dir.display()
    );
    println!("start it as a new cluster: haven up --data-dir {}", data_dir.display());
    Ok(ExitCode::SUCCESS)
}
