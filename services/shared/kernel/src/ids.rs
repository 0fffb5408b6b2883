//! Typed ids, parsed once at the boundary so the rest of the code cannot mix them up.

use std::fmt;

/// Why a string is not a valid id. The message names the rule that failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("is empty")]
    Empty,
    #[error("is {len} bytes long; the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("has a character outside {allowed} at byte {at}")]
    BadCharacter { at: usize, allowed: &'static str },
    #[error("must look like `<category>-<id>` with a lowercase category")]
    NoCategory,
    #[error("is not a 16-byte UUID (got {len} bytes)")]
    BadUuidLength { len: usize },
}

/// The name of a stream: `<category>-<id>`, e.g. `school-oakfield-primary`.
///
/// 1..=256 bytes of ASCII letters, digits and `-_.:@`. The category (before the first `-`)
/// is lowercase letters, digits and `_`, starting with a letter. Stream ids appear in NATS
/// subjects only by category, so the id part may be pseudonymous but never personal data.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(String);

impl StreamId {
    /// The longest stream id accepted, in bytes.
    pub const MAX_BYTES: usize = 256;
    const ALLOWED: &'static str = "ASCII letters, digits and -_.:@";

    /// Parses and validates a stream id.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() {
            return Err(IdError::Empty);
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(IdError::TooLong { len: raw.len(), max: Self::MAX_BYTES });
        }
        if let Some(at) = raw.bytes().position(|b| !(b.is_ascii_alphanumeric() || b"-_.:@".contains(&b))) {
            return Err(IdError::BadCharacter { at, allowed: Self::ALLOWED });
        }
        let Some((category, rest)) = raw.split_once('-') else {
            return Err(IdError::NoCategory);
        };
        let category_ok = category.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && category.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !category_ok || rest.is_empty() {
            return Err(IdError::NoCategory);
        }
        Ok(StreamId(raw.to_owned()))
    }

    /// Builds `<category>-<id>` and validates it.
    pub fn new(category: &str, id: &str) -> Result<Self, IdError> {
        Self::parse(&format!("{category}-{id}"))
    }

    /// The category: the part before the first `-`.
    pub fn category(&self) -> &str {
        self.0.split_once('-').map_or(&self.0, |(category, _)| category)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({})", self.0)
    }
}

/// A school of the trust: 1..=63 bytes of lowercase letters, digits and `-`, starting with a
/// letter or digit, e.g. `oakfield-primary`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchoolId(String);

impl SchoolId {
    pub const MAX_BYTES: usize = 63;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() {
            return Err(IdError::Empty);
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(IdError::TooLong { len: raw.len(), max: Self::MAX_BYTES });
        }
        let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
        if let Some(at) = raw.bytes().position(|b| !allowed(b)) {
            return Err(IdError::BadCharacter { at, allowed: "lowercase letters, digits and -" });
        }
        if raw.starts_with('-') {
            return Err(IdError::BadCharacter { at: 0, allowed: "a letter or digit first" });
        }
        Ok(SchoolId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SchoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SchoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SchoolId({})", self.0)
    }
}

/// An event's id: a UUID (v7 by convention) chosen by the writer; the idempotency key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(pub uuid::Uuid);

impl EventId {
    /// Parses the 16 raw bytes carried in protobuf.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, IdError> {
        let array: [u8; 16] = bytes.try_into().map_err(|_| IdError::BadUuidLength { len: bytes.len() })?;
        Ok(EventId(uuid::Uuid::from_bytes(array)))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.0)
    }
}

/// A global position in `$all`: 0-based, gapless, totally ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Position(pub u64);

/// A 0-based version of an event within its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Version(pub u64);

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stream_ids() {
        assert_eq!(StreamId::parse("school-oakfield").unwrap().category(), "school");
        assert_eq!(StreamId::parse("breaches-oak-2026-11-02").unwrap().category(), "breaches");
        assert_eq!(StreamId::parse(""), Err(IdError::Empty));
        assert_eq!(StreamId::parse("school"), Err(IdError::NoCategory));
        assert_eq!(StreamId::parse("School-x"), Err(IdError::NoCategory));
        assert_eq!(StreamId::parse("school-"), Err(IdError::NoCategory));
        assert!(matches!(StreamId::parse("school-a b"), Err(IdError::BadCharacter { at: 8, .. })));
        assert!(matches!(StreamId::parse(&format!("s-{}", "x".repeat(255))), Err(IdError::TooLong { .. })));
    }

    #[test]
    fn school_ids() {
        assert!(SchoolId::parse("oakfield-primary").is_ok());
        assert!(SchoolId::parse("Oakfield").is_err());
        assert!(SchoolId::parse("-oak").is_err());
        assert!(SchoolId::parse("").is_err());
    }

    proptest! {
        #[test]
        fn parsed_stream_ids_round_trip(raw in "[a-z][a-z0-9_]{0,8}-[A-Za-z0-9._:@-]{1,40}") {
            let id = StreamId::parse(&raw).unwrap();
            prop_assert_eq!(id.as_str(), raw.as_str());
            prop_assert!(!id.category().contains('-'));
        }

        #[test]
        fn stream_id_parse_never_panics(raw in ".{0,300}") {
            let _ = StreamId::parse(&raw);
        }
    }
}
