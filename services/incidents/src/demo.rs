//! The demo's concerns, cases and alert, written through the app as ordinary commands by
//! identity's invented demo people about its invented learners (`haven up --demo`).
//!
//! ```text
//!  kestrel-primary:    a concern about a learner, untriaged (kestrel-teacher)
//!                      a concern triaged into a cyberbullying case, parents informed (kestrel-dsl)
//!                      an allegation against a member of staff, its LADO discussion overdue (kestrel-head)
//!                      a critical alert awaiting acknowledgement (escalates after 15 school minutes)
//!  heronsgate-academy: a sharing-nudes case with the written viewing record and a referral to CSWS
//! ```
//! Every id is fixed and every record is written only if it is not there yet, so seeding on
//! every start writes once. Nothing here is a real person, school or event.

use haven_authz::UserId;
use haven_eventlog_client::LogError;
use haven_kernel::{ExpectedVersion, SchoolId};
use haven_proto::v1 as pb;

use crate::domain::*;
use crate::events::{encode_alert, time_to_proto};
use crate::{CommandContext, Error, EventIds, IncidentsApp, alert_stream};

/// 2026-09-07T09:00:00Z, a Monday of the demo's first term.
const DEMO_AT: UnixTime = UnixTime(1_788_771_600);

/// The demo's case ids, for the README tour and tests.
pub const CYBERBULLYING_CASE: &str = "demo-case-cyberbullying";
pub const NUDES_CASE: &str = "demo-case-nudes";
pub const ALLEGATION_CASE: &str = "demo-case-allegation";
pub const UNTRIAGED_CONCERN: &str = "demo-concern-untriaged";
pub const CRITICAL_ALERT: &str = "demo-alert-critical";

/// What a seed run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub written: usize,
    pub already_present: usize,
}

fn id<T>(parse: fn(&str) -> Result<T, haven_kernel::IdError>, raw: &str) -> T {
    parse(raw).expect("demo ids are valid")
}

fn context(who: &str, role: &str, key: &str, at: UnixTime) -> CommandContext {
    CommandContext::user(
        id(UserId::parse, who),
        vec![role.to_owned()],
        at,
        EventIds::Derived { key: format!("demo:{key}") },
    )
}

/// Seeds the demo's incidents; `learner` gives the subject id of identity's demo learner
/// `k1`, `h1`, … (`haven_identity::demo::learner_subject_id`). Safe to run on every start.
pub async fn seed(app: &IncidentsApp, learner: impl Fn(&str) -> String, now: UnixTime) -> Result<SeedReport, Error> {
    let mut report = SeedReport::default();
    let kestrel = id(SchoolId::parse, "kestrel-primary");
    let heronsgate = id(SchoolId::parse, "heronsgate-academy");
    let subject = |key: &str| id(SubjectId::parse, &learner(key));

    // An untriaged concern.
    let concern = ConcernDetails {
        concern_id: id(ConcernId::parse, UNTRIAGED_CONCERN),
        school_id: kestrel.clone(),
        raised_by: id(UserId::parse, "kestrel-teacher"),
        raised_at: DEMO_AT,
        about: ConcernAbout::Learner,
        subject_ids: vec![subject("k1")],
        staff_ids: vec![],
        what_happened: "Invented: a learner said older children in an online game keep asking for their address."
            .into(),
        incident_occurred_at: Some(DEMO_AT.plus_seconds(-3_600)),
        suspected_type: Some(CaseType::OnlineAbuseExploitation),
        immediate_risk: false,
        dsl_told_verbally: Some(id(UserId::parse, "kestrel-dsl")),
        alert_id: None,
        device_ids: vec![],
    };
    let outcome = app.raise_concern(&context("kestrel-teacher", "staff", "concern:untriaged", DEMO_AT), concern).await;
    tally(&mut report, outcome, |e| matches!(e, Error::Concern(ConcernError::AlreadyRaised)))?;

    seed_cyberbullying(app, &mut report, &kestrel, subject("k2")).await?;
    seed_nudes(app, &mut report, &heronsgate, subject("h1")).await?;
    seed_allegation(app, &mut report, &kestrel).await?;

    // A critical alert, as ingest raises it, awaiting acknowledgement from now.
    let alert_id = id(AlertId::parse, CRITICAL_ALERT);
    if app.alert(&alert_id).await?.is_some() {
        report.already_present += 2;
        return Ok(report);
    }
    let raised = AlertEvent::Raised {
        alert_id: alert_id.clone(),
        school_id: kestrel.clone(),
        severity: Severity::Critical,
        raised_at: now,
    };
    let (event_type, _) = encode_alert(&alert_id, &kestrel, &raised);
    let payload = prost::Message::encode_to_vec(&pb::SafeguardingAlertRaised {
        alert_id: alert_id.to_string(),
        school_id: kestrel.to_string(),
        severity: pb::AlertSeverity::Critical as i32,
        subject_id: learner("k3"),
        breach_count: 3,
        first_occurred_at: Some(time_to_proto(now)),
        last_occurred_at: Some(time_to_proto(now)),
        acknowledge_by: Some(time_to_proto(now.plus_seconds(app.escalation_policy().acknowledge_within_seconds))),
        ..Default::default()
    });
    let event = pb::ProposedEvent {
        event_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"haven:demo:alert:critical").as_bytes().to_vec(),
        event_type: event_type.to_owned(),
        schema_version: 1,
        school_id: kestrel.to_string(),
        occurred_at: Some(time_to_proto(now)),
        actor: Some(pb::Actor {
            principal_id: "haven".into(),
            kind: pb::ActorKind::System as i32,
            roles: vec!["demo-seed".into()],
        }),
        correlation_id: vec![],
        causation_id: vec![],
        trace_context: None,
        payload,
    };
    match app.log().append(&alert_stream(&alert_id)?, ExpectedVersion::NoStream, vec![event]).await {
        Ok(_) => report.written += 1,
        Err(LogError::WrongExpectedVersion(_)) => report.already_present += 1,
        Err(other) => return Err(other.into()),
    }
    // Its concern, as the timer would raise it on its first tick (raised here so the demo
    // writes the same events on every start).
    app.concern_from_alert(&CommandContext::system(now), &alert_id, "raised from a safeguarding alert").await?;
    report.written += 1;
    Ok(report)
}

fn tally<T>(report: &mut SeedReport, outcome: Result<T, Error>, done: impl Fn(&Error) -> bool) -> Result<bool, Error> {
    match outcome {
        Ok(_) => {
            report.written += 1;
            Ok(true)
        }
        Err(error) if done(&error) => {
            report.already_present += 1;
            Ok(false)
        }
        Err(other) => Err(other),
    }
}

fn already_opened(error: &Error) -> bool {
    matches!(error, Error::Case(CaseError::AlreadyOpened))
}

/// Runs a case's later steps, in order, each at a minute after the one before.
async fn steps(
    app: &IncidentsApp,
    report: &mut SeedReport,
    case: &str,
    school: &SchoolId,
    who: (&str, &str),
    requests: Vec<CaseRequest>,
) -> Result<(), Error> {
    let case_id = id(CaseId::parse, case);
    for (index, request) in requests.into_iter().enumerate() {
        let at = DEMO_AT.plus_seconds(60 * (index as i64 + 2));
        let key = format!("{case}:step:{index}");
        app.case_command(&context(who.0, who.1, &key, at), &case_id, school, request, None).await?;
        report.written += 1;
    }
    Ok(())
}

fn done(key: &str, note: &str) -> CaseRequest {
    CaseRequest::RecordAction { key: key.into(), title: String::new(), status: ActionStatus::Done, note: note.into() }
}

async fn seed_cyberbullying(
    app: &IncidentsApp,
    report: &mut SeedReport,
    school: &SchoolId,
    learner: SubjectId,
) -> Result<(), Error> {
    let concern_id = id(ConcernId::parse, "demo-concern-cyberbullying");
    let concern = ConcernDetails {
        concern_id: concern_id.clone(),
        school_id: school.clone(),
        raised_by: id(UserId::parse, "kestrel-teacher"),
        raised_at: DEMO_AT,
        about: ConcernAbout::Learner,
        subject_ids: vec![learner.clone()],
        staff_ids: vec![],
        what_happened: "Invented: a learner was upset by messages in a class group chat.".into(),
        incident_occurred_at: None,
        suspected_type: Some(CaseType::Cyberbullying),
        immediate_risk: false,
        dsl_told_verbally: None,
        alert_id: None,
        device_ids: vec![],
    };
    let outcome =
        app.raise_concern(&context("kestrel-teacher", "staff", "concern:cyberbullying", DEMO_AT), concern).await;
    tally(report, outcome, |e| matches!(e, Error::Concern(ConcernError::AlreadyRaised)))?;
    let at = DEMO_AT.plus_seconds(30);
    let open = OpenCase {
        case_id: id(CaseId::parse, CYBERBULLYING_CASE),
        school_id: school.clone(),
        case_type: CaseType::Cyberbullying,
        four_cs: [FourCs::Conduct].into(),
        risk: RiskLevel::Medium,
        lead: id(UserId::parse, "kestrel-dsl"),
        subject_ids: vec![learner.clone()],
        staff_ids: vec![],
        concern_ids: vec![concern_id.clone()],
        alert_ids: vec![],
        summary: "Invented: unkind messages in a class chat; support and sanctions under the behaviour policy.".into(),
        imagery_viewed: false,
    };
    let opened = tally(
        report,
        app.open_case(&context("kestrel-dsl", "dsl", "case:cyberbullying", at), open).await,
        already_opened,
    )?;
    let triage = ConcernCommand::Triage {
        by: id(UserId::parse, "kestrel-dsl"),
        at,
        by_principal: false,
        decision: TriageDecision::CaseOpened { case_id: id(CaseId::parse, CYBERBULLYING_CASE) },
    };
    let outcome = app
        .concern_command(&context("kestrel-dsl", "dsl", "triage:cyberbullying", at), &concern_id, school, triage)
        .await;
    tally(report, outcome, |e| matches!(e, Error::Concern(ConcernError::AlreadyTriaged)))?;
    if !opened {
        return Ok(());
    }
    steps(
        app,
        report,
        CYBERBULLYING_CASE,
        school,
        ("kestrel-dsl", "dsl"),
        vec![
            done("notify-dsl", "told by the class teacher the same morning"),
            done("support", "met the learner with their form tutor"),
            CaseRequest::InformParents {
                subject_ids: vec![learner],
                method: ContactMethod::Phone,
                summary: "Invented: told what happened and the support offered.".into(),
            },
        ],
    )
    .await
}

async fn seed_nudes(
    app: &IncidentsApp,
    report: &mut SeedReport,
    school: &SchoolId,
    learner: SubjectId,
) -> Result<(), Error> {
    let open = OpenCase {
        case_id: id(CaseId::parse, NUDES_CASE),
        school_id: school.clone(),
        case_type: CaseType::SharingNudes,
        four_cs: [FourCs::Conduct, FourCs::Contact].into(),
        risk: RiskLevel::High,
        lead: id(UserId::parse, "heronsgate-dsl"),
        subject_ids: vec![learner],
        staff_ids: vec![],
        concern_ids: vec![],
        alert_ids: vec![],
        summary: "Invented: a learner disclosed that an image they sent was passed on.".into(),
        imagery_viewed: false,
    };
    let opened = tally(
        report,
        app.open_case(&context("heronsgate-dsl", "dsl", "case:nudes", DEMO_AT), open).await,
        already_opened,
    )?;
    if !opened {
        return Ok(());
    }
    steps(
        app,
        report,
        NUDES_CASE,
        school,
        ("heronsgate-dsl", "dsl"),
        vec![
            done("notify-dsl", "disclosure made to the DSL directly"),
            done("do-not-view-or-copy", "nobody viewed the image"),
            done("secure-devices", "the phone was confiscated and sealed"),
            CaseRequest::MakeReferral {
                referral_id: id(ReferralId::parse, "demo-referral-csws"),
                agency: Agency::Csws,
                agency_other: String::new(),
                reference_number: "DEMO-CSWS-0001".into(),
                agency_contact: "Invented duty social worker".into(),
                reason: "Invented: image passed on beyond the learner's control.".into(),
                follow_up_at: Some(DEMO_AT.plus_seconds(2 * 86_400)),
            },
        ],
    )
    .await
}

async fn seed_allegation(app: &IncidentsApp, report: &mut SeedReport, school: &SchoolId) -> Result<(), Error> {
    let open = OpenCase {
        case_id: id(CaseId::parse, ALLEGATION_CASE),
        school_id: school.clone(),
        case_type: CaseType::AllegationAgainstStaff,
        four_cs: [FourCs::Contact].into(),
        risk: RiskLevel::High,
        lead: id(UserId::parse, "kestrel-head"),
        subject_ids: vec![],
        staff_ids: vec![id(UserId::parse, "kestrel-teacher")],
        concern_ids: vec![],
        alert_ids: vec![],
        summary: "Invented: a parent reported private messages from a member of staff to a learner.".into(),
        imagery_viewed: false,
    };
    // Opened on the demo's first Monday: the LADO discussion, due within one working day, is
    // overdue and shows so.
    let opened = tally(
        report,
        app.open_case(&context("kestrel-head", "principal", "case:allegation", DEMO_AT), open).await,
        already_opened,
    )?;
    if !opened {
        return Ok(());
    }
    steps(
        app,
        report,
        ALLEGATION_CASE,
        school,
        ("kestrel-head", "principal"),
        vec![done("inform-principal", "the principal received the report directly")],
    )
    .await
}
