//! One line in, one breach or one typed refusal out.
//!
//! ```text
//!  bytes ─▶ limits, UTF-8, control characters ─▶ syslog envelope ─▶ payload candidates
//!        ─▶ format (configured, or detected per line) ─▶ format parser ─▶ BreachObserved
//!                                                        (time, IP, user, URL, action,
//!                                                         category through the table)
//! ```
//!
//! Nothing here logs, allocates per line beyond what a value's unescaping needs, or panics on
//! any input (a property test and the fuzz targets hold it to that).

use haven_kernel::SchoolId;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::breach::BreachObserved;
use crate::detect::detect;
use crate::error::{LineError, ParseError, QuarantineReason};
use crate::format::SourceFormat;
use crate::formats;
use crate::mapping::CategoryMap;
use crate::syslog::{self, HeaderTime};
use crate::time::{self, Observed};

/// How one school's source is read.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    pub school: SchoolId,
    /// `None`: detect the format of each line.
    pub format: Option<SourceFormat>,
    /// The zone of local times that carry no offset (PAN-OS, squidGuard, RFC 3164 headers).
    pub zone: TimeZone,
    /// Longer lines are refused unread.
    pub max_line_bytes: usize,
}

impl SourceConfig {
    /// Lines longer than this are refused by default; the longest vendor lines seen are ~4 KiB.
    pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;

    /// Auto-detection, `Europe/London`, the default line limit.
    pub fn new(school: SchoolId) -> Self {
        SourceConfig {
            school,
            format: None,
            zone: TimeZone::get("Europe/London").expect("the bundled tz database has Europe/London"),
            max_line_bytes: Self::DEFAULT_MAX_LINE_BYTES,
        }
    }
}

/// Parses the lines of one source.
#[derive(Debug)]
pub struct LineParser {
    config: SourceConfig,
    map: &'static CategoryMap,
}

/// What a format parser sees besides its payload.
pub(crate) struct Cx<'a> {
    pub school: &'a SchoolId,
    pub zone: &'a TimeZone,
    pub received_at: Timestamp,
    pub header_time: Option<HeaderTime>,
    pub map: &'a CategoryMap,
}

impl Cx<'_> {
    /// The syslog header's time, for payloads that carry none.
    pub fn header_time(&self) -> Result<Observed, ParseError> {
        let header =
            self.header_time.ok_or(ParseError::missing("time", "no time in the payload or a syslog header"))?;
        header.resolve(self.zone, self.received_at)
    }

    /// A local time without an offset, in the source's zone.
    pub fn local(&self, datetime: jiff::civil::DateTime) -> Result<Observed, ParseError> {
        time::in_zone(datetime, self.zone)
    }
}

const CONTROL: ParseError =
    ParseError::new(QuarantineReason::InvalidEncoding, None, "a control character other than TAB in the line");
const NOT_UTF8: ParseError = ParseError::new(QuarantineReason::InvalidEncoding, None, "not valid UTF-8");
const TOO_LONG: ParseError = ParseError::new(QuarantineReason::LineTooLong, None, "longer than max_line_bytes");
const EMPTY: ParseError = ParseError::unparseable("an empty line");
const UNRECOGNISED: ParseError =
    ParseError::new(QuarantineReason::UnrecognisedFormat, None, "no parser recognised the payload");

impl LineParser {
    pub fn new(config: SourceConfig) -> Self {
        LineParser::with_map(config, CategoryMap::builtin())
    }

    pub fn with_map(config: SourceConfig, map: &'static CategoryMap) -> Self {
        LineParser { config, map }
    }

    pub fn config(&self) -> &SourceConfig {
        &self.config
    }

    pub fn map(&self) -> &'static CategoryMap {
        self.map
    }

    /// Parses one line (its frame's bytes, a trailing CR or LF ignored). `received_at` is when
    /// the collector received it: a year-less syslog time takes the year nearest to it.
    pub fn parse<'a>(&'a self, line: &'a [u8], received_at: Timestamp) -> Result<BreachObserved<'a>, LineError> {
        let configured = self.config.format;
        let refuse = |format, error| LineError { format, error };
        if line.len() > self.config.max_line_bytes {
            return Err(refuse(configured, TOO_LONG));
        }
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = std::str::from_utf8(line).map_err(|_| refuse(configured, NOT_UTF8))?;
        // No short-circuit, so the loop vectorises: most lines are clean.
        let control = text.bytes().fold(false, |found, b| found | ((b < 0x20) & (b != b'\t')) | (b == 0x7f));
        if control {
            return Err(refuse(configured, CONTROL));
        }
        if text.trim().is_empty() {
            return Err(refuse(configured, EMPTY));
        }
        let envelope = syslog::envelope(text);
        let (format, payload) = match configured {
            Some(format) => {
                let payload =
                    syslog::candidates(&envelope).find(|c| detect(c) == Some(format)).unwrap_or(envelope.rest);
                (format, payload)
            }
            None => syslog::candidates(&envelope)
                .find_map(|candidate| detect(candidate).map(|format| (format, candidate)))
                .ok_or(refuse(None, UNRECOGNISED))?,
        };
        let cx = Cx {
            school: &self.config.school,
            zone: &self.config.zone,
            received_at,
            header_time: envelope.time,
            map: self.map,
        };
        formats::parse(format, payload, &cx).map_err(|error| refuse(Some(format), error))
    }
}
