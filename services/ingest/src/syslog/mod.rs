//! The syslog envelope around a payload: RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD
//! MSG`) and RFC 3164 (`<PRI>Mmm dd hh:mm:ss HOST TAG: MSG`, with senders that leave out the
//! PRI, the host or the tag). The header's time is the relay's, kept only as a fallback for
//! payloads without a time of their own. Framing of a byte stream into messages is in
//! [`framing`].

pub mod framing;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::error::ParseError;
use crate::text::next_token;
use crate::time::{self, Observed};

/// The time in a syslog header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderTime {
    /// RFC 5424: a full timestamp with its offset.
    Exact(Timestamp),
    /// RFC 3164: month, day and time in the sender's zone, no year.
    Partial { month: u64, day: u64, hms: (u64, u64, u64) },
}

impl HeaderTime {
    pub fn resolve(self, zone: &TimeZone, received_at: Timestamp) -> Result<Observed, ParseError> {
        let observed = match self {
            HeaderTime::Exact(at) => Observed::utc(at),
            HeaderTime::Partial { month, day, hms } => time::without_year(month, day, hms, zone, received_at)?,
        };
        Ok(Observed { basis: crate::breach::TimeBasis::SyslogHeader, ..observed })
    }
}

/// A line with its envelope taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    pub time: Option<HeaderTime>,
    /// What follows the header's time. For RFC 5424 this is the MSG itself; for RFC 3164 it
    /// may still start with the host and the tag, which the caller skips while looking for a
    /// payload it recognises (senders differ in which they write).
    pub rest: &'a str,
    /// Whether `rest` may start with a host and a tag.
    pub may_have_host_and_tag: bool,
}

/// Takes the envelope off a line; a line without one is all payload.
pub(crate) fn envelope(line: &str) -> Envelope<'_> {
    let after_pri = strip_pri(line);
    if let Some(envelope) = rfc5424(after_pri) {
        return envelope;
    }
    if let Some((time, rest)) = rfc3164_time(after_pri) {
        return Envelope { time: Some(time), rest, may_have_host_and_tag: true };
    }
    // A PRI alone (`<14>payload`) is still an envelope.
    Envelope { time: None, rest: after_pri, may_have_host_and_tag: after_pri.len() != line.len() }
}

/// The candidate payloads of an envelope: `rest`, then `rest` after one and after two tokens
/// (host, tag) when the header may carry them.
pub(crate) fn candidates<'a>(envelope: &Envelope<'a>) -> impl Iterator<Item = &'a str> {
    let mut rest = envelope.rest;
    let extra = if envelope.may_have_host_and_tag { 2 } else { 0 };
    std::iter::once(rest).chain((0..extra).map_while(move |_| {
        next_token(&mut rest)?;
        let trimmed = rest.trim_start_matches(' ');
        (!trimmed.is_empty()).then_some(trimmed)
    }))
}

fn strip_pri(line: &str) -> &str {
    let Some(after) = line.strip_prefix('<') else { return line };
    let Some(end) = after.as_bytes().iter().take(4).position(|&b| b == b'>') else { return line };
    let pri = &after.as_bytes()[..end];
    if pri.is_empty() || !pri.iter().all(u8::is_ascii_digit) {
        return line;
    }
    &after[end + 1..]
}

fn rfc5424(after_pri: &str) -> Option<Envelope<'_>> {
    let mut rest = after_pri.strip_prefix("1 ")?;
    let stamp = next_token(&mut rest)?;
    let time = match stamp {
        "-" => None,
        _ => Some(HeaderTime::Exact(stamp.parse::<Timestamp>().ok()?)),
    };
    for _ in 0..4 {
        next_token(&mut rest)?; // HOSTNAME APP-NAME PROCID MSGID
    }
    let rest = skip_structured_data(rest.strip_prefix(' ')?)?;
    let msg = rest.strip_prefix(' ').unwrap_or(rest);
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    Some(Envelope { time, rest: msg, may_have_host_and_tag: false })
}

/// `-` or one or more `[id k="v" …]` elements, where `\]` may appear inside values.
fn skip_structured_data(rest: &str) -> Option<&str> {
    if let Some(after) = rest.strip_prefix('-') {
        return Some(after);
    }
    let bytes = rest.as_bytes();
    let mut at = 0;
    while bytes.get(at) == Some(&b'[') {
        let mut in_quotes = false;
        at += 1;
        loop {
            match *bytes.get(at)? {
                b'\\' => at += 1,
                b'"' => in_quotes = !in_quotes,
                b']' if !in_quotes => break,
                _ => {}
            }
            at += 1;
        }
        at += 1;
    }
    (at > 0).then(|| &rest[at..])
}

/// `Mmm dd hh:mm:ss ` (`Jan  6` with two spaces for a one-digit day).
fn rfc3164_time(after_pri: &str) -> Option<(HeaderTime, &str)> {
    let b = after_pri.as_bytes();
    if b.len() < 16 || b[3] != b' ' || b[15] != b' ' {
        return None;
    }
    let month = time::month(after_pri.get(0..3)?)?;
    let day_text = after_pri.get(4..6)?.trim_start();
    let day = time::digits(day_text.as_bytes())?;
    let hms = time::hms(after_pri.get(7..15)?)?;
    Some((HeaderTime::Partial { month, day, hms }, &after_pri[16..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3164_with_and_without_pri_host_and_tag() {
        let e = envelope("<14>Jul 20 23:59:02 firewall 1,2021/07/20");
        assert_eq!(e.time, Some(HeaderTime::Partial { month: 7, day: 20, hms: (23, 59, 2) }));
        assert_eq!(candidates(&e).collect::<Vec<_>>(), vec!["firewall 1,2021/07/20", "1,2021/07/20"]);
        let e = envelope("Jan  6 19:47:37 host date=2021-01-06 time=11:17:02");
        assert_eq!(e.time, Some(HeaderTime::Partial { month: 1, day: 6, hms: (19, 47, 37) }));
        let all: Vec<_> = candidates(&e).collect();
        assert_eq!(all, vec!["host date=2021-01-06 time=11:17:02", "date=2021-01-06 time=11:17:02", "time=11:17:02"]);
    }

    #[test]
    fn rfc5424_with_structured_data_and_bom() {
        let line = "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"App\\]lication\"] \u{feff}CEF:0|a";
        let e = envelope(line);
        assert_eq!(e.time, Some(HeaderTime::Exact("2003-10-11T22:14:15.003Z".parse().unwrap())));
        assert_eq!(e.rest, "CEF:0|a");
        assert_eq!(candidates(&e).count(), 1);
        let e = envelope("<14>1 - - - - - - LEEF:1.0|x");
        assert_eq!((e.time, e.rest), (None, "LEEF:1.0|x"));
    }

    #[test]
    fn no_envelope_is_all_payload() {
        let e = envelope("1570784654.576 111 127.0.0.1");
        assert_eq!((e.time, e.rest, e.may_have_host_and_tag), (None, "1570784654.576 111 127.0.0.1", false));
        assert_eq!(envelope("<x>a").rest, "<x>a");
        assert_eq!(envelope("<14>a").rest, "a");
    }
}
