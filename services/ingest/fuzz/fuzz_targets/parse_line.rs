//! Any bytes, read with detection and then as each format in turn: no panic, and a parsed
//! breach keeps its invariants (a lowercased host, no query string or fragment in the URL).
#![no_main]

use std::sync::LazyLock;

use haven_ingest::{LineParser, SourceConfig, SourceFormat};
use haven_kernel::SchoolId;
use libfuzzer_sys::fuzz_target;

static PARSERS: LazyLock<Vec<LineParser>> = LazyLock::new(|| {
    let school = SchoolId::parse("fuzz-school").unwrap();
    let auto = LineParser::new(SourceConfig::new(school.clone()));
    let configured = SourceFormat::ALL.into_iter().map(|format| {
        let mut config = SourceConfig::new(school.clone());
        config.format = Some(format);
        LineParser::new(config)
    });
    std::iter::once(auto).chain(configured).collect()
});

fuzz_target!(|line: &[u8]| {
    let received_at = jiff::Timestamp::from_second(1_795_600_000).unwrap();
    for parser in PARSERS.iter() {
        if let Ok(breach) = parser.parse(line, received_at) {
            assert!(!breach.host.is_empty());
            assert!(!breach.host.bytes().any(|b| b.is_ascii_uppercase()));
            assert!(!breach.url.contains('?') && !breach.url.contains('#'));
        }
    }
});
