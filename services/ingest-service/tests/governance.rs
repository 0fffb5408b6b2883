//! The filtering record over gRPC (policy 7.3.1, ADR 0022): real tokens, the real service in
//! its authorisation layer, a real log. Every refusal is typed and appends nothing.

mod common;

use std::time::Duration;

use common::{Served, bearer, now, serve};
use haven_authz::{Role, RoleGrant, Scope, UserId};
use haven_identity::domain::{UnixTime, UserCommand};
use haven_proto::v1 as pb;
use tonic::Code;

fn allow_site(request_id: &str, school: &str, reports: &[&str]) -> pb::RequestFilteringChangeRequest {
    pb::RequestFilteringChangeRequest {
        request_id: request_id.into(),
        school_id: school.into(),
        kind: pb::FilteringChangeKind::AllowSite as i32,
        url_host: "ancient-egypt.example".into(),
        category: pb::BreachCategory::Violence as i32,
        desired_action: pb::BreachAction::Allowed as i32,
        filter_groups: vec!["ks2".into()],
        reason: "Year 5 history topic needs the museum's picture archive".into(),
        risk_assessment: "Curated museum archive; no user uploads, no chat; low risk for KS2".into(),
        risk_assessed_by_user_ids: vec!["oak-teacher".into()],
        overblocking_report_ids: reports.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn approve(request_id: &str, change_id: &str) -> pb::ApproveFilteringChangeRequest {
    pb::ApproveFilteringChangeRequest {
        request_id: request_id.into(),
        change_id: change_id.into(),
        leadership_consent: true,
        notes: "For the summer term".into(),
    }
}

fn apply(request_id: &str, change_id: &str) -> pb::ApplyFilteringChangeRequest {
    pb::ApplyFilteringChangeRequest {
        request_id: request_id.into(),
        change_id: change_id.into(),
        filter_reference: "allow-rule-42".into(),
        effective_at: None,
    }
}

/// Polls the register until `done` holds (the index follows the log).
async fn listed(
    served: &Served,
    token: &str,
    done: impl Fn(&[pb::FilteringChange]) -> bool,
) -> Vec<pb::FilteringChange> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let request = pb::ListFilteringChangesRequest { school_id: "oak".into(), ..Default::default() };
        let changes =
            served.client.clone().list_filtering_changes(bearer(token, request)).await.unwrap().into_inner().changes;
        if done(&changes) {
            return changes;
        }
        assert!(tokio::time::Instant::now() < deadline, "the register never caught up: {changes:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unblock_request_is_requested_approved_and_applied_and_reported_with_its_wait() {
    let served = serve().await;
    let mut client = served.client.clone();
    let teacher = served.user_token("oak-teacher", Role::Staff, "oak");
    let tech = served.user_token("oak-tech", Role::TechnicalStaff, "oak");
    let principal = served.user_token("oak-head", Role::Principal, "oak");

    // A teacher finds a site needed for teaching blocked: the unblock request.
    let report = pb::ReportOverblockingRequest {
        request_id: "report-1".into(),
        school_id: "oak".into(),
        url_host: "ancient-egypt.example".into(),
        category: pb::BreachCategory::Violence as i32,
        impact: "Could not show the archive in the Year 5 lesson".into(),
    };
    let report_id = client.report_overblocking(bearer(&teacher, report)).await.unwrap().into_inner().report_id;

    // Technical staff ask for the change, with the risk assessment, answering the report.
    let requested =
        client.request_filtering_change(bearer(&tech, allow_site("req-1", "oak", &[&report_id]))).await.unwrap();
    let change_id = requested.into_inner().change_id;
    let written = served.events().await.len();

    // Not applied before it is approved; technical staff do not approve; nothing written.
    let error = client.apply_filtering_change(bearer(&tech, apply("apply-0", &change_id))).await.unwrap_err();
    assert_eq!(error.code(), Code::Aborted, "{error:?}");
    assert!(error.message().contains("only an approved change is applied"), "{error:?}");
    let error = client.approve_filtering_change(bearer(&tech, approve("ok-0", &change_id))).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied, "{error:?}");
    assert_eq!(served.events().await.len(), written, "no refusal wrote anything");

    // The principal approves; a retry of the same request records nothing new.
    let first = client.approve_filtering_change(bearer(&principal, approve("ok-1", &change_id))).await.unwrap();
    let again = client.approve_filtering_change(bearer(&principal, approve("ok-1", &change_id))).await.unwrap();
    assert_eq!(first.into_inner().position, again.into_inner().position);
    assert_eq!(served.events().await.len(), written + 1, "one approval, however often it is sent");
    // A second, different approval is refused: the change is decided.
    let error = client.approve_filtering_change(bearer(&principal, approve("ok-2", &change_id))).await.unwrap_err();
    assert_eq!(error.code(), Code::Aborted, "{error:?}");

    client.apply_filtering_change(bearer(&tech, apply("apply-1", &change_id))).await.unwrap();
    let events = served.events().await;
    let types: Vec<_> = events.iter().skip(1).map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "ingest.OverblockingReported",
            "ingest.FilteringChangeRequested",
            "ingest.FilteringChangeApproved",
            "ingest.FilteringChangeApplied"
        ]
    );
    let streams: Vec<_> = events.iter().skip(1).map(|e| e.stream_id.as_str()).collect();
    assert_eq!(streams[0], "filtering-oak");
    assert!(streams[1..].iter().all(|s| *s == format!("filterchange-{change_id}")), "{streams:?}");

    // The register shows the whole story; the requester is among the assessors.
    let changes = listed(&served, &principal, |c| c.first().is_some_and(|c| c.applied_at.is_some())).await;
    let change = &changes[0];
    assert_eq!(change.status, pb::FilteringChangeStatus::Applied as i32);
    assert_eq!(change.requested_by_user_id, "oak-tech");
    assert_eq!(change.decided_by_user_id, "oak-head");
    assert_eq!(change.applied_by_user_id, "oak-tech");
    assert_eq!(change.risk_assessed_by_user_ids, ["oak-tech", "oak-teacher"]);
    assert!(change.risk_assessment.starts_with("Curated museum archive"));
    assert_eq!(change.overblocking_report_ids, [report_id.as_str()]);
    assert_eq!((change.filter_reference.as_str(), change.version), ("allow-rule-42", 2));

    // The over-blocking report: the category reported, the request answered, its wait measured.
    let request = pb::GetFilteringReportRequest { school_id: "oak".into(), ..Default::default() };
    let report = client.get_filtering_report(bearer(&principal, request)).await.unwrap().into_inner();
    assert_eq!(report.overblocking.len(), 1);
    let entry = &report.overblocking[0];
    assert_eq!((entry.report_id.as_str(), entry.change_id.as_str()), (report_id.as_str(), change_id.as_str()));
    assert_eq!(entry.status, pb::FilteringChangeStatus::Applied as i32);
    let waited = entry.resolved_at.unwrap().seconds - entry.reported_at.unwrap().seconds;
    assert_eq!(entry.waited_seconds, waited as u64);
    assert_eq!((report.unblock_requests_resolved, report.unblock_requests_open), (1, 0));
    assert_eq!(report.longest_resolution_seconds, waited as u64);
    assert_eq!(
        report.blocked_categories,
        [pb::CategoryCount { category: pb::BreachCategory::Violence as i32, count: 1 }]
    );
    assert_eq!((report.changes_requested, report.changes_applied), (1, 1));
    served.shutdown.trigger();
    served.log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_change_is_never_applied_and_nobody_decides_their_own() {
    let served = serve().await;
    let mut client = served.client.clone();
    let tech = served.user_token("oak-tech", Role::TechnicalStaff, "oak");
    let dsl = served.user_token("oak-dsl", Role::Dsl, "oak");
    // Someone who is both technical staff and DSL still may not approve their own request.
    let both = served.token_with("oak-both", &[(Role::TechnicalStaff, "oak"), (Role::Dsl, "oak")]);
    let own = client.request_filtering_change(bearer(&both, allow_site("req-own", "oak", &[]))).await.unwrap();
    let own_id = own.into_inner().change_id;
    let written = served.events().await.len();
    let error = client.approve_filtering_change(bearer(&both, approve("ok-own", &own_id))).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied, "{error:?}");
    assert!(error.message().contains("asked for themselves"), "{error:?}");

    let change_id = client
        .request_filtering_change(bearer(&tech, allow_site("req-2", "oak", &[])))
        .await
        .unwrap()
        .into_inner()
        .change_id;
    let reject = pb::RejectFilteringChangeRequest {
        request_id: "no-1".into(),
        change_id: change_id.clone(),
        reason: "The school's licensed resource covers this topic".into(),
    };
    client.reject_filtering_change(bearer(&dsl, reject)).await.unwrap();
    let written_after = served.events().await.len();
    assert_eq!(written_after, written + 2, "the request and the rejection");
    let error = client.apply_filtering_change(bearer(&tech, apply("apply-2", &change_id))).await.unwrap_err();
    assert_eq!(error.code(), Code::Aborted, "{error:?}");
    assert!(error.message().contains("rejected"), "{error:?}");
    let error = client.approve_filtering_change(bearer(&dsl, approve("ok-3", &change_id))).await.unwrap_err();
    assert_eq!(error.code(), Code::Aborted, "{error:?}");
    assert_eq!(served.events().await.len(), written_after, "no refusal wrote anything");
    let changes = listed(&served, &dsl, |c| c.len() == 2 && c.iter().any(|c| c.decided_at.is_some())).await;
    let rejected = changes.iter().find(|c| c.change_id == change_id).unwrap();
    assert_eq!(rejected.status, pb::FilteringChangeStatus::Rejected as i32);
    assert!(rejected.decision_notes.contains("licensed resource"));
    let request = pb::ListFilteringChangesRequest {
        school_id: "oak".into(),
        statuses: vec![pb::FilteringChangeStatus::Requested as i32],
        ..Default::default()
    };
    let pending = client.list_filtering_changes(bearer(&dsl, request)).await.unwrap().into_inner().changes;
    assert_eq!(pending.iter().map(|c| c.change_id.as_str()).collect::<Vec<_>>(), [own_id.as_str()]);
    served.shutdown.trigger();
    served.log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_unauthorised_requests_are_refused_by_name_and_write_nothing() {
    let served = serve().await;
    let mut client = served.client.clone();
    let tech = served.user_token("oak-tech", Role::TechnicalStaff, "oak");
    let teacher = served.user_token("oak-teacher", Role::Staff, "oak");
    let elm_tech = served.user_token("elm-tech", Role::TechnicalStaff, "elm");
    let principal = served.user_token("oak-head", Role::Principal, "oak");
    let written = served.events().await.len();

    let mut no_assessment = allow_site("bad-1", "oak", &[]);
    no_assessment.risk_assessment.clear();
    let cases: Vec<(&str, pb::RequestFilteringChangeRequest, Code, &str)> = vec![
        (&tech, no_assessment, Code::InvalidArgument, "risk_assessment"),
        (&tech, allow_site("bad-2", "oak", &["no-such-report"]), Code::InvalidArgument, "overblocking_report_ids"),
        (&tech, allow_site("", "oak", &[]), Code::InvalidArgument, "request_id"),
        (&tech, allow_site("bad-3", "Not A School", &[]), Code::InvalidArgument, "school_id"),
        (&teacher, allow_site("bad-4", "oak", &[]), Code::PermissionDenied, ""),
        (&elm_tech, allow_site("bad-5", "oak", &[]), Code::PermissionDenied, ""),
        (&principal, allow_site("bad-6", "oak", &[]), Code::PermissionDenied, ""),
    ];
    for (token, request, code, field) in cases {
        let error = client.request_filtering_change(bearer(token, request)).await.unwrap_err();
        assert_eq!(error.code(), code, "{error:?}");
        assert!(error.message().contains(field), "{error:?}");
    }
    let mut path = allow_site("bad-7", "oak", &[]);
    path.url_host = "ancient-egypt.example/private?pupil=1".into();
    let error = client.request_filtering_change(bearer(&tech, path)).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("url_host") && !error.message().contains("pupil"), "{error:?}");
    let error = client.approve_filtering_change(bearer(&principal, approve("ok-x", "nosuchchange"))).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound, "{error:?}");
    let check = pb::RecordFilterCheckRequest {
        request_id: "check-bad".into(),
        school_id: "oak".into(),
        method: pb::FilterCheckMethod::TestService as i32,
        outcome: pb::FilterCheckOutcome::Passed as i32,
        results: vec![pb::FilterCheckResult {
            category: pb::BreachCategory::Gambling as i32,
            expected_action: pb::BreachAction::Blocked as i32,
            observed_action: pb::BreachAction::Allowed as i32,
        }],
        ..Default::default()
    };
    let error = client.record_filter_check(bearer(&tech, check.clone())).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("outcome"), "{error:?}");
    let error = client.record_filter_check(bearer(&teacher, check)).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    assert_eq!(served.events().await.len(), written, "no refusal wrote anything");
    served.shutdown.trigger();
    served.log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_and_the_annual_review_with_the_governor_are_recorded_and_reported() {
    let served = serve().await;
    let mut client = served.client.clone();
    let tech = served.user_token("oak-tech", Role::TechnicalStaff, "oak");
    let principal = served.user_token("oak-head", Role::Principal, "oak");
    // A governor (identity's real events in user-<id>), and someone who is not one.
    let admin = haven_identity::CommandContext {
        actor: pb::Actor { principal_id: "user-admin".into(), kind: 1, roles: vec!["trust_admin".into()] },
        occurred_at: prost_types::Timestamp { seconds: now(), nanos: 0 },
        event_ids: haven_identity::EventIds::Fresh,
    };
    for (id, role) in [("gov-lead", Role::Governor), ("not-gov", Role::Auditor)] {
        let user_id = UserId::parse(id).unwrap();
        let register = UserCommand::Register {
            user_id: user_id.clone(),
            display_name: "Invented Person".into(),
            login: format!("{id}@example.org"),
            home_school: None,
            registered_by: "user-admin".into(),
            at: UnixTime(now()),
        };
        served.identity.register_user(&admin, register).await.unwrap();
        let grant = UserCommand::GrantRole {
            grant: RoleGrant { role, scope: Scope::Trust },
            granted_by: "user-admin".into(),
            reason: "invented".into(),
            at: UnixTime(now()),
        };
        served.identity.user_command(&admin, &user_id, grant).await.unwrap();
    }

    let check = pb::RecordFilterCheckRequest {
        request_id: "check-1".into(),
        school_id: "oak".into(),
        method: pb::FilterCheckMethod::TestService as i32,
        outcome: pb::FilterCheckOutcome::Partial as i32,
        results: vec![
            pb::FilterCheckResult {
                category: pb::BreachCategory::Gambling as i32,
                expected_action: pb::BreachAction::Blocked as i32,
                observed_action: pb::BreachAction::Blocked as i32,
            },
            pb::FilterCheckResult {
                category: pb::BreachCategory::MalwareHacking as i32,
                expected_action: pb::BreachAction::Blocked as i32,
                observed_action: pb::BreachAction::Allowed as i32,
            },
        ],
        filter_groups: vec!["ks2".into()],
        next_check_due_at: Some(prost_types::Timestamp { seconds: now() + 90 * 86_400, nanos: 0 }),
        ..Default::default()
    };
    let check_id = client.record_filter_check(bearer(&tech, check)).await.unwrap().into_inner().check_id;

    let review = |request_id: &str, governor: &str| pb::RecordFilteringReviewRequest {
        request_id: request_id.into(),
        school_id: "oak".into(),
        governor_user_id: governor.into(),
        participant_user_ids: vec!["oak-tech".into()],
        findings: "Provision meets the standards; one proxy-avoidance gap closed".into(),
        ..Default::default()
    };
    let written = served.events().await.len();
    let error = client.record_filtering_review(bearer(&principal, review("rev-0", "not-gov"))).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
    assert!(error.message().contains("governor_user_id"), "{error:?}");
    let error = client.record_filtering_review(bearer(&tech, review("rev-0", "gov-lead"))).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied, "{error:?}");
    assert_eq!(served.events().await.len(), written, "no refusal wrote anything");
    let review_id =
        client.record_filtering_review(bearer(&principal, review("rev-1", "gov-lead"))).await.unwrap().into_inner();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let report = loop {
        let request = pb::GetFilteringReportRequest { school_id: "oak".into(), ..Default::default() };
        let report = client.get_filtering_report(bearer(&principal, request)).await.unwrap().into_inner();
        if !report.reviews.is_empty() {
            break report;
        }
        assert!(tokio::time::Instant::now() < deadline, "the record never caught up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(report.checks.len(), 1);
    assert_eq!(report.checks[0].check_id, check_id);
    assert_eq!(report.checks[0].outcome, pb::FilterCheckOutcome::Partial as i32);
    assert_eq!(report.checks[0].results.len(), 2);
    assert_eq!(report.reviews[0].review_id, review_id.review_id);
    assert_eq!(report.reviews[0].governor_user_id, "gov-lead");
    let held = report.reviews[0].held_at.unwrap().seconds;
    assert_eq!(report.next_review_due_at.unwrap().seconds, held + 365 * 86_400, "a year on unless told");
    assert!(report.next_check_due_at.is_some());
    // Another school's technical staff see none of it.
    let elm = served.user_token("elm-tech", Role::TechnicalStaff, "elm");
    let request = pb::GetFilteringReportRequest { school_id: "oak".into(), ..Default::default() };
    assert_eq!(client.get_filtering_report(bearer(&elm, request)).await.unwrap_err().code(), Code::PermissionDenied);
    served.shutdown.trigger();
    served.log.close().await;
}
