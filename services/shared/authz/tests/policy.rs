//! The authorisation matrix (every action × every role × own school, another school and the
//! trust) compared with the reviewed copy in `matrix.txt`, and properties proving denial for
//! every role and scope mismatch.
//!
//! After a deliberate policy change: `UPDATE_GOLDEN=1 cargo nextest run -p haven-authz`, and
//! review the diff of `matrix.txt`.

use haven_authz::{
    Action, Decision, DenyReason, Principal, PrincipalKind, Resource, Role, RoleGrant, Scope, authorize,
};
use haven_kernel::SchoolId;
use proptest::prelude::*;

fn school(id: &str) -> SchoolId {
    SchoolId::parse(id).unwrap()
}

fn person(grants: Vec<RoleGrant>) -> Principal {
    Principal {
        id: "user-p".into(),
        kind: PrincipalKind::User,
        grants,
        session_id: Some("s".into()),
        aup_version: 1,
        school: None,
        expires_at: 0,
    }
}

/// Where a role is held in the matrix: its own school (`oak`) when it can be, else the trust.
fn home_scope(role: Role) -> Scope {
    if role.allowed_in(&Scope::School(school("oak"))) { Scope::School(school("oak")) } else { Scope::Trust }
}

fn render(decision: Decision) -> String {
    match decision {
        Decision::Allow => "allow".into(),
        Decision::Deny(reason) => format!("deny ({reason:?})"),
    }
}

fn matrix() -> String {
    let resources = [
        ("own school", Resource::school(school("oak"))),
        ("other school", Resource::school(school("elm"))),
        ("trust", Resource::trust()),
    ];
    let mut out = String::from("# action | role held (where) | resource: decision\n");
    for action in Action::ALL {
        for role in Role::ALL {
            let scope = home_scope(role);
            let principal = person(vec![RoleGrant { role, scope: scope.clone() }]);
            for (name, resource) in &resources {
                let decision = authorize(&principal, true, action, resource);
                out.push_str(&format!("{action:?} | {role} ({scope}) | {name}: {}\n", render(decision)));
            }
        }
        let system = Principal {
            id: "system-oak-filter".into(),
            kind: PrincipalKind::SchoolSystem,
            grants: vec![],
            session_id: None,
            aup_version: 0,
            school: Some(school("oak")),
            expires_at: 0,
        };
        for (name, resource) in &resources {
            out.push_str(&format!(
                "{action:?} | school system (school oak) | {name}: {}\n",
                render(authorize(&system, true, action, resource))
            ));
        }
    }
    out
}

#[test]
fn the_matrix_is_the_reviewed_one() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/matrix.txt");
    let now = matrix();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &now).unwrap();
    }
    let reviewed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(now == reviewed, "the authorisation matrix changed; review it with UPDATE_GOLDEN=1 and git diff");
}

#[test]
fn spot_checks_of_the_matrix() {
    let dsl = person(vec![RoleGrant { role: Role::Dsl, scope: Scope::School(school("oak")) }]);
    let oak = Resource::school(school("oak"));
    assert!(authorize(&dsl, true, Action::ReadSubjects, &oak).is_allowed());
    assert!(!authorize(&dsl, true, Action::ReadSubjects, &Resource::school(school("elm"))).is_allowed());
    let governor = person(vec![RoleGrant { role: Role::Governor, scope: Scope::School(school("oak")) }]);
    assert!(authorize(&governor, true, Action::ReadAggregates, &oak).is_allowed());
    for action in [Action::ReadCase, Action::ReadSubjects, Action::ReadBreaches] {
        assert!(!authorize(&governor, true, action, &oak).is_allowed(), "governors see aggregates only: {action:?}");
    }
    let technician = person(vec![RoleGrant { role: Role::TechnicalStaff, scope: Scope::School(school("oak")) }]);
    assert!(authorize(&technician, true, Action::ReadBreaches, &oak).is_allowed());
    assert!(!authorize(&technician, true, Action::ReadCase, &oak).is_allowed(), "breaches, not case details");
    let staff = person(vec![RoleGrant { role: Role::Staff, scope: Scope::School(school("oak")) }]);
    assert!(!authorize(&staff, true, Action::ReadCase, &oak).is_allowed());
    assert!(
        authorize(&staff, true, Action::ReadCase, &oak.clone().owned_by("user-p")).is_allowed(),
        "their own concern"
    );
    let lead = person(vec![RoleGrant { role: Role::TrustSafeguardingLead, scope: Scope::Trust }]);
    assert!(authorize(&lead, true, Action::ReadCase, &Resource::school(school("elm"))).is_allowed());
    assert_eq!(
        authorize(&lead, true, Action::ReadCase, &oak.clone().about("user-p")),
        Decision::Deny(DenyReason::AboutThemselves),
        "nobody sees an allegation about themselves"
    );
    let principal = person(vec![RoleGrant { role: Role::Principal, scope: Scope::School(school("oak")) }]);
    assert!(authorize(&principal, true, Action::GrantRole, &oak.clone().granting(Role::Dsl)).is_allowed());
    assert_eq!(
        authorize(&principal, true, Action::GrantRole, &oak.clone().granting(Role::Principal)),
        Decision::Deny(DenyReason::TrustAdminOnly)
    );
    assert_eq!(
        authorize(&principal, true, Action::GrantRole, &oak.clone().owned_by("user-p").granting(Role::Dsl)),
        Decision::Deny(DenyReason::OwnAccess)
    );
}

#[test]
fn incidents_rows_of_the_matrix() {
    let oak = Resource::school(school("oak"));
    let elm = Resource::school(school("elm"));
    let held = |role: Role| person(vec![RoleGrant { role, scope: home_scope(role) }]);
    // Any member of a school's staff raises a concern there, and nowhere else.
    for role in [Role::Staff, Role::TechnicalStaff, Role::OnlineSafetyCoordinator, Role::Dsl, Role::Principal] {
        assert!(authorize(&held(role), true, Action::RaiseConcern, &oak).is_allowed(), "{role}");
        assert!(!authorize(&held(role), true, Action::RaiseConcern, &elm).is_allowed(), "{role} at another school");
    }
    assert!(!authorize(&held(Role::Governor), true, Action::RaiseConcern, &oak).is_allowed());
    // The school's safeguarding team works cases; a DSL of another school is denied.
    for action in [Action::TriageConcern, Action::ManageCase, Action::ListCases, Action::AcknowledgeAlert] {
        for role in [Role::Dsl, Role::DeputyDsl, Role::Principal] {
            assert!(authorize(&held(role), true, action, &oak).is_allowed(), "{role} {action:?}");
            assert_eq!(
                authorize(&held(role), true, action, &elm),
                Decision::Deny(DenyReason::NoGrant),
                "{role} {action:?} at another school"
            );
        }
        // Technical staff see breaches, not cases; governors only aggregates; staff only their own concerns.
        for role in [Role::TechnicalStaff, Role::Governor, Role::Staff, Role::OnlineSafetyCoordinator, Role::Auditor] {
            assert!(!authorize(&held(role), true, action, &oak).is_allowed(), "{role} {action:?}");
        }
    }
    // The trust's safeguarding lead works cases anywhere in the trust, but triage is the school's.
    let lead = held(Role::TrustSafeguardingLead);
    assert!(authorize(&lead, true, Action::ManageCase, &elm).is_allowed());
    assert!(!authorize(&lead, true, Action::TriageConcern, &elm).is_allowed());
    // Nobody works a case about themselves, whatever they hold.
    assert_eq!(
        authorize(&held(Role::Principal), true, Action::ManageCase, &oak.clone().about("user-p")),
        Decision::Deny(DenyReason::AboutThemselves)
    );
}

fn any_role() -> impl Strategy<Value = Role> {
    (0..Role::ALL.len()).prop_map(|i| Role::ALL[i])
}

fn any_action() -> impl Strategy<Value = Action> {
    (0..Action::ALL.len()).prop_map(|i| Action::ALL[i])
}

const SCHOOLS: [&str; 3] = ["oak", "elm", "ash"];

proptest! {
    /// Grants in some schools never reach another school or the trust as a whole, whatever
    /// the roles (only what a person may do for themselves remains).
    #[test]
    fn school_grants_never_reach_another_school_or_the_trust(
        held in proptest::collection::vec((any_role(), 0..2usize), 1..4),
        action in any_action(),
        target in prop_oneof![Just(None), Just(Some(2usize))],
    ) {
        let grants = held.iter().map(|(role, s)| RoleGrant { role: *role, scope: Scope::School(school(SCHOOLS[*s])) }).collect();
        let resource = Resource::in_scope(target.map(|s| school(SCHOOLS[s])));
        let decision = authorize(&person(grants), true, action, &resource);
        prop_assert!(!decision.is_allowed() || haven_authz::policy::SELF_SERVICE.contains(&action), "{action:?} allowed");
    }

    /// A role not listed for an action is denied it everywhere.
    #[test]
    fn a_role_without_a_rule_is_denied(role in any_role(), action in any_action(), s in 0..3usize, trust in any::<bool>()) {
        let scope = if trust { Scope::Trust } else { Scope::School(school(SCHOOLS[s])) };
        let listed = haven_authz::policy::allowed(action).iter().any(|(r, _)| *r == role);
        let self_service = haven_authz::policy::SELF_SERVICE.contains(&action);
        let principal = person(vec![RoleGrant { role, scope }]);
        for resource in [Resource::trust(), Resource::school(school(SCHOOLS[s]))] {
            let decision = authorize(&principal, true, action, &resource);
            prop_assert!(listed || self_service || !decision.is_allowed(), "{role} {action:?}");
        }
    }

    /// Until the AUP in force is accepted, only the exempt actions are allowed, whoever asks.
    #[test]
    fn nothing_but_the_aup_before_accepting_it(roles in proptest::collection::vec(any_role(), 1..4), action in any_action()) {
        let grants = roles.iter().map(|role| RoleGrant { role: *role, scope: Scope::Trust }).collect();
        let decision = authorize(&person(grants), false, action, &Resource::trust());
        prop_assert!(action.aup_exempt() || decision == Decision::Deny(DenyReason::AupNotAccepted));
    }

    /// A school system submits its lines and its network's leases, for its own school only.
    #[test]
    fn a_school_system_only_submits_its_own_schools_events_and_leases(action in any_action(), s in 0..3usize) {
        let system = Principal {
            id: "system-x".into(), kind: PrincipalKind::SchoolSystem, grants: vec![], session_id: None,
            aup_version: 0, school: Some(school("oak")), expires_at: 0,
        };
        let decision = authorize(&system, true, action, &Resource::school(school(SCHOOLS[s])));
        prop_assert_eq!(decision.is_allowed(), action.for_school_systems() && s == 0);
        prop_assert!(!authorize(&system, true, action, &Resource::trust()).is_allowed());
    }

    /// Nobody sees what is about them, and nobody changes their own access, whatever they hold.
    #[test]
    fn nothing_about_oneself(roles in proptest::collection::vec(any_role(), 1..4), action in any_action()) {
        let grants = roles.iter().map(|role| RoleGrant { role: *role, scope: Scope::Trust }).collect();
        let principal = person(grants);
        let about = Resource::trust().about("user-p");
        prop_assert_eq!(authorize(&principal, true, action, &about), Decision::Deny(DenyReason::AboutThemselves));
        if action.changes_access() {
            let own = Resource::trust().owned_by("user-p");
            prop_assert_eq!(authorize(&principal, true, action, &own), Decision::Deny(DenyReason::OwnAccess));
        }
    }
}
