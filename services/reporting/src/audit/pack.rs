//! The audit pack for a period: one JSON-lines file an auditor downloads and keeps.
//!
//! ```text
//!  {"record":"pack", the period, its positions [from, to), counts, who and when}
//!  {"record":"chain", the hash chain recomputed from position 0 to the period's end}
//!  {"record":"event", …}   every event recorded in the period, with its stored envelope
//!                          (hex, hash field empty) so each link can be recomputed offline
//!  {"record":"access", …}  every recorded read or export of a record in the period
//!  {"record":"seal","lines":n,"hash":h}   h = SHA-256 chained over the lines before it
//! ```
//! The seal chains the lines as the log chains events: h₀ = 32 zero bytes, hᵢ = SHA-256(hᵢ₋₁ ‖
//! line i without its newline). The export is recorded (`audit-pack`,
//! `reporting.AuditPackExported`) with the seal, so a copy can be matched to its record.

use std::fmt::Write as _;

use haven_eventlog_client::chain::{GENESIS_HASH, chain_hash};
use haven_kernel::{Position, StreamId};
use haven_proto::v1::{self as pb, EventEnvelope, EventFilter};
use prost::Message;
use prost_types::Timestamp;

use super::{Audit, LOG_PAGE, access_row, before};
use crate::{Error, RecordContext, events};

/// The event types that record a read or export of a record.
pub const ACCESS_EVENT_TYPES: &[&str] = &[
    events::CASE_ACCESSED,
    events::STREAM_HISTORY_VIEWED,
    events::REGISTER_VIEWED,
    events::SUBJECT_RECORD_VIEWED,
    events::CUSTODY_TRAIL_EXPORTED,
    events::AUDIT_PACK_EXPORTED,
];

/// A built pack and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditPack {
    /// The file: JSON lines, each ending in a newline.
    pub body: String,
    pub from_position: u64,
    pub to_position: u64,
    pub events: u64,
    pub accesses: u64,
    pub chain_ok: bool,
    /// The last line's hash.
    pub seal: [u8; 32],
}

/// A JSON string literal.
fn json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn time(timestamp: Option<&Timestamp>) -> String {
    let seconds = timestamp.map_or(0, |t| t.seconds);
    json(&jiff::Timestamp::from_second(seconds).map(|t| t.to_string()).unwrap_or_default())
}

fn strings(values: &[String]) -> String {
    format!("[{}]", values.iter().map(|value| json(value)).collect::<Vec<_>>().join(","))
}

/// Lines and the hash chained over them.
struct Lines {
    body: String,
    count: u64,
    hash: [u8; 32],
}

impl Lines {
    fn push(&mut self, line: &str) {
        self.hash = chain_hash(&self.hash, line.as_bytes());
        self.body.push_str(line);
        self.body.push('\n');
        self.count += 1;
    }
}

fn event_line(event: &EventEnvelope) -> String {
    let actor = event.actor.clone().unwrap_or_default();
    let stored = EventEnvelope { hash: Vec::new(), ..event.clone() };
    format!(
        "{{\"record\":\"event\",\"position\":{},\"stream_id\":{},\"version\":{},\"event_type\":{},\"school_id\":{},\
         \"occurred_at\":{},\"recorded_at\":{},\"actor\":{},\"roles\":{},\"event_id\":\"{}\",\"hash\":\"{}\",\"envelope\":\"{}\"}}",
        event.position,
        json(&event.stream_id),
        event.version,
        json(&event.event_type),
        json(&event.school_id),
        time(event.occurred_at.as_ref()),
        time(event.recorded_at.as_ref()),
        json(&actor.principal_id),
        strings(&actor.roles),
        hex::encode(&event.event_id),
        hex::encode(&event.hash),
        hex::encode(stored.encode_to_vec()),
    )
}

fn access_line(event: &EventEnvelope) -> String {
    let row = access_row(event);
    format!(
        "{{\"record\":\"access\",\"position\":{},\"stream_id\":{},\"event_type\":{},\"principal_id\":{},\"roles\":{},\
         \"accessed_at\":{},\"purpose\":{}}}",
        row.position,
        json(&event.stream_id),
        json(&row.event_type),
        json(&row.principal_id),
        strings(&row.roles),
        time(row.accessed_at.as_ref()),
        json(&row.purpose),
    )
}

impl Audit {
    /// The audit pack for the events the log recorded in `[from, to)`: at most
    /// `max_scan_events` of them (a longer period is refused, naming `to`). The chain is
    /// recomputed from position 0 to the period's end. The export is recorded.
    pub async fn audit_pack(
        &self,
        from: &Timestamp,
        to: &Timestamp,
        context: &RecordContext,
    ) -> Result<AuditPack, Error> {
        if !before(Some(from), to) {
            return Err(Error::invalid("to", "must be after from"));
        }
        let from_position = self.position_at(from).await?;
        let to_position = self.position_at(to).await?;
        let in_period = to_position.saturating_sub(from_position);
        if in_period > self.limits.max_scan_events {
            return Err(Error::invalid(
                "to",
                format!(
                    "the period holds {in_period} events; a pack holds at most {}: choose a shorter period",
                    self.limits.max_scan_events
                ),
            ));
        }

        // The chain from the first event to the period's last, in calls of bounded size.
        let (mut checked, mut chain_ok, mut last_hash, mut first_bad) = (0, true, GENESIS_HASH, None);
        let mut next = 0;
        while next < to_position {
            let report = self.verify_chain(next, to_position, None, None).await?;
            checked += report.events_checked;
            last_hash = report.last_hash;
            if !report.ok() || report.next_position <= next {
                chain_ok = false;
                first_bad = Some(report.broken.as_ref().map_or(report.next_position, |broken| broken.position));
                break;
            }
            next = report.next_position;
        }

        let mut period = Vec::new();
        let mut position = from_position;
        while position < to_position {
            let slice = self.log.read_all(Position(position), LOG_PAGE, &EventFilter::default()).await?;
            period.extend(slice.events.into_iter().filter(|event| event.position < to_position));
            if slice.end_of_log || slice.next_position.0 <= position {
                break;
            }
            position = slice.next_position.0;
        }
        let accesses: Vec<&EventEnvelope> =
            period.iter().filter(|event| ACCESS_EVENT_TYPES.contains(&event.event_type.as_str())).collect();

        let mut lines = Lines { body: String::new(), count: 0, hash: GENESIS_HASH };
        lines.push(&format!(
            "{{\"record\":\"pack\",\"format\":\"haven-audit-pack/1\",\"from\":{},\"to\":{},\"from_position\":{from_position},\
             \"to_position\":{to_position},\"events\":{},\"accesses\":{},\"generated_at\":{},\"generated_by\":{}}}",
            time(Some(from)),
            time(Some(to)),
            period.len(),
            accesses.len(),
            time(Some(&context.occurred_at)),
            json(&context.actor.principal_id),
        ));
        lines.push(&format!(
            "{{\"record\":\"chain\",\"ok\":{chain_ok},\"from_position\":0,\"to_position\":{to_position},\
             \"events_checked\":{checked},\"last_hash\":\"{}\",\"first_bad_position\":{}}}",
            hex::encode(last_hash),
            first_bad.map_or("null".to_owned(), |position| position.to_string()),
        ));
        for event in &period {
            lines.push(&event_line(event));
        }
        for event in &accesses {
            lines.push(&access_line(event));
        }
        let count = lines.count;
        let seal = lines.hash;
        lines.push(&format!("{{\"record\":\"seal\",\"lines\":{count},\"hash\":\"{}\"}}", hex::encode(seal)));

        let record = pb::AuditPackExported {
            from: Some(*from),
            to: Some(*to),
            from_position,
            to_position,
            events: period.len() as u64,
            chain_ok,
            pack_hash: seal.to_vec(),
            exported_by_principal_id: context.actor.principal_id.clone(),
        };
        let stream = StreamId::parse("audit-pack").expect("a valid stream id");
        self.record(&stream, context, events::AUDIT_PACK_EXPORTED, "", record.encode_to_vec()).await?;
        Ok(AuditPack {
            body: lines.body,
            from_position,
            to_position,
            events: period.len() as u64,
            accesses: accesses.len() as u64,
            chain_ok,
            seal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::json;

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
