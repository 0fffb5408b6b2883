//! The alert rules' handlers of `haven.v1.Ingest` (ADR 0028): authorise against the scope (the
//! trust as a whole, or the school named), then hand the change to the [`RulesApp`]. The
//! reason given for a change is free text: it stays in the event, never in a log line.
//!
//! ```text
//!  SetAlertRules ─▶ scope ─▶ check(SetAlertRules, trust | school) ─▶ RulesApp::set ─▶ version
//!  GetAlertRules ─▶ scope ─▶ check(ReadAlertRules, trust | school) ─▶ RulesApp::view
//! ```

use haven_authz::grpc::check;
use haven_authz::{Action, Caller, Resource};
use haven_kernel::SchoolId;
use haven_proto::v1 as pb;
use tonic::Status;

use crate::rules::RulesApp;
use crate::rules::settings::to_proto as settings_to_proto;

/// The school a request names, or `None` for the trust; and the resource to check against.
fn scope(raw: &str) -> Result<(Option<SchoolId>, Resource), Status> {
    if raw.is_empty() {
        return Ok((None, Resource::trust()));
    }
    let school = super::school(raw)?;
    Ok((Some(school.clone()), Resource::school(school)))
}

pub async fn set(
    app: &RulesApp,
    caller: &Caller,
    r: pb::SetAlertRulesRequest,
) -> Result<pb::SetAlertRulesResponse, Status> {
    let (school, resource) = scope(&r.school_id)?;
    check(caller, Action::SetAlertRules, &resource)?;
    let actor = super::governance::actor(caller);
    let (version, position) = app
        .set(school.as_ref(), r.expected_version, r.settings.unwrap_or_default(), &r.reason, actor)
        .await
        .map_err(|e| e.status())?;
    Ok(pb::SetAlertRulesResponse { version, position })
}

pub async fn get(
    app: &RulesApp,
    caller: &Caller,
    r: pb::GetAlertRulesRequest,
) -> Result<pb::GetAlertRulesResponse, Status> {
    let (school, resource) = scope(&r.school_id)?;
    check(caller, Action::ReadAlertRules, &resource)?;
    let view = app.view(school.as_ref()).await.map_err(|e| e.status())?;
    Ok(pb::GetAlertRulesResponse {
        effective: Some(settings_to_proto(&view.effective)),
        trust_version: view.trust_version,
        school_version: view.school_version,
        changes: view
            .changes
            .into_iter()
            .map(|(change, envelope)| pb::AlertRulesChange {
                change: Some(change),
                changed_at: envelope.occurred_at,
                position: envelope.position,
            })
            .collect(),
    })
}
