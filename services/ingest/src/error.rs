//! Why a line was refused: a reason (the quarantine's counting key, mirroring
//! `haven.v1.QuarantineReason`), the field at fault when there is one, and a message for
//! people. Messages are static text: they never repeat the line's content, which can hold
//! usernames, full URLs and illegal-content locators.

use std::fmt;

use serde::Serialize;

use crate::format::SourceFormat;

/// Why a line was quarantined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuarantineReason {
    /// No parser recognised the payload.
    UnrecognisedFormat,
    /// The format was recognised but the line did not follow it.
    Unparseable,
    /// A field held an impossible value (the IPv4 address `21.259.351.45`, a bad timestamp).
    InvalidField,
    /// A field Haven needs (time, action, URL) was absent.
    MissingField,
    /// Longer than the source's `max_line_bytes`.
    LineTooLong,
    /// Not UTF-8, or a stray control character.
    InvalidEncoding,
    /// A local time without an offset in the hour repeated when clocks go back.
    AmbiguousLocalTime,
    /// A well-formed line that carries no web-filter decision (a Squid `cache.log` line, a
    /// PAN-OS system event, a firewall traffic record, a proxy authentication challenge).
    NotAWebEvent,
}

impl QuarantineReason {
    pub const ALL: [QuarantineReason; 8] = [
        QuarantineReason::UnrecognisedFormat,
        QuarantineReason::Unparseable,
        QuarantineReason::InvalidField,
        QuarantineReason::MissingField,
        QuarantineReason::LineTooLong,
        QuarantineReason::InvalidEncoding,
        QuarantineReason::AmbiguousLocalTime,
        QuarantineReason::NotAWebEvent,
    ];

    /// The stable snake_case name, as in JSON output and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            QuarantineReason::UnrecognisedFormat => "unrecognised_format",
            QuarantineReason::Unparseable => "unparseable",
            QuarantineReason::InvalidField => "invalid_field",
            QuarantineReason::MissingField => "missing_field",
            QuarantineReason::LineTooLong => "line_too_long",
            QuarantineReason::InvalidEncoding => "invalid_encoding",
            QuarantineReason::AmbiguousLocalTime => "ambiguous_local_time",
            QuarantineReason::NotAWebEvent => "not_a_web_event",
        }
    }
}

impl fmt::Display for QuarantineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one payload could not be turned into a breach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{reason}{}: {message}", field.map(|f| format!(" ({f})")).unwrap_or_default())]
pub struct ParseError {
    pub reason: QuarantineReason,
    /// The field at fault, named as in the normalised breach or the vendor's layout
    /// (`client_ip`, `time`, `url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    pub message: &'static str,
}

impl ParseError {
    pub(crate) const fn new(reason: QuarantineReason, field: Option<&'static str>, message: &'static str) -> Self {
        ParseError { reason, field, message }
    }
    pub(crate) const fn unparseable(message: &'static str) -> Self {
        ParseError::new(QuarantineReason::Unparseable, None, message)
    }
    pub(crate) const fn invalid(field: &'static str, message: &'static str) -> Self {
        ParseError::new(QuarantineReason::InvalidField, Some(field), message)
    }
    pub(crate) const fn missing(field: &'static str, message: &'static str) -> Self {
        ParseError::new(QuarantineReason::MissingField, Some(field), message)
    }
    pub(crate) const fn not_web(message: &'static str) -> Self {
        ParseError::new(QuarantineReason::NotAWebEvent, None, message)
    }
}

/// A refused line: the format it was read as (none when no format was recognised) and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{}: {error}", format.map_or("unknown format", SourceFormat::as_str))]
pub struct LineError {
    pub format: Option<SourceFormat>,
    pub error: ParseError,
}

impl LineError {
    pub fn reason(&self) -> QuarantineReason {
        self.error.reason
    }
}
