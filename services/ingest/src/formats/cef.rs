//! ArcSight CEF (FORMATS.md §10): `CEF:Version|Vendor|Product|Version|SignatureID|Name|
//! Severity|Extension`, with `\|` and `\\` escaped in the header and `\=`, `\\`, `\n`, `\r` in
//! extension values. Values may contain spaces: a key is the word before an unescaped `=`.
//! A web event has a requested URL (`request`, joined to `dhost` when it is only a path);
//! events without one are not web events. Vendors disagree on the client user: `suser` first,
//! then `duser` (FortiGate). The category is `cat`, a `csN` labelled as a category (PAN-OS),
//! or FortiGate's `FTNTFGTcatdesc`; the device vendor picks the category table.

use std::borrow::Cow;

use crate::breach::BreachObserved;
use crate::error::ParseError;
use crate::format::SourceFormat;
use crate::parser::Cx;
use crate::text::{self, present, url};
use crate::time::{self, Observed};

use super::{generic_action, vendor_namespace};

const HEADER: ParseError = ParseError::unparseable("fewer than 7 header fields before the extension");

#[derive(Default)]
struct Fields<'a> {
    act: Option<&'a str>,
    request: Option<&'a str>,
    dhost: Option<&'a str>,
    src: Option<&'a str>,
    suser: Option<&'a str>,
    duser: Option<&'a str>,
    shost: Option<&'a str>,
    rt: Option<&'a str>,
    start: Option<&'a str>,
    cat: Option<&'a str>,
    fortinet_catdesc: Option<&'a str>,
    custom: [Option<&'a str>; 6],
    custom_labels: [Option<&'a str>; 6],
}

pub(super) fn parse<'a>(payload: &'a str, cx: &Cx<'a>) -> Result<BreachObserved<'a>, ParseError> {
    let body = payload.strip_prefix("CEF:").ok_or(HEADER)?.trim_start();
    let mut header = [""; 7];
    let mut rest = body;
    for slot in header.iter_mut() {
        let end = unescaped(rest.as_bytes(), b'|').ok_or(HEADER)?;
        *slot = &rest[..end];
        rest = &rest[end + 1..];
    }
    let [_version, vendor, _product, _device_version, _signature, _name, _severity] = header;
    let mut f = Fields::default();
    for (key, value) in Extension::new(rest) {
        match key {
            "act" => f.act = Some(value),
            "request" => f.request = Some(value),
            "dhost" => f.dhost = Some(value),
            "src" => f.src = Some(value),
            "suser" => f.suser = Some(value),
            "duser" => f.duser = Some(value),
            "shost" => f.shost = Some(value),
            "rt" => f.rt = Some(value),
            "start" => f.start = Some(value),
            "cat" => f.cat = Some(value),
            "FTNTFGTcatdesc" => f.fortinet_catdesc = Some(value),
            _ => {
                if let Some(n) = custom_string_index(key, "") {
                    f.custom[n] = Some(value);
                } else if let Some(n) = custom_string_index(key, "Label") {
                    f.custom_labels[n] = Some(value);
                }
            }
        }
    }
    let request = f.request.and_then(present).ok_or(ParseError::not_web("a CEF event without a requested URL"))?;
    let url = match f.dhost.and_then(present) {
        Some(host) if request.starts_with('/') => url::from_host_and_path(host, request)?,
        _ => url::parse(request)?,
    };
    let observed = match f.rt.or(f.start).and_then(present) {
        Some(stamp) => event_time(stamp, cx)?,
        None => cx.header_time()?,
    };
    let act = f.act.and_then(present).ok_or(ParseError::missing("action", "no act= key"))?;
    let client_ip = f.src.and_then(present).map(text::client_ip).transpose()?;
    let namespace = vendor_namespace(vendor);
    let label = f.fortinet_catdesc.or(f.cat).or_else(|| {
        (0..6).find_map(|n| f.custom_labels[n].filter(|l| l.to_ascii_lowercase().contains("categ")).and(f.custom[n]))
    });
    let vendor_category = label.and_then(present).map(unescape);
    let user = f.suser.or(f.duser).and_then(present).map(unescape);
    Ok(BreachObserved {
        school_id: cx.school,
        source_format: SourceFormat::Cef,
        vendor: namespace.map_or_else(|| unescape(vendor), Cow::Borrowed),
        occurred_at: observed.at,
        time_basis: observed.basis,
        client_ip,
        device: f.shost.and_then(present).map(unescape),
        user,
        url: url.url,
        host: url.host,
        category: cx.map.classify(namespace.unwrap_or(vendor), vendor_category.as_deref()),
        vendor_category,
        action: generic_action(&unescape(act)),
        vendor_action: unescape(act),
    })
}

/// `rt`/`start`: epoch milliseconds, or `MMM dd yyyy HH:mm:ss` in the source's zone.
fn event_time(stamp: &str, cx: &Cx<'_>) -> Result<Observed, ParseError> {
    if stamp.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Observed::utc(time::epoch_scaled(stamp)?));
    }
    let bad = ParseError::invalid("time", "rt/start is neither epoch milliseconds nor MMM dd yyyy HH:mm:ss");
    cx.local(time::month_day_year_hms(stamp).ok_or(bad)?)
}

/// `cs1`..`cs6` (or `cs1Label`.. with `suffix = "Label"`) as 0..6.
fn custom_string_index(key: &str, suffix: &str) -> Option<usize> {
    let digit = key.strip_prefix("cs")?.strip_suffix(suffix)?;
    match digit.as_bytes() {
        [d @ b'1'..=b'6'] => Some(usize::from(d - b'1')),
        _ => None,
    }
}

/// The position of the first `wanted` byte not escaped by a backslash.
fn unescaped(bytes: &[u8], wanted: u8) -> Option<usize> {
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            b if b == wanted => return Some(at),
            _ => at += 1,
        }
    }
    None
}

/// Undoes extension escapes; borrowed when there are none.
pub(super) fn unescape(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(other @ ('\\' | '=' | '|')) => out.push(other),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            (c, false) => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The `key=value` pairs of an extension, values raw (still escaped) and trimmed.
struct Extension<'a> {
    text: &'a str,
    /// The next key's start and its `=`; `None` when done.
    next: Option<(usize, usize)>,
}

impl<'a> Extension<'a> {
    fn new(text: &'a str) -> Self {
        let mut extension = Extension { text, next: None };
        let trimmed = text.trim_start();
        extension.next = extension.next_key_at(text.len() - trimmed.len());
        extension
    }

    /// The next `=` that starts a pair: unescaped, with a key-like word right before it.
    fn next_key_at(&self, from: usize) -> Option<(usize, usize)> {
        let bytes = self.text.as_bytes();
        let mut search = from;
        loop {
            let eq = search + unescaped(&bytes[search..], b'=')?;
            let word_start = bytes[from..eq].iter().rposition(|&b| b == b' ').map_or(from, |space| from + space + 1);
            let word = &bytes[word_start..eq];
            if !word.is_empty() && word.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
                return Some((word_start, eq));
            }
            search = eq + 1;
        }
    }
}

impl<'a> Iterator for Extension<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let (key_start, eq) = self.next?;
        let value_start = eq + 1;
        self.next = self.next_key_at(value_start);
        let value_end = self.next.map_or(self.text.len(), |(next_key, _)| next_key);
        Some((&self.text[key_start..eq], self.text[value_start..value_end].trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_values_with_spaces_escapes_and_stray_equals() {
        let pairs: Vec<_> =
            Extension::new(r" src=10.0.0.1 act=blocked a \= dst=1.1.1.1 msg=a b  c qstr=p\=%2f cs1=,,[{x}] k=")
                .collect();
        assert_eq!(
            pairs,
            vec![
                ("src", "10.0.0.1"),
                ("act", r"blocked a \="),
                ("dst", "1.1.1.1"),
                ("msg", "a b  c"),
                ("qstr", r"p\=%2f"),
                ("cs1", ",,[{x}]"),
                ("k", ""),
            ]
        );
        assert_eq!(unescape(r"p\=%2f \\ \n"), "p=%2f \\ \n");
        assert_eq!(Extension::new("   ").count(), 0);
        assert_eq!(Extension::new("no pairs here").count(), 0);
    }

    #[test]
    fn custom_string_keys() {
        assert_eq!(custom_string_index("cs2", ""), Some(1));
        assert_eq!(custom_string_index("cs6Label", "Label"), Some(5));
        assert_eq!(custom_string_index("cs7", ""), None);
        assert_eq!(custom_string_index("cs1Label", ""), None);
    }
}
