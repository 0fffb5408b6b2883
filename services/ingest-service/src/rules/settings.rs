//! One scope's alert-rule overrides (ADR 0028): checked against the guard rails, and merged
//! field by field over the scope below. Pure.
//!
//! ```text
//!  configured defaults ([ingest]) ◀─ the trust's overrides ◀─ a school's overrides
//!  (each field: the nearest scope that sets it wins; absent everywhere: the default)
//! ```
//! The guard rails keep what policy 7.3 does not leave to a school: illegal content and
//! self-harm always alert as critical, windows and deadlines stay in a sane range, and a
//! category must be one of the taxonomy's.

use haven_proto::v1 as pb;
use jiff::SignedDuration;

use super::{RuleSettings, is_illegal};

/// The categories that always raise a critical alert at once (policy 7.3): not configurable.
pub const ALWAYS_CRITICAL: [pb::BreachCategory; 5] = [
    pb::BreachCategory::IllegalChildAbuseIwf,
    pb::BreachCategory::IllegalTerroristContentCtiru,
    pb::BreachCategory::IllegalCoerciveControl,
    pb::BreachCategory::IllegalIntimateImageAbuse,
    pb::BreachCategory::SelfHarm,
];

/// The ranges a change must stay in (inclusive).
pub const REPEAT_WINDOW_S: (u32, u32) = (60, 86_400);
pub const REPEAT_THRESHOLD: (u32, u32) = (1, 100);
pub const CRITICAL_ACK_MINUTES: (u32, u32) = (1, 60);
pub const OTHER_ACK_HOURS: (u32, u32) = (1, 168);
/// Longest reason for a change, in characters.
pub const MAX_REASON_CHARS: usize = 2_000;

/// A change the guard rails refuse; `field` names it as the request spells it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Refusal {
    pub field: String,
    pub reason: String,
}

fn refuse(field: &str, reason: impl Into<String>) -> Refusal {
    Refusal { field: field.to_owned(), reason: reason.into() }
}

fn in_range(field: &str, value: Option<u32>, (low, high): (u32, u32), unit: &str) -> Result<(), Refusal> {
    match value {
        Some(value) if value < low || value > high => {
            Err(refuse(field, format!("{value} is outside {low} to {high} {unit}")))
        }
        _ => Ok(()),
    }
}

fn categories(field: &str, set: Option<&pb::CategorySet>) -> Result<Vec<pb::BreachCategory>, Refusal> {
    let Some(set) = set else { return Ok(Vec::new()) };
    set.categories
        .iter()
        .map(|raw| match pb::BreachCategory::try_from(*raw) {
            Ok(pb::BreachCategory::Unspecified) | Err(_) => Err(refuse(field, format!("unknown category {raw}"))),
            Ok(category) => Ok(category),
        })
        .collect()
}

/// Checks one scope's overrides and the reason given for them; nothing is recorded unless
/// this passes.
pub fn check(settings: &pb::AlertRuleSettings, reason: &str) -> Result<(), Refusal> {
    in_range("settings.repeat_window_s", settings.repeat_window_s, REPEAT_WINDOW_S, "seconds")?;
    in_range("settings.repeat_threshold", settings.repeat_threshold, REPEAT_THRESHOLD, "attempts")?;
    in_range("settings.critical_ack_minutes", settings.critical_ack_minutes, CRITICAL_ACK_MINUTES, "minutes")?;
    in_range("settings.other_ack_hours", settings.other_ack_hours, OTHER_ACK_HOURS, "hours")?;
    categories("settings.high_categories", settings.high_categories.as_ref())?;
    categories("settings.vulnerable_categories", settings.vulnerable_categories.as_ref())?;
    let critical = categories("settings.critical_categories", settings.critical_categories.as_ref())?;
    if settings.critical_categories.is_some()
        && let Some(missing) = ALWAYS_CRITICAL.iter().find(|category| !critical.contains(*category))
    {
        let why = if is_illegal(*missing) { "illegal content" } else { "self-harm and suicide" };
        return Err(refuse(
            "settings.critical_categories",
            format!("{} must stay critical: {why} always alerts at once (policy 7.3)", missing.as_str_name()),
        ));
    }
    let reason_chars = reason.trim().chars().count();
    if reason_chars == 0 || reason_chars > MAX_REASON_CHARS {
        return Err(refuse("reason", format!("1 to {MAX_REASON_CHARS} characters saying why, for the record")));
    }
    Ok(())
}

fn set_of(set: &pb::CategorySet) -> Vec<pb::BreachCategory> {
    set.categories.iter().filter_map(|raw| pb::BreachCategory::try_from(*raw).ok()).collect()
}

/// `base` with every field `overrides` sets replaced. Illegal content and self-harm stay
/// critical whatever the overrides say (a change that would drop them is refused by [`check`];
/// this holds even for an event that was written around it).
pub fn merge(base: &RuleSettings, overrides: &pb::AlertRuleSettings) -> RuleSettings {
    let mut merged = base.clone();
    if let Some(window_s) = overrides.repeat_window_s {
        merged.repeat_window = SignedDuration::from_secs(i64::from(window_s));
    }
    if let Some(threshold) = overrides.repeat_threshold {
        merged.repeat_threshold = threshold.max(1);
    }
    if let Some(set) = &overrides.high_categories {
        merged.high_categories = set_of(set);
    }
    if let Some(set) = &overrides.critical_categories {
        merged.critical_categories = set_of(set);
        for category in ALWAYS_CRITICAL {
            if !merged.critical_categories.contains(&category) {
                merged.critical_categories.push(category);
            }
        }
    }
    if let Some(raise) = overrides.vulnerable_raise {
        merged.vulnerable_raise = raise;
    }
    if let Some(set) = &overrides.vulnerable_categories {
        merged.vulnerable_categories = set_of(set);
    }
    if let Some(minutes) = overrides.critical_ack_minutes {
        merged.critical_ack = SignedDuration::from_mins(i64::from(minutes));
    }
    if let Some(hours) = overrides.other_ack_hours {
        merged.other_ack = SignedDuration::from_hours(i64::from(hours));
    }
    merged
}

fn set_to_proto(categories: &[pb::BreachCategory]) -> Option<pb::CategorySet> {
    Some(pb::CategorySet { categories: categories.iter().map(|c| *c as i32).collect() })
}

/// The settings in force as the protobuf message, every field set.
pub fn to_proto(settings: &RuleSettings) -> pb::AlertRuleSettings {
    pb::AlertRuleSettings {
        repeat_window_s: Some(settings.repeat_window.as_secs().clamp(0, i64::from(u32::MAX)) as u32),
        repeat_threshold: Some(settings.repeat_threshold),
        high_categories: set_to_proto(&settings.high_categories),
        critical_categories: set_to_proto(&settings.critical_categories),
        vulnerable_raise: Some(settings.vulnerable_raise),
        vulnerable_categories: set_to_proto(&settings.vulnerable_categories),
        critical_ack_minutes: Some((settings.critical_ack.as_secs() / 60).clamp(0, i64::from(u32::MAX)) as u32),
        other_ack_hours: Some((settings.other_ack.as_secs() / 3_600).clamp(0, i64::from(u32::MAX)) as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(categories: &[pb::BreachCategory]) -> Option<pb::CategorySet> {
        set_to_proto(categories)
    }

    #[test]
    fn a_school_overrides_the_trust_field_by_field_and_inherits_the_rest() {
        let defaults = RuleSettings::default();
        let trust =
            pb::AlertRuleSettings { repeat_threshold: Some(5), critical_ack_minutes: Some(10), ..Default::default() };
        let school = pb::AlertRuleSettings {
            repeat_threshold: Some(1),
            high_categories: set(&[pb::BreachCategory::Extremism, pb::BreachCategory::Gambling]),
            ..Default::default()
        };
        let trusts = merge(&defaults, &trust);
        let schools = merge(&trusts, &school);
        assert_eq!(trusts.repeat_threshold, 5);
        assert_eq!(schools.repeat_threshold, 1, "the school's value wins");
        assert_eq!(schools.critical_ack, SignedDuration::from_mins(10), "inherited from the trust");
        assert_eq!(schools.repeat_window, defaults.repeat_window, "inherited from the defaults");
        assert_eq!(schools.high_categories, vec![pb::BreachCategory::Extremism, pb::BreachCategory::Gambling]);
        assert_eq!(trusts.high_categories, defaults.high_categories, "the trust did not set it");
        assert_eq!(merge(&trusts, &pb::AlertRuleSettings::default()), trusts, "nothing set: all inherited");
        let round_trip = merge(&RuleSettings::default(), &to_proto(&schools));
        assert_eq!(round_trip, schools, "the effective settings as a message merge back to themselves");
    }

    #[test]
    fn illegal_content_and_self_harm_stay_critical_whatever_is_asked() {
        let without_self_harm = pb::AlertRuleSettings {
            critical_categories: set(&[
                pb::BreachCategory::IllegalChildAbuseIwf,
                pb::BreachCategory::IllegalTerroristContentCtiru,
                pb::BreachCategory::IllegalCoerciveControl,
                pb::BreachCategory::IllegalIntimateImageAbuse,
            ]),
            ..Default::default()
        };
        let refusal = check(&without_self_harm, "quieter").unwrap_err();
        assert_eq!(refusal.field, "settings.critical_categories");
        assert!(refusal.reason.contains("BREACH_CATEGORY_SELF_HARM"), "{refusal}");
        let none = pb::AlertRuleSettings { critical_categories: set(&[]), ..Default::default() };
        assert!(check(&none, "quieter").unwrap_err().reason.contains("illegal content"));
        // Written around the check (an old or forged event): the merge puts them back.
        let merged = merge(&RuleSettings::default(), &none);
        assert!(ALWAYS_CRITICAL.iter().all(|c| merged.critical_categories.contains(c)));
        let more = pb::AlertRuleSettings {
            critical_categories: set(&[&ALWAYS_CRITICAL[..], &[pb::BreachCategory::Violence][..]].concat()),
            ..Default::default()
        };
        assert_eq!(check(&more, "stricter"), Ok(()), "adding to them is allowed");
    }

    #[test]
    fn out_of_range_values_unknown_categories_and_a_missing_reason_are_refused_by_name() {
        type Breaks = fn(&mut pb::AlertRuleSettings);
        let cases: [(Breaks, &str); 9] = [
            (|s| s.repeat_window_s = Some(59), "settings.repeat_window_s"),
            (|s| s.repeat_window_s = Some(86_401), "settings.repeat_window_s"),
            (|s| s.repeat_threshold = Some(0), "settings.repeat_threshold"),
            (|s| s.repeat_threshold = Some(101), "settings.repeat_threshold"),
            (|s| s.critical_ack_minutes = Some(61), "settings.critical_ack_minutes"),
            (|s| s.other_ack_hours = Some(0), "settings.other_ack_hours"),
            (|s| s.high_categories = Some(pb::CategorySet { categories: vec![99] }), "settings.high_categories"),
            (|s| s.high_categories = Some(pb::CategorySet { categories: vec![0] }), "settings.high_categories"),
            (
                |s| s.vulnerable_categories = Some(pb::CategorySet { categories: vec![-1] }),
                "settings.vulnerable_categories",
            ),
        ];
        for (break_it, field) in cases {
            let mut settings = pb::AlertRuleSettings {
                repeat_window_s: Some(60),
                repeat_threshold: Some(100),
                critical_ack_minutes: Some(60),
                other_ack_hours: Some(168),
                ..Default::default()
            };
            assert_eq!(check(&settings, "why"), Ok(()));
            break_it(&mut settings);
            assert_eq!(check(&settings, "why").unwrap_err().field, field);
        }
        assert_eq!(check(&pb::AlertRuleSettings::default(), "  ").unwrap_err().field, "reason");
        assert_eq!(check(&pb::AlertRuleSettings::default(), &"x".repeat(2_001)).unwrap_err().field, "reason");
    }
}
