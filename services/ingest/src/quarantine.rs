//! Where refused lines go: counts per school, format and reason, without bound, and the most
//! recent refusals with their reasons, up to a fixed number. A refusal keeps where the line
//! was (its number in the source and its length), never its content, which can hold usernames,
//! full URLs and illegal-content locators.

use std::collections::{BTreeMap, VecDeque};

use haven_kernel::SchoolId;
use jiff::Timestamp;
use serde::Serialize;

use crate::error::{LineError, QuarantineReason};
use crate::format::SourceFormat;

/// One refused line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QuarantinedLine {
    #[serde(serialize_with = "as_str")]
    pub school: SchoolId,
    /// The line's 1-based number in its source (file, connection or batch).
    pub line_number: u64,
    pub line_bytes: usize,
    #[serde(serialize_with = "display")]
    pub received_at: Timestamp,
    #[serde(flatten)]
    pub error: LineError,
}

/// The counting key: which school, which format (none when unrecognised), why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuarantineKey {
    pub school: SchoolId,
    pub format: Option<SourceFormat>,
    pub reason: QuarantineReason,
}

/// A bounded record of refused lines.
#[derive(Debug)]
pub struct Quarantine {
    capacity: usize,
    recent: VecDeque<QuarantinedLine>,
    counts: BTreeMap<QuarantineKey, u64>,
    /// Refusals that were counted but no longer held, the oldest having been let go.
    evicted: u64,
}

impl Quarantine {
    /// Keeps the last `capacity` refusals (and counts every one).
    pub fn new(capacity: usize) -> Self {
        Quarantine {
            capacity,
            recent: VecDeque::with_capacity(capacity.min(1024)),
            counts: BTreeMap::new(),
            evicted: 0,
        }
    }

    pub fn record(
        &mut self,
        school: &SchoolId,
        line_number: u64,
        line_bytes: usize,
        received_at: Timestamp,
        error: LineError,
    ) {
        let key = QuarantineKey { school: school.clone(), format: error.format, reason: error.reason() };
        *self.counts.entry(key).or_default() += 1;
        if self.capacity == 0 {
            self.evicted += 1;
            return;
        }
        if self.recent.len() == self.capacity {
            self.recent.pop_front();
            self.evicted += 1;
        }
        self.recent.push_back(QuarantinedLine { school: school.clone(), line_number, line_bytes, received_at, error });
    }

    /// Refusals per school, format and reason, in that order.
    pub fn counts(&self) -> impl Iterator<Item = (&QuarantineKey, u64)> {
        self.counts.iter().map(|(key, count)| (key, *count))
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The most recent refusals, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &QuarantinedLine> {
        self.recent.iter()
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

fn as_str<S: serde::Serializer>(school: &SchoolId, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(school.as_str())
}

fn display<S: serde::Serializer>(value: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ParseError;

    #[test]
    fn counts_everything_and_holds_only_the_most_recent() {
        let school = SchoolId::parse("oak").unwrap();
        let other = SchoolId::parse("elm").unwrap();
        let error = |format, reason| LineError { format, error: ParseError::new(reason, None, "x") };
        let mut quarantine = Quarantine::new(2);
        let now = Timestamp::UNIX_EPOCH;
        quarantine.record(&school, 1, 10, now, error(Some(SourceFormat::PanOs), QuarantineReason::NotAWebEvent));
        quarantine.record(&school, 2, 10, now, error(Some(SourceFormat::PanOs), QuarantineReason::NotAWebEvent));
        quarantine.record(&school, 3, 10, now, error(None, QuarantineReason::UnrecognisedFormat));
        quarantine.record(&other, 4, 10, now, error(Some(SourceFormat::PanOs), QuarantineReason::NotAWebEvent));
        assert_eq!(quarantine.total(), 4);
        assert_eq!(quarantine.evicted(), 2);
        assert_eq!(quarantine.recent().map(|q| q.line_number).collect::<Vec<_>>(), vec![3, 4]);
        let counts: Vec<_> = quarantine.counts().map(|(k, n)| (k.school.as_str(), k.format, k.reason, n)).collect();
        assert_eq!(
            counts,
            vec![
                ("elm", Some(SourceFormat::PanOs), QuarantineReason::NotAWebEvent, 1),
                ("oak", None, QuarantineReason::UnrecognisedFormat, 1),
                ("oak", Some(SourceFormat::PanOs), QuarantineReason::NotAWebEvent, 2),
            ]
        );
    }
}
