//! Sophos (FORMATS.md §7), three products, told apart per line:
//! - **UTM 9** (`httpproxy`): `YYYY:MM:DD-hh:mm:ss host httpproxy[pid]: id="0001" … action="pass"
//!   srcip=… user=… url=… categoryname=…`; local time, no zone; blocks are `action="block"` or
//!   `name="web request blocked"`.
//! - **Firewall (SFOS)**: `log_type="Content Filtering"`, `log_subtype` `Allowed`/`Denied`/
//!   `Warned`, `user_name`, `src_ip`, `url`, `category`, `date`+`time` with a zone
//!   *abbreviation*, which is ambiguous, so the source's zone is used instead.
//! - **Web Appliance** (`sophos_log`): `h=client u="DOMAIN\\user" t=epoch act=N cat="0x…"`, with
//!   `act` −1 blocked, −2 warned, 2 warned and proceeded, 1 allowed (other negative codes are
//!   quota blocks); the URL from `url` or the request line `req`, else `dom`.

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
    // UTM
    name: Option<&'a str>,
    action: Option<&'a str>,
    srcip: Option<&'a str>,
    user: Option<Value<'a>>,
    url: Option<Value<'a>>,
    categoryname: Option<Value<'a>>,
    category: Option<Value<'a>>,
    // SFOS
    log_type: Option<&'a str>,
    log_subtype: Option<&'a str>,
    user_name: Option<Value<'a>>,
    src_ip: Option<&'a str>,
    domain: Option<&'a str>,
    date: Option<&'a str>,
    time: Option<&'a str>,
    // Web Appliance
    h: Option<&'a str>,
    u: Option<Value<'a>>,
    t: Option<&'a str>,
    act: Option<&'a str>,
    cat: Option<&'a str>,
    dom: Option<&'a str>,
    req: Option<&'a str>,
}

const NOT_WEB: ParseError = ParseError::not_web("a Sophos record that is not a web-filter decision");

pub(super) fn parse<'a>(payload: &'a str, cx: &Cx<'a>) -> Result<BreachObserved<'a>, ParseError> {
    // UTM's own prefix: `2015:03:02-00:39:22 host httpproxy[5207]:`.
    let utm_time = time::ymd_hms(payload).map(|(datetime, _)| datetime);
    let mut f = Fields::default();
    for pair in kv::pairs(payload) {
        let (key, value) = pair?;
        match key {
            "name" => f.name = Some(value.raw),
            "action" => f.action = Some(value.raw),
            "srcip" => f.srcip = Some(value.raw),
            "user" => f.user = Some(value),
            "url" => f.url = Some(value),
            "categoryname" => f.categoryname = Some(value),
            "category" => f.category = Some(value),
            "log_type" => f.log_type = Some(value.raw),
            "log_subtype" => f.log_subtype = Some(value.raw),
            "user_name" => f.user_name = Some(value),
            "src_ip" => f.src_ip = Some(value.raw),
            "domain" => f.domain = Some(value.raw),
            "date" => f.date = Some(value.raw),
            "time" => f.time = Some(value.raw),
            "h" => f.h = Some(value.raw),
            "u" => f.u = Some(value),
            "t" => f.t = Some(value.raw),
            "act" => f.act = Some(value.raw),
            "cat" => f.cat = Some(value.raw),
            "dom" => f.dom = Some(value.raw),
            "req" => f.req = Some(value.raw),
            _ => {}
        }
    }
    let (observed, action, action_word, client, user, label) = if let Some(log_type) = f.log_type {
        // Sophos Firewall.
        if log_type != "Content Filtering" {
            return Err(NOT_WEB);
        }
        let word = f.log_subtype.ok_or(ParseError::missing("action", "no log_subtype"))?;
        let action = match word {
            "Denied" => Action::Blocked,
            "Warned" => Action::Flagged,
            "Allowed" => Action::Allowed,
            _ => return Err(ParseError::invalid("action", "not Allowed, Denied or Warned")),
        };
        let observed = match (f.date, f.time) {
            (Some(date), Some(clock)) => {
                let bad = ParseError::invalid("time", "date= and time= are not YYYY-MM-DD and hh:mm:ss");
                cx.local(time::ymd_hms(&format!("{date} {clock}")).ok_or(bad)?.0)?
            }
            _ => cx.header_time()?,
        };
        (observed, action, word, f.src_ip, f.user_name, f.category.map(Value::text))
    } else if let Some(code) = f.act {
        // Web Appliance.
        let action = match code {
            "1" => Action::Allowed,
            "-2" | "2" => Action::Flagged,
            _ if code.starts_with('-') => Action::Blocked,
            _ if code.bytes().all(|b| b.is_ascii_digit()) => Action::Allowed,
            _ => return Err(ParseError::invalid("action", "act= is not a number")),
        };
        let observed = match f.t {
            Some(epoch) => Observed::utc(time::epoch_scaled(epoch)?),
            None => cx.header_time()?,
        };
        (observed, action, code, f.h, f.u, f.cat.map(Cow::Borrowed))
    } else {
        // UTM.
        let word = f.action.ok_or(ParseError::missing("action", "no action="))?;
        let blocked = word == "block" || f.name.is_some_and(|n| n.contains("blocked"));
        let action = match word {
            _ if blocked => Action::Blocked,
            "warn" => Action::Flagged,
            "pass" => Action::Allowed,
            _ => return Err(ParseError::invalid("action", "not pass, block or warn")),
        };
        let observed = match utm_time {
            Some(datetime) => cx.local(datetime)?,
            None => cx.header_time()?,
        };
        let label = f.categoryname.or(f.category).map(Value::text);
        (observed, action, word, f.srcip, f.user, label)
    };
    // The Web Appliance's `req` is the request line, `GET http://… HTTP/1.1`.
    let requested = f.url.map(|u| u.raw).or_else(|| f.req.and_then(|line| line.split(' ').nth(1)));
    let url = match (requested.and_then(present), f.domain.or(f.dom).and_then(present)) {
        (Some(raw), _) => url::parse(raw)?,
        (None, Some(host)) => url::parse(host)?,
        (None, None) => return Err(NOT_WEB),
    };
    let client_ip = client.and_then(present).map(text::client_ip).transpose()?;
    let label = label.filter(|l| present(l).is_some());
    Ok(BreachObserved {
        school_id: cx.school,
        source_format: SourceFormat::Sophos,
        vendor: Cow::Borrowed("sophos"),
        occurred_at: observed.at,
        time_basis: observed.basis,
        client_ip,
        device: None,
        user: user.map(Value::text).filter(|u| present(u).is_some()),
        url: url.url,
        host: url.host,
        category: cx.map.classify("sophos", label.as_deref()),
        vendor_category: label,
        vendor_action: Cow::Borrowed(action_word),
        action,
    })
}
