//! The filtering record of `haven up --demo` at Kestrel Lane (invented people, sites and text):
//! a teacher's over-blocking report, the change that answers it requested with its risk
//! assessment, approved by the principal and applied; a partial filter check; the annual review
//! with the governor. Written through the app with fixed request ids, so each start finds it
//! recorded and writes nothing new.

use haven_kernel::SchoolId;
use haven_proto::v1 as pb;

use super::domain::{ChangeCommand, RecordCommand};
use super::{CommandContext, Error, GovernanceApp, derived_id};

const SCHOOL: &str = "kestrel-primary";
const HOUR: i64 = 3_600;
const DAY: i64 = 24 * HOUR;

fn person(user_id: &str, role: &str, key: &str) -> CommandContext {
    CommandContext {
        actor: pb::Actor {
            principal_id: format!("user-{user_id}"),
            kind: pb::ActorKind::User as i32,
            roles: vec![role.into()],
        },
        request_id: format!("demo:filtering:{key}"),
    }
}

fn time(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

/// Seeds the record with times relative to `now` (Unix seconds). Needs identity's demo people
/// (the governor's grant) in the log first.
pub async fn seed(app: &GovernanceApp, now: i64) -> Result<(), Error> {
    let school = SchoolId::parse(SCHOOL).expect("demo ids are valid");
    let reported_at = now - 6 * DAY;
    let teacher = person("kestrel-teacher", "staff", "report");
    let report_id = derived_id("overblocking", &teacher.request_id);
    let report = pb::OverblockingReported {
        report_id: report_id.clone(),
        school_id: SCHOOL.into(),
        reported_by_user_id: "kestrel-teacher".into(),
        url_host: "tudor-history.example".into(),
        category: pb::BreachCategory::Violence as i32,
        impact: "The Year 5 Tudors lesson could not use the museum's picture archive (invented)".into(),
    };
    app.record_command(&teacher, &school, RecordCommand::ReportOverblocking { event: report, at: reported_at }).await?;

    let tech = person("kestrel-tech", "technical_staff", "change");
    let change_id = derived_id("change", &tech.request_id);
    let requested = pb::FilteringChangeRequested {
        change_id: change_id.clone(),
        school_id: SCHOOL.into(),
        requested_by_user_id: "kestrel-tech".into(),
        kind: pb::FilteringChangeKind::AllowSite as i32,
        url_host: "tudor-history.example".into(),
        category: pb::BreachCategory::Violence as i32,
        desired_action: pb::BreachAction::Allowed as i32,
        filter_groups: vec!["ks2".into()],
        reason: "Needed for the Year 5 Tudors topic (invented)".into(),
        risk_assessment: "A museum's curated archive: no uploads, no chat, no advertising. Historical \
                          images of executions are captioned for schools. Low risk for KS2 with the \
                          teacher present (invented)."
            .into(),
        risk_assessed_by_user_ids: vec!["kestrel-tech".into(), "kestrel-teacher".into()],
        overblocking_report_ids: vec![report_id],
    };
    let request = ChangeCommand::Request {
        event: requested,
        school_reports: app.school_reports(&school).await?,
        at: reported_at + 3 * HOUR,
    };
    app.change_command(&tech, &change_id, SCHOOL, request).await?;
    let head = person("kestrel-head", "principal", "approve");
    let approve = ChangeCommand::Approve {
        by: "kestrel-head".into(),
        leadership_consent: true,
        notes: "For KS2 only; review at the end of term (invented)".into(),
        at: reported_at + DAY,
    };
    app.change_command(&head, &change_id, SCHOOL, approve).await?;
    let applied = person("kestrel-tech", "technical_staff", "apply");
    let apply = ChangeCommand::Apply {
        by: "kestrel-tech".into(),
        filter_reference: "fortigate-allow-12".into(),
        effective_at: None,
        at: reported_at + DAY + 2 * HOUR,
    };
    app.change_command(&applied, &change_id, SCHOOL, apply).await?;

    let checker = person("kestrel-tech", "technical_staff", "check");
    let result = |category: pb::BreachCategory, observed: pb::BreachAction| pb::FilterCheckResult {
        category: category as i32,
        expected_action: pb::BreachAction::Blocked as i32,
        observed_action: observed as i32,
    };
    let check = pb::FilterCheckRecorded {
        check_id: derived_id("check", &checker.request_id),
        school_id: SCHOOL.into(),
        checked_by_user_id: "kestrel-tech".into(),
        method: pb::FilterCheckMethod::TestService as i32,
        outcome: pb::FilterCheckOutcome::Partial as i32,
        results: vec![
            result(pb::BreachCategory::Pornography, pb::BreachAction::Blocked),
            result(pb::BreachCategory::Gambling, pb::BreachAction::Blocked),
            result(pb::BreachCategory::SelfHarm, pb::BreachAction::Blocked),
            result(pb::BreachCategory::MalwareHacking, pb::BreachAction::Allowed),
        ],
        filter_groups: vec!["ks2".into()],
        notes: "A new proxy-avoidance site got through; reported to the filter's vendor (invented)".into(),
        next_check_due_at: time(now + 30 * DAY),
        ..Default::default()
    };
    app.record_command(&checker, &school, RecordCommand::RecordCheck { event: check, at: now - 2 * DAY }).await?;

    let reviewer = person("kestrel-head", "principal", "review");
    let held_at = now - DAY;
    let review = pb::FilteringReviewRecorded {
        review_id: derived_id("review", &reviewer.request_id),
        school_id: SCHOOL.into(),
        recorded_by_user_id: "kestrel-head".into(),
        governor_user_id: "kestrel-governor".into(),
        participant_user_ids: vec!["kestrel-dsl".into(), "kestrel-tech".into()],
        findings: "Filtering meets the DfE standards; one over-blocked history site unblocked after a \
                   risk assessment; proxy avoidance to be re-checked (invented)"
            .into(),
        actions: "Monthly checks this term (invented)".into(),
        held_at: time(held_at),
        next_review_due_at: time(held_at + 365 * DAY),
    };
    let governor_holds_role = app.holds_governor_role("kestrel-governor", &school).await?;
    let command = RecordCommand::RecordReview { event: review, governor_holds_role, at: held_at };
    app.record_command(&reviewer, &school, command).await?;
    Ok(())
}
