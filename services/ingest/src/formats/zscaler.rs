//! Zscaler NSS web feed, name=value form (FORMATS.md §9). The customer defines the feed
//! string, so Haven documents the one it reads (ADR 0011): TAB-separated `name=value` pairs
//! named after the NSS placeholders, e.g.
//! `epochtime=%d{epochtime}\tlogin=%s{login}\tcip=%s{cip}\turl=%s{eurl}\taction=%s{action}\t
//! urlcat=%s{urlcat}\turlsupercat=%s{urlsupercat}\tdevicehostname=%s{devicehostname}`.
//! Without `epochtime`, `time` (`Mon Jun 20 15:29:11 2022`) is read in the source's zone. The
//! CEF preset (`DeviceProduct=NSSWeblog`) is read by the CEF parser.

use std::borrow::Cow;

use crate::breach::{Action, BreachObserved};
use crate::error::ParseError;
use crate::format::SourceFormat;
use crate::parser::Cx;
use crate::text::{self, present, url};
use crate::time::{self, Observed};

#[derive(Default)]
struct Fields<'a> {
    epochtime: Option<&'a str>,
    time: Option<&'a str>,
    login: Option<&'a str>,
    cip: Option<&'a str>,
    url: Option<&'a str>,
    action: Option<&'a str>,
    urlcat: Option<&'a str>,
    device: Option<&'a str>,
}

pub(super) fn parse<'a>(payload: &'a str, cx: &Cx<'a>) -> Result<BreachObserved<'a>, ParseError> {
    let mut f = Fields::default();
    for pair in payload.split('\t') {
        let Some((key, value)) = pair.split_once('=') else { continue };
        let value = present(value);
        match key.trim() {
            "epochtime" => f.epochtime = value,
            "time" => f.time = value,
            "login" | "ologin" => f.login = value,
            "cip" => f.cip = value,
            "url" | "eurl" => f.url = f.url.or(value),
            "action" => f.action = value,
            "urlcat" => f.urlcat = value,
            "devicehostname" => f.device = value,
            _ => {}
        }
    }
    let url = url::parse(f.url.ok_or(ParseError::missing("url", "no url= or eurl= pair"))?)?;
    let action_word = f.action.ok_or(ParseError::missing("action", "no action= pair"))?;
    let action = match action_word.to_ascii_lowercase().as_str() {
        "blocked" => Action::Blocked,
        "caution" => Action::Flagged,
        "allowed" => Action::Allowed,
        _ => return Err(ParseError::invalid("action", "not Allowed, Blocked or Caution")),
    };
    let observed = match (f.epochtime, f.time) {
        (Some(epoch), _) => Observed::utc(time::epoch_scaled(epoch)?),
        (None, Some(local)) => {
            cx.local(ctime(local).ok_or(ParseError::invalid("time", "not `Www Mmm dd hh:mm:ss yyyy`"))?)?
        }
        (None, None) => cx.header_time()?,
    };
    let client_ip = f.cip.map(text::client_ip).transpose()?;
    Ok(BreachObserved {
        school_id: cx.school,
        source_format: SourceFormat::ZscalerNss,
        vendor: Cow::Borrowed("zscaler"),
        occurred_at: observed.at,
        time_basis: observed.basis,
        client_ip,
        device: f.device.map(Cow::Borrowed),
        user: f.login.map(Cow::Borrowed),
        url: url.url,
        host: url.host,
        vendor_category: f.urlcat.map(Cow::Borrowed),
        category: cx.map.classify("zscaler", f.urlcat),
        vendor_action: Cow::Borrowed(action_word),
        action,
    })
}

/// `Mon Jun 20 15:29:11 2022`.
fn ctime(raw: &str) -> Option<jiff::civil::DateTime> {
    let mut parts = raw.split_ascii_whitespace();
    let (_weekday, month, day, clock, year) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let (hour, minute, second) = time::hms(clock)?;
    time::civil(
        time::digits(year.as_bytes())?,
        time::month(month)?,
        time::digits(day.as_bytes())?,
        hour,
        minute,
        second,
    )
}
