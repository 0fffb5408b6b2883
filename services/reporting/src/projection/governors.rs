//! The termly governors' report: aggregates only — no case, learner, staff or device ids, no
//! names, hosts or free text — with counts from 1 to [`SMALL_NUMBER_THRESHOLD`] − 1 withheld so
//! no learner can be identified. Rendered as one self-contained HTML page that prints well.

use std::collections::BTreeMap;

use haven_proto::v1 as pb;

use super::state::{CATEGORIES, CustodyEnd, ReportState};
use crate::Error;
use crate::time::{Term, previous_term, term_bounds, timestamp};

/// Counts below this (and above zero) are suppressed.
pub const SMALL_NUMBER_THRESHOLD: u64 = 5;

pub fn aggregate(count: u64) -> pb::AggregateCount {
    if count > 0 && count < SMALL_NUMBER_THRESHOLD {
        pb::AggregateCount { count: 0, suppressed: true }
    } else {
        pb::AggregateCount { count, suppressed: false }
    }
}

pub fn term_from_proto(term: i32) -> Result<Term, Error> {
    match pb::Term::try_from(term) {
        Ok(pb::Term::Autumn) => Ok(Term::Autumn),
        Ok(pb::Term::Spring) => Ok(Term::Spring),
        Ok(pb::Term::Summer) => Ok(Term::Summer),
        _ => Err(Error::invalid("term", "autumn, spring or summer")),
    }
}

fn breaches(state: &ReportState, school: &str, start: i64, end: i64) -> [u64; CATEGORIES] {
    let mut totals = [0u64; CATEGORIES];
    let scope = [school.to_owned()];
    let scope = (!school.is_empty()).then_some(&scope[..]);
    for (_, breaches) in state.breaches.in_scope(scope) {
        for (total, count) in totals.iter_mut().zip(breaches.by_category(start, end)) {
            *total += count;
        }
    }
    totals
}

fn pupils(state: &ReportState, school: &str, at: i64) -> u32 {
    state.pupils.keys().filter(|id| school.is_empty() || *id == school).map(|id| state.pupils_at(id, at)).sum()
}

fn per_100(count: u64, pupils: u32) -> f64 {
    if pupils == 0 { 0.0 } else { count as f64 * 100.0 / f64::from(pupils) }
}

/// The report for one school (`""` for the trust) and term.
pub fn governors_report(
    state: &ReportState,
    school: &str,
    academic_year: &str,
    term: Term,
) -> Result<pb::GovernorsReport, Error> {
    let (start, end) = term_bounds(academic_year, term)?;
    let ours = |school_id: &str| school.is_empty() || school_id == school;
    let within = |at: i64| at >= start && at < end;
    let totals = breaches(state, school, start, end);
    let pupil_count = pupils(state, school, end - 1);
    let previous_rate = previous_term(academic_year, term)
        .and_then(|(year, term)| term_bounds(&year, term).ok())
        .map_or(0.0, |(p_start, p_end)| {
            per_100(breaches(state, school, p_start, p_end).iter().sum(), pupils(state, school, p_end - 1))
        });
    let alerts: Vec<_> = state.alerts.values().filter(|a| ours(&a.school_id) && within(a.raised_at)).collect();
    let critical: Vec<_> = alerts.iter().filter(|a| a.severity == pb::AlertSeverity::Critical as i32).collect();
    let mut by_type: BTreeMap<i32, (u64, u64)> = BTreeMap::new();
    for case in state.cases.values().filter(|case| ours(&case.school_id)) {
        let row = by_type.entry(case.case_type).or_default();
        row.0 += u64::from(within(case.opened_at));
        row.1 += u64::from(case.closed_at.is_some_and(within));
    }
    let mut by_agency: BTreeMap<i32, u64> = BTreeMap::new();
    for referral in state.referrals.values().filter(|r| ours(&r.school_id) && within(r.referred_at)) {
        *by_agency.entry(referral.agency).or_default() += 1;
    }
    let custody: Vec<_> = state.custody.values().filter(|c| ours(&c.school_id)).collect();
    let checks: Vec<_> = state.filter_checks.iter().filter(|c| ours(&c.school_id) && within(c.checked_at)).collect();
    let count = |n: usize| aggregate(n as u64);
    Ok(pb::GovernorsReport {
        school_id: school.to_owned(),
        academic_year: academic_year.to_owned(),
        term: match term {
            Term::Autumn => pb::Term::Autumn,
            Term::Spring => pb::Term::Spring,
            Term::Summer => pb::Term::Summer,
        } as i32,
        period_start: Some(timestamp(start)),
        period_end: Some(timestamp(end)),
        pupil_count,
        breaches_by_category: totals
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(category, n)| pb::CategoryTotal { category: category as i32, breaches: Some(aggregate(*n)) })
            .collect(),
        breaches_per_100_pupils: per_100(totals.iter().sum(), pupil_count),
        previous_term_breaches_per_100_pupils: previous_rate,
        alerts_raised: Some(count(alerts.len())),
        critical_alerts_acknowledged_in_time: Some(count(
            critical.iter().filter(|a| a.acknowledged.is_some_and(|(_, in_time)| in_time)).count(),
        )),
        critical_alerts: Some(count(critical.len())),
        concerns_raised: Some(count(state.concerns.iter().filter(|(s, at)| ours(s) && within(*at)).count())),
        cases_by_type: by_type
            .into_iter()
            .filter(|(_, (opened, closed))| opened + closed > 0)
            .map(|(case_type, (opened, closed))| pb::CaseTypeTotal {
                case_type,
                opened: Some(aggregate(opened)),
                closed: Some(aggregate(closed)),
            })
            .collect(),
        referrals_by_agency: by_agency
            .into_iter()
            .map(|(agency, n)| pb::AgencyTotal { agency, referrals: Some(aggregate(n)) })
            .collect(),
        devices_confiscated: Some(count(custody.iter().filter(|c| within(c.seized_at)).count())),
        devices_handed_to_police: Some(count(
            custody.iter().filter(|c| matches!(c.ended, Some((at, CustodyEnd::HandedToPolice)) if within(at))).count(),
        )),
        filter_checks: Some(count(checks.len())),
        filter_checks_passed: Some(count(
            checks.iter().filter(|c| c.outcome == pb::FilterCheckOutcome::Passed as i32).count(),
        )),
        filtering_changes_applied: Some(count(
            state.changes_applied.iter().filter(|(s, at)| ours(s) && within(*at)).count(),
        )),
        overblocking_reports: Some(count(state.overblocking.iter().filter(|(s, at)| ours(s) && within(*at)).count())),
    })
}

/// `BREACH_CATEGORY_SELF_HARM` → `Self harm`.
fn label(name: &str, prefix: &str) -> String {
    let words = name.strip_prefix(prefix).unwrap_or(name).replace('_', " ").to_lowercase();
    let mut chars = words.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn cell(count: Option<&pb::AggregateCount>) -> String {
    match count {
        Some(c) if c.suppressed => "fewer than 5".to_owned(),
        Some(c) => c.count.to_string(),
        None => "0".to_owned(),
    }
}

/// One printable HTML page. Everything in it is a number, a date or a fixed label from the
/// contracts' enums, so nothing personal can reach it; the school id is escaped anyway.
pub fn governors_html(report: &pb::GovernorsReport) -> String {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let scope = if report.school_id.is_empty() { "the trust".to_owned() } else { escape(&report.school_id) };
    let term = label(pb::Term::try_from(report.term).map(|t| t.as_str_name()).unwrap_or(""), "TERM_");
    let mut html = String::with_capacity(8_192);
    html.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Governors' safeguarding report</title><style>\
body{font:11pt/1.4 system-ui,sans-serif;max-width:48rem;margin:2rem auto;color:#111}\
h1{font-size:1.5rem}h2{font-size:1.1rem;margin-top:1.5rem;border-bottom:1px solid #999}\
table{border-collapse:collapse;width:100%}td,th{border:1px solid #bbb;padding:.25rem .5rem;text-align:left}\
td.n{text-align:right}section{break-inside:avoid}@page{size:A4;margin:18mm}@media print{body{margin:0}}\
</style></head><body>");
    html.push_str(&format!(
        "<h1>Online safety report to governors</h1><p>{term} term {}, {scope}. Pupils on roll: {}. \
         Aggregates only; counts from 1 to 4 are shown as “fewer than 5”.</p>",
        escape(&report.academic_year),
        report.pupil_count
    ));
    let row = |name: &str, value: String| format!("<tr><th>{name}</th><td class=\"n\">{value}</td></tr>");
    html.push_str("<section><h2>Filtering and monitoring</h2><table>");
    html.push_str(&row("Breaches per 100 pupils this term", format!("{:.1}", report.breaches_per_100_pupils)));
    html.push_str(&row(
        "Breaches per 100 pupils last term",
        format!("{:.1}", report.previous_term_breaches_per_100_pupils),
    ));
    for total in &report.breaches_by_category {
        let name = label(
            pb::BreachCategory::try_from(total.category).map(|c| c.as_str_name()).unwrap_or(""),
            "BREACH_CATEGORY_",
        );
        html.push_str(&row(&format!("Breaches: {name}"), cell(total.breaches.as_ref())));
    }
    html.push_str(&row("Filter checks carried out", cell(report.filter_checks.as_ref())));
    html.push_str(&row("Filter checks passed", cell(report.filter_checks_passed.as_ref())));
    html.push_str(&row(
        "Filtering changes applied (logged and risk-assessed)",
        cell(report.filtering_changes_applied.as_ref()),
    ));
    html.push_str(&row("Over-blocking reports", cell(report.overblocking_reports.as_ref())));
    html.push_str("</table></section><section><h2>Alerts and concerns</h2><table>");
    html.push_str(&row("Safeguarding alerts raised", cell(report.alerts_raised.as_ref())));
    html.push_str(&row("Critical alerts", cell(report.critical_alerts.as_ref())));
    html.push_str(&row(
        "Critical alerts acknowledged in time",
        cell(report.critical_alerts_acknowledged_in_time.as_ref()),
    ));
    html.push_str(&row("Concerns raised by staff", cell(report.concerns_raised.as_ref())));
    html.push_str(
        "</table></section><section><h2>Cases</h2><table><tr><th>Type</th><th>Opened</th><th>Closed</th></tr>",
    );
    for total in &report.cases_by_type {
        let name = label(pb::CaseType::try_from(total.case_type).map(|c| c.as_str_name()).unwrap_or(""), "CASE_TYPE_");
        html.push_str(&format!(
            "<tr><th>{name}</th><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            cell(total.opened.as_ref()),
            cell(total.closed.as_ref())
        ));
    }
    html.push_str("</table></section><section><h2>Referrals and devices</h2><table>");
    for total in &report.referrals_by_agency {
        let name = label(
            pb::ReferralAgency::try_from(total.agency).map(|a| a.as_str_name()).unwrap_or(""),
            "REFERRAL_AGENCY_",
        );
        html.push_str(&row(&format!("Referrals: {name}"), cell(total.referrals.as_ref())));
    }
    html.push_str(&row("Devices confiscated", cell(report.devices_confiscated.as_ref())));
    html.push_str(&row("Devices handed to the police", cell(report.devices_handed_to_police.as_ref())));
    html.push_str("</table></section></body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_counts_are_suppressed() {
        assert_eq!(aggregate(0), pb::AggregateCount { count: 0, suppressed: false });
        assert_eq!(aggregate(4), pb::AggregateCount { count: 0, suppressed: true });
        assert_eq!(aggregate(5), pb::AggregateCount { count: 5, suppressed: false });
    }

    #[test]
    fn labels_read_as_words() {
        assert_eq!(label("BREACH_CATEGORY_SELF_HARM", "BREACH_CATEGORY_"), "Self harm");
    }
}
