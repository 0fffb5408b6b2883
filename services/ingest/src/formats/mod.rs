//! One module per vendor format, each a function from a payload (the syslog envelope already
//! taken off) to a breach. Layouts, sources and quirks: `shared/corpus/FORMATS.md`, cited per
//! module.

mod barracuda;
mod cef;
mod fortigate;
mod json_lines;
mod leef;
mod pan_os;
mod sophos;
mod squid_combined;
mod squid_native;
mod squidguard;
mod umbrella;
mod zscaler;

use crate::breach::{Action, BreachObserved};
use crate::error::ParseError;
use crate::format::SourceFormat;
use crate::parser::Cx;

pub(crate) fn parse<'a>(format: SourceFormat, payload: &'a str, cx: &Cx<'a>) -> Result<BreachObserved<'a>, ParseError> {
    match format {
        SourceFormat::SquidNative => squid_native::parse(payload, cx),
        SourceFormat::SquidCombined => squid_combined::parse(payload, cx),
        SourceFormat::Squidguard => squidguard::parse(payload, cx),
        SourceFormat::Barracuda => barracuda::parse(payload, cx),
        SourceFormat::Fortigate => fortigate::parse(payload, cx),
        SourceFormat::PanOs => pan_os::parse(payload, cx),
        SourceFormat::Sophos => sophos::parse(payload, cx),
        SourceFormat::CiscoUmbrella => umbrella::parse(payload, cx),
        SourceFormat::ZscalerNss => zscaler::parse(payload, cx),
        SourceFormat::Cef => cef::parse(payload, cx),
        SourceFormat::Leef => leef::parse(payload, cx),
        SourceFormat::JsonLines => json_lines::parse(payload, cx),
    }
}

/// The action words of carriers that take any vendor's vocabulary (CEF `act`, LEEF `action`,
/// Haven's JSON): whole words, case-insensitive. A word in none of the lists is an allowed
/// request as far as Haven can tell; the word itself is kept as `vendor_action`.
pub(crate) fn generic_action(word: &str) -> Action {
    const BLOCKED: [&str; 13] = [
        "blocked",
        "block",
        "block-url",
        "block-override",
        "deny",
        "denied",
        "drop",
        "dropped",
        "reject",
        "rejected",
        "reset",
        "redirect",
        "override-lockout",
    ];
    const FLAGGED: [&str; 11] = [
        "flagged",
        "warned",
        "warn",
        "caution",
        "continue",
        "block-continue",
        "alert",
        "override",
        "monitor",
        "monitored",
        "quarantined",
    ];
    let word = word.trim();
    if BLOCKED.iter().any(|w| w.eq_ignore_ascii_case(word)) {
        Action::Blocked
    } else if FLAGGED.iter().any(|w| w.eq_ignore_ascii_case(word)) {
        Action::Flagged
    } else {
        Action::Allowed
    }
}

/// The mapping namespace for a device vendor named in a CEF or LEEF header.
pub(crate) fn vendor_namespace(vendor: &str) -> Option<&'static str> {
    let known: [(&str, &'static str); 7] = [
        ("fortinet", "fortinet"),
        ("palo alto", "palo_alto"),
        ("zscaler", "zscaler"),
        ("cisco", "cisco_umbrella"),
        ("barracuda", "barracuda"),
        ("sophos", "sophos"),
        ("squidguard", "squidguard"),
    ];
    let lower = vendor.to_ascii_lowercase();
    known.iter().find(|(prefix, _)| lower.starts_with(prefix)).map(|(_, namespace)| *namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_actions() {
        assert_eq!(generic_action("Blocked"), Action::Blocked);
        assert_eq!(generic_action("block-continue"), Action::Flagged);
        assert_eq!(generic_action("not blocked"), Action::Allowed);
        assert_eq!(generic_action("transformed"), Action::Allowed);
        assert_eq!(vendor_namespace("Palo Alto Networks"), Some("palo_alto"));
        assert_eq!(vendor_namespace("Trend Micro"), None);
    }
}
