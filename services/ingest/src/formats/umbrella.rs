//! Cisco Umbrella proxy log CSV (FORMATS.md §8, "Web Log Formats"): every field quoted, times
//! in UTC, `ALLOWED`/`BLOCKED`, several categories in one field. Columns by position; later
//! schema versions append more. The optional header row is recognised and refused as not a web
//! event.

use std::borrow::Cow;

use crate::breach::{Action, BreachObserved, TimeBasis};
use crate::error::ParseError;
use crate::format::SourceFormat;
use crate::parser::Cx;
use crate::text::{self, csv, present, url};
use crate::time;

const TIMESTAMP: usize = 0;
const IDENTITY: usize = 1;
const INTERNAL_IP: usize = 2;
const ACTION: usize = 6;
const URL: usize = 7;
const CATEGORIES: usize = 15;
const IDENTITY_TYPE: usize = 21;

pub(super) fn parse<'a>(payload: &'a str, cx: &Cx<'a>) -> Result<BreachObserved<'a>, ParseError> {
    let mut columns: [Cow<'a, str>; IDENTITY_TYPE + 1] = std::array::from_fn(|_| Cow::Borrowed(""));
    let mut count = 0;
    for field in csv::fields(payload).take(IDENTITY_TYPE + 1) {
        columns[count] = field?;
        count += 1;
    }
    if columns[TIMESTAMP].eq_ignore_ascii_case("timestamp") {
        return Err(ParseError::not_web("a CSV header row"));
    }
    if count <= CATEGORIES {
        return Err(ParseError::unparseable("fewer columns than an Umbrella proxy log"));
    }
    let mut take = |index: usize| std::mem::take(&mut columns[index]);
    let (stamp, identity, internal_ip, action_word) =
        (take(TIMESTAMP), take(IDENTITY), take(INTERNAL_IP), take(ACTION));
    let (raw_url, categories, identity_type) = (take(URL), take(CATEGORIES), take(IDENTITY_TYPE));
    let (datetime, _) = time::ymd_hms(&stamp).ok_or(ParseError::invalid("time", "not YYYY-MM-DD hh:mm:ss"))?;
    let occurred_at =
        jiff::tz::Offset::UTC.to_timestamp(datetime).map_err(|_| ParseError::invalid("time", "out of range"))?;
    let action = match action_word.as_ref() {
        "BLOCKED" => Action::Blocked,
        "ALLOWED" => Action::Allowed,
        _ => return Err(ParseError::invalid("action", "not ALLOWED or BLOCKED")),
    };
    let client_ip = present(&internal_ip).map(text::client_ip).transpose()?;
    let url = url::parse_field(raw_url)?;
    // An identity is a user when its type says so; otherwise a computer, network or site.
    let identity = Some(identity).filter(|i| present(i).is_some());
    let is_user = identity_type.to_ascii_lowercase().contains("user");
    let (user, device) = if is_user { (identity, None) } else { (None, identity) };
    let vendor_category = Some(categories).filter(|c| present(c).is_some());
    Ok(BreachObserved {
        school_id: cx.school,
        source_format: SourceFormat::CiscoUmbrella,
        vendor: Cow::Borrowed("cisco_umbrella"),
        occurred_at,
        time_basis: TimeBasis::Utc,
        client_ip,
        device,
        user,
        url: url.url,
        host: url.host,
        category: cx.map.classify_list("cisco_umbrella", vendor_category.as_deref(), ','),
        vendor_category,
        vendor_action: action_word,
        action,
    })
}
