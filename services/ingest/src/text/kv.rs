//! `key=value key="quoted value"` pairs separated by spaces (FortiOS, Sophos). Bare values
//! never contain spaces; quoted ones may contain anything but an unescaped `"`. A token that
//! is not a pair is skipped; an unterminated quote ends the line with an error.

use std::borrow::Cow;

use crate::error::ParseError;

/// Iterates over the pairs of one payload.
pub(crate) struct Pairs<'a> {
    rest: &'a str,
}

pub(crate) fn pairs(payload: &str) -> Pairs<'_> {
    Pairs { rest: payload }
}

/// A value as written: `escaped` when it holds a backslash escape to undo.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Value<'a> {
    pub raw: &'a str,
    escaped: bool,
}

impl<'a> Value<'a> {
    /// The value with `\"` and `\\` undone (borrowed when there were none).
    pub fn text(self) -> Cow<'a, str> {
        if !self.escaped {
            return Cow::Borrowed(self.raw);
        }
        let mut out = String::with_capacity(self.raw.len());
        let mut chars = self.raw.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some(next @ ('"' | '\\')) => out.push(next),
                    Some(other) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }
}

const UNTERMINATED: ParseError = ParseError::unparseable("a quoted value is not closed");

impl<'a> Iterator for Pairs<'a> {
    type Item = Result<(&'a str, Value<'a>), ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = self.rest.trim_start_matches(' ');
            if rest.is_empty() {
                self.rest = rest;
                return None;
            }
            let bytes = rest.as_bytes();
            let token_end = memchr::memchr(b' ', bytes).unwrap_or(bytes.len());
            let Some(eq) = memchr::memchr(b'=', &bytes[..token_end]).filter(|&eq| eq > 0) else {
                // Not a pair (a stray word or a syslog tag): skip it.
                self.rest = &rest[token_end..];
                continue;
            };
            let key = &rest[..eq];
            let after = &rest[eq + 1..];
            if let Some(quoted) = after.strip_prefix('"') {
                let Some((end, escaped)) = closing_quote(quoted.as_bytes()) else {
                    self.rest = "";
                    return Some(Err(UNTERMINATED));
                };
                self.rest = &quoted[end + 1..];
                return Some(Ok((key, Value { raw: &quoted[..end], escaped })));
            }
            let end = memchr::memchr(b' ', after.as_bytes()).unwrap_or(after.len());
            self.rest = &after[end..];
            return Some(Ok((key, Value { raw: &after[..end], escaped: false })));
        }
    }
}

/// The index of the `"` that closes a quoted value, and whether a backslash escape came first.
fn closing_quote(bytes: &[u8]) -> Option<(usize, bool)> {
    let mut escaped = false;
    let mut from = 0;
    loop {
        let at = from + memchr::memchr2(b'"', b'\\', &bytes[from..])?;
        if bytes[at] == b'"' {
            return Some((at, escaped));
        }
        escaped = true;
        from = at + 2;
        if from > bytes.len() {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(payload: &str) -> Result<Vec<(&str, String)>, ParseError> {
        pairs(payload).map(|pair| pair.map(|(k, v)| (k, v.text().into_owned()))).collect()
    }

    #[test]
    fn bare_quoted_and_escaped_values() {
        let got =
            collect(r#"date=2021-01-06 devname="a b" url="/x?a=1&b=2" user="" msg="say \"hi\" \\ ok" n=038"#).unwrap();
        assert_eq!(
            got,
            vec![
                ("date", "2021-01-06".into()),
                ("devname", "a b".into()),
                ("url", "/x?a=1&b=2".into()),
                ("user", "".into()),
                ("msg", r#"say "hi" \ ok"#.into()),
                ("n", "038".into()),
            ]
        );
    }

    #[test]
    fn stray_words_are_skipped_and_open_quotes_refused() {
        assert_eq!(collect("host tag: a=1").unwrap(), vec![("a", "1".into())]);
        assert!(collect(r#"a="open"#).is_err());
        assert!(collect(r#"a="ends in \"#).is_err());
    }
}
