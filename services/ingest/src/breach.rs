//! The normalised breach every format parses into. It borrows from the line wherever the line
//! already holds the text as wanted (most fields, most lines), so a parse allocates only when
//! a value had to be unescaped, lowercased or joined.
//!
//! This is the parse stage's shape, not the event: it still carries the user as reported and
//! the URL (without its query string and fragment, which are cut here and never leave the
//! parser). Attribution to a subject, the keyed hash of the path and the collapse of repeats
//! happen after it, before anything is appended (`haven.v1.BreachObserved`).

use std::borrow::Cow;
use std::net::IpAddr;

use haven_kernel::SchoolId;
use jiff::Timestamp;
use serde::{Serialize, Serializer};

use crate::format::SourceFormat;
use crate::taxonomy::Category;

/// What the filter did with the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Blocked,
    /// Allowed but flagged: warned, warned and proceeded, or an "alert" rule.
    Flagged,
    Allowed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Blocked => "blocked",
            Action::Flagged => "flagged",
            Action::Allowed => "allowed",
        }
    }
}

/// Where the observed time came from, so an auditor can tell an exact instant from one that
/// rests on the source's configured timezone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeBasis {
    /// An epoch or a timestamp in UTC.
    Utc,
    /// A local time with its offset written beside it.
    Offset,
    /// A local time without an offset, placed in the source's configured timezone.
    SourceZone,
    /// The payload had no time; the syslog header's (relay) time was used.
    SyslogHeader,
}

/// One request a school's filter blocked, flagged or allowed, as reported.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BreachObserved<'a> {
    #[serde(serialize_with = "display")]
    pub school_id: &'a SchoolId,
    pub source_format: SourceFormat,
    /// The device vendor behind the line when the format carries several (CEF, LEEF), else the
    /// format's vendor; also the namespace of the category table used.
    pub vendor: Cow<'a, str>,
    #[serde(serialize_with = "display")]
    pub occurred_at: Timestamp,
    pub time_basis: TimeBasis,
    /// The client address; `None` when the source gave none.
    pub client_ip: Option<IpAddr>,
    /// The device as the source named it (MAC, hostname, roaming identity), when it did.
    pub device: Option<Cow<'a, str>>,
    /// The user exactly as the source reported it (`DOMAIN\user`, a UPN); personal data.
    pub user: Option<Cow<'a, str>>,
    /// The URL without its query string and fragment; `host:port` for CONNECT.
    pub url: Cow<'a, str>,
    /// The host, lowercased, without scheme, port, path or userinfo.
    pub host: Cow<'a, str>,
    /// The vendor's category label or code as sent, for re-mapping.
    pub vendor_category: Option<Cow<'a, str>>,
    /// Haven's category, from the vendor's through the category table.
    pub category: Category,
    /// The vendor's action word as sent (`TCP_DENIED/403`, `block-url`, `passthrough`).
    pub vendor_action: Cow<'a, str>,
    pub action: Action,
}

fn display<T: std::fmt::Display, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}
