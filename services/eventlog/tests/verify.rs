//! Tamper evidence: an edit to a stored event that keeps its checksum valid is still found by
//! `verify`, at the edited position; an untouched log verifies with its count and head hash.

use std::sync::Arc;

use haven_eventlog::store::{SegmentStore, Store};
use haven_eventlog::{EventLogConfig, LocalEventLog, Verdict};
use haven_eventlog_client::{EventLog, conformance};
use haven_kernel::{ExpectedVersion, StreamId};

fn write_ten(dir: &std::path::Path) -> [u8; 32] {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let log = LocalEventLog::open(dir, EventLogConfig::default()).unwrap();
        let stream = StreamId::parse("tamper-1").unwrap();
        for i in 0..10u8 {
            let payload = [b'A' + i; 32];
            log.append(&stream, ExpectedVersion::Any, vec![conformance::event("t.Kept", "", &payload)]).await.unwrap();
        }
        let head = log.head().await.unwrap().head_hash;
        log.close().await;
        head
    })
}

fn verdict(dir: &std::path::Path) -> Verdict {
    let store: Arc<dyn Store> = Arc::new(SegmentStore::open(dir, 1 << 20).unwrap());
    haven_eventlog::verify(store.as_ref()).unwrap()
}

#[test]
fn an_untouched_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let head = write_ten(dir.path());
    assert_eq!(verdict(dir.path()), Verdict::Intact { events: 10, head_hash: head });
}

#[test]
fn an_edit_with_a_fixed_checksum_is_found_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    write_ten(dir.path());
    // Change event 4's payload ('E' × 32) to 'X' × 32 and recompute the record's CRC, as a
    // careful forger would; the chain hash stored with it no longer matches its body.
    let path = dir.path().join("segments").join(format!("{:020}.seg", 0));
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(32).position(|w| w == [b'E'; 32]).expect("event 4's payload is in the segment");
    bytes[at..at + 32].copy_from_slice(&[b'X'; 32]);
    // The record starts after its 4-byte length prefix; find the prefix whose record covers `at`.
    let mut offset = 0usize;
    loop {
        let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        if len == u32::MAX as usize {
            offset += 20; // a group trailer
            continue;
        }
        if (offset + 4..offset + 4 + len).contains(&at) {
            let value = &mut bytes[offset + 4..offset + 4 + len];
            let crc = crc32fast::hash(&value[4..]);
            value[..4].copy_from_slice(&crc.to_le_bytes());
            break;
        }
        offset += 4 + len;
    }
    std::fs::write(&path, &bytes).unwrap();
    match verdict(dir.path()) {
        Verdict::Broken { position, reason } => {
            assert_eq!(position.0, 4, "the first position that does not match");
            assert!(reason.contains("hash"), "{reason}");
        }
        intact => panic!("the edit went unnoticed: {intact:?}"),
    }
}
