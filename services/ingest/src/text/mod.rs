//! Small zero-copy readers shared by the format parsers.

pub(crate) mod csv;
pub(crate) mod kv;
pub(crate) mod url;

use std::net::IpAddr;
use std::sync::LazyLock;

use memchr::memmem::Finder;

use crate::error::ParseError;

/// A client address; sanitised (`x.x.x.x`) and impossible (`21.259.351.45`) ones are refused.
pub(crate) fn client_ip(raw: &str) -> Result<IpAddr, ParseError> {
    raw.parse().map_err(|_| ParseError::invalid("client_ip", "not an IPv4 or IPv6 address"))
}

/// `None` for the placeholders vendors write for "no value".
pub(crate) fn present(raw: &str) -> Option<&str> {
    let trimmed = raw.trim();
    (!matches!(trimmed, "" | "-" | "\"\"" | "None" | "N/A")).then_some(trimmed)
}

/// Splits off the next space-separated token, skipping runs of spaces (Squid right-aligns).
pub(crate) fn next_token<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let trimmed = rest.trim_start_matches(' ');
    if trimmed.is_empty() {
        *rest = trimmed;
        return None;
    }
    let end = memchr::memchr(b' ', trimmed.as_bytes()).unwrap_or(trimmed.len());
    let (token, after) = trimmed.split_at(end);
    *rest = after;
    Some(token)
}

/// Substring searchers built once: building one per search was a tenth of the parse time.
pub(crate) struct Needle(LazyLock<Finder<'static>>);

impl Needle {
    pub const fn new(init: fn() -> Finder<'static>) -> Self {
        Needle(LazyLock::new(init))
    }

    pub fn is_in(&self, haystack: &[u8]) -> bool {
        self.0.find(haystack).is_some()
    }

    pub fn find(&self, haystack: &[u8]) -> Option<usize> {
        self.0.find(haystack)
    }
}

/// A static [`Needle`] for a byte string.
macro_rules! needle {
    ($name:ident, $bytes:literal) => {
        static $name: $crate::text::Needle = $crate::text::Needle::new(|| memchr::memmem::Finder::new($bytes));
    };
}
pub(crate) use needle;
