//! Barracuda Web Security Gateway syslog and CloudGen Firewall web-log streaming (FORMATS.md
//! §6): space-separated values after the `httpscan[pid]:` / `NG_Firewall[]:` tag —
//! `epoch 1 src dst content-type src url size BYF ACTION reason 2 match tq action-type
//! src-type src-detail dst-type dst-detail spy-type spy-id score matched-part
//! matched-category [user] referer …`. Time is UTC.
//!
//! Values are not quoted, and category names and the reason may hold spaces (`Hate Speech`,
//! `Stream=>Eicar-Test-Signature FOUND`), so positions are trusted up to the action word, and
//! the action type (after the reason) only on CloudGen's template. The user is the one
//! bracketed field, and the matched category is what lies between `spy-type spy-id score
//! matched-part` and it, read from the bracket backwards.
//!
//! CloudGen's template writes the words `BYF ALLOWED CLEAN` literally, so there the real
//! decision is the action type (`%actionnum%`, 1 = blocked); a CloudGen line (reason `CLEAN`
//! and format version `2` in place) is blocked when its action type is 1. `WARNED` is read
//! as flagged. (Action-type codes beyond 0 and 1 are not documented publicly.)

use std::borrow::Cow;

use crate::breach::{Action, BreachObserved, TimeBasis};
use crate::error::ParseError;
use crate::format::SourceFormat;
use crate::parser::Cx;
use crate::text::{self, next_token, present, url};
use crate::time;

const SHORT: ParseError = ParseError::unparseable("fewer fields than Barracuda's web log");
const EPOCH: usize = 0;
const SOURCE: usize = 2;
const URL: usize = 6;
const MARKER: usize = 8;
const ACTION: usize = 9;
const REASON: usize = 10;
const FORMAT_VERSION: usize = 11;
const ACTION_TYPE: usize = 14;

pub(super) fn parse<'a>(payload: &'a str, cx: &Cx<'a>) -> Result<BreachObserved<'a>, ParseError> {
    let mut fields = [""; ACTION_TYPE + 1];
    let mut rest = payload;
    let mut count = 0;
    while count < fields.len() {
        let Some(token) = next_token(&mut rest) else { break };
        fields[count] = token;
        count += 1;
    }
    if count <= ACTION || fields[MARKER] != "BYF" {
        return Err(SHORT);
    }
    let occurred_at = time::epoch_seconds(fields[EPOCH])?;
    let client_ip = text::client_ip(fields[SOURCE])?;
    let url = url::parse(fields[URL])?;
    let cloudgen_layout = fields[REASON] == "CLEAN" && fields[FORMAT_VERSION] == "2";
    let action = match fields[ACTION] {
        "BLOCKED" => Action::Blocked,
        "WARNED" => Action::Flagged,
        "ALLOWED" if cloudgen_layout && fields[ACTION_TYPE] == "1" => Action::Blocked,
        "ALLOWED" => Action::Allowed,
        _ => return Err(ParseError::invalid("action", "not ALLOWED, BLOCKED or WARNED")),
    };
    let (category, user) = match payload.rfind(" [") {
        Some(open) => {
            let user = payload[open + 2..].split_once(']').and_then(|(user, _)| present(user));
            (matched_category(&payload[..open]), user)
        }
        None => (None, None),
    };
    Ok(BreachObserved {
        school_id: cx.school,
        source_format: SourceFormat::Barracuda,
        vendor: Cow::Borrowed("barracuda"),
        occurred_at,
        time_basis: TimeBasis::Utc,
        client_ip: Some(client_ip),
        device: None,
        user: user.map(Cow::Borrowed),
        url: url.url,
        host: url.host,
        vendor_category: category.map(Cow::Borrowed),
        category: cx.map.classify("barracuda", category),
        vendor_action: Cow::Borrowed(fields[ACTION]),
        action,
    })
}

/// Given the line up to the user bracket, the matched category: the text after
/// `<spy-type digits> <spy-id> <score digits> <matched-part>`, found from the end.
fn matched_category(before_user: &str) -> Option<&str> {
    let numeric = |word: &str| !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit());
    // Word boundaries from the end: (start, word), at most a handful needed.
    let mut words: [(usize, &str); 12] = [(0, ""); 12];
    let mut found = 0;
    let mut end = before_user.trim_end().len();
    while found < words.len() && end > 0 {
        let start = before_user[..end].rfind(' ').map_or(0, |space| space + 1);
        words[found] = (start, &before_user[start..end]);
        found += 1;
        end = before_user[..start].trim_end().len();
    }
    // words[0] is the last word. The category starts at words[k - 1] when words[k] is the
    // matched part, words[k + 1] the score, words[k + 2] the spy id, words[k + 3] the spy type.
    (1..found.saturating_sub(3))
        .find(|&k| numeric(words[k + 1].1) && numeric(words[k + 3].1) && !words[k].1.is_empty())
        .and_then(|k| present(&before_user[words[k - 1].0..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matched_category_may_hold_spaces() {
        let line = "… (-) 1 Hate Speech 0 - 0 hate.example Hate Speech";
        assert_eq!(matched_category(line), Some("Hate Speech"));
        assert_eq!(matched_category("… 1 Gambling 0 - 0 casino.example Gambling "), Some("Gambling"));
        assert_eq!(matched_category("… 0 News 0 - 0 news.example -"), None);
        assert_eq!(matched_category("too short"), None);
        assert_eq!(matched_category(""), None);
    }
}
