//! The alert rules' HTTP routes (ADR 0028): read the rules in force for a school or the trust,
//! and replace one scope's overrides at the version read. Authorised at the edge with the gRPC
//! rules, then forwarded with the caller's bearer token to `haven.v1.Ingest`, which checks the
//! scope again and keeps the guard rails.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use haven_kernel::ErrorCode;
use haven_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::GatewayState;
use crate::filtering::forward;
use crate::identity::{ErrorBody, error};

/// One scope's alert rules. In a change, a field left out is inherited from the scope below
/// (the trust's, or the configured defaults); in `effective`, every field is set. Categories
/// are the taxonomy's names in snake_case (`gambling`, `self_harm`, `illegal_child_abuse_iwf`).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct AlertRuleSettingsBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_window_s: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_categories: Option<Vec<String>>,
    /// Always holds the illegal categories and `self_harm` (policy 7.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_categories: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vulnerable_raise: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vulnerable_categories: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_ack_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_ack_hours: Option<u32>,
}

/// A recorded change of one scope's rules.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertRulesChangeBody {
    /// Empty for the trust's rules.
    pub school_id: String,
    pub version: u64,
    pub settings: AlertRuleSettingsBody,
    pub changed_by: String,
    pub reason: String,
    pub changed_at: Option<i64>,
}

/// The rules in force, their versions and the changes that made them (newest first).
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertRulesBody {
    pub effective: AlertRuleSettingsBody,
    pub trust_version: u64,
    pub school_version: u64,
    pub changes: Vec<AlertRulesChangeBody>,
}

/// A change: the scope's whole overrides, the version they were read at, and why.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetAlertRulesBody {
    /// `trust_version` or `school_version` as read; 0 for a scope never changed.
    pub expected_version: u64,
    #[serde(default)]
    pub settings: AlertRuleSettingsBody,
    pub reason: String,
}

/// The scope's version after the change.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertRulesSetBody {
    pub version: u64,
    pub position: u64,
}

const CATEGORY_PREFIX: &str = "BREACH_CATEGORY_";

fn names(set: Option<pb::CategorySet>) -> Option<Vec<String>> {
    set.map(|set| {
        set.categories
            .into_iter()
            .map(|raw| match pb::BreachCategory::try_from(raw) {
                Ok(category) => category.as_str_name().trim_start_matches(CATEGORY_PREFIX).to_lowercase(),
                Err(_) => raw.to_string(),
            })
            .collect()
    })
}

fn to_body(settings: pb::AlertRuleSettings) -> AlertRuleSettingsBody {
    AlertRuleSettingsBody {
        repeat_window_s: settings.repeat_window_s,
        repeat_threshold: settings.repeat_threshold,
        high_categories: names(settings.high_categories),
        critical_categories: names(settings.critical_categories),
        vulnerable_raise: settings.vulnerable_raise,
        vulnerable_categories: names(settings.vulnerable_categories),
        critical_ack_minutes: settings.critical_ack_minutes,
        other_ack_hours: settings.other_ack_hours,
    }
}

/// The names as a set; an unknown name is refused naming the field.
fn categories(field: &str, raw: Option<Vec<String>>) -> Result<Option<pb::CategorySet>, Response> {
    let Some(raw) = raw else { return Ok(None) };
    let mut categories = Vec::with_capacity(raw.len());
    for name in raw {
        match pb::BreachCategory::from_str_name(&format!("{CATEGORY_PREFIX}{}", name.to_uppercase())) {
            Some(category) if category != pb::BreachCategory::Unspecified => categories.push(category as i32),
            _ => {
                return Err(error(
                    ErrorCode::InvalidArgument,
                    format!("invalid settings.{field}: {name:?} is not a known category"),
                ));
            }
        }
    }
    Ok(Some(pb::CategorySet { categories }))
}

fn from_body(body: AlertRuleSettingsBody) -> Result<pb::AlertRuleSettings, Response> {
    Ok(pb::AlertRuleSettings {
        repeat_window_s: body.repeat_window_s,
        repeat_threshold: body.repeat_threshold,
        high_categories: categories("high_categories", body.high_categories)?,
        critical_categories: categories("critical_categories", body.critical_categories)?,
        vulnerable_raise: body.vulnerable_raise,
        vulnerable_categories: categories("vulnerable_categories", body.vulnerable_categories)?,
        critical_ack_minutes: body.critical_ack_minutes,
        other_ack_hours: body.other_ack_hours,
    })
}

async fn read(state: &GatewayState, headers: &HeaderMap, school_id: String) -> Response {
    let message = pb::GetAlertRulesRequest { school_id };
    let result =
        forward(state, headers, "GetAlertRules", message, |mut c, r| async move { c.get_alert_rules(r).await }).await;
    match result {
        Ok(rules) => Json(AlertRulesBody {
            effective: to_body(rules.effective.unwrap_or_default()),
            trust_version: rules.trust_version,
            school_version: rules.school_version,
            changes: rules
                .changes
                .into_iter()
                .filter_map(|recorded| {
                    let change = recorded.change?;
                    Some(AlertRulesChangeBody {
                        school_id: change.school_id,
                        version: change.version,
                        settings: to_body(change.settings.unwrap_or_default()),
                        changed_by: change.changed_by,
                        reason: change.reason,
                        changed_at: recorded.changed_at.map(|t| t.seconds),
                    })
                })
                .collect(),
        })
        .into_response(),
        Err(response) => response,
    }
}

async fn write(state: &GatewayState, headers: &HeaderMap, school_id: String, body: SetAlertRulesBody) -> Response {
    let settings = match from_body(body.settings) {
        Ok(settings) => settings,
        Err(response) => return response,
    };
    let message = pb::SetAlertRulesRequest {
        school_id,
        expected_version: body.expected_version,
        settings: Some(settings),
        reason: body.reason,
    };
    let result =
        forward(state, headers, "SetAlertRules", message, |mut c, r| async move { c.set_alert_rules(r).await }).await;
    match result {
        Ok(set) => Json(AlertRulesSetBody { version: set.version, position: set.position }).into_response(),
        Err(response) => response,
    }
}

/// The alert rules in force for a school: the school's safeguarding team, the trust lead, the auditor.
#[utoipa::path(get, path = "/api/v1/schools/{school_id}/alert-rules", tag = "alert-rules",
    params(("school_id" = String, Path)),
    responses((status = 200, body = AlertRulesBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn get_school(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(school_id): Path<String>,
) -> Response {
    read(&state, &headers, school_id).await
}

/// Replaces a school's alert rules (its DSL or principal, or the trust lead); 409 when another
/// change came first, 400 naming the field the guard rails refuse.
#[utoipa::path(put, path = "/api/v1/schools/{school_id}/alert-rules", tag = "alert-rules",
    params(("school_id" = String, Path)), request_body = SetAlertRulesBody,
    responses((status = 200, body = AlertRulesSetBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_school(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(school_id): Path<String>,
    Json(body): Json<SetAlertRulesBody>,
) -> Response {
    write(&state, &headers, school_id, body).await
}

/// The trust's own alert rules (over the configured defaults).
#[utoipa::path(get, path = "/api/v1/trust/alert-rules", tag = "alert-rules",
    responses((status = 200, body = AlertRulesBody), (status = 403, body = ErrorBody)))]
pub async fn get_trust(State(state): State<GatewayState>, headers: HeaderMap) -> Response {
    read(&state, &headers, String::new()).await
}

/// Replaces the trust's alert rules (the trust's safeguarding lead).
#[utoipa::path(put, path = "/api/v1/trust/alert-rules", tag = "alert-rules", request_body = SetAlertRulesBody,
    responses((status = 200, body = AlertRulesSetBody), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_trust(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Json(body): Json<SetAlertRulesBody>,
) -> Response {
    write(&state, &headers, String::new(), body).await
}
