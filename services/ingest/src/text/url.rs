//! URLs as filters report them: `scheme://[user@]host[:port]/path`, `host:port` (CONNECT),
//! `host/path` (PAN-OS), or a host and a path in two fields (FortiOS). The query string and the
//! fragment are cut here — they carry search terms and tokens, personal data that Haven never
//! keeps — which is a prefix of the line, so the URL still borrows from it.

use std::borrow::Cow;

use crate::error::ParseError;
use crate::text::needle;

needle!(SCHEME_END, b"://");

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Url<'a> {
    /// Without query string and fragment.
    pub url: Cow<'a, str>,
    /// Lowercased; no port, no brackets around IPv6.
    pub host: Cow<'a, str>,
}

const MISSING: ParseError = ParseError::missing("url", "no URL");
const NO_HOST: ParseError = ParseError::missing("url", "a path without a host");
const NOT_A_URL: ParseError = ParseError::invalid("url", "not a URL with a valid host");

/// The URL up to its query string or fragment.
pub(crate) fn without_query(raw: &str) -> &str {
    let end = memchr::memchr2(b'?', b'#', raw.as_bytes()).unwrap_or(raw.len());
    &raw[..end]
}

pub(crate) fn parse(raw: &str) -> Result<Url<'_>, ParseError> {
    let raw = raw.trim();
    if raw.is_empty() || raw == "-" {
        return Err(MISSING);
    }
    let url = without_query(raw);
    let host = host_of(url)?;
    Ok(Url { url: Cow::Borrowed(url), host })
}

/// A URL from a field that may be owned (a CSV field that held a doubled quote).
pub(crate) fn parse_field(raw: Cow<'_, str>) -> Result<Url<'_>, ParseError> {
    match raw {
        Cow::Borrowed(raw) => parse(raw),
        Cow::Owned(raw) => {
            let url = parse(&raw)?;
            Ok(Url { url: Cow::Owned(url.url.into_owned()), host: Cow::Owned(url.host.into_owned()) })
        }
    }
}

/// A host field and a path field (FortiOS `hostname` + `url`); a path that is itself a whole
/// URL wins.
pub(crate) fn from_host_and_path<'a>(host: &'a str, path: &'a str) -> Result<Url<'a>, ParseError> {
    if SCHEME_END.is_in(path.as_bytes()) {
        return parse(path);
    }
    let host_url = parse(host)?;
    let path = without_query(path.trim());
    let url = match path {
        "" => host_url.url,
        _ if path.starts_with('/') => Cow::Owned(format!("{}{path}", host_url.url)),
        _ => Cow::Owned(format!("{}/{path}", host_url.url)),
    };
    Ok(Url { url, host: host_url.host })
}

fn host_of(url: &str) -> Result<Cow<'_, str>, ParseError> {
    let authority = match SCHEME_END.find(url.as_bytes()) {
        Some(at) => &url[at + 3..],
        None if url.starts_with('/') => return Err(NO_HOST),
        None => url,
    };
    let authority = &authority[..memchr::memchr(b'/', authority.as_bytes()).unwrap_or(authority.len())];
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or(NOT_A_URL)?;
        if !host.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return Err(NOT_A_URL);
        }
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(NOT_A_URL);
    }
    let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':');
    if host.is_empty() || !host.bytes().all(valid) {
        return Err(NOT_A_URL);
    }
    Ok(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, url: &str, host: &str) {
        let parsed = parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        assert_eq!((parsed.url.as_ref(), parsed.host.as_ref()), (url, host), "{raw}");
    }

    #[test]
    fn the_shapes_filters_write() {
        check("http://datadog.com/test/?queryParam1=1&q=2", "http://datadog.com/test/", "datadog.com");
        check("http://phantasm.spryfox.com/t?", "http://phantasm.spryfox.com/t", "phantasm.spryfox.com");
        check("gateway.icloud.com:443", "gateway.icloud.com:443", "gateway.icloud.com");
        check("8.8.8.8:443/", "8.8.8.8:443/", "8.8.8.8");
        check("http://http:8/", "http://http:8/", "http");
        check("cribl.io/download", "cribl.io/download", "cribl.io");
        check("https://User:pw@Example.COM:8443/a#frag", "https://User:pw@Example.COM:8443/a", "example.com");
        check("http://[2001:db8::1]:80/x", "http://[2001:db8::1]:80/x", "2001:db8::1");
    }

    #[test]
    fn what_is_not_a_url() {
        assert_eq!(parse("/favicon.ico").unwrap_err().reason, crate::QuarantineReason::MissingField);
        assert_eq!(parse("-").unwrap_err().reason, crate::QuarantineReason::MissingField);
        assert_eq!(
            parse("error:transaction-end-before-headers").unwrap_err().reason,
            crate::QuarantineReason::InvalidField
        );
        assert!(parse("http://exa mple.com/").is_err());
        assert!(parse("http://[zz]/").is_err());
    }

    #[test]
    fn host_and_path_fields_are_joined() {
        let url = from_host_and_path("Example.com", "/bizsquads?x=1").unwrap();
        assert_eq!((url.url.as_ref(), url.host.as_ref()), ("Example.com/bizsquads", "example.com"));
        let url = from_host_and_path("a.test", "http://b.test/x").unwrap();
        assert_eq!(url.host, "b.test");
    }
}
