//! The filtering report of one school over a window (pure): checks and reviews in it, and the
//! over-blocking report — categories reported blocked, each unblock request (an over-blocking
//! report) with the change that answered it and how long that took.

use haven_proto::v1 as pb;

use super::domain::{Change, ChangeStatus, SchoolFiltering};

fn time(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

pub fn status_to_proto(status: ChangeStatus) -> pb::FilteringChangeStatus {
    match status {
        ChangeStatus::Requested => pb::FilteringChangeStatus::Requested,
        ChangeStatus::Approved => pb::FilteringChangeStatus::Approved,
        ChangeStatus::Rejected => pb::FilteringChangeStatus::Rejected,
        ChangeStatus::Applied => pb::FilteringChangeStatus::Applied,
    }
}

/// When a change was settled for the person waiting on it: applied, or rejected.
fn resolved_at(change: &Change) -> Option<i64> {
    match change.status {
        ChangeStatus::Applied => change.applied_at,
        ChangeStatus::Rejected => change.decided_at,
        ChangeStatus::Requested | ChangeStatus::Approved => None,
    }
}

/// Of the changes answering one report, the one that tells its outcome: a settled one first
/// (the earliest settled), else the latest asked.
fn answer<'a>(report_id: &str, changes: &'a [(Change, u64)]) -> Option<&'a Change> {
    let answering =
        changes.iter().map(|(c, _)| c).filter(|c| c.requested.overblocking_report_ids.iter().any(|r| r == report_id));
    answering.min_by_key(|c| (resolved_at(c).is_none(), resolved_at(c).unwrap_or(i64::MAX), -c.requested_at))
}

/// The report over `[from, to)` (Unix seconds).
pub fn build(
    school_id: &str,
    record: &SchoolFiltering,
    changes: &[(Change, u64)],
    from: i64,
    to: i64,
) -> pb::GetFilteringReportResponse {
    let within = |at: i64| from <= at && at < to;
    let mut response = pb::GetFilteringReportResponse { school_id: school_id.to_owned(), ..Default::default() };
    for check in record.checks.iter().rev().filter(|c| within(c.at)) {
        let event = &check.fact;
        response.checks.push(pb::FilterCheck {
            check_id: event.check_id.clone(),
            checked_by_user_id: event.checked_by_user_id.clone(),
            checked_at: Some(time(check.at)),
            method: event.method,
            outcome: event.outcome,
            results: event.results.clone(),
            next_check_due_at: event.next_check_due_at,
        });
    }
    for review in record.reviews.iter().rev().filter(|r| within(r.at)) {
        let event = &review.fact;
        response.reviews.push(pb::FilteringReview {
            review_id: event.review_id.clone(),
            recorded_by_user_id: event.recorded_by_user_id.clone(),
            governor_user_id: event.governor_user_id.clone(),
            participant_user_ids: event.participant_user_ids.clone(),
            findings: event.findings.clone(),
            actions: event.actions.clone(),
            held_at: event.held_at,
            next_review_due_at: event.next_review_due_at,
        });
    }
    response.next_check_due_at =
        record.checks.iter().filter_map(|c| c.fact.next_check_due_at).max_by_key(|t| t.seconds);
    response.next_review_due_at =
        record.reviews.iter().filter_map(|r| r.fact.next_review_due_at).max_by_key(|t| t.seconds);

    let mut categories: std::collections::BTreeMap<i32, u64> = Default::default();
    let mut resolved_waits = Vec::new();
    let mut reports: Vec<_> = record.reports.values().filter(|r| within(r.at)).collect();
    reports.sort_by_key(|r| std::cmp::Reverse(r.at));
    for report in reports {
        let event = &report.fact;
        *categories.entry(event.category).or_default() += 1;
        let change = answer(&event.report_id, changes);
        let resolved = change.and_then(resolved_at).filter(|at| *at < to);
        let waited = resolved.unwrap_or(to).saturating_sub(report.at).max(0) as u64;
        match resolved {
            Some(_) => resolved_waits.push(waited),
            None => response.unblock_requests_open += 1,
        }
        response.overblocking.push(pb::OverblockingEntry {
            report_id: event.report_id.clone(),
            url_host: event.url_host.clone(),
            category: event.category,
            reported_by_user_id: event.reported_by_user_id.clone(),
            reported_at: Some(time(report.at)),
            change_id: change.map(|c| c.requested.change_id.clone()).unwrap_or_default(),
            status: change.map_or(pb::FilteringChangeStatus::Unspecified, |c| status_to_proto(c.status)) as i32,
            resolved_at: resolved.map(time),
            waited_seconds: waited,
        });
    }
    let mut blocked: Vec<_> = categories.into_iter().collect();
    blocked.sort_by_key(|(category, count)| (std::cmp::Reverse(*count), *category));
    response.blocked_categories =
        blocked.into_iter().map(|(category, count)| pb::CategoryCount { category, count }).collect();
    resolved_waits.sort_unstable();
    response.unblock_requests_resolved = resolved_waits.len() as u64;
    response.median_resolution_seconds =
        resolved_waits.get(resolved_waits.len().saturating_sub(1) / 2).copied().unwrap_or(0);
    response.longest_resolution_seconds = resolved_waits.last().copied().unwrap_or(0);

    for (change, _) in changes.iter().filter(|(c, _)| within(c.requested_at)) {
        response.changes_requested += 1;
        match change.status {
            ChangeStatus::Requested => {}
            ChangeStatus::Approved => response.changes_approved += 1,
            ChangeStatus::Rejected => response.changes_rejected += 1,
            ChangeStatus::Applied => {
                response.changes_approved += 1;
                response.changes_applied += 1;
            }
        }
    }
    response
}
