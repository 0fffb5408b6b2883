//! Squid `logformat combined` / `common` (FORMATS.md §2):
//! `%>a %[ui %[un [%tl] "%rm %ru HTTP/%rv" %>Hs %<st "%{Referer}>h" "%{User-Agent}>h" %Ss:%Sh`.
//! The only Squid layout with an offset in its time. Referer and user agent may be missing.

use std::borrow::Cow;

use crate::breach::{Action, BreachObserved};
use crate::error::ParseError;
use crate::format::SourceFormat;
use crate::parser::Cx;
use crate::text::{self, next_token, present, url};
use crate::time;

const SHORT: ParseError = ParseError::unparseable("fewer fields than Squid's combined log");
const BAD_TIME: ParseError = ParseError::invalid("time", "not [dd/Mon/yyyy:hh:mm:ss zone]");

pub(super) fn parse<'a>(payload: &'a str, cx: &Cx<'a>) -> Result<BreachObserved<'a>, ParseError> {
    let mut rest = payload;
    let (client, _ident, user) = (next_token(&mut rest), next_token(&mut rest), next_token(&mut rest));
    let (client, user) = (client.ok_or(SHORT)?, user.ok_or(SHORT)?);
    let rest = rest.trim_start().strip_prefix('[').ok_or(SHORT)?;
    let (stamp, rest) = rest.split_once(']').ok_or(SHORT)?;
    let observed = clf_time(stamp).ok_or(BAD_TIME)?;
    let rest = rest.trim_start().strip_prefix('"').ok_or(SHORT)?;
    let (request, mut rest) = rest.split_once('"').ok_or(SHORT)?;
    let status = next_token(&mut rest).ok_or(SHORT)?;
    let squid_result =
        payload.rsplit_once(' ').map(|(_, last)| last).filter(|last| !last.ends_with('"') && last.contains(':'));
    let mut request_parts = request.split(' ');
    let (method, raw_url) = (request_parts.next().unwrap_or(""), request_parts.next().ok_or(SHORT)?);
    let client_ip = text::client_ip(client)?;
    if status == "407" {
        return Err(ParseError::not_web("a proxy authentication challenge, not a filter decision"));
    }
    if method == "-" {
        return Err(ParseError::not_web("a Squid transaction error without a request"));
    }
    let url = url::parse(raw_url)?;
    let denied = squid_result.is_some_and(|result| result.contains("DENIED")) || status == "403";
    Ok(BreachObserved {
        school_id: cx.school,
        source_format: SourceFormat::SquidCombined,
        vendor: Cow::Borrowed("squid"),
        occurred_at: observed.at,
        time_basis: observed.basis,
        client_ip: Some(client_ip),
        device: None,
        user: present(user).map(Cow::Borrowed),
        url: url.url,
        host: url.host,
        vendor_category: None,
        category: cx.map.classify("squid", None),
        vendor_action: Cow::Borrowed(squid_result.unwrap_or(status)),
        action: if denied { Action::Blocked } else { Action::Allowed },
    })
}

/// `12/Sep/2024:12:38:20 +0530`.
fn clf_time(stamp: &str) -> Option<time::Observed> {
    let (local, zone) = stamp.split_once(' ')?;
    let b = local.as_bytes();
    if b.len() != 20 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' {
        return None;
    }
    let (hour, minute, second) = time::hms(&local[12..])?;
    let datetime = time::civil(
        time::digits(&b[7..11])?,
        time::month(&local[3..6])?,
        time::digits(&b[0..2])?,
        hour,
        minute,
        second,
    )?;
    time::at_offset(datetime, time::offset(zone)?).ok()
}
