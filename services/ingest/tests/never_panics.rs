//! Property tests, the CI-friendly half of fuzzing (the cargo-fuzz targets in `../fuzz` are the
//! other): no input makes a parser or the deframer panic, and what parses keeps the invariants
//! later stages rely on. Mutations start from real corpus and sample lines, so they reach deep
//! into each format rather than failing at the first byte. `PROPTEST_CASES` scales the runs.

mod support;

use std::sync::LazyLock;

use haven_ingest::syslog::framing::{Deframer, FrameError};
use haven_ingest::{BreachObserved, LineParser, SourceConfig, SourceFormat};
use haven_kernel::SchoolId;
use proptest::prelude::*;

static SEEDS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut seeds: Vec<String> =
        support::corpus_files().into_iter().chain(support::sample_files()).flat_map(|(_, lines)| lines).collect();
    seeds.retain(|line| !line.trim().is_empty());
    seeds
});

static PARSERS: LazyLock<Vec<LineParser>> = LazyLock::new(|| {
    let school = SchoolId::parse("oakfield-academy").unwrap();
    let configured = SourceFormat::ALL.into_iter().map(|format| {
        let mut config = SourceConfig::new(school.clone());
        config.format = Some(format);
        LineParser::new(config)
    });
    std::iter::once(support::parser()).chain(configured).collect()
});

/// What every parsed breach must hold, whatever the input.
fn check_invariants(breach: &BreachObserved<'_>) {
    assert!(!breach.host.is_empty(), "empty host");
    assert!(!breach.host.bytes().any(|b| b.is_ascii_uppercase()), "host not lowercased: {}", breach.host);
    assert!(!breach.url.contains('?') && !breach.url.contains('#'), "query or fragment kept: {}", breach.url);
}

fn parse_everywhere(line: &[u8]) {
    for parser in PARSERS.iter() {
        if let Ok(breach) = parser.parse(line, support::received_at()) {
            check_invariants(&breach);
        }
    }
}

#[derive(Clone, Debug)]
enum Edit {
    Insert(usize, u8),
    Remove(usize),
    Replace(usize, u8),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let byte =
        prop_oneof![any::<u8>(), Just(b' '), Just(b'"'), Just(b'='), Just(b'|'), Just(b','), Just(b'\\'), Just(b'\t')];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(at, b)| Edit::Insert(at, b)),
        any::<usize>().prop_map(Edit::Remove),
        (any::<usize>(), byte).prop_map(|(at, b)| Edit::Replace(at, b)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), any::<usize>()).prop_map(|(from, len)| Edit::Duplicate(from, len)),
    ]
}

fn apply(line: &mut Vec<u8>, edit: &Edit) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match *edit {
        Edit::Insert(i, b) => {
            let i = at(i, line.len() + 1);
            line.insert(i, b);
        }
        Edit::Remove(i) if !line.is_empty() => {
            let i = at(i, line.len());
            line.remove(i);
        }
        Edit::Replace(i, b) if !line.is_empty() => {
            let i = at(i, line.len());
            line[i] = b;
        }
        Edit::Truncate(i) => line.truncate(at(i, line.len() + 1)),
        Edit::Duplicate(from, len) if !line.is_empty() => {
            let from = at(from, line.len());
            let end = (from + len % 64).min(line.len());
            let copy = line[from..end].to_vec();
            line.splice(from..from, copy);
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_real_lines_never_panic(seed in any::<prop::sample::Index>(), edits in prop::collection::vec(edit(), 1..8)) {
        let mut line = SEEDS[seed.index(SEEDS.len())].clone().into_bytes();
        for edit in &edits {
            apply(&mut line, edit);
        }
        parse_everywhere(&line);
    }

    #[test]
    fn arbitrary_bytes_never_panic(line in prop::collection::vec(any::<u8>(), 0..512)) {
        parse_everywhere(&line);
    }

    #[test]
    fn format_shaped_text_never_panics(line in "(<[0-9]{1,3}>)?(1 |[A-Z][a-z]{2} [ 1-3][0-9] [0-9:]{8} )?(CEF:|LEEF:[12].0\\||date=|[0-9]{1,10}\\.[0-9]{3} |\"|\\{|1,)[ -~\t]{0,200}") {
        parse_everywhere(line.as_bytes());
    }

    #[test]
    fn the_deframer_never_panics_and_bounds_every_frame(
        chunks in prop::collection::vec(prop::collection::vec(prop_oneof![any::<u8>(), Just(b'\n'), Just(b'<'), Just(b' '), Just(b'1')], 0..64), 0..16),
        max in 1usize..48,
    ) {
        let mut deframer = Deframer::new(max);
        let mut frames = Vec::new();
        for chunk in &chunks {
            deframer.push(chunk);
            while let Some(frame) = deframer.next_frame() {
                frames.push(frame.map(<[u8]>::len));
            }
        }
        while let Some(frame) = deframer.finish() {
            frames.push(frame.map(<[u8]>::len));
        }
        for frame in frames {
            match frame {
                Ok(len) => prop_assert!(len <= max),
                Err(FrameError::TooLong { len, max: limit }) => prop_assert!(len > limit),
            }
        }
    }

    #[test]
    fn newline_framing_gives_back_the_lines(lines in prop::collection::vec("[a-zA-Z0-9 =,|]{0,40}", 0..20), split in any::<usize>()) {
        let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
        let bytes = text.as_bytes();
        let split = if bytes.is_empty() { 0 } else { split % bytes.len() };
        let mut deframer = Deframer::new(64);
        let mut frames = Vec::new();
        for part in [&bytes[..split], &bytes[split..]] {
            deframer.push(part);
            while let Some(frame) = deframer.next_frame() {
                frames.push(String::from_utf8(frame.unwrap().to_vec()).unwrap());
            }
        }
        prop_assert!(deframer.finish().is_none());
        prop_assert_eq!(frames, lines);
    }
}
