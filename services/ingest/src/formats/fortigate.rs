//! FortiGate / FortiOS key=value (FORMATS.md §4, FortiOS Log Message Reference). Web events
//! are `type=utm` lines with a host or URL (`subtype=webfilter`, and app-control and antivirus
//! lines that name one); `type=traffic` and `type=event` lines are not web events.
//! Time: `eventtime` (UTC epoch, in s, µs or ns by firmware), else `date`+`time` with `tz`,
//! else `date`+`time` in the source's zone.

use std::borrow::Cow;

use crate::breach::{Action, BreachObserved};
use crate::error::ParseError;
use crate::format::SourceFormat;
use crate::parser::Cx;
use crate::text::kv::{self, Value};
use crate::text::{self, present, url};
use crate::time::{self, Observed};

#[derive(Default)]
struct Fields<'a> {
    date: Option<&'a str>,
    time: Option<&'a str>,
    tz: Option<&'a str>,
    eventtime: Option<&'a str>,
    kind: Option<&'a str>,
    subtype: Option<&'a str>,
    eventtype: Option<&'a str>,
    action: Option<Value<'a>>,
    srcip: Option<&'a str>,
    srcmac: Option<&'a str>,
    user: Option<Value<'a>>,
    hostname: Option<&'a str>,
    url: Option<&'a str>,
    catdesc: Option<Value<'a>>,
    appcat: Option<Value<'a>>,
}

const NOT_WEB: ParseError = ParseError::not_web("a FortiGate traffic, event or UTM record without a URL");

pub(super) fn parse<'a>(payload: &'a str, cx: &Cx<'a>) -> Result<BreachObserved<'a>, ParseError> {
    let mut f = Fields::default();
    for pair in kv::pairs(payload) {
        let (key, value) = pair?;
        match key {
            // Most of a firewall's lines are traffic records: stop reading them at `type`.
            "type" if value.raw != "utm" => return Err(NOT_WEB),
            "date" => f.date = Some(value.raw),
            "time" => f.time = Some(value.raw),
            "tz" => f.tz = Some(value.raw),
            "eventtime" => f.eventtime = Some(value.raw),
            "type" => f.kind = Some(value.raw),
            "subtype" => f.subtype = Some(value.raw),
            "eventtype" => f.eventtype = Some(value.raw),
            "action" => f.action = Some(value),
            "srcip" => f.srcip = Some(value.raw),
            "srcmac" => f.srcmac = Some(value.raw),
            "user" => f.user = Some(value),
            "hostname" => f.hostname = Some(value.raw),
            "url" => f.url = Some(value.raw),
            "catdesc" => f.catdesc = Some(value),
            "appcat" => f.appcat = Some(value),
            _ => {}
        }
    }
    if f.kind.is_none() {
        return Err(ParseError::missing("type", "no type= field"));
    }
    let url = match (f.hostname, f.url) {
        (Some(host), Some(path)) => url::from_host_and_path(host, path)?,
        (Some(host), None) => url::parse(host)?,
        (None, Some(raw)) => url::parse(raw)?,
        (None, None) => return Err(NOT_WEB),
    };
    let observed = observed(&f, cx)?;
    let client_ip = f.srcip.map(text::client_ip).transpose()?;
    let action_word = f.action.ok_or(ParseError::missing("action", "no action= field"))?.text();
    let vendor_category = match (f.catdesc, f.appcat) {
        (Some(catdesc), _) => Some(catdesc.text()),
        (None, Some(appcat)) => Some(appcat.text()),
        (None, None) if f.subtype == Some("virus") => Some(Cow::Borrowed("virus")),
        (None, None) => None,
    };
    let vendor_category = vendor_category.filter(|c| present(c).is_some());
    Ok(BreachObserved {
        school_id: cx.school,
        source_format: SourceFormat::Fortigate,
        vendor: Cow::Borrowed("fortinet"),
        occurred_at: observed.at,
        time_basis: observed.basis,
        client_ip,
        device: f.srcmac.and_then(present).map(Cow::Borrowed),
        user: f.user.map(Value::text).filter(|u| present(u).is_some()),
        category: cx.map.classify("fortinet", vendor_category.as_deref()),
        vendor_category,
        url: url.url,
        host: url.host,
        action: action(&action_word, f.eventtype),
        vendor_action: action_word,
    })
}

fn observed(f: &Fields<'_>, cx: &Cx<'_>) -> Result<Observed, ParseError> {
    if let Some(epoch) = f.eventtime {
        return Ok(Observed::utc(time::epoch_scaled(epoch)?));
    }
    let (Some(date), Some(clock)) = (f.date, f.time) else {
        return cx.header_time();
    };
    let bad = ParseError::invalid("time", "date= and time= are not YYYY-MM-DD and hh:mm:ss");
    let (datetime, _) = time::ymd_hms(&format!("{date} {clock}")).ok_or(bad)?;
    match f.tz {
        Some(tz) => time::at_offset(datetime, time::offset(tz).ok_or(ParseError::invalid("tz", "not an offset"))?),
        None => cx.local(datetime),
    }
}

/// `action` with `eventtype` (`ftgd_blk`, `ftgd_warn`, `ftgd_allow`, `urlfilter`).
fn action(word: &str, eventtype: Option<&str>) -> Action {
    if eventtype.is_some_and(|e| e.contains("warn")) || matches!(word, "warning" | "warned") {
        return Action::Flagged;
    }
    match word {
        "blocked" | "block" | "deny" | "dropped" | "reset" => Action::Blocked,
        "monitored" | "monitor" => Action::Flagged,
        _ => Action::Allowed,
    }
}
