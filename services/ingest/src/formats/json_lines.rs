//! Haven's own JSON line, for collectors that normalise upstream: one object per line,
//!
//! ```json
//! {"time":"2026-11-25T09:15:00Z","client_ip":"10.1.2.3","user":"jdoe","device":"LAPTOP-12",
//!  "url":"https://example.com/a","action":"blocked","vendor":"acme","vendor_category":"Gambling"}
//! ```
//!
//! `time` is RFC 3339 with an offset; `action` is blocked, flagged (or warned) or allowed;
//! `category` may name Haven's category directly, otherwise `vendor_category` is mapped in
//! the `vendor` namespace (default `json`). Other keys are ignored.

use std::borrow::Cow;

use serde::Deserialize;

use crate::breach::{Action, BreachObserved, TimeBasis};
use crate::error::ParseError;
use crate::format::SourceFormat;
use crate::parser::Cx;
use crate::taxonomy::Category;
use crate::text::{self, url};

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    client_ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user: Option<Cow<'a, str>>,
    #[serde(borrow)]
    device: Option<Cow<'a, str>>,
    #[serde(borrow)]
    url: Option<Cow<'a, str>>,
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow)]
    vendor: Option<Cow<'a, str>>,
    #[serde(borrow)]
    vendor_category: Option<Cow<'a, str>>,
    #[serde(borrow)]
    category: Option<Cow<'a, str>>,
}

pub(super) fn parse<'a>(payload: &'a str, cx: &Cx<'a>) -> Result<BreachObserved<'a>, ParseError> {
    let line: Line<'a> = serde_json::from_str(payload)
        .map_err(|_| ParseError::unparseable("not a JSON object in Haven's line shape"))?;
    let stamp = line.time.ok_or(ParseError::missing("time", "no \"time\""))?;
    let occurred_at: jiff::Timestamp =
        stamp.parse().map_err(|_| ParseError::invalid("time", "not RFC 3339 with an offset"))?;
    let time_basis = if stamp.ends_with('Z') || stamp.ends_with('z') { TimeBasis::Utc } else { TimeBasis::Offset };
    let action_word = line.action.ok_or(ParseError::missing("action", "no \"action\""))?;
    let action = match action_word.as_ref() {
        "blocked" => Action::Blocked,
        "flagged" | "warned" => Action::Flagged,
        "allowed" => Action::Allowed,
        _ => return Err(ParseError::invalid("action", "not blocked, flagged, warned or allowed")),
    };
    let url = url::parse_field(line.url.ok_or(ParseError::missing("url", "no \"url\""))?)?;
    let client_ip = line.client_ip.as_deref().map(text::client_ip).transpose()?;
    let vendor = line.vendor.unwrap_or(Cow::Borrowed("json"));
    let category = match line.category.as_deref() {
        Some(name) => name.parse::<Category>().map_err(|_| ParseError::invalid("category", "not a Haven category"))?,
        None => cx.map.classify(&vendor, line.vendor_category.as_deref()),
    };
    Ok(BreachObserved {
        school_id: cx.school,
        source_format: SourceFormat::JsonLines,
        vendor,
        occurred_at,
        time_basis,
        client_ip,
        device: line.device,
        user: line.user,
        url: url.url,
        host: url.host,
        vendor_category: line.vendor_category,
        category,
        vendor_action: action_word,
        action,
    })
}
