//! squidGuard's block log (FORMATS.md §3; no formal spec, layout from samples):
//! `date time [pid] Request(source-group/target-category/rewrite) url client-ip/fqdn ident
//! method REDIRECT`. Local time without a zone.

use std::borrow::Cow;

use crate::breach::{Action, BreachObserved};
use crate::error::ParseError;
use crate::format::SourceFormat;
use crate::parser::Cx;
use crate::text::{self, next_token, present, url};
use crate::time;

const SHORT: ParseError = ParseError::unparseable("fewer fields than squidGuard's block log");

pub(super) fn parse<'a>(payload: &'a str, cx: &Cx<'a>) -> Result<BreachObserved<'a>, ParseError> {
    let (datetime, mut rest) = time::ymd_hms(payload).ok_or(ParseError::invalid("time", "not YYYY-MM-DD hh:mm:ss"))?;
    let mut field = || next_token(&mut rest).ok_or(SHORT);
    let (_pid, request, raw_url, client, ident, _method, verdict) =
        (field()?, field()?, field()?, field()?, field()?, field()?, field()?);
    let groups = request
        .strip_prefix("Request(")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or(ParseError::unparseable("no Request(source/target/rewrite) field"))?;
    let target = groups.split('/').nth(1).ok_or(ParseError::missing("category", "no target group in Request(...)"))?;
    let action = match verdict {
        "REDIRECT" | "BLOCK" => Action::Blocked,
        "PASS" => Action::Allowed,
        _ => return Err(ParseError::invalid("action", "not a squidGuard verdict (REDIRECT, BLOCK, PASS)")),
    };
    let client_ip = text::client_ip(client.split('/').next().unwrap_or(client))?;
    let observed = cx.local(datetime)?;
    let url = url::parse(raw_url)?;
    let vendor_category = present(target);
    Ok(BreachObserved {
        school_id: cx.school,
        source_format: SourceFormat::Squidguard,
        vendor: Cow::Borrowed("squidguard"),
        occurred_at: observed.at,
        time_basis: observed.basis,
        client_ip: Some(client_ip),
        device: None,
        user: present(ident).map(Cow::Borrowed),
        url: url.url,
        host: url.host,
        vendor_category: vendor_category.map(Cow::Borrowed),
        category: cx.map.classify("squidguard", vendor_category),
        vendor_action: Cow::Borrowed(verdict),
        action,
    })
}
