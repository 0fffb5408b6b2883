//! PAN-OS syslog CSV (FORMATS.md §5, "Threat Log Fields"). URL-filtering entries are
//! `THREAT` logs of subtype `url`; every other type (TRAFFIC, SYSTEM, CONFIG, …) is not a web
//! event. Columns are mapped by position and newer releases append more, so a row is read as
//! far as the last column Haven needs. Generated Time is firewall local time without an offset.

use std::borrow::Cow;

use crate::breach::{Action, BreachObserved};
use crate::error::ParseError;
use crate::format::SourceFormat;
use crate::parser::Cx;
use crate::text::{self, csv, present, url};
use crate::time;

const TYPE: usize = 3;
const SUBTYPE: usize = 4;
const GENERATED_TIME: usize = 6;
const SOURCE_ADDRESS: usize = 7;
const SOURCE_USER: usize = 12;
const ACTION: usize = 30;
const URL: usize = 31;
const CATEGORY: usize = 33;

pub(super) fn parse<'a>(payload: &'a str, cx: &Cx<'a>) -> Result<BreachObserved<'a>, ParseError> {
    let mut columns: [Cow<'a, str>; CATEGORY + 1] = std::array::from_fn(|_| Cow::Borrowed(""));
    let mut count = 0;
    for field in csv::fields(payload).take(CATEGORY + 1) {
        columns[count] = field?;
        count += 1;
        if count == SUBTYPE + 1 && (columns[TYPE] != "THREAT" || columns[SUBTYPE] != "url") {
            return Err(ParseError::not_web("a PAN-OS log that is not a URL-filtering entry"));
        }
    }
    if count <= CATEGORY {
        return Err(ParseError::unparseable("fewer columns than a PAN-OS URL-filtering entry"));
    }
    let mut take = |index: usize| std::mem::take(&mut columns[index]);
    let (stamp, source, user) = (take(GENERATED_TIME), take(SOURCE_ADDRESS), take(SOURCE_USER));
    let (action_word, raw_url, category) = (take(ACTION), take(URL), take(CATEGORY));
    let action = action(&action_word)?;
    let (datetime, _) = time::ymd_hms(&stamp).ok_or(ParseError::invalid("time", "not YYYY/MM/DD hh:mm:ss"))?;
    let observed = cx.local(datetime)?;
    let client_ip = present(&source).map(text::client_ip).transpose()?;
    let url = url::parse_field(raw_url)?;
    let vendor_category = Some(category).filter(|c| present(c).is_some());
    Ok(BreachObserved {
        school_id: cx.school,
        source_format: SourceFormat::PanOs,
        vendor: Cow::Borrowed("palo_alto"),
        occurred_at: observed.at,
        time_basis: observed.basis,
        client_ip,
        device: None,
        user: Some(user).filter(|u| present(u).is_some()),
        url: url.url,
        host: url.host,
        category: cx.map.classify("palo_alto", vendor_category.as_deref()),
        vendor_category,
        vendor_action: action_word,
        action,
    })
}

/// The URL-filtering actions: `alert` allows and logs (flagged), `continue` and
/// `block-continue` are the warning page (flagged), `override` is a password override.
fn action(word: &str) -> Result<Action, ParseError> {
    Ok(match word {
        "block-url" | "block-override" | "override-lockout" | "drop" | "deny" | "reset-client" | "reset-server"
        | "reset-both" | "block" => Action::Blocked,
        "alert" | "continue" | "block-continue" | "override" => Action::Flagged,
        "allow" => Action::Allowed,
        _ => return Err(ParseError::invalid("action", "not a PAN-OS URL-filtering action")),
    })
}
