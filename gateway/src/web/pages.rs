//! The pages: the trust dashboard, one school, the registers, the audit view and the
//! governors' report. Each asks the policy first and shows only what it allows.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use haven_authz::Action;
use haven_kernel::StreamId;
use haven_proto::v1 as pb;
use haven_reporting::projection::{governors, registers, trends};
use haven_reporting::time::Term;
use haven_reporting::{AsOf, RecordContext};
use serde::Deserialize;

use super::api::{Figures, PeriodQuery, by_school, figures, now, period, schools};
use super::html::{self, count_for, day, escape, label, london_day, when};
use super::{Reach, Viewer, WebEdge, charts, session};
use crate::GatewayState;

pub async fn home() -> Response {
    Redirect::to("/dashboard").into_response()
}

fn enum_label<E: TryFrom<i32>>(value: i32, name: impl Fn(E) -> &'static str, prefix: &str) -> String {
    E::try_from(value).map(|e| label(name(e), prefix)).unwrap_or_else(|_| "Unknown".to_owned())
}

fn periods(base: &str, days: i64) -> String {
    let mut nav = String::from("<nav class=\"periods\">Period: ");
    for choice in [7, 28, 42, 91] {
        if choice == days {
            let _ = write!(nav, "<b>{choice} days</b> ");
        } else {
            let _ = write!(nav, "<a href=\"{base}?days={choice}\">{choice} days</a> ");
        }
    }
    nav.push_str("</nav>");
    nav
}

/// The figures' charts and tables, for the trust or one school.
fn figures_html(web: &WebEdge, viewer: &Viewer, reach: &Reach, figures: &Figures) -> String {
    let response = &figures.dashboard.response;
    let rows = by_school(web, reach, figures);
    let total: u64 = rows.iter().map(|row| row.total).sum();
    let open_cases: u32 = response.open_cases.iter().map(|row| row.count).sum();
    let unacknowledged: u32 = response.unacknowledged_alerts.iter().map(|row| row.count).sum();
    let reads_cases = match reach {
        Reach::Trust => viewer.may(Action::ReadCase, None),
        Reach::Schools(schools) => schools.iter().all(|school| viewer.may(Action::ReadCase, Some(school))),
    };
    let open_cases = count_for(u64::from(open_cases), reads_cases);
    let unacknowledged = count_for(u64::from(unacknowledged), reads_cases);
    let mut out = String::new();
    let _ = write!(
        out,
        "<div class=\"stats\"><div class=\"stat\"><b id=\"total-breaches\">{total}</b>breaches</div>\
         <div class=\"stat\"><b>{}</b>schools</div><div class=\"stat\"><b id=\"unacknowledged\">{unacknowledged}</b>alerts awaiting a DSL</div>\
         <div class=\"stat\"><b id=\"open-cases\">{open_cases}</b>open cases</div><div class=\"stat\"><b>{}</b>devices in custody</div></div>",
        rows.len(),
        figures.dashboard.devices_in_custody.len(),
    );
    let bars: Vec<(String, String, u64)> =
        rows.iter().map(|row| (row.school_id.clone(), format!("/schools/{}", row.school_id), row.total)).collect();
    let _ = write!(
        out,
        "<div class=\"grid\"><section class=\"card\"><h2>Breaches per day</h2>{}</section>\
         <section class=\"card\"><h2>Breaches by school</h2>{}<p class=\"muted\">Select a school to see it alone.</p></section></div>\
         <section class=\"card\"><h2>Breaches by hour of day (Europe/London)</h2>{}</section>",
        charts::time_series("chart-daily", &figures.daily),
        charts::bars("chart-schools", &bars),
        charts::heat_map("chart-hours", &figures.heat),
    );
    out.push_str("<div class=\"grid\"><section class=\"card\"><h2>By category</h2><table><tr><th>Category</th><th class=\"n\">Breaches</th></tr>");
    let mut categories = response.breaches_by_category.clone();
    categories.sort_by_key(|row| std::cmp::Reverse(row.count));
    for row in &categories {
        let name = enum_label(row.category, |c: pb::BreachCategory| c.as_str_name(), "BREACH_CATEGORY_");
        let _ = write!(out, "<tr><td>{}</td><td class=\"n\">{}</td></tr>", escape(&name), row.count);
    }
    out.push_str("</table></section><section class=\"card\"><h2>Alerts raised</h2><table id=\"alerts\"><tr><th>Severity</th><th class=\"n\">Raised</th><th class=\"n\">In time</th><th class=\"n\">Median wait (min)</th></tr>");
    for row in &figures.alerts {
        let severity = enum_label(row.severity, |s: pb::AlertSeverity| s.as_str_name(), "ALERT_SEVERITY_");
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&severity),
            count_for(row.raised, reads_cases),
            count_for(row.acknowledged_in_time, reads_cases),
            row.median_minutes.map_or_else(|| "–".to_owned(), |m| m.to_string())
        );
    }
    out.push_str("</table></section><section class=\"card\"><h2>Alerts awaiting a DSL</h2><table><tr><th>School</th><th>Severity</th><th class=\"n\">Alerts</th><th>Oldest</th></tr>");
    for row in &response.unacknowledged_alerts {
        let severity = enum_label(row.severity, |s: pb::AlertSeverity| s.as_str_name(), "ALERT_SEVERITY_");
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            escape(&row.school_id),
            escape(&severity),
            count_for(u64::from(row.count), viewer.may(Action::ReadCase, Some(&row.school_id))),
            when(row.oldest_raised_at.map_or(0, |t| t.seconds))
        );
    }
    out.push_str("</table></section><section class=\"card\"><h2>Open cases</h2><table><tr><th>School</th><th>Type</th><th>Risk</th><th class=\"n\">Cases</th></tr>");
    // Who may not read a school's cases sees one total per school: a case's type at a small
    // school (an allegation against staff) can say who it is about.
    let mut open_rows: std::collections::BTreeMap<(String, String, String), u64> = std::collections::BTreeMap::new();
    for row in &response.open_cases {
        let key = if viewer.may(Action::ReadCase, Some(&row.school_id)) {
            (
                row.school_id.clone(),
                enum_label(row.case_type, |t: pb::CaseType| t.as_str_name(), "CASE_TYPE_"),
                enum_label(row.risk_level, |r: pb::RiskLevel| r.as_str_name(), "RISK_LEVEL_"),
            )
        } else {
            (row.school_id.clone(), "All types".to_owned(), "All".to_owned())
        };
        *open_rows.entry(key).or_default() += u64::from(row.count);
    }
    for ((school_id, case_type, risk), count) in &open_rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            escape(school_id),
            escape(case_type),
            escape(risk),
            count_for(*count, viewer.may(Action::ReadCase, Some(school_id)))
        );
    }
    out.push_str("</table></section></div>");
    // Rows that name a case: only where the viewer may read cases.
    let overdue: Vec<_> =
        response.overdue_actions.iter().filter(|row| viewer.may(Action::ReadCase, Some(&row.school_id))).collect();
    let referrals: Vec<_> = figures
        .dashboard
        .overdue_referrals
        .iter()
        .filter(|row| viewer.may(Action::ReadCase, Some(&row.school_id)))
        .collect();
    if !overdue.is_empty() || !referrals.is_empty() {
        out.push_str("<section class=\"card\" id=\"overdue\"><h2>Overdue actions and referrals</h2>");
        let counted: u64 = response.case_work.iter().map(|row| u64::from(row.overdue_actions)).sum();
        if counted > overdue.len() as u64 {
            let _ = write!(
                out,
                "<p class=\"muted\" id=\"overdue-count\">{counted} overdue actions; the oldest {} are listed. Open a school for its own.</p>",
                overdue.len()
            );
        }
        out.push_str("<table><tr><th>School</th><th>Case</th><th>What</th><th>Due or made</th></tr>");
        for row in overdue {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&row.school_id),
                escape(&row.case_id),
                escape(&row.action_key),
                when(row.due_at.map_or(0, |t| t.seconds))
            );
        }
        for row in referrals {
            let agency = enum_label(row.agency, |a: pb::ReferralAgency| a.as_str_name(), "REFERRAL_AGENCY_");
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{} referral, no outcome after {} days</td><td>{}</td></tr>",
                escape(&row.school_id),
                escape(&row.case_id),
                escape(&agency),
                row.days_without_outcome,
                when(row.referred_at)
            );
        }
        out.push_str("</table></section>");
    }
    let _ = write!(
        out,
        "<p class=\"muted\">From {} to {} (UTC days). Figures include the log up to position <span id=\"checkpoint\">{}</span>.</p>",
        day(figures.from),
        day(figures.to - 1),
        figures.checkpoint
    );
    out
}

/// Schools whose weekly rate stood out against the trust's in the last 8 weeks (ADR 0015's
/// rule), for all breaches and for self-harm alone: only for a trust-wide view, since the
/// comparison needs every school.
fn outliers_html(web: &WebEdge, reach: &Reach) -> String {
    if *reach != Reach::Trust {
        return String::new();
    }
    let until = now();
    let all = trends::TrendQuery { until, weeks: 8, ..Default::default() };
    let self_harm = trends::TrendQuery { categories: vec![pb::BreachCategory::SelfHarm as i32], ..all.clone() };
    let (all, self_harm) =
        web.view.read(|state, _| (trends::trends(state, None, &all), trends::trends(state, None, &self_harm)));
    let mut rows = String::new();
    for (what, response) in [("All breaches", &all), ("Self harm", &self_harm)] {
        for outlier in &response.outliers {
            let _ = write!(
                rows,
                "<tr class=\"outlier\"><td><a href=\"/schools/{school}\">{school}</a></td><td>{what}</td><td>{}</td><td class=\"n\">{:.2}</td><td class=\"n\">{:.2}</td><td class=\"n\">{:+.1}</td></tr>",
                london_day(outlier.week_start.map_or(0, |t| t.seconds)),
                outlier.rate_per_100_pupils,
                outlier.mean_school_rate,
                outlier.sd_from_mean,
                school = escape(&outlier.school_id),
            );
        }
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"6\">No school stood out in the last 8 weeks.</td></tr>");
    }
    format!(
        "<section class=\"card\" id=\"outliers\"><h2>Schools above the trust (last 8 weeks)</h2><table>\
         <tr><th>School</th><th>Breaches</th><th>Week from</th><th class=\"n\">Per 100 pupils</th><th class=\"n\">Schools' mean</th><th class=\"n\">SDs from mean</th></tr>{rows}</table>\
         <p class=\"muted\">A school-week stands out with at least 5 breaches and a rate at least twice the trust's, or (with 5 or more schools) 2 standard deviations above the schools' mean.</p></section>"
    )
}

pub async fn dashboard(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Query(query): Query<PeriodQuery>,
) -> Response {
    let (web, viewer) = match session::viewer(&state, &headers) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let days = match period(query.days) {
        Ok(days) => days,
        Err(message) => return html::error_page(StatusCode::BAD_REQUEST, &message),
    };
    let Some(reach) = viewer.reach(Action::ReadAggregates, &schools(&web)) else {
        return html::forbidden(&viewer, "the dashboard");
    };
    let figures = figures(&web, &viewer, &reach, days, now());
    let outliers = outliers_html(&web, &reach);
    let heading = match &reach {
        Reach::Trust => "Trust dashboard".to_owned(),
        Reach::Schools(schools) => format!("Dashboard: {}", schools.join(", ")),
    };
    let body = format!(
        "<h1>{}</h1>{}{}{outliers}",
        escape(&heading),
        periods("/dashboard", days),
        figures_html(&web, &viewer, &reach, &figures)
    );
    html::page(&heading, Some(&viewer), &body)
}

pub async fn school(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(school_id): Path<String>,
    Query(query): Query<PeriodQuery>,
) -> Response {
    let (web, viewer) = match session::viewer(&state, &headers) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let days = match period(query.days) {
        Ok(days) => days,
        Err(message) => return html::error_page(StatusCode::BAD_REQUEST, &message),
    };
    if !schools(&web).contains(&school_id) {
        return html::error_page(StatusCode::NOT_FOUND, "There is no such school.");
    }
    if !viewer.may(Action::ReadAggregates, Some(&school_id)) {
        return html::forbidden(&viewer, "this school's figures");
    }
    let reach = Reach::Schools(vec![school_id.clone()]);
    let figures = figures(&web, &viewer, &reach, days, now());
    let query = trends::TrendQuery { until: now(), weeks: 8, ..Default::default() };
    let (mine, trust) = web.view.read(|state, _| {
        let mine = trends::trends(state, reach.scope(), &query);
        let trust = viewer.may(Action::ReadAggregates, None).then(|| trends::trends(state, None, &query));
        (mine, trust)
    });
    let mut weeks = String::from(
        "<section class=\"card\"><h2>Weekly breaches per 100 pupils</h2><table id=\"weekly\"><tr><th>Week from</th><th class=\"n\">Breaches</th><th class=\"n\">Per 100 pupils</th><th class=\"n\">Change</th>",
    );
    if trust.is_some() {
        weeks.push_str("<th class=\"n\">Trust per 100</th><th>Outlier</th>");
    }
    weeks.push_str("</tr>");
    for row in &mine.schools {
        let start = row.week_start.map_or(0, |t| t.seconds);
        let _ = write!(
            weeks,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.2}</td><td class=\"n\">{:+.2}</td>",
            london_day(start),
            row.count,
            row.rate_per_100_pupils,
            row.week_on_week_change
        );
        if let Some(trust) = &trust {
            let week = trust.trust.iter().find(|week| week.week_start.map_or(0, |t| t.seconds) == start);
            let outlier = trust
                .outliers
                .iter()
                .any(|o| o.school_id == school_id && o.week_start.map_or(0, |t| t.seconds) == start);
            let _ = write!(
                weeks,
                "<td class=\"n\">{:.2}</td><td>{}</td>",
                week.map_or(0.0, |w| w.rate_per_100_pupils),
                if outlier { "<span class=\"bad\">above the trust</span>" } else { "" }
            );
        }
        weeks.push_str("</tr>");
    }
    weeks.push_str("</table><p class=\"muted\">Weeks start Monday 00:00 Europe/London; the last week is the current one.</p></section>");
    let body = format!(
        "<h1 id=\"school-heading\">School: {}</h1>{}{}{}",
        escape(&school_id),
        periods(&format!("/schools/{school_id}"), days),
        figures_html(&web, &viewer, &reach, &figures),
        weeks
    );
    html::page(&school_id, Some(&viewer), &body)
}

fn csv(name: &str, body: String) -> Response {
    download(name, "text/csv; charset=utf-8", body)
}

/// A file to save, never cached.
fn download(name: &str, content_type: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}

pub async fn register(State(state): State<GatewayState>, headers: HeaderMap, Path(register): Path<String>) -> Response {
    let (web, viewer) = match session::viewer(&state, &headers) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (kind, as_csv) = match register.as_str() {
        "lado" => ("lado", false),
        "lado.csv" => ("lado", true),
        "police" => ("police", false),
        "police.csv" => ("police", true),
        _ => return html::error_page(StatusCode::NOT_FOUND, "There is no such register (lado or police)."),
    };
    let Some(reach) = viewer.reach(Action::ReadCase, &schools(&web)) else {
        return html::forbidden(&viewer, "the referral registers");
    };
    // Opening a register (its page or its CSV) is recorded, as over gRPC.
    let kind_pb = if kind == "lado" { pb::RegisterKind::Lado } else { pb::RegisterKind::Police };
    let recorded =
        web.audit.register_viewed(&record_context(&viewer), kind_pb, reach.scope(), "web register page").await;
    if let Err(error) = recorded {
        return html::error_page(StatusCode::SERVICE_UNAVAILABLE, &error.to_string());
    }
    let to = now() + 1;
    let caller = viewer.principal_id().to_owned();
    let mut table = String::new();
    let title;
    if kind == "lado" {
        title = "LADO register";
        let entries = web.view.read(|state, _| registers::lado_register(state, reach.scope(), 0, to, &caller));
        if as_csv {
            return csv("lado-register.csv", registers::lado_csv(&entries));
        }
        table.push_str("<tr><th>School</th><th>Case</th><th>Referral</th><th>Referred</th><th>Reference</th><th>Outcome</th><th>Case status</th></tr>");
        for e in &entries {
            let _ = write!(
                table,
                "<tr class=\"entry\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&e.school_id),
                escape(&e.case_id),
                escape(&e.referral_id),
                when(e.referred_at.map_or(0, |t| t.seconds)),
                escape(&e.reference_number),
                escape(&enum_label(e.outcome, |o: pb::ReferralOutcome| o.as_str_name(), "REFERRAL_OUTCOME_")),
                escape(&enum_label(e.case_status, |s: pb::CaseStatus| s.as_str_name(), "CASE_STATUS_")),
            );
        }
    } else {
        title = "Police register";
        let entries = web.view.read(|state, _| registers::police_register(state, reach.scope(), 0, to));
        if as_csv {
            return csv("police-register.csv", registers::police_csv(&entries));
        }
        table.push_str("<tr><th>School</th><th>Case</th><th>Agency</th><th>Referred</th><th>Reference</th><th>Outcome</th><th>Devices handed over</th></tr>");
        for e in &entries {
            let _ = write!(
                table,
                "<tr class=\"entry\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&e.school_id),
                escape(&e.case_id),
                escape(&enum_label(e.agency, |a: pb::ReferralAgency| a.as_str_name(), "REFERRAL_AGENCY_")),
                when(e.referred_at.map_or(0, |t| t.seconds)),
                escape(&e.reference_number),
                escape(&enum_label(e.outcome, |o: pb::ReferralOutcome| o.as_str_name(), "REFERRAL_OUTCOME_")),
                escape(&e.custody_ids.join(", ")),
            );
        }
    }
    let body = format!(
        "<h1 id=\"register\">{title}</h1><section class=\"card\"><table>{table}</table>\
         <p><a href=\"/registers/{kind}.csv\">Download as CSV</a></p></section>"
    );
    html::page(title, Some(&viewer), &body)
}

/// `?stream=…&position=…` of the audit view.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    pub stream: Option<String>,
    /// Read the stream as it stood before this log position (empty: now).
    pub position: Option<String>,
}

/// The session's viewer, when they may read the audit trail; else the page to answer with.
fn auditor(state: &GatewayState, headers: &HeaderMap) -> Result<(WebEdge, Viewer), Response> {
    let (web, viewer) = session::viewer(state, headers)?;
    if !viewer.may(Action::ReadAuditTrail, None) {
        return Err(html::forbidden(&viewer, "the audit views"));
    }
    Ok((web, viewer))
}

/// Bad input is the caller's (400, naming the field); anything else is the log's (503).
fn audit_error(error: &haven_reporting::Error) -> Response {
    let status = match error {
        haven_reporting::Error::InvalidArgument { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    html::error_page(status, &error.to_string())
}

fn record_context(viewer: &Viewer) -> RecordContext {
    let seconds = now();
    RecordContext {
        actor: pb::Actor {
            principal_id: viewer.principal_id().to_owned(),
            kind: pb::ActorKind::User as i32,
            roles: viewer.caller.principal.grants.iter().map(|grant| grant.role.as_str().to_owned()).collect(),
        },
        occurred_at: prost_types::Timestamp { seconds, nanos: 0 },
        event_id: *uuid::Uuid::now_v7().as_bytes(),
    }
}

/// What an event recorded, for the audit page: its payload as JSON, or its size when this
/// build cannot decode it.
fn recorded(event: &haven_proto::v1::EventEnvelope) -> String {
    match haven_reporting::audit::payload_json(&event.event_type, &event.payload) {
        json if json.is_empty() => format!("{} bytes this build cannot decode", event.payload.len()),
        json => json,
    }
}

const AUDIT_FORMS: &str = "<div class=\"grid\"><form class=\"card\" method=\"get\" action=\"/audit\"><h2>A stream's history</h2>\
    <label>Stream <input id=\"stream\" type=\"text\" name=\"stream\" placeholder=\"incident-…, alert-…, user-…\" required></label>\
    <label>As it stood before log position (empty: now) <input type=\"number\" name=\"position\" min=\"0\"></label>\
    <button id=\"show-history\" type=\"submit\">Show history</button></form>\
    <form class=\"card\" method=\"get\" action=\"/audit/actor\"><h2>Everything one person did</h2>\
    <label>Principal <input id=\"principal\" type=\"text\" name=\"principal\" placeholder=\"user-…\" required></label>\
    <button id=\"show-actions\" type=\"submit\">Show actions</button></form>\
    <form class=\"card\" method=\"get\" action=\"/audit/accesses\"><h2>Everyone who read a record</h2>\
    <label>Record <input id=\"record\" type=\"text\" name=\"stream\" placeholder=\"incident-…, subject-…, register-lado\" required></label>\
    <button id=\"show-accesses\" type=\"submit\">Show readers</button></form>\
    <form class=\"card\" method=\"post\" action=\"/audit/verify\"><h2>Hash chain</h2><p>Recompute every event's SHA-256 link \
    from the first to the last and compare it with what the log stored. The check itself is recorded.</p>\
    <button id=\"verify\" type=\"submit\">Verify the whole log</button></form>\
    <form class=\"card\" method=\"get\" action=\"/audit/pack\"><h2>Audit pack</h2><p>One file (JSON lines) with every \
    event the log recorded in the period, the hash chain verified up to its end and the record accesses. The export \
    itself is recorded.</p>\
    <label>From (UTC day) <input id=\"pack-from\" type=\"date\" name=\"from\" required></label>\
    <label>To, inclusive <input id=\"pack-to\" type=\"date\" name=\"to\" required></label>\
    <button id=\"export-pack\" type=\"submit\">Download the pack</button></form></div>";

pub async fn audit(State(state): State<GatewayState>, headers: HeaderMap, Query(query): Query<AuditQuery>) -> Response {
    let (web, viewer) = match auditor(&state, &headers) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let mut body = format!("<h1>Audit</h1>{AUDIT_FORMS}");
    if let Some(raw) = query.stream.filter(|s| !s.is_empty()) {
        let stream = match StreamId::parse(&raw) {
            Ok(stream) => stream,
            Err(error) => return html::error_page(StatusCode::BAD_REQUEST, &format!("stream: {error}")),
        };
        let as_of = match query.position.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            None => AsOf::Now,
            Some(raw) => match raw.parse() {
                Ok(position) => AsOf::Position(position),
                Err(_) => {
                    return html::error_page(StatusCode::BAD_REQUEST, "position: a whole number, or empty for now");
                }
            },
        };
        let context = record_context(&viewer);
        let history = match web.audit.stream_history(&stream, &as_of, 0, 0, Some((&context, "web audit view"))).await {
            Ok(history) => history,
            Err(error) => return html::error_page(StatusCode::SERVICE_UNAVAILABLE, &error.to_string()),
        };
        let _ = write!(
            body,
            "<section class=\"card\"><h2>{} as it stood before position {}</h2>",
            escape(stream.as_str()),
            history.as_of_position
        );
        if !history.stream_exists {
            body.push_str("<p>The stream did not exist then.</p>");
        }
        body.push_str("<table id=\"history\"><tr><th class=\"n\">Position</th><th class=\"n\">Version</th><th>Event</th><th>Occurred</th><th>Recorded</th><th>By</th><th>What was recorded</th></tr>");
        for event in &history.events {
            let _ = write!(
                body,
                "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code class=\"payload\">{}</code></td></tr>",
                event.position,
                event.version,
                escape(&event.event_type),
                when(event.occurred_at.as_ref().map_or(0, |t| t.seconds)),
                when(event.recorded_at.as_ref().map_or(0, |t| t.seconds)),
                escape(event.actor.as_ref().map_or("", |a| a.principal_id.as_str())),
                escape(&recorded(event))
            );
        }
        let more = if history.end_of_stream { "" } else { " More events follow; the first page is shown." };
        let _ = write!(body, "</table><p class=\"muted\">{} events.{more}</p></section>", history.events.len());
    }
    html::page("Audit", Some(&viewer), &body)
}

pub async fn verify_chain(State(state): State<GatewayState>, headers: HeaderMap) -> Response {
    let (web, viewer) = match auditor(&state, &headers) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let context = record_context(&viewer);
    let report = match web.audit.verify_chain(0, 0, None, Some(&context)).await {
        Ok(report) => report,
        Err(error) => return html::error_page(StatusCode::SERVICE_UNAVAILABLE, &error.to_string()),
    };
    let verdict = match &report.broken {
        None if report.ok() => "<span id=\"chain-verdict\" class=\"ok\">The chain is intact.</span>".to_owned(),
        None => {
            "<span id=\"chain-verdict\" class=\"bad\">The last hash differs from the one expected.</span>".to_owned()
        }
        Some(broken) => format!(
            "<span id=\"chain-verdict\" class=\"bad\">The chain is broken at position {}.</span>",
            broken.position
        ),
    };
    let body = format!(
        "<h1>Audit</h1><section class=\"card\"><h2>Hash chain</h2><p>{verdict}</p><table>\
         <tr><th>Positions checked</th><td>{} to {}</td></tr><tr><th>Events checked</th><td id=\"events-checked\">{}</td></tr>\
         <tr><th>Last hash</th><td><code>{}</code></td></tr></table></section>{AUDIT_FORMS}",
        report.from_position,
        report.next_position,
        report.events_checked,
        report.last_hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    html::page("Audit", Some(&viewer), &body)
}

/// `?principal=…&page=…` of an actor's actions, `?stream=…&page=…` of a record's readers.
#[derive(Debug, Deserialize)]
pub struct AuditListQuery {
    pub principal: Option<String>,
    pub stream: Option<String>,
    /// The page token the previous page gave.
    pub page: Option<String>,
}

fn next_page_link(base: &str, key: &str, value: &str, token: &str) -> String {
    if token.is_empty() {
        return String::new();
    }
    let encode = |text: &str| {
        text.bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b == b'-' { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect::<String>()
    };
    format!(
        "<p><a id=\"next-page\" href=\"{base}?{key}={}&amp;page={}\">Next page</a></p>",
        encode(value),
        encode(token)
    )
}

/// Everything one person did (`ListActorActions`), in log order; auditors only.
pub async fn actor_actions(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Query(query): Query<AuditListQuery>,
) -> Response {
    let (web, viewer) = match auditor(&state, &headers) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let principal = query.principal.unwrap_or_default();
    let page = match web.audit.actor_actions(principal.trim(), None, None, 0, query.page.as_deref().unwrap_or("")).await
    {
        Ok(page) => page,
        Err(error) => return audit_error(&error),
    };
    let mut body = format!(
        "<h1>Audit</h1><section class=\"card\"><h2>Everything {} did</h2><table id=\"actions\"><tr><th class=\"n\">Position</th>\
         <th>Stream</th><th>Event</th><th>School</th><th>Occurred</th><th>Recorded</th><th>Roles</th></tr>",
        escape(principal.trim())
    );
    for row in &page.rows {
        let _ = write!(
            body,
            "<tr><td class=\"n\">{}</td><td><a href=\"/audit?stream={}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            row.position,
            escape(&row.stream_id),
            escape(&row.stream_id),
            escape(&row.event_type),
            escape(&row.school_id),
            when(row.occurred_at.as_ref().map_or(0, |t| t.seconds)),
            when(row.recorded_at.as_ref().map_or(0, |t| t.seconds)),
            escape(&row.roles.join(", "))
        );
    }
    let _ = write!(
        body,
        "</table><p class=\"muted\">{} actions on this page.</p>{}</section>{AUDIT_FORMS}",
        page.rows.len(),
        next_page_link("/audit/actor", "principal", principal.trim(), &page.next_page_token)
    );
    html::page("Audit", Some(&viewer), &body)
}

/// Everyone who read or exported a record (`ListRecordAccesses`); auditors only.
pub async fn record_accesses(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Query(query): Query<AuditListQuery>,
) -> Response {
    let (web, viewer) = match auditor(&state, &headers) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let raw = query.stream.unwrap_or_default();
    let stream = match StreamId::parse(raw.trim()) {
        Ok(stream) => stream,
        Err(error) => return html::error_page(StatusCode::BAD_REQUEST, &format!("stream: {error}")),
    };
    let page = match web.audit.record_accesses(&stream, None, None, 0, query.page.as_deref().unwrap_or("")).await {
        Ok(page) => page,
        Err(error) => return audit_error(&error),
    };
    let mut body = format!(
        "<h1>Audit</h1><section class=\"card\"><h2>Everyone who read {}</h2><table id=\"accesses\"><tr><th class=\"n\">Position</th>\
         <th>When</th><th>Who</th><th>Roles</th><th>How</th><th>Purpose</th></tr>",
        escape(stream.as_str())
    );
    for row in &page.rows {
        let _ = write!(
            body,
            "<tr><td class=\"n\">{}</td><td>{}</td><td><a href=\"/audit/actor?principal={}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            row.position,
            when(row.accessed_at.as_ref().map_or(0, |t| t.seconds)),
            escape(&row.principal_id),
            escape(&row.principal_id),
            escape(&row.roles.join(", ")),
            escape(&row.event_type),
            escape(&row.purpose)
        );
    }
    let _ = write!(
        body,
        "</table><p class=\"muted\">{} reads on this page.</p>{}</section>{AUDIT_FORMS}",
        page.rows.len(),
        next_page_link("/audit/accesses", "stream", stream.as_str(), &page.next_page_token)
    );
    html::page("Audit", Some(&viewer), &body)
}

/// `?from=YYYY-MM-DD&to=YYYY-MM-DD` (UTC days, `to` included) of the audit pack.
#[derive(Debug, Deserialize)]
pub struct PackQuery {
    pub from: Option<String>,
    pub to: Option<String>,
}

fn utc_day(field: &str, raw: Option<&str>) -> Result<(jiff::civil::Date, i64), Response> {
    let refuse = || html::error_page(StatusCode::BAD_REQUEST, &format!("{field}: a day as YYYY-MM-DD"));
    let date: jiff::civil::Date = raw.map(str::trim).unwrap_or_default().parse().map_err(|_| refuse())?;
    let seconds = date.to_zoned_datetime(jiff::tz::TimeZone::UTC).map_err(|_| refuse())?.timestamp().as_second();
    Ok((date, seconds))
}

/// The audit pack for the days asked for, as a download; the export is recorded.
pub async fn audit_pack(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Query(query): Query<PackQuery>,
) -> Response {
    let (web, viewer) = match auditor(&state, &headers) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (from_day, from) = match utc_day("from", query.from.as_deref()) {
        Ok(day) => day,
        Err(response) => return response,
    };
    let (to_day, to) = match utc_day("to", query.to.as_deref()) {
        Ok(day) => day,
        Err(response) => return response,
    };
    if to < from {
        return html::error_page(StatusCode::BAD_REQUEST, "to: the last day must not be before the first");
    }
    let context = record_context(&viewer);
    let (from_at, to_at) =
        (prost_types::Timestamp { seconds: from, nanos: 0 }, prost_types::Timestamp { seconds: to + 86_400, nanos: 0 });
    match web.audit.audit_pack(&from_at, &to_at, &context).await {
        Ok(pack) => download(
            &format!("haven-audit-pack-{from_day}-{to_day}.jsonl"),
            "application/x-ndjson; charset=utf-8",
            pack.body,
        ),
        Err(error) => audit_error(&error),
    }
}

/// `?school=…&year=2026-27&term=autumn` of the governors' report.
#[derive(Debug, Deserialize)]
pub struct GovernorsQuery {
    pub school: Option<String>,
    pub year: Option<String>,
    pub term: Option<String>,
}

/// The academic year and term holding `secs`.
fn current_term(secs: i64) -> (String, Term) {
    let date = jiff::Timestamp::from_second(secs).map(|t| t.to_zoned_datetime(jiff::tz::TimeZone::UTC).date());
    let (year, month) = date.map_or((2026, 9), |d| (i32::from(d.year()), d.month()));
    let (start, term) = match month {
        9..=12 => (year, Term::Autumn),
        1..=3 => (year - 1, Term::Spring),
        _ => (year - 1, Term::Summer),
    };
    (format!("{start}-{:02}", (start + 1) % 100), term)
}

pub async fn governors(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Query(query): Query<GovernorsQuery>,
) -> Response {
    let (web, viewer) = match session::viewer(&state, &headers) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let all = schools(&web);
    let school = match query.school.filter(|s| !s.is_empty()) {
        Some(school) if viewer.may(Action::ReadAggregates, Some(&school)) => school,
        Some(_) => return html::forbidden(&viewer, "that school's report"),
        None => match viewer.reach(Action::ReadAggregates, &all) {
            Some(Reach::Trust) => String::new(),
            Some(Reach::Schools(mine)) => mine[0].clone(),
            None => return html::forbidden(&viewer, "the governors' report"),
        },
    };
    let (default_year, default_term) = current_term(now());
    let year = query.year.unwrap_or(default_year);
    let term = match query.term.as_deref() {
        None => default_term,
        Some("autumn") => Term::Autumn,
        Some("spring") => Term::Spring,
        Some("summer") => Term::Summer,
        Some(_) => return html::error_page(StatusCode::BAD_REQUEST, "term: autumn, spring or summer"),
    };
    match web.view.read(|state, _| governors::governors_report(state, &school, &year, term)) {
        Ok(report) => {
            let mut response = axum::response::Html(governors::governors_html(&report)).into_response();
            response.headers_mut().insert(header::CACHE_CONTROL, "no-store".parse().expect("a valid header"));
            response
        }
        Err(error) => html::error_page(StatusCode::BAD_REQUEST, &error.to_string()),
    }
}
