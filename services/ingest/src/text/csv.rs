//! RFC 4180 fields: comma-separated, optionally double-quoted with `""` for a quote (PAN-OS,
//! Cisco Umbrella). A field borrows from the line unless it held a doubled quote.

use std::borrow::Cow;

use crate::error::ParseError;

pub(crate) struct Fields<'a> {
    rest: Option<&'a str>,
}

pub(crate) fn fields(line: &str) -> Fields<'_> {
    Fields { rest: Some(line) }
}

const UNTERMINATED: ParseError = ParseError::unparseable("a quoted field is not closed");
const STRAY_QUOTE: ParseError = ParseError::unparseable("text after a quoted field's closing quote");

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Cow<'a, str>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest?;
        let Some(quoted) = rest.strip_prefix('"') else {
            let end = memchr::memchr(b',', rest.as_bytes());
            self.rest = end.map(|end| &rest[end + 1..]);
            return Some(Ok(Cow::Borrowed(&rest[..end.unwrap_or(rest.len())])));
        };
        let bytes = quoted.as_bytes();
        let mut from = 0;
        let mut doubled = false;
        loop {
            let Some(at) = memchr::memchr(b'"', &bytes[from..]).map(|i| from + i) else {
                self.rest = None;
                return Some(Err(UNTERMINATED));
            };
            if bytes.get(at + 1) == Some(&b'"') {
                doubled = true;
                from = at + 2;
                continue;
            }
            let raw = &quoted[..at];
            self.rest = match bytes.get(at + 1) {
                None => None,
                Some(b',') => Some(&quoted[at + 2..]),
                Some(_) => {
                    self.rest = None;
                    return Some(Err(STRAY_QUOTE));
                }
            };
            let field = if doubled { Cow::Owned(raw.replace("\"\"", "\"")) } else { Cow::Borrowed(raw) };
            return Some(Ok(field));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(line: &str) -> Result<Vec<Cow<'_, str>>, ParseError> {
        fields(line).collect()
    }

    #[test]
    fn plain_quoted_empty_and_doubled() {
        let got = collect(r#"1,"a,b",,"say ""hi""","""#).unwrap();
        assert_eq!(got, vec!["1", "a,b", "", r#"say "hi""#, ""]);
        assert!(matches!(got[1], Cow::Borrowed(_)));
        assert_eq!(collect("a,").unwrap(), vec!["a", ""]);
    }

    #[test]
    fn broken_quotes_are_refused() {
        assert!(collect(r#""open,b"#).is_err());
        assert!(collect(r#""a"b,c"#).is_err());
    }
}
