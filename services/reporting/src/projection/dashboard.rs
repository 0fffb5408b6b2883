//! The trust dashboard, per school or trust-wide, from the pre-aggregated state.

use std::collections::BTreeMap;

use haven_proto::v1 as pb;

use super::state::{ActionCounts, CATEGORIES, ReportState, outstanding};
use crate::time::{DAY_SECS, HOUR_SECS, hour_start, timestamp};

/// A referral with no outcome this many days after it was made is overdue for follow-up.
pub const REFERRAL_FOLLOW_UP_DAYS: i64 = 14;

/// At most this many overdue actions, and as many critical cases, are listed (the oldest
/// first); `case_work` counts them all per school.
pub const ROW_LIMIT: usize = 100;

/// Which schools a report covers: `None` is every school.
pub type Scope<'a> = Option<&'a [String]>;

pub fn in_scope(scope: Scope<'_>, school_id: &str) -> bool {
    scope.is_none_or(|schools| schools.iter().any(|school| school == school_id))
}

/// A device still in the school's custody.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInCustody {
    pub custody_id: String,
    pub school_id: String,
    pub case_id: String,
    pub seized_at: i64,
    pub age_days: i64,
    /// `HoldKind` of a standing quarantine or police hold.
    pub hold: Option<i32>,
}

/// A referral with no recorded outcome after [`REFERRAL_FOLLOW_UP_DAYS`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverdueReferral {
    pub referral_id: String,
    pub case_id: String,
    pub school_id: String,
    pub agency: i32,
    pub referred_at: i64,
    pub days_without_outcome: i64,
}

/// The dashboard: the proto response plus what the proto does not carry yet.
#[derive(Clone, Debug, PartialEq)]
pub struct Dashboard {
    pub response: pb::GetTrustDashboardResponse,
    /// Breaches in the window by hour of the day in Europe/London (0..=23).
    pub breaches_by_hour_of_day: [u64; 24],
    pub overdue_referrals: Vec<OverdueReferral>,
    pub devices_in_custody: Vec<DeviceInCustody>,
}

pub fn age_band(opened_at: i64, now: i64) -> pb::CaseAgeBand {
    match (now - opened_at).div_euclid(DAY_SECS) {
        ..7 => pb::CaseAgeBand::UnderAWeek,
        7..30 => pb::CaseAgeBand::OneToFourWeeks,
        30..90 => pb::CaseAgeBand::OneToThreeMonths,
        _ => pb::CaseAgeBand::OverThreeMonths,
    }
}

/// The dashboard for breaches in `[from, to)` and everything open at `now`, listing every
/// school's cases (the caller has checked who may see them).
pub fn dashboard(state: &ReportState, scope: Scope<'_>, from: i64, to: i64, now: i64) -> Dashboard {
    dashboard_listing(state, scope, from, to, now, &|_| true)
}

/// [`dashboard`], listing overdue actions and critical cases only for the schools
/// `may_list(school)` allows (their counts stay in `open_cases`).
pub fn dashboard_listing(
    state: &ReportState,
    scope: Scope<'_>,
    from: i64,
    to: i64,
    now: i64,
    may_list: &dyn Fn(&str) -> bool,
) -> Dashboard {
    // Only cells of the window are read: trust-wide, the trust's hour cells and each school's
    // day cells; for named schools, one range of hour cells per school.
    let first_hour = hour_start(from);
    let hours = usize::try_from((to - first_hour).div_euclid(HOUR_SECS).max(0) + 1).unwrap_or(0);
    let mut by_school = Vec::new();
    let mut by_category = [0u64; CATEGORIES];
    let mut by_hour = vec![0u64; hours];
    let mut by_hour_of_day = [0u64; 24];
    let mut add_cell = |hour: i64, cell: &super::state::HourCell| {
        for (total, count) in by_category.iter_mut().zip(cell.by_category) {
            *total += count;
        }
        let total = cell.total();
        by_hour[((hour - first_hour) / HOUR_SECS) as usize] += total;
        by_hour_of_day[usize::from(cell.hour_of_day)] += total;
    };
    if scope.is_none() {
        // Trust-wide: the trust's own hour cells, and each school's totals from its day cells.
        for (hour, cell) in state.breaches.trust_hours.range(first_hour..to.max(first_hour)) {
            add_cell(*hour, cell);
        }
        for (school_id, breaches) in state.breaches.in_scope(None) {
            let counts = breaches.by_action(first_hour, to);
            if counts != ActionCounts::default() {
                by_school.push(school_row(school_id, counts));
            }
        }
    } else {
        for (school_id, breaches) in state.breaches.in_scope(scope) {
            let mut counts = ActionCounts::default();
            let mut seen = false;
            for (hour, cell) in breaches.hours.range(first_hour..to.max(first_hour)) {
                seen = true;
                counts = counts.plus(cell.actions);
                add_cell(*hour, cell);
            }
            if seen {
                by_school.push(school_row(school_id, counts));
            }
        }
    }
    let mut response = pb::GetTrustDashboardResponse {
        breaches_by_school: by_school,
        breaches_by_category: by_category
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(category, count)| pb::CategoryBreachCount { category: category as i32, count: *count })
            .collect(),
        ..Default::default()
    };
    let mut hour = first_hour;
    while hour < to {
        let count = by_hour[((hour - first_hour) / HOUR_SECS) as usize];
        response.breaches_by_hour.push(pb::HourBreachCount { hour_start: Some(timestamp(hour)), count });
        hour += HOUR_SECS;
    }

    open_work(state, scope, now, may_list, &mut response);
    let mut unacknowledged: BTreeMap<(String, i32), (u32, i64)> = BTreeMap::new();
    for alert in state.alerts.values() {
        if alert.acknowledged.is_some() || !in_scope(scope, &alert.school_id) {
            continue;
        }
        let cell = unacknowledged.entry((alert.school_id.clone(), alert.severity)).or_insert((0, i64::MAX));
        cell.0 += 1;
        cell.1 = cell.1.min(alert.raised_at);
    }
    response.unacknowledged_alerts = unacknowledged
        .into_iter()
        .map(|((school_id, severity), (count, oldest))| pb::UnacknowledgedAlertCount {
            school_id,
            severity,
            count,
            oldest_raised_at: Some(timestamp(oldest)),
        })
        .collect();

    let mut checks: BTreeMap<&str, &super::state::FilterCheck> = BTreeMap::new();
    for check in &state.filter_checks {
        if in_scope(scope, &check.school_id) {
            checks.insert(&check.school_id, check);
        }
    }
    response.filter_checks = checks
        .into_values()
        .map(|check| pb::FilterCheckDue {
            school_id: check.school_id.clone(),
            last_checked_at: Some(timestamp(check.checked_at)),
            last_outcome: check.outcome,
            next_check_due_at: check.next_check_due_at.map(timestamp),
        })
        .collect();

    let overdue_referrals = state
        .referrals
        .iter()
        .filter(|(_, referral)| {
            referral.outcome_at.is_none()
                && in_scope(scope, &referral.school_id)
                && now - referral.referred_at > REFERRAL_FOLLOW_UP_DAYS * DAY_SECS
                && !referral.restricted
        })
        .map(|(referral_id, referral)| OverdueReferral {
            referral_id: referral_id.clone(),
            case_id: referral.case_id.clone(),
            school_id: referral.school_id.clone(),
            agency: referral.agency,
            referred_at: referral.referred_at,
            days_without_outcome: (now - referral.referred_at).div_euclid(DAY_SECS),
        })
        .collect();
    let devices_in_custody = state
        .custody
        .iter()
        .filter(|(_, custody)| custody.ended.is_none() && in_scope(scope, &custody.school_id))
        .map(|(custody_id, custody)| DeviceInCustody {
            custody_id: custody_id.clone(),
            school_id: custody.school_id.clone(),
            case_id: custody.case_id.clone(),
            seized_at: custody.seized_at,
            age_days: (now - custody.seized_at).div_euclid(DAY_SECS),
            hold: custody.hold,
        })
        .collect();
    Dashboard { response, breaches_by_hour_of_day: by_hour_of_day, overdue_referrals, devices_in_custody }
}

fn school_row(school_id: &str, counts: ActionCounts) -> pb::SchoolBreachCount {
    pb::SchoolBreachCount {
        school_id: school_id.to_owned(),
        blocked: counts.blocked,
        flagged: counts.flagged,
        allowed: counts.allowed,
    }
}

/// The entries of a per-school map for the schools in `scope`, in school order.
fn schools_in<'a, V>(map: &'a BTreeMap<String, V>, scope: Scope<'_>) -> Vec<(&'a String, &'a V)> {
    match scope {
        None => map.iter().collect(),
        Some(schools) => {
            let mut rows: Vec<_> = schools.iter().filter_map(|school| map.get_key_value(school)).collect();
            rows.sort_unstable_by_key(|(school, _)| *school);
            rows.dedup_by_key(|(school, _)| *school);
            rows
        }
    }
}

/// Open cases by school, type, risk and age; overdue actions and critical cases, the oldest
/// [`ROW_LIMIT`] of each listed and all counted per school — all from [`OpenWork`], so the
/// cost follows the open cases in scope, not every case ever opened.
///
/// [`OpenWork`]: super::state::OpenWork
fn open_work(
    state: &ReportState,
    scope: Scope<'_>,
    now: i64,
    may_list: &dyn Fn(&str) -> bool,
    response: &mut pb::GetTrustDashboardResponse,
) {
    for ((school_id, case_type, risk_level), opened) in &state.open.counts {
        if !in_scope(scope, school_id) {
            continue;
        }
        let mut bands = [0u32; 5];
        for (opened_at, count) in opened {
            bands[age_band(*opened_at, now) as usize] += count;
        }
        for (age_band, count) in bands.into_iter().enumerate().filter(|(_, count)| *count > 0) {
            response.open_cases.push(pb::OpenCaseCount {
                school_id: school_id.clone(),
                case_type: *case_type,
                risk_level: *risk_level,
                age_band: age_band as i32,
                count,
            });
        }
    }

    let mut work: BTreeMap<&str, pb::SchoolCaseWork> = BTreeMap::new();
    // Each school's oldest ROW_LIMIT (its index is in due order), then the oldest of those.
    let mut overdue = Vec::new();
    for (school_id, due) in schools_in(&state.open.due, scope) {
        if !may_list(school_id) {
            continue;
        }
        // Counted from the other end: actions not yet due are few, overdue ones may be many.
        let not_yet_due = due.range((now, String::new(), String::new())..).count();
        let count = due.len() - not_yet_due;
        work.entry(school_id).or_default().overdue_actions = u32::try_from(count).unwrap_or(u32::MAX);
        overdue.extend(due.iter().take(count.min(ROW_LIMIT)).map(|(key, case_type)| (key, school_id, *case_type)));
    }
    oldest(&mut overdue, |row| row.0);
    response.overdue_actions = overdue
        .into_iter()
        .map(|((due_at, case_id, action_key), school_id, case_type)| pb::OverdueActionRow {
            case_id: case_id.clone(),
            school_id: school_id.clone(),
            case_type,
            action_key: action_key.clone(),
            due_at: Some(timestamp(*due_at)),
        })
        .collect();

    let mut critical = Vec::new();
    for (school_id, cases) in schools_in(&state.open.critical, scope) {
        if !may_list(school_id) {
            continue;
        }
        critical.extend(cases.iter().take(ROW_LIMIT));
        work.entry(school_id).or_default().critical_cases = u32::try_from(cases.len()).unwrap_or(u32::MAX);
    }
    oldest(&mut critical, |row| *row);
    response.critical_cases = critical
        .into_iter()
        .filter_map(|(opened_at, case_id)| {
            let case = state.cases.get(case_id)?;
            let overdue = case
                .checklist
                .values()
                .filter(|action| action.due_at.is_some_and(|due| due < now) && outstanding(action))
                .count();
            Some(pb::CriticalCaseRow {
                case_id: case_id.clone(),
                school_id: case.school_id.clone(),
                case_type: case.case_type,
                opened_at: Some(timestamp(*opened_at)),
                lead_user_id: case.lead_user_id.clone(),
                overdue_actions: overdue as u32,
            })
        })
        .collect();
    response.case_work = work
        .into_iter()
        .map(|(school_id, mut row)| {
            row.school_id = school_id.to_owned();
            row
        })
        .collect();
}

/// Keeps the [`ROW_LIMIT`] smallest rows by `key`, in order.
fn oldest<T, K: Ord>(rows: &mut Vec<T>, key: impl Fn(&T) -> K) {
    if rows.len() > ROW_LIMIT {
        rows.select_nth_unstable_by(ROW_LIMIT, |a, b| key(a).cmp(&key(b)));
        rows.truncate(ROW_LIMIT);
    }
    rows.sort_unstable_by_key(key);
}
