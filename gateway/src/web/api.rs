//! The dashboard's figures as JSON, from the same computation the page draws its charts from.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use haven_authz::Action;
use haven_reporting::projection::dashboard::Dashboard;
use haven_reporting::time::DAY_SECS;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Reach, Viewer, WebEdge, session};
use crate::GatewayState;
use crate::identity::ErrorBody;

/// Most days a dashboard covers.
pub const MAX_DAYS: i64 = 92;
/// Days when the request names none.
pub const DEFAULT_DAYS: i64 = 28;

/// The window: `days` whole days before today, and today.
#[derive(Debug, Deserialize, IntoParams)]
pub struct PeriodQuery {
    /// 1 to 92; 28 when absent.
    pub days: Option<i64>,
}

/// Breaches at one school in the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchoolBreachesBody {
    pub school_id: String,
    pub total: u64,
    pub blocked: u64,
    pub flagged: u64,
    pub allowed: u64,
}

/// The trust dashboard's breach figures for the schools the caller may see.
#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardBody {
    /// Unix seconds, inclusive.
    pub from: i64,
    /// Unix seconds, exclusive.
    pub to: i64,
    /// Every school (`trust`) or the caller's schools.
    pub reach: String,
    pub total: u64,
    pub schools: Vec<SchoolBreachesBody>,
    /// Breaches by hour of the day (Europe/London), 24 values.
    pub by_hour_of_day: Vec<u64>,
    /// One past the last log position the figures include.
    pub checkpoint: u64,
}

/// Everything a dashboard page or answer shows, computed once.
pub struct Figures {
    pub from: i64,
    pub to: i64,
    pub dashboard: Dashboard,
    /// (yyyy-mm-dd, breaches) per UTC day of the window.
    pub daily: Vec<(String, u64)>,
    /// (school, breaches by hour of day).
    pub heat: Vec<(String, [u64; 24])>,
    /// Alerts raised in the window, by severity.
    pub alerts: Vec<AlertSeverityRow>,
    pub checkpoint: u64,
}

/// Alerts of one severity raised in the window, and how fast they were acknowledged.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertSeverityRow {
    pub severity: i32,
    pub raised: u64,
    pub acknowledged: u64,
    pub acknowledged_in_time: u64,
    /// Median minutes from raised to acknowledged, over the acknowledged ones.
    pub median_minutes: Option<i64>,
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// `days` checked against its limit.
pub fn period(days: Option<i64>) -> Result<i64, String> {
    match days.unwrap_or(DEFAULT_DAYS) {
        days @ 1..=MAX_DAYS => Ok(days),
        other => Err(format!("days: {other} is not between 1 and {MAX_DAYS}")),
    }
}

/// The schools reporting knows (registered with identity), by id.
pub fn schools(web: &WebEdge) -> Vec<String> {
    web.view.read(|state, _| state.pupils.keys().cloned().collect())
}

/// The figures for `reach` over the last `days`; cases are listed only where `viewer` may read
/// them.
pub fn figures(web: &WebEdge, viewer: &Viewer, reach: &Reach, days: i64, now: i64) -> Figures {
    let may_list = |school: &str| viewer.may(Action::ReadCase, Some(school));
    let today = now.div_euclid(DAY_SECS) * DAY_SECS;
    let (from, to) = (today - days * DAY_SECS, today + DAY_SECS);
    web.view.read(|state, checkpoint| {
        let dashboard =
            haven_reporting::projection::dashboard::dashboard_listing(state, reach.scope(), from, to, now, &may_list);
        let mut daily: Vec<(String, u64)> = (0..=days).map(|d| (super::html::day(from + d * DAY_SECS), 0)).collect();
        for row in &dashboard.response.breaches_by_hour {
            let hour = row.hour_start.map_or(0, |t| t.seconds);
            let index = usize::try_from((hour - from).div_euclid(DAY_SECS)).unwrap_or(usize::MAX);
            if let Some(day) = daily.get_mut(index) {
                day.1 += row.count;
            }
        }
        let mut heat: std::collections::BTreeMap<String, [u64; 24]> = state
            .pupils
            .keys()
            .filter(|school| reach.includes(school))
            .map(|school| (school.clone(), [0; 24]))
            .collect();
        for (school, breaches) in state.breaches.in_scope(reach.scope()) {
            if let Some(row) = heat.get_mut(school) {
                for cell in breaches.hours.range(from..to).map(|(_, cell)| cell) {
                    row[usize::from(cell.hour_of_day)] += cell.total();
                }
            }
        }
        let mut by_severity: std::collections::BTreeMap<i32, (AlertSeverityRow, Vec<i64>)> =
            std::collections::BTreeMap::new();
        for alert in state.alerts.values() {
            if alert.raised_at < from || alert.raised_at >= to || !reach.includes(&alert.school_id) {
                continue;
            }
            let (row, waits) = by_severity.entry(alert.severity).or_default();
            row.severity = alert.severity;
            row.raised += 1;
            if let Some((at, in_time)) = alert.acknowledged {
                row.acknowledged += 1;
                row.acknowledged_in_time += u64::from(in_time);
                waits.push((at - alert.raised_at).max(0) / 60);
            }
        }
        let alerts = by_severity
            .into_values()
            .rev()
            .map(|(mut row, mut waits)| {
                waits.sort_unstable();
                row.median_minutes = waits.get(waits.len() / 2).copied();
                row
            })
            .collect();
        Figures { from, to, dashboard, daily, heat: heat.into_iter().collect(), alerts, checkpoint }
    })
}

/// (school, breaches) for each school in reach, schools without breaches included.
pub fn by_school(web: &WebEdge, reach: &Reach, figures: &Figures) -> Vec<SchoolBreachesBody> {
    schools(web)
        .into_iter()
        .filter(|school| reach.includes(school))
        .map(|school_id| {
            let row = figures.dashboard.response.breaches_by_school.iter().find(|row| row.school_id == school_id);
            let (blocked, flagged, allowed) = row.map_or((0, 0, 0), |row| (row.blocked, row.flagged, row.allowed));
            SchoolBreachesBody { school_id, total: blocked + flagged + allowed, blocked, flagged, allowed }
        })
        .collect()
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(ErrorBody { code: code.to_owned(), message: message.into() })).into_response()
}

/// The trust dashboard's breach figures: every school for a trust-wide role, the caller's own
/// schools otherwise. Signed in by bearer token or the web session cookie.
#[utoipa::path(get, path = "/api/v1/reporting/dashboard", tag = "reporting", params(PeriodQuery),
    responses((status = 200, body = DashboardBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn dashboard(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Query(query): Query<PeriodQuery>,
) -> Response {
    let Some(web) = state.web.clone() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "reporting is not served by this process");
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .or_else(|| session::session_token(&headers));
    let Some(token) = bearer else { return error(StatusCode::UNAUTHORIZED, "unauthenticated", "sign in first") };
    let caller = match web.authenticator.authenticate(token, now()) {
        Ok(caller) => caller,
        Err(haven_authz::grpc::AuthError::NotReady) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "access facts are catching up");
        }
        Err(_) => return error(StatusCode::UNAUTHORIZED, "unauthenticated", "the token is not valid"),
    };
    let viewer = Viewer { caller };
    let days = match period(query.days) {
        Ok(days) => days,
        Err(message) => return error(StatusCode::BAD_REQUEST, "invalid_argument", message),
    };
    let Some(reach) = viewer.reach(Action::ReadAggregates, &schools(&web)) else {
        return error(StatusCode::FORBIDDEN, "permission_denied", "no role held allows reading figures");
    };
    let figures = figures(&web, &viewer, &reach, days, now());
    let schools = by_school(&web, &reach, &figures);
    Json(DashboardBody {
        from: figures.from,
        to: figures.to,
        reach: match &reach {
            Reach::Trust => "trust".to_owned(),
            Reach::Schools(schools) => schools.join(","),
        },
        total: schools.iter().map(|row| row.total).sum(),
        schools,
        by_hour_of_day: figures.dashboard.breaches_by_hour_of_day.to_vec(),
        checkpoint: figures.checkpoint,
    })
    .into_response()
}
