//! The method table covers every gRPC method in Haven's contracts, and every action a method
//! maps to has a rule: adding an RPC without one fails here.

use std::collections::BTreeSet;

use haven_authz::policy::{self, SELF_SERVICE};
use haven_authz::rules::{METHOD_RULES, Rule, rule_for};
use haven_authz::{Action, AuthLayer, Authenticator};
use prost::Message;

fn declared_methods() -> BTreeSet<String> {
    let set = prost_types::FileDescriptorSet::decode(haven_proto::v1::FILE_DESCRIPTOR_SET).unwrap();
    let mut methods = BTreeSet::new();
    for file in set.file {
        for service in &file.service {
            for method in &service.method {
                methods.insert(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
            }
        }
    }
    methods
}

#[test]
fn every_declared_method_has_a_rule_and_every_rule_a_method() {
    let declared = declared_methods();
    assert!(declared.len() > 100, "the descriptor set lists Haven's methods ({})", declared.len());
    let missing: Vec<_> = declared.iter().filter(|method| rule_for(method).is_none()).collect();
    assert!(missing.is_empty(), "methods without an authorisation rule: {missing:?}");
    let haven_rules: Vec<_> = METHOD_RULES.iter().filter(|(path, _)| path.starts_with("/haven.")).collect();
    for (path, _) in haven_rules {
        assert!(declared.contains(*path), "{path} has a rule but no such method is declared");
    }
    let paths: BTreeSet<_> = METHOD_RULES.iter().map(|(path, _)| path).collect();
    assert_eq!(paths.len(), METHOD_RULES.len(), "each method has one rule");
}

#[test]
fn every_action_a_method_needs_is_in_the_policy() {
    for (path, rule) in METHOD_RULES {
        if let Rule::Signed(action) = rule {
            let ruled = !policy::allowed(*action).is_empty()
                || SELF_SERVICE.contains(action)
                || policy::OWNER_ACTIONS.contains(action)
                || *action == Action::SubmitBreaches;
            assert!(ruled, "{path} maps to {action:?}, which nobody may do");
        }
    }
}

#[test]
fn unknown_and_undeclared_methods_are_denied() {
    let layer = AuthLayer::new(Authenticator::new(Default::default(), Default::default()));
    let code = |path: &str| layer.admit(path, None).unwrap_err().code();
    assert_eq!(code("/haven.v1.Identity/DropEverything"), tonic::Code::PermissionDenied);
    assert_eq!(code("/haven.v1.Reporting/RebuildProjection"), tonic::Code::Unauthenticated, "served: needs a token");
    assert_eq!(code("/haven.v1.Reporting/GetTrustDashboard"), tonic::Code::Unauthenticated, "served: needs a token");
    assert_eq!(code("/haven.v1.Incidents/RaiseConcern"), tonic::Code::Unauthenticated, "served: needs a token");
    assert_eq!(code("/haven.v1.EventLog/Append"), tonic::Code::PermissionDenied, "internal, outside the cluster");
    assert_eq!(code("/haven.v1.Identity/GrantRole"), tonic::Code::Unauthenticated, "no token");
    let not_caught_up = layer.admit("/haven.v1.Identity/GrantRole", Some("Bearer x.y.z")).unwrap_err();
    assert_eq!(not_caught_up.code(), tonic::Code::Unavailable, "the access state is not caught up");
    assert!(layer.admit("/haven.v1.Identity/SignIn", None).unwrap().is_none(), "sign-in is public");
    let internal = AuthLayer::allowing_internal(Authenticator::new(Default::default(), Default::default()));
    assert!(internal.admit("/haven.v1.EventLog/Append", None).is_ok());
}

#[test]
fn every_denial_is_counted_by_action_and_reason_without_who() {
    use haven_authz::denials::{denials, register_metrics};
    use haven_authz::{Caller, Principal, PrincipalKind, Resource};

    let layer = AuthLayer::new(Authenticator::new(Default::default(), Default::default()));
    let _ = layer.admit("/haven.v1.Identity/DropEverything", None);
    let _ = layer.admit("/haven.v1.EventLog/Append", None);
    let _ = layer.admit("/haven.v1.Identity/GrantRole", None);
    let _ = layer.admit("/haven.v1.Identity/GrantRole", Some("Bearer x.y.z"));
    assert!(layer.admit("/haven.v1.Identity/SignIn", None).is_ok(), "an allowed call is not counted");
    let staff = Caller {
        principal: Principal {
            id: "user-invented-teacher".into(),
            kind: PrincipalKind::User,
            grants: vec![],
            session_id: None,
            aup_version: 1,
            school: None,
            expires_at: i64::MAX,
        },
        aup_current: true,
    };
    assert!(haven_authz::grpc::check(&staff, Action::PublishAup, &Resource::trust()).is_err());

    assert_eq!(denials(None, "no_rule"), 1);
    assert_eq!(denials(None, "internal_only"), 1);
    assert_eq!(denials(Some(Action::GrantRole), "unauthenticated"), 1, "no token");
    assert_eq!(denials(Some(Action::GrantRole), "not_ready"), 1, "the access state had not caught up");
    assert_eq!(denials(Some(Action::PublishAup), "no_grant"), 1);
    assert_eq!(denials(Some(Action::SignOut), "no_grant"), 0);

    let metrics = haven_runtime::Metrics::default();
    register_metrics(&metrics);
    let text = metrics.encode();
    assert!(text.contains(r#"haven_authz_denials_total{action="PublishAup",reason="no_grant"} 1"#), "{text}");
    assert!(!text.contains("invented-teacher"), "who asked is never a label");
}
