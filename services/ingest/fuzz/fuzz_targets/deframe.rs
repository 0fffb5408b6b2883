//! Any byte stream, pushed in pieces of any size: no panic, and no frame longer than the limit.
#![no_main]

use haven_ingest::syslog::framing::Deframer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&split, stream)) = input.split_first() else { return };
    let max = 1 + usize::from(split % 64);
    let mut deframer = Deframer::new(max);
    for piece in stream.chunks(1 + usize::from(split % 7)) {
        deframer.push(piece);
        while let Some(frame) = deframer.next_frame() {
            if let Ok(frame) = frame {
                assert!(frame.len() <= max);
            }
        }
    }
    while let Some(frame) = deframer.finish() {
        if let Ok(frame) = frame {
            assert!(frame.len() <= max);
        }
    }
});
