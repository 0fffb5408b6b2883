//! The quarantine as `ListQuarantine` shows it: refused lines counted per school, source,
//! format and reason, and each school's most recent refusals, bounded per school, held in
//! memory since the process started (ADR 0022).
//!
//! A refusal keeps where the line was (its number in its batch, its length, when it arrived),
//! why (reason, field) and the parser's message, which is fixed text — never the line, which
//! can hold usernames, full URLs with query strings and illegal-content locators. So what is
//! shown is operational, not personal: the school's technical staff and online-safety
//! coordinator, and the trust admin, may see it (policy table, ADR 0022).

use std::collections::{BTreeMap, HashMap, VecDeque};

use haven_ingest::{LineError, QuarantineReason, SourceFormat};
use jiff::Timestamp;

/// Most recent refusals kept per school.
pub const RECENT_PER_SCHOOL: usize = 200;
/// Most distinct sources counted apart per school; refusals of further sources are counted
/// under [`OTHER_SOURCES`] (a school system names its sources, so this bounds the memory a
/// misbehaving one can take).
pub const MAX_SOURCES_PER_SCHOOL: usize = 64;
pub const OTHER_SOURCES: &str = "(other sources)";

/// One refused line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub source_id: String,
    pub format: Option<SourceFormat>,
    pub reason: QuarantineReason,
    pub field: Option<&'static str>,
    /// The parser's fixed message.
    pub message: &'static str,
    pub line_number: u64,
    pub line_bytes: u64,
    pub received_at: Timestamp,
}

/// The counting key within a school.
pub type CountKey = (String, Option<SourceFormat>, QuarantineReason);

#[derive(Debug, Default)]
struct SchoolBook {
    counts: BTreeMap<CountKey, u64>,
    recent: VecDeque<Refusal>,
    evicted: u64,
}

/// What one school's quarantine holds now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchoolQuarantine {
    pub counts: Vec<(CountKey, u64)>,
    /// Newest first.
    pub recent: Vec<Refusal>,
    pub evicted: u64,
}

/// Every school's quarantine.
#[derive(Debug)]
pub struct QuarantineBook {
    started_at: Timestamp,
    schools: HashMap<String, SchoolBook>,
}

impl QuarantineBook {
    pub fn new(started_at: Timestamp) -> Self {
        QuarantineBook { started_at, schools: HashMap::new() }
    }

    pub fn started_at(&self) -> Timestamp {
        self.started_at
    }

    pub fn record(
        &mut self,
        school_id: &str,
        source_id: &str,
        line_number: u64,
        line_bytes: usize,
        received_at: Timestamp,
        error: &LineError,
    ) {
        let book = self.schools.entry(school_id.to_owned()).or_default();
        let known = book.counts.keys().any(|(source, ..)| source == source_id);
        let distinct = || {
            let mut sources: Vec<_> = book.counts.keys().map(|(source, ..)| source.as_str()).collect();
            sources.dedup();
            sources.len()
        };
        let counted_as = if known || distinct() < MAX_SOURCES_PER_SCHOOL { source_id } else { OTHER_SOURCES };
        *book.counts.entry((counted_as.to_owned(), error.format, error.reason())).or_default() += 1;
        if book.recent.len() == RECENT_PER_SCHOOL {
            book.recent.pop_front();
            book.evicted += 1;
        }
        book.recent.push_back(Refusal {
            source_id: counted_as.to_owned(),
            format: error.format,
            reason: error.reason(),
            field: error.error.field,
            message: error.error.message,
            line_number,
            line_bytes: line_bytes as u64,
            received_at,
        });
    }

    /// One school's quarantine, only `source_id`'s when given.
    pub fn school(&self, school_id: &str, source_id: Option<&str>) -> SchoolQuarantine {
        let Some(book) = self.schools.get(school_id) else { return SchoolQuarantine::default() };
        let wanted = |source: &str| source_id.is_none_or(|wanted| wanted == source);
        SchoolQuarantine {
            counts: book.counts.iter().filter(|((s, ..), _)| wanted(s)).map(|(k, n)| (k.clone(), *n)).collect(),
            recent: book.recent.iter().rev().filter(|r| wanted(&r.source_id)).cloned().collect(),
            evicted: book.evicted,
        }
    }
}

#[cfg(test)]
mod tests {
    use haven_ingest::{LineParser, SourceConfig};
    use haven_kernel::SchoolId;

    use super::*;

    fn refusal(line: &[u8]) -> LineError {
        let parser = LineParser::new(SourceConfig::new(SchoolId::parse("oak").unwrap()));
        parser.parse(line, Timestamp::UNIX_EPOCH).unwrap_err()
    }

    #[test]
    fn each_school_keeps_its_latest_refusals_and_all_its_counts_without_the_lines() {
        let mut book = QuarantineBook::new(Timestamp::UNIX_EPOCH);
        let secret = b"user=pupil.name@oak.example url=https://example.org/?q=secret garbage";
        let error = refusal(secret);
        for n in 0..(RECENT_PER_SCHOOL as u64 + 5) {
            book.record("oak", "proxy-1", n + 1, secret.len(), Timestamp::UNIX_EPOCH, &error);
        }
        book.record("elm", "proxy-1", 1, 10, Timestamp::UNIX_EPOCH, &error);
        let oak = book.school("oak", None);
        assert_eq!(oak.recent.len(), RECENT_PER_SCHOOL);
        assert_eq!(oak.evicted, 5);
        assert_eq!(oak.recent[0].line_number, RECENT_PER_SCHOOL as u64 + 5, "newest first");
        assert_eq!(oak.counts, vec![(("proxy-1".to_owned(), error.format, error.reason()), 205)]);
        let shown = format!("{oak:?}");
        assert!(!shown.contains("pupil") && !shown.contains("secret"), "no line content is kept");
        assert_eq!(book.school("elm", None).recent.len(), 1);
        assert!(book.school("oak", Some("proxy-2")).recent.is_empty());
    }

    #[test]
    fn sources_beyond_the_bound_are_counted_together() {
        let mut book = QuarantineBook::new(Timestamp::UNIX_EPOCH);
        let error = refusal(b"garbage");
        for n in 0..(MAX_SOURCES_PER_SCHOOL + 3) {
            book.record("oak", &format!("source-{n}"), 1, 7, Timestamp::UNIX_EPOCH, &error);
        }
        let oak = book.school("oak", None);
        assert_eq!(oak.counts.len(), MAX_SOURCES_PER_SCHOOL + 1);
        let other = oak.counts.iter().find(|((source, ..), _)| source == OTHER_SOURCES).unwrap();
        assert_eq!(other.1, 3);
    }
}
