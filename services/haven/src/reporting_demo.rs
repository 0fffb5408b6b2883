//! `haven up --demo`: invented filter breaches, alerts and referrals for the demo schools, so
//! the trust dashboard has something to show before ingest's collectors feed real ones.
//!
//! Everything is written in the real event format reporting reads (`ingest.BreachObserved` in
//! `breaches-<school>-<yyyy-mm-dd>`, `ingest.SafeguardingAlertRaised` in `alert-<id>`,
//! `incidents.CaseOpened` and `incidents.ReferralMade` in `incident-<id>`), for the last
//! [`DEMO_DAYS`] whole days before today. Each stream is written once with
//! `ExpectedVersion::NoStream`, so a restart adds only the days that passed since the last one
//! and never duplicates a day. Counts come from a fixed hash of (school, day, hour): the same
//! day always looks the same. No names, hosts or learners: the figures are invented.

use std::sync::Arc;

use haven_eventlog_client::{EventLog, LogError};
use haven_identity::demo::DEMO_SCHOOLS;
use haven_kernel::{ExpectedVersion, StreamId};
use haven_proto::v1 as pb;
use prost::Message;

/// Whole days of breaches before today.
pub const DEMO_DAYS: i64 = 42;
const DAY_SECS: i64 = 86_400;

/// What one seeding did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DemoActivity {
    /// Streams written this time.
    pub written: usize,
    /// Streams found already there.
    pub already_present: usize,
}

/// A small, fixed mixing function (splitmix64): the demo's "randomness" is the same on every run.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn key(school: &str, day: i64, hour: i64) -> u64 {
    let school_hash =
        school.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    mix(school_hash ^ mix(day as u64) ^ mix(hour as u64 + 1_000))
}

/// Breaches at `school` (with `pupils`) in the UTC hour `hour` of `day` (days since the epoch):
/// busy in school hours on weekdays, quiet at night and at weekends.
fn breaches_in_hour(school: &str, pupils: u32, day: i64, hour: i64) -> u32 {
    // 1970-01-01 was a Thursday: day 0 → weekday index 3 (Monday 0).
    let weekday = (day + 3).rem_euclid(7);
    let weight = match (weekday, hour) {
        (0..=4, 8..=15) => 10,
        (0..=4, 16..=20) => 4,
        (5 | 6, 9..=21) => 1,
        _ => 0,
    };
    let noise = key(school, day, hour) % 100;
    let expected = u64::from(pupils) * weight * (60 + noise) / 100 / 400;
    u32::try_from(expected).unwrap_or(u32::MAX)
}

/// The categories of one hour's breaches, in order of likelihood.
pub(crate) const CATEGORY_MIX: [pb::BreachCategory; 8] = [
    pb::BreachCategory::Gambling,
    pb::BreachCategory::Pornography,
    pb::BreachCategory::Violence,
    pb::BreachCategory::MalwareHacking,
    pb::BreachCategory::Drugs,
    pb::BreachCategory::Piracy,
    pb::BreachCategory::SelfHarm,
    pb::BreachCategory::Extremism,
];

fn actor() -> pb::Actor {
    pb::Actor { principal_id: "haven".into(), kind: pb::ActorKind::System as i32, roles: vec!["demo-seed".into()] }
}

fn proposed(event_type: &str, school_id: &str, occurred_at: i64, payload: Vec<u8>) -> pb::ProposedEvent {
    pb::ProposedEvent {
        event_id: uuid::Uuid::now_v7().as_bytes().to_vec(),
        event_type: event_type.to_owned(),
        schema_version: 1,
        school_id: school_id.to_owned(),
        occurred_at: Some(prost_types::Timestamp { seconds: occurred_at, nanos: 0 }),
        actor: Some(actor()),
        payload,
        ..Default::default()
    }
}

/// The breach events of one school-day.
fn day_of_breaches(school: &str, pupils: u32, day: i64) -> Vec<pb::ProposedEvent> {
    let mut events = Vec::new();
    for hour in 0..24 {
        let total = breaches_in_hour(school, pupils, day, hour);
        if total == 0 {
            continue;
        }
        let at = day * DAY_SECS + hour * 3_600 + (key(school, day, hour) % 3_000) as i64;
        // Split the hour over two categories; one secondary school has a run of self-harm
        // searches in the last fortnight on top (an outlier for the trends to find).
        let pick = key(school, day, hour + 100);
        let categories = [CATEGORY_MIX[(pick % 4) as usize], CATEGORY_MIX[(pick / 7 % 8) as usize]];
        let share = total.div_ceil(categories.len() as u32).max(1);
        let mut parts: Vec<(pb::BreachCategory, u32)> = categories.into_iter().map(|c| (c, share)).collect();
        if school == "saltmarsh-high" && day * DAY_SECS > demo_today() - 14 * DAY_SECS && hour % 2 == 0 {
            parts.push((pb::BreachCategory::SelfHarm, total));
        }
        for (index, (category, share)) in parts.into_iter().enumerate() {
            let flagged = category == pb::BreachCategory::SelfHarm || (pick >> index).is_multiple_of(5);
            let breach = pb::BreachObserved {
                school_id: school.to_owned(),
                occurred_at: Some(prost_types::Timestamp { seconds: at + index as i64 * 60, nanos: 0 }),
                received_at: Some(prost_types::Timestamp { seconds: at + index as i64 * 60 + 2, nanos: 0 }),
                source_id: "demo-filter".into(),
                category: category as i32,
                vendor_category: format!("demo-{}", category as i32),
                action: if flagged { pb::BreachAction::Flagged } else { pb::BreachAction::Blocked } as i32,
                repeat_count: share,
                ..Default::default()
            };
            events.push(proposed(
                haven_reporting::events::BREACH_OBSERVED,
                school,
                at + index as i64 * 60,
                breach.encode_to_vec(),
            ));
        }
    }
    events
}

/// Today's start (UTC) as the demo counts days; overridable in tests through the clock only.
fn demo_today() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    now.div_euclid(DAY_SECS) * DAY_SECS
}

async fn write_once(
    log: &Arc<dyn EventLog>,
    stream: &str,
    events: Vec<pb::ProposedEvent>,
    activity: &mut DemoActivity,
) -> anyhow::Result<()> {
    let stream = StreamId::parse(stream).map_err(|error| anyhow::anyhow!("demo stream {stream}: {error}"))?;
    match log.append(&stream, ExpectedVersion::NoStream, events).await {
        Ok(_) => activity.written += 1,
        Err(LogError::WrongExpectedVersion(_)) => activity.already_present += 1,
        Err(other) => return Err(other.into()),
    }
    Ok(())
}

/// Seeds the last [`DEMO_DAYS`] days of breaches and a few alerts and referrals; safe on every start.
pub async fn seed(log: &Arc<dyn EventLog>) -> anyhow::Result<DemoActivity> {
    let mut activity = DemoActivity::default();
    let today = demo_today() / DAY_SECS;
    for (school, _name, _phase, pupils) in DEMO_SCHOOLS {
        for day in today - DEMO_DAYS..today {
            let date = jiff::Timestamp::from_second(day * DAY_SECS)?.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
            let events = day_of_breaches(school, pupils, day);
            if !events.is_empty() {
                write_once(log, &format!("breaches-{school}-{date}"), events, &mut activity).await?;
            }
            // Every few days a school's rules raise an alert; most are acknowledged in time.
            let pick = key(school, day, 999);
            if pick.is_multiple_of(4) {
                let alert_id = format!("demo-{school}-{date}");
                let raised_at = day * DAY_SECS + 10 * 3_600 + (pick % 18_000) as i64;
                let severity = [pb::AlertSeverity::Medium, pb::AlertSeverity::High, pb::AlertSeverity::Critical]
                    [(pick / 4 % 3) as usize];
                let alert = pb::SafeguardingAlertRaised {
                    alert_id: alert_id.clone(),
                    school_id: school.to_owned(),
                    severity: severity as i32,
                    category: CATEGORY_MIX[(pick / 16 % 8) as usize] as i32,
                    action: pb::BreachAction::Flagged as i32,
                    breach_count: 1 + (pick / 64 % 6) as u32,
                    acknowledge_by: Some(prost_types::Timestamp { seconds: raised_at + 3_600, nanos: 0 }),
                    ..Default::default()
                };
                let mut events =
                    vec![proposed(haven_reporting::events::ALERT_RAISED, school, raised_at, alert.encode_to_vec())];
                // The last few days' alerts are still waiting for a DSL.
                if day < today - 3 {
                    let acknowledged = pb::SafeguardingAlertAcknowledged {
                        alert_id: alert_id.clone(),
                        school_id: school.to_owned(),
                        acknowledged_by_user_id: String::new(),
                        within_deadline: !pick.is_multiple_of(5),
                        ..Default::default()
                    };
                    let at = raised_at + if !pick.is_multiple_of(5) { 1_200 } else { 7_200 };
                    events.push(proposed(
                        haven_reporting::events::ALERT_ACKNOWLEDGED,
                        school,
                        at,
                        acknowledged.encode_to_vec(),
                    ));
                }
                write_once(log, &format!("alert-{alert_id}"), events, &mut activity).await?;
            }
        }
    }
    seed_referrals(log, today, &mut activity).await?;
    Ok(activity)
}

/// Two invented cases with referrals, so the LADO and police registers show a row each. They
/// are placed at fixed offsets before the first seeding day and written once.
async fn seed_referrals(log: &Arc<dyn EventLog>, today: i64, activity: &mut DemoActivity) -> anyhow::Result<()> {
    let cases = [
        (
            "demo-case-k1",
            "kestrel-primary",
            pb::CaseType::AllegationAgainstStaff,
            pb::ReferralAgency::Lado,
            "LADO-DEMO-0001",
        ),
        (
            "demo-case-h1",
            "heronsgate-academy",
            pb::CaseType::OnlineAbuseExploitation,
            pb::ReferralAgency::Police101,
            "POL-DEMO-0001",
        ),
    ];
    for (index, (case_id, school, case_type, agency, reference)) in cases.into_iter().enumerate() {
        let opened_at = (today - 20 + 5 * index as i64) * DAY_SECS + 11 * 3_600;
        let opened = pb::CaseOpened {
            case_id: case_id.into(),
            school_id: school.into(),
            case_type: case_type as i32,
            risk_level: pb::RiskLevel::High as i32,
            lead_user_id: format!("user-{}", if index == 0 { "kestrel-head" } else { "heronsgate-dsl" }),
            ..Default::default()
        };
        let referral = pb::ReferralMade {
            case_id: case_id.into(),
            school_id: school.into(),
            referral_id: format!("{case_id}-r1"),
            agency: agency as i32,
            reference_number: reference.into(),
            ..Default::default()
        };
        let events = vec![
            proposed(haven_reporting::events::CASE_OPENED, school, opened_at, opened.encode_to_vec()),
            proposed(haven_reporting::events::REFERRAL_MADE, school, opened_at + 3_600, referral.encode_to_vec()),
        ];
        write_once(log, &format!("incident-{case_id}"), events, activity).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn school_hours_are_busier_than_nights_and_the_same_day_looks_the_same() {
        let monday = 20_430; // 2025-12-08, a Monday
        let day: u32 = (0..24).map(|h| breaches_in_hour("kestrel-primary", 412, monday, h)).sum();
        let night: u32 = (0..6).map(|h| breaches_in_hour("kestrel-primary", 412, monday, h)).sum();
        assert!(day > 0 && night == 0, "day {day}, night {night}");
        assert_eq!(
            day_of_breaches("marram-primary", 236, monday).len(),
            day_of_breaches("marram-primary", 236, monday).len()
        );
    }
}
