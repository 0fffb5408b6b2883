//! Squid `logformat squid` (FORMATS.md §1):
//! `%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt`, anything after ignored
//! (`log_mime_hdrs`). Time is UTC. Squid has no category; a `TCP_DENIED/403` is an ACL block,
//! a `/407` an authentication challenge (not a filter decision).

use std::borrow::Cow;

use crate::breach::{Action, BreachObserved, TimeBasis};
use crate::error::ParseError;
use crate::format::SourceFormat;
use crate::parser::Cx;
use crate::text::{self, next_token, present, url};
use crate::time;

const SHORT: ParseError = ParseError::unparseable("fewer fields than Squid's native access log");

pub(super) fn parse<'a>(payload: &'a str, cx: &Cx<'a>) -> Result<BreachObserved<'a>, ParseError> {
    if time::ymd_hms(payload).is_some() {
        return Err(ParseError::not_web("a Squid cache.log line, not an access log line"));
    }
    let mut rest = payload;
    let mut field = || next_token(&mut rest).ok_or(SHORT);
    let (stamp, elapsed, client, result) = (field()?, field()?, field()?, field()?);
    let (_bytes, method, raw_url, user) = (field()?, field()?, field()?, field()?);
    let occurred_at = time::epoch_seconds(stamp)?;
    if time::digits(elapsed.as_bytes()).is_none() {
        return Err(ParseError::invalid("elapsed", "not a number of milliseconds"));
    }
    let client_ip = text::client_ip(client)?;
    let (code, status) = result.split_once('/').ok_or(ParseError::invalid("result", "not CODE/STATUS"))?;
    if status == "407" {
        return Err(ParseError::not_web("a proxy authentication challenge, not a filter decision"));
    }
    if method == "-" && raw_url.starts_with("error:") {
        return Err(ParseError::not_web("a Squid transaction error without a request"));
    }
    let url = url::parse(raw_url)?;
    let action = if code.contains("DENIED") { Action::Blocked } else { Action::Allowed };
    Ok(BreachObserved {
        school_id: cx.school,
        source_format: SourceFormat::SquidNative,
        vendor: Cow::Borrowed("squid"),
        occurred_at,
        time_basis: TimeBasis::Utc,
        client_ip: Some(client_ip),
        device: None,
        user: present(user).map(Cow::Borrowed),
        url: url.url,
        host: url.host,
        vendor_category: None,
        category: cx.map.classify("squid", None),
        vendor_action: Cow::Borrowed(result),
        action,
    })
}
