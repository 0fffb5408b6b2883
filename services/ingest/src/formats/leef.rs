//! IBM LEEF (FORMATS.md §11): `LEEF:1.0|Vendor|Product|Version|EventID|` then TAB-separated
//! `key=value`; LEEF 2.0 adds a sixth header field naming the delimiter, as a character or in
//! hex (`x09`, `0x5e`, `xa6` for `¦`). A web event has `url` (or PAN's `URL`); the user is
//! `usrName`, the client `src`, the category `cat`, the action `action`. `devTime` is epoch
//! milliseconds or a local time in the source's zone.

use std::borrow::Cow;

use crate::breach::BreachObserved;
use crate::error::ParseError;
use crate::format::SourceFormat;
use crate::parser::Cx;
use crate::text::{self, present, url};
use crate::time::{self, Observed};

use super::{generic_action, vendor_namespace};

const HEADER: ParseError = ParseError::unparseable("fewer header fields than LEEF's");

pub(super) fn parse<'a>(payload: &'a str, cx: &Cx<'a>) -> Result<BreachObserved<'a>, ParseError> {
    let body = payload.strip_prefix("LEEF:").ok_or(HEADER)?;
    let mut header = body.splitn(6, '|');
    let version = header.next().ok_or(HEADER)?;
    let vendor = header.next().ok_or(HEADER)?;
    let (_product, _version, _event_id) = (header.next(), header.next(), header.next().ok_or(HEADER)?);
    let mut attributes = header.next().ok_or(HEADER)?;
    let delimiter = if version.starts_with('2') {
        let (spec, rest) = attributes.split_once('|').ok_or(HEADER)?;
        attributes = rest;
        delimiter(spec).ok_or(ParseError::invalid("delimiter", "not a character or a hex code"))?
    } else {
        '\t'
    };
    let (mut url_field, mut user, mut src, mut cat, mut action, mut dev_time) = (None, None, None, None, None, None);
    for pair in attributes.split(delimiter) {
        let Some((key, value)) = pair.split_once('=') else { continue };
        let value = present(value);
        match key.trim() {
            "url" | "URL" => url_field = value,
            "usrName" => user = value,
            "src" => src = value,
            "cat" => cat = value,
            "action" | "Action" => action = value,
            "devTime" => dev_time = value,
            _ => {}
        }
    }
    let url = url::parse(url_field.ok_or(ParseError::not_web("a LEEF event without a requested URL"))?)?;
    let action_word = action.ok_or(ParseError::missing("action", "no action attribute"))?;
    let observed = match dev_time {
        Some(stamp) => dev_time_of(stamp, cx)?,
        None => cx.header_time()?,
    };
    let client_ip = src.map(text::client_ip).transpose()?;
    let namespace = vendor_namespace(vendor);
    Ok(BreachObserved {
        school_id: cx.school,
        source_format: SourceFormat::Leef,
        vendor: Cow::Borrowed(namespace.unwrap_or(vendor)),
        occurred_at: observed.at,
        time_basis: observed.basis,
        client_ip,
        device: None,
        user: user.map(Cow::Borrowed),
        url: url.url,
        host: url.host,
        vendor_category: cat.map(Cow::Borrowed),
        category: cx.map.classify(namespace.unwrap_or(vendor), cat),
        vendor_action: Cow::Borrowed(action_word),
        action: generic_action(action_word),
    })
}

/// `devTime`: epoch (milliseconds by LEEF's default), `yyyy-MM-dd HH:mm:ss`, or
/// `MMM dd yyyy HH:mm:ss`, the latter two in the source's zone.
fn dev_time_of(stamp: &str, cx: &Cx<'_>) -> Result<Observed, ParseError> {
    if stamp.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Observed::utc(time::epoch_scaled(stamp)?));
    }
    if let Some((datetime, _)) = time::ymd_hms(stamp) {
        return cx.local(datetime);
    }
    let bad = ParseError::invalid("time", "devTime is not epoch, yyyy-MM-dd HH:mm:ss or MMM dd yyyy HH:mm:ss");
    cx.local(time::month_day_year_hms(stamp).ok_or(bad)?)
}

/// A LEEF 2.0 delimiter: one character, or `xHH` / `0xHH` naming a code point.
fn delimiter(spec: &str) -> Option<char> {
    let hex = spec.strip_prefix("0x").or_else(|| spec.strip_prefix("x")).or_else(|| spec.strip_prefix("X"));
    match hex {
        Some(hex) if !hex.is_empty() && hex.len() <= 4 => char::from_u32(u32::from_str_radix(hex, 16).ok()?),
        _ => {
            let mut chars = spec.chars();
            let only = chars.next();
            if chars.next().is_some() { None } else { only.or(Some('\t')) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters() {
        assert_eq!(delimiter("xa6"), Some('¦'));
        assert_eq!(delimiter("x09"), Some('\t'));
        assert_eq!(delimiter("0x5e"), Some('^'));
        assert_eq!(delimiter("^"), Some('^'));
        assert_eq!(delimiter(""), Some('\t'));
        assert_eq!(delimiter("ab"), None);
        assert_eq!(delimiter("xzz"), None);
    }
}
