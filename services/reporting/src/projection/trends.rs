//! Cross-school trends: each school's weekly rate per 100 pupils against the trust's, with
//! outliers by a documented rule (ADR 0015), and learners seen repeatedly or in several schools.

use std::collections::BTreeMap;

use haven_proto::v1 as pb;

use super::dashboard::{Scope, in_scope};
use super::state::{ReportState, WeekTally};
use crate::time::{WEEK_SECS, timestamp, week_start};

/// A school-week with fewer events than this is never an outlier: small numbers swing wildly.
pub const MIN_OUTLIER_COUNT: u64 = 5;
/// A school-week whose rate is at least this many times the trust's rate is an outlier.
pub const OUTLIER_RATE_MULTIPLE: f64 = 2.0;
/// The standard-deviation test needs this many schools to mean anything (with n schools no
/// school can be more than √(n−1) SDs from the mean).
pub const MIN_SCHOOLS_FOR_SD_TEST: usize = 5;

/// What to count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrendQuery {
    pub metric: i32,
    /// For breaches and alerts; empty means all.
    pub categories: Vec<i32>,
    /// For cases opened; empty means all.
    pub case_types: Vec<i32>,
    /// The last week included is the one holding this instant.
    pub until: i64,
    pub weeks: u32,
    /// 0 means 2.0.
    pub outlier_threshold_sd: f64,
}

/// A learner (pseudonymous id) with repeated breaches or breaches in more than one school.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepeatSubject {
    pub subject_id: String,
    pub breaches: u64,
    pub schools: Vec<String>,
}

fn wanted(filter: &[i32], value: i32) -> bool {
    filter.is_empty() || filter.contains(&value)
}

/// Counts per (school, week start) of the metric, for the weeks starting at `weeks` (in
/// order, consecutive) and ending at `end`.
fn counts(
    state: &ReportState,
    scope: Scope<'_>,
    query: &TrendQuery,
    weeks: &[i64],
    end: i64,
) -> BTreeMap<(String, i64), u64> {
    let first_week = weeks.first().copied().unwrap_or(end);
    let mut counts: BTreeMap<(String, i64), u64> = BTreeMap::new();
    // The week holding `at`, found among the weeks asked for (no time zone arithmetic per row).
    let mut add = |school: &str, at: i64, count: u64| {
        if at >= first_week && at < end && in_scope(scope, school) {
            let week = weeks[weeks.partition_point(|start| *start <= at).saturating_sub(1)];
            *counts.entry((school.to_owned(), week)).or_default() += count;
        }
    };
    // The weekly cells the projection keeps for the other metrics, filtered by kind.
    let weekly = |tally: &WeekTally, kinds: &[i32], add: &mut dyn FnMut(&str, i64, u64)| {
        for (school, weeks) in tally {
            if !in_scope(scope, school) {
                continue;
            }
            for ((week, kind), count) in weeks.range((first_week, i32::MIN)..(end, i32::MIN)) {
                if wanted(kinds, *kind) {
                    add(school, *week, *count);
                }
            }
        }
    };
    match pb::TrendMetric::try_from(query.metric).unwrap_or(pb::TrendMetric::Breaches) {
        pb::TrendMetric::Breaches | pb::TrendMetric::Unspecified => {
            // The weekly cells the projection keeps: at most one per school and week.
            for (school, breaches) in state.breaches.in_scope(scope) {
                for (week, by_category) in breaches.weeks.range(first_week..end) {
                    let count: u64 = by_category
                        .iter()
                        .enumerate()
                        .filter(|(category, _)| wanted(&query.categories, *category as i32))
                        .map(|(_, count)| count)
                        .sum();
                    add(school, *week, count);
                }
            }
        }
        pb::TrendMetric::Alerts => weekly(&state.weekly.alerts, &query.categories, &mut add),
        pb::TrendMetric::ConcernsRaised => weekly(&state.weekly.concerns, &[], &mut add),
        pb::TrendMetric::CasesOpened => weekly(&state.weekly.cases_opened, &query.case_types, &mut add),
        pb::TrendMetric::Referrals => weekly(&state.weekly.referrals, &[], &mut add),
        pb::TrendMetric::OverblockingReports => weekly(&state.weekly.overblocking, &[], &mut add),
    }
    counts
}

fn rate(count: u64, pupils: u32) -> f64 {
    if pupils == 0 { 0.0 } else { count as f64 * 100.0 / f64::from(pupils) }
}

/// Weekly rates per school and for the trust, and the outliers among them.
pub fn trends(state: &ReportState, scope: Scope<'_>, query: &TrendQuery) -> pb::GetCrossSchoolTrendsResponse {
    let last_week = week_start(query.until);
    let weeks = i64::from(query.weeks.max(1));
    // One week more than shown, for the first week's week-on-week change.
    let first_week = week_start(last_week - weeks * WEEK_SECS + 12 * 3_600);
    let end = week_start(last_week + WEEK_SECS + 12 * 3_600);
    let schools: Vec<&String> = state.pupils.keys().filter(|school| in_scope(scope, school)).collect();
    let threshold = if query.outlier_threshold_sd > 0.0 { query.outlier_threshold_sd } else { 2.0 };
    let mut week_starts = Vec::new();
    let mut week = first_week;
    while week <= last_week {
        week_starts.push(week);
        week = week_start(week + WEEK_SECS + 12 * 3_600);
    }
    let counts = counts(state, scope, query, &week_starts, end);
    let mut response = pb::GetCrossSchoolTrendsResponse::default();
    let mut by_week: BTreeMap<i64, Vec<(String, u64, f64)>> = BTreeMap::new();
    for school in &schools {
        let mut previous_rate = None;
        for week in &week_starts {
            let count = counts.get(&((*school).clone(), *week)).copied().unwrap_or(0);
            let pupils = state.pupils_at(school, *week + WEEK_SECS - 1);
            let this_rate = rate(count, pupils);
            if let Some(previous) = previous_rate {
                response.schools.push(pb::SchoolWeekRate {
                    school_id: (*school).clone(),
                    week_start: Some(timestamp(*week)),
                    count,
                    pupil_count: pupils,
                    rate_per_100_pupils: this_rate,
                    week_on_week_change: this_rate - previous,
                });
                by_week.entry(*week).or_default().push(((*school).clone(), count, this_rate));
            }
            previous_rate = Some(this_rate);
        }
    }
    for (week, rows) in by_week {
        let count: u64 = rows.iter().map(|(_, count, _)| count).sum();
        let pupils: u32 = schools.iter().map(|school| state.pupils_at(school, week + WEEK_SECS - 1)).sum();
        let n = rows.len() as f64;
        let mean = rows.iter().map(|(_, _, rate)| rate).sum::<f64>() / n;
        let sd = (rows.iter().map(|(_, _, rate)| (rate - mean).powi(2)).sum::<f64>() / n).sqrt();
        let trust_rate = rate(count, pupils);
        response.trust.push(pb::TrustWeekRate {
            week_start: Some(timestamp(week)),
            count,
            pupil_count: pupils,
            rate_per_100_pupils: trust_rate,
            mean_school_rate: mean,
            sd_school_rate: sd,
        });
        for (school_id, count, school_rate) in rows.iter() {
            let sd_from_mean = if sd > 0.0 { (school_rate - mean) / sd } else { 0.0 };
            let by_multiple = trust_rate > 0.0 && *school_rate >= OUTLIER_RATE_MULTIPLE * trust_rate;
            let by_sd = rows.len() >= MIN_SCHOOLS_FOR_SD_TEST && sd_from_mean >= threshold;
            if *count >= MIN_OUTLIER_COUNT && (by_multiple || by_sd) {
                response.outliers.push(pb::TrendOutlier {
                    school_id: school_id.clone(),
                    week_start: Some(timestamp(week)),
                    rate_per_100_pupils: *school_rate,
                    mean_school_rate: mean,
                    sd_from_mean,
                });
            }
        }
    }
    response
}

/// Learners with at least `min_breaches` breaches, or seen in more than one school, most
/// breaches first.
pub fn repeat_subjects(state: &ReportState, scope: Scope<'_>, min_breaches: u64) -> Vec<RepeatSubject> {
    let mut rows: Vec<RepeatSubject> = state
        .subjects
        .iter()
        .filter_map(|(subject_id, tally)| {
            let schools: Vec<String> =
                tally.by_school.keys().filter(|school| in_scope(scope, school)).cloned().collect();
            let breaches: u64 =
                tally.by_school.iter().filter(|(school, _)| in_scope(scope, school)).map(|(_, count)| count).sum();
            (breaches >= min_breaches.max(1) || schools.len() > 1).then(|| RepeatSubject {
                subject_id: subject_id.clone(),
                breaches,
                schools,
            })
        })
        .filter(|row| row.breaches > 0)
        .collect();
    rows.sort_by(|a, b| b.breaches.cmp(&a.breaches).then_with(|| a.subject_id.cmp(&b.subject_id)));
    rows
}
