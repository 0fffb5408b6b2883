//! The alert rules per trust and per school over gRPC (ADR 0028): who may change which scope,
//! the guard rails and the version check (a refused change appends nothing), a school's
//! stricter rule changing the alert a line raises with the rules' versions on the alert, a
//! duplicate alert collapsed into the first, and the same rules in force after a restart.

mod common;

use common::{Served, bearer, serve};
use haven_authz::Role;
use haven_ingest_service::demo;
use haven_proto::v1 as pb;
use prost::Message;
use tonic::Code;

fn categories(categories: &[pb::BreachCategory]) -> Option<pb::CategorySet> {
    Some(pb::CategorySet { categories: categories.iter().map(|c| *c as i32).collect() })
}

fn set(school: &str, expected_version: u64, settings: pb::AlertRuleSettings) -> pb::SetAlertRulesRequest {
    pb::SetAlertRulesRequest {
        school_id: school.into(),
        expected_version,
        settings: Some(settings),
        reason: "invented: the reason for the record".into(),
    }
}

fn get(school: &str) -> pb::GetAlertRulesRequest {
    pb::GetAlertRulesRequest { school_id: school.into() }
}

/// The school's stricter rule: gambling alerts on its own, and a critical alert escalates sooner.
fn stricter() -> pb::AlertRuleSettings {
    pb::AlertRuleSettings {
        high_categories: categories(&[pb::BreachCategory::Extremism, pb::BreachCategory::Gambling]),
        critical_ack_minutes: Some(5),
        ..Default::default()
    }
}

async fn rule_events(served: &Served) -> Vec<pb::EventEnvelope> {
    served.events().await.into_iter().filter(|e| e.stream_id.starts_with("alertrules-")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scope_is_changed_only_by_whom_it_belongs_to_and_refused_changes_append_nothing() {
    let mut served = serve().await;
    let lead = served.trust_token("trust-lead", Role::TrustSafeguardingLead);
    let oak_dsl = served.user_token("oak-dsl", Role::Dsl, "oak");
    let teacher = served.user_token("oak-teacher", Role::Staff, "oak");

    let before = served.client.get_alert_rules(bearer(&lead, get(""))).await.unwrap().into_inner();
    assert_eq!((before.trust_version, before.school_version, before.changes.len()), (0, 0, 0));
    let defaults = before.effective.unwrap();
    assert_eq!((defaults.repeat_threshold, defaults.repeat_window_s), (Some(3), Some(600)), "the configured defaults");

    let trust = pb::AlertRuleSettings { repeat_threshold: Some(4), ..Default::default() };
    let set_trust = served.client.set_alert_rules(bearer(&lead, set("", 0, trust.clone()))).await.unwrap();
    assert_eq!(set_trust.get_ref().version, 1);
    let set_oak = served.client.set_alert_rules(bearer(&oak_dsl, set("oak", 0, stricter()))).await.unwrap();
    assert_eq!(set_oak.get_ref().version, 1);
    let head = served.events().await.len();

    let mut without_self_harm = stricter();
    without_self_harm.critical_categories = categories(&[pb::BreachCategory::IllegalChildAbuseIwf]);
    let refusals = [
        (bearer(&oak_dsl, set("", 1, trust.clone())), Code::PermissionDenied, "", "a DSL never reaches the trust"),
        (bearer(&oak_dsl, set("elm", 0, stricter())), Code::PermissionDenied, "", "nor another school"),
        (bearer(&teacher, set("oak", 1, stricter())), Code::PermissionDenied, "", "a teacher changes nothing"),
        (bearer(&lead, set("oak", 0, stricter())), Code::Aborted, "at version 1, not the version 0", "stale"),
        (
            bearer(&oak_dsl, set("oak", 1, without_self_harm)),
            Code::InvalidArgument,
            "settings.critical_categories",
            "self-harm stays critical",
        ),
        (
            bearer(&lead, set("", 1, pb::AlertRuleSettings { repeat_window_s: Some(5), ..Default::default() })),
            Code::InvalidArgument,
            "settings.repeat_window_s",
            "a window out of range",
        ),
        (
            bearer(
                &oak_dsl,
                set(
                    "oak",
                    1,
                    pb::AlertRuleSettings {
                        high_categories: Some(pb::CategorySet { categories: vec![42] }),
                        ..Default::default()
                    },
                ),
            ),
            Code::InvalidArgument,
            "unknown category 42",
            "an unknown category",
        ),
        (
            bearer(&oak_dsl, pb::SetAlertRulesRequest { reason: String::new(), ..set("oak", 1, stricter()) }),
            Code::InvalidArgument,
            "reason",
            "no reason",
        ),
        (bearer(&oak_dsl, set("Oak!", 0, stricter())), Code::InvalidArgument, "school_id", "a bad school id"),
    ];
    for (request, code, message, why) in refusals {
        let error = served.client.set_alert_rules(request).await.unwrap_err();
        assert_eq!(error.code(), code, "{why}: {error:?}");
        assert!(error.message().contains(message), "{why}: {error:?}");
    }
    let error = served.client.get_alert_rules(bearer(&teacher, get("oak"))).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied, "a teacher does not read the rules");
    assert_eq!(served.events().await.len(), head, "no refused change wrote anything");

    // The school's DSL reads the school's rules: the trust's field, the school's fields, both
    // versions, and who changed what, newest first.
    let oak = served.client.get_alert_rules(bearer(&oak_dsl, get("oak"))).await.unwrap().into_inner();
    let effective = oak.effective.unwrap();
    assert_eq!(effective.repeat_threshold, Some(4), "inherited from the trust");
    assert_eq!(effective.critical_ack_minutes, Some(5), "the school's own");
    assert_eq!(effective.high_categories, stricter().high_categories);
    let critical = effective.critical_categories.unwrap().categories;
    assert!(critical.contains(&(pb::BreachCategory::SelfHarm as i32)), "self-harm is always critical");
    assert_eq!((oak.trust_version, oak.school_version), (1, 1));
    let who: Vec<_> = oak
        .changes
        .iter()
        .map(|c| {
            let change = c.change.as_ref().unwrap();
            (change.school_id.as_str(), change.version, change.changed_by.as_str())
        })
        .collect();
    assert_eq!(who, [("oak", 1, "user-oak-dsl"), ("", 1, "user-trust-lead")]);
    let recorded = rule_events(&served).await;
    assert_eq!(
        recorded.iter().map(|e| e.stream_id.as_str()).collect::<Vec<_>>(),
        ["alertrules-trust", "alertrules-school-oak"]
    );
    assert!(recorded.iter().all(|e| e.event_type == "ingest.AlertRulesChanged"));
    let elm = served.client.get_alert_rules(bearer(&lead, get("elm"))).await.unwrap().into_inner();
    assert_eq!((elm.trust_version, elm.school_version, elm.effective.unwrap().critical_ack_minutes), (1, 0, Some(15)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_changes_at_one_version_one_wins_and_the_other_is_aborted_naming_both() {
    let served = serve().await;
    let lead = served.trust_token("trust-lead", Role::TrustSafeguardingLead);
    let oak_dsl = served.user_token("oak-dsl", Role::Dsl, "oak");
    for round in 0..5u64 {
        let (mut first, mut second) = (served.client.clone(), served.client.clone());
        let threshold = |n: u32| pb::AlertRuleSettings { repeat_threshold: Some(n), ..Default::default() };
        let (a, b) = tokio::join!(
            first.set_alert_rules(bearer(&lead, set("oak", round, threshold(2)))),
            second.set_alert_rules(bearer(&oak_dsl, set("oak", round, threshold(1)))),
        );
        let (won, lost) = match (a, b) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won.into_inner(), lost),
            other => panic!("round {round}: exactly one change wins: {other:?}"),
        };
        assert_eq!(won.version, round + 1);
        assert_eq!(lost.code(), Code::Aborted, "{lost:?}");
        let both = format!("at version {}, not the version {round}", round + 1);
        assert!(lost.message().contains(&both), "{lost:?}");
    }
    assert_eq!(rule_events(&served).await.len(), 5, "one event per round");
}

fn gambling(at: jiff::Timestamp, device: u32, host: &str, session: u64) -> pb::SubmitBreachesRequest {
    pb::SubmitBreachesRequest {
        school_id: "oak".into(),
        source_id: "fortigate-1".into(),
        source_format: pb::SourceFormat::Fortigate as i32,
        lines: vec![pb::RawLine {
            line: demo::fortigate_line(at, 20, device, "Gambling", host, session).into_bytes(),
            ..Default::default()
        }],
    }
}

async fn alerts(served: &Served) -> Vec<pb::SafeguardingAlertRaised> {
    let events = served.events().await;
    let raised = events.iter().filter(|e| e.event_type == "ingest.SafeguardingAlertRaised");
    raised.map(|e| pb::SafeguardingAlertRaised::decode(e.payload.as_slice()).unwrap()).collect()
}

async fn breaches(served: &Served) -> Vec<pb::BreachObserved> {
    let events = served.events().await;
    let observed = events.iter().filter(|e| e.event_type == "ingest.BreachObserved");
    observed.map(|e| pb::BreachObserved::decode(e.payload.as_slice()).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schools_stricter_rule_changes_the_alert_after_its_event_and_holds_after_a_restart() {
    let mut served = serve().await;
    let system = served.system_token("oak");
    let oak_dsl = served.user_token("oak-dsl", Role::Dsl, "oak");
    let at = jiff::Timestamp::now();

    // Under the trust's defaults a first gambling attempt is recorded for trends only.
    let before = served.submit(&system, vec![gambling(at, 3, "lucky-spins.example", 1)]).await.unwrap();
    assert_eq!((before.breaches_observed, before.alerts_raised), (1, 0));

    served.client.set_alert_rules(bearer(&oak_dsl, set("oak", 0, stricter()))).await.unwrap();
    let after = served.submit(&system, vec![gambling(at, 4, "wheel-of-cash.example", 2)]).await.unwrap();
    assert_eq!((after.breaches_observed, after.alerts_raised), (1, 1), "gambling alerts on its own now");
    let raised = alerts(&served).await;
    assert_eq!(raised.len(), 1);
    let alert = &raised[0];
    assert_eq!(alert.severity, pb::AlertSeverity::High as i32);
    assert_eq!(alert.triggers, vec![pb::AlertTrigger::CategoryRule as i32]);
    assert_eq!((alert.trust_rules_version, alert.school_rules_version), (0, 1), "the rules it was raised under");
    assert_eq!(alert.url_host, "wheel-of-cash.example");

    // The same device on the same host inside the window: recorded, collapsed into that alert.
    let again = served.submit(&system, vec![gambling(at, 4, "wheel-of-cash.example", 3)]).await.unwrap();
    assert_eq!((again.breaches_observed, again.alerts_raised), (1, 0));
    let recorded = breaches(&served).await;
    let collapsed: Vec<_> = recorded.iter().map(|b| b.collapsed_into_alert_id.as_str()).collect();
    assert_eq!(collapsed, ["", "", alert.alert_id.as_str()], "the third names the alert it was counted with");

    // Another ingest on the same log (a restart) follows the change and judges the same way.
    served.shutdown.trigger();
    let (restarted, shutdown, _dir) = served.restart().await;
    let in_force = restarted.pipeline.rule_book().in_force("oak");
    assert_eq!((in_force.trust_version, in_force.school_version), (0, 1));
    assert!(in_force.settings.high_categories.contains(&pb::BreachCategory::Gambling));
    assert_eq!(in_force.settings.critical_ack, jiff::SignedDuration::from_mins(5));
    let school = haven_kernel::SchoolId::parse("oak").unwrap();
    let mut config = haven_ingest::SourceConfig::new(school.clone());
    config.format = Some("fortigate".parse().unwrap());
    let source = haven_ingest_service::Source::new(school, "fortigate-1", config, "syslog-test".into());
    let line = demo::fortigate_line(at, 20, 5, "Gambling", "spin-city.example", 4);
    let summary = restarted
        .pipeline
        .submit(&source, &[haven_ingest_service::Line { bytes: line.into_bytes(), received_at: at }])
        .await
        .unwrap();
    assert_eq!(summary.alerts_raised, 1, "the school's rule is in force after the restart");
    shutdown.trigger();
}
