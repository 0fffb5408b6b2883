//! `haven log verify`: open a stopped node's store read-only in spirit and check the chain.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use haven_eventlog::Verdict;
use haven_eventlog::store::SegmentStore;

pub fn run(data_dir: &Path) -> anyhow::Result<ExitCode> {
    let store_dir = data_dir.join("eventlog");
    if !store_dir.exists() {
        anyhow::bail!("no event log in {} (expected {})", data_dir.display(), store_dir.display());
    }
    let store = SegmentStore::open(&store_dir, 16 * 1024 * 1024)
        .with_context(|| format!("opening {} (is a haven still running on it?)", store_dir.display()))?;
    match haven_eventlog::verify(&store)? {
        Verdict::Intact { events, head_hash } => {
            println!("OK: {events} events, head hash {}", hex::encode(head_hash));
            Ok(ExitCode::SUCCESS)
        }
        Verdict::Broken { position, reason } => {
            println!("BROKEN at position {position}: {reason}");
            Ok(ExitCode::from(2))
        }
    }
}
