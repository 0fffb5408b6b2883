//! The quarantine as `ListQuarantine` shows it: refused lines counted per school, source,
//! format and reason, and each school's most recent refusals, bounded per school (ADR 0022).
//!
//! The counts are durable (ADR 0024): each batch's refusals are appended with the batch as
//! `ingest.LinesQuarantined` events (one per format, on `quarantine-<school>-<yyyy-mm-dd>`;
//! counts per reason, never the lines), and [`restore`] reads them back when ingest starts.
//! The recent refusals' positions are held in memory only, since the process started.
//!
//! A refusal keeps where the line was (its number in its batch, its length, when it arrived),
//! why (reason, field) and the parser's message, which is fixed text — never the line, which
//! can hold usernames, full URLs with query strings and illegal-content locators. So what is
//! shown is operational, not personal: the school's technical staff and online-safety
//! coordinator, and the trust admin, may see it (policy table, ADR 0022).

use std::collections::{BTreeMap, HashMap, VecDeque};

use haven_eventlog_client::{EventLog, LogError, StreamAppend};
use haven_ingest::{LineError, QuarantineReason, SourceFormat};
use haven_kernel::{ExpectedVersion, Position, StreamId};
use haven_proto::v1 as pb;
use jiff::Timestamp;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::pipeline::{Source, derived_id, format_to_proto, proposed, reason_to_proto, to_jiff, to_proto};

pub const LINES_QUARANTINED: &str = "ingest.LinesQuarantined";

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
        let counted_as = self.count(school_id, source_id, error.format, error.reason(), 1);
        let book = self.schools.get_mut(school_id).expect("counted");
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

    /// Adds `count` refusals to a school's counts; returns the source they were counted under.
    fn count(
        &mut self,
        school_id: &str,
        source_id: &str,
        format: Option<SourceFormat>,
        reason: QuarantineReason,
        count: u64,
    ) -> String {
        let book = self.schools.entry(school_id.to_owned()).or_default();
        let known = book.counts.keys().any(|(source, ..)| source == source_id);
        let distinct = || {
            let mut sources: Vec<_> = book.counts.keys().map(|(source, ..)| source.as_str()).collect();
            sources.dedup();
            sources.len()
        };
        let counted_as = if known || distinct() < MAX_SOURCES_PER_SCHOOL { source_id } else { OTHER_SOURCES };
        *book.counts.entry((counted_as.to_owned(), format, reason)).or_default() += count;
        counted_as.to_owned()
    }

    /// Counts read back from one `ingest.LinesQuarantined` event; the book's `since` moves to
    /// its window's start if that is earlier.
    fn restore_event(&mut self, event: &pb::LinesQuarantined) {
        let format = pb::SourceFormat::try_from(event.source_format)
            .ok()
            .filter(|f| *f != pb::SourceFormat::Unspecified)
            .and_then(|f| f.as_str_name().trim_start_matches("SOURCE_FORMAT_").to_ascii_lowercase().parse().ok());
        for count in &event.counts {
            let reason = QuarantineReason::ALL.into_iter().find(|r| reason_to_proto(*r) as i32 == count.reason);
            if let Some(reason) = reason {
                self.count(&event.school_id, &event.source_id, format, reason, count.count);
            }
        }
        if let Some(start) = event.window_start.as_ref().map(to_jiff) {
            self.started_at = self.started_at.min(start);
        }
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

/// One refused line of a batch, as the durable record counts it.
#[derive(Clone, Debug)]
pub struct Refused {
    pub format: Option<SourceFormat>,
    pub reason: QuarantineReason,
    pub digest: [u8; 32],
    pub received_at: Timestamp,
}

/// The `ingest.LinesQuarantined` appends for a batch's refusals: one event per format, counts
/// per reason, on `quarantine-<school>-<UTC day of the first refusal>`. The id is derived from
/// the refused lines, so a batch sent again is recognised by the log, not counted twice.
pub fn lines_quarantined(source: &Source, refused: &[Refused]) -> Result<Vec<StreamAppend>, LogError> {
    let mut by_format: BTreeMap<Option<SourceFormat>, Vec<&Refused>> = BTreeMap::new();
    for refusal in refused {
        by_format.entry(refusal.format).or_default().push(refusal);
    }
    let mut appends = Vec::new();
    for (format, refusals) in by_format {
        let mut counts: BTreeMap<QuarantineReason, u64> = BTreeMap::new();
        let mut hasher = Sha256::new();
        for refusal in &refusals {
            *counts.entry(refusal.reason).or_default() += 1;
            hasher.update(refusal.digest);
        }
        let start = refusals.iter().map(|r| r.received_at).min().expect("one refusal at least");
        let end = refusals.iter().map(|r| r.received_at).max().expect("one refusal at least");
        let event = pb::LinesQuarantined {
            school_id: source.school.to_string(),
            source_id: source.source_id.clone(),
            source_format: format.map(format_to_proto).unwrap_or_default() as i32,
            window_start: Some(to_proto(start)),
            window_end: Some(to_proto(end)),
            counts: counts
                .iter()
                .map(|(reason, count)| pb::QuarantineCount { reason: reason_to_proto(*reason) as i32, count: *count })
                .collect(),
            total: refusals.len() as u64,
        };
        let digest: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let event_id = derived_id(&format!("quarantined:{}:{}:{digest}", source.school, source.source_id));
        let day = start.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
        let stream = StreamId::new("quarantine", &format!("{}-{day}", source.school))
            .map_err(|e| LogError::Internal(format!("quarantine stream name: {e}")))?;
        let proposed = proposed(source, &event_id, LINES_QUARANTINED, start, event.encode_to_vec());
        appends.push(StreamAppend { stream_id: stream, expected: ExpectedVersion::Any, events: vec![proposed] });
    }
    Ok(appends)
}

/// Reads every `ingest.LinesQuarantined` in the log into `book` (at start, before any line is
/// taken, so nothing is counted twice). Returns how many events were read.
pub async fn restore(book: &mut QuarantineBook, log: &dyn EventLog) -> Result<u64, LogError> {
    let filter = pb::EventFilter { stream_categories: vec!["quarantine".into()], ..Default::default() };
    let mut from = Position(0);
    let mut read = 0;
    loop {
        let slice = log.read_all(from, 1_000, &filter).await?;
        for event in slice.events.iter().filter(|e| e.event_type == LINES_QUARANTINED) {
            if let Ok(quarantined) = pb::LinesQuarantined::decode(event.payload.as_slice()) {
                book.restore_event(&quarantined);
                read += 1;
            }
        }
        from = slice.next_position;
        if slice.end_of_log {
            return Ok(read);
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
