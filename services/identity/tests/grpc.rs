//! Identity over gRPC, as a client sees it: the real service inside the authorisation layer,
//! on a loopback port, against a real log, with the access facts followed from the log.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Fixture, admin, grant, register, user};
use haven_authz::{AccessState, AuthLayer, Authenticator, Role, Scope, TokenVerifier};
use haven_identity::IdentityConfig;
use haven_proto::v1 as pb;
use haven_proto::v1::identity_client::IdentityClient;
use haven_runtime::Readiness;
use tonic::Code;
use tonic::transport::Channel;

const ADMIN_PASSWORD: &str = "heron lamp orchard 42";

struct Served {
    fixture: Fixture,
    client: IdentityClient<Channel>,
    accounts: haven_identity::Accounts,
}

async fn serve() -> Served {
    let fixture = Fixture::start().await;
    let authenticator = Authenticator::new(TokenVerifier::default(), AccessState::default());
    let config = IdentityConfig { password_memory_kib: 8, password_iterations: 1, ..IdentityConfig::default() };
    let readiness = Readiness::default();
    let running = haven_identity::start::start(
        Arc::clone(&fixture.shared),
        &config,
        &fixture.dir.path().join("keys"),
        &authenticator,
        &readiness,
        &fixture.shutdown,
    )
    .await
    .unwrap();
    tokio::spawn(authenticator.access().clone().follow(
        Arc::clone(&fixture.shared),
        authenticator.verifier().clone(),
        readiness.register("access", "catching up"),
        fixture.shutdown.clone(),
    ));
    let server = tower_layer::Layer::layer(&AuthLayer::new(authenticator.clone()), running.service.into_server());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = fixture.shutdown.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(server)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                shutdown.triggered(),
            )
            .await
            .unwrap();
    });
    // The first trust admin is made by the operator (here: directly through the app).
    fixture.app.register_user(&admin(), register("admin", None)).await.unwrap();
    fixture.app.user_command(&admin(), &user("admin"), grant(Role::TrustAdmin, Scope::Trust)).await.unwrap();
    running.accounts.set_password(&admin(), &user("admin"), ADMIN_PASSWORD, None).await.unwrap();
    fixture.app.publish_aup(&admin(), 1, [1; 32]).await.unwrap();
    // Sign-in looks logins up in the served user directory: wait for that one.
    let users = running.accounts.users().clone();
    fixture.wait_until("the admin reaches the directory", || users.by_login("admin@example.org").is_some()).await;
    fixture.wait_until("the access facts catch up", || readiness.is_ready()).await;
    let channel = Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    Served { fixture, client: IdentityClient::new(channel), accounts: running.accounts }
}

fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

async fn sign_in(client: &mut IdentityClient<Channel>, login: &str, password: &str) -> pb::TokenPair {
    let request = pb::SignInRequest { login: login.into(), password: password.into() };
    client.sign_in(request).await.unwrap().into_inner().tokens.unwrap()
}

/// Signs in and accepts the AUP in force; returns the access token.
async fn signed_in(client: &mut IdentityClient<Channel>, login: &str, password: &str) -> String {
    let first = sign_in(client, login, password).await;
    let accepted = client.accept_aup(bearer(&first.access_token, pb::AcceptAupRequest { aup_version: 1 })).await;
    accepted.unwrap().into_inner().tokens.unwrap().access_token
}

fn grant_request(user_id: &str, role: pb::Role, school_id: &str) -> pb::GrantRoleRequest {
    pb::GrantRoleRequest {
        user_id: user_id.into(),
        role: role as i32,
        school_id: school_id.into(),
        reason: "appointed".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_without_a_token_and_nothing_but_the_aup_before_accepting_it() {
    let Served { fixture, mut client, .. } = serve().await;
    let error = client.grant_role(grant_request("admin", pb::Role::Dsl, "oak")).await.unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
    let error =
        client.grant_role(bearer("not.a.token", grant_request("admin", pb::Role::Dsl, "oak"))).await.unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
    assert!(!error.message().contains("not.a.token"), "the token is never echoed");

    let pending = sign_in(&mut client, "admin@example.org", ADMIN_PASSWORD).await;
    assert!(pending.aup_required);
    let error = client.list_access_register(bearer(&pending.access_token, pb::ListAccessRegisterRequest::default()));
    assert_eq!(error.await.unwrap_err().code(), Code::PermissionDenied, "no access before the AUP");
    let me = client.who_am_i(bearer(&pending.access_token, pb::WhoAmIRequest {})).await.unwrap().into_inner();
    assert!(me.aup_required);
    let error = client.accept_aup(bearer(&pending.access_token, pb::AcceptAupRequest { aup_version: 7 })).await;
    assert_eq!(error.unwrap_err().code(), Code::Aborted, "only the version in force");
    let token = signed_in(&mut client, "admin@example.org", ADMIN_PASSWORD).await;
    let register = client.list_access_register(bearer(&token, pb::ListAccessRegisterRequest::default())).await;
    assert!(!register.unwrap().into_inner().entries.is_empty());

    // A new AUP version: the old acceptance no longer opens anything.
    fixture.app.publish_aup(&admin(), 2, [2; 32]).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = client.list_access_register(bearer(&token, pb::ListAccessRegisterRequest::default())).await;
        match attempt {
            Err(error) if error.code() == Code::PermissionDenied => break,
            _ => assert!(tokio::time::Instant::now() < deadline, "the outdated AUP was still accepted"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(client.who_am_i(bearer(&token, pb::WhoAmIRequest {})).await.unwrap().into_inner().aup_required);
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_scopes_decide_and_a_leavers_tokens_stop_at_once() {
    let Served { fixture, mut client, accounts } = serve().await;
    let admin_token = signed_in(&mut client, "admin@example.org", ADMIN_PASSWORD).await;
    let new_user = |id: &str, school: &str| pb::RegisterUserRequest {
        user_id: id.into(),
        display_name: "Invented Person".into(),
        login: format!("{id}@example.org"),
        home_school_id: school.into(),
    };
    client.register_user(bearer(&admin_token, new_user("dsl-oak", "oak"))).await.unwrap();
    let error = client.register_user(bearer(&admin_token, new_user("dsl-two", "nowhere"))).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{}", error.message());
    client.grant_role(bearer(&admin_token, grant_request("dsl-oak", pb::Role::Dsl, "oak"))).await.unwrap();
    let password = pb::SetPasswordRequest {
        user_id: "dsl-oak".into(),
        current_password: String::new(),
        new_password: "kestrel meadow lantern 9".into(),
    };
    client.set_password(bearer(&admin_token, password)).await.unwrap();
    let users = accounts.users().clone();
    fixture.wait_until("the DSL reaches the directory", || users.by_login("dsl-oak@example.org").is_some()).await;
    let dsl_token = signed_in(&mut client, "dsl-oak@example.org", "kestrel meadow lantern 9").await;

    // A DSL of oak: oak's register, not elm's, not the trust's; no grants; not themselves.
    let register = |school: &str| pb::ListAccessRegisterRequest { school_id: school.into() };
    client.list_access_register(bearer(&dsl_token, register("oak"))).await.unwrap();
    for school in ["elm", ""] {
        let error = client.list_access_register(bearer(&dsl_token, register(school))).await.unwrap_err();
        assert_eq!(error.code(), Code::PermissionDenied, "school {school:?}");
    }
    let error =
        client.grant_role(bearer(&dsl_token, grant_request("admin", pb::Role::Staff, "oak"))).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    let error =
        client.grant_role(bearer(&admin_token, grant_request("admin", pb::Role::Dsl, "oak"))).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied, "nobody changes their own access: {}", error.message());
    let own = client.get_user(bearer(&dsl_token, pb::GetUserRequest { user_id: "dsl-oak".into() })).await.unwrap();
    assert_eq!(own.into_inner().user.unwrap().grants.len(), 1);
    let error = client.get_user(bearer(&dsl_token, pb::GetUserRequest { user_id: "admin".into() })).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);

    // A school system may do nothing in identity.
    let issue = pb::IssueSchoolSystemCredentialRequest { system_id: "oak-filter".into(), school_id: "oak".into() };
    let credential = client.issue_school_system_credential(bearer(&admin_token, issue)).await.unwrap().into_inner();
    let exchange = pb::ExchangeClientCredentialsRequest {
        client_id: credential.client_id.clone(),
        client_secret: credential.client_secret.clone(),
    };
    let system = client.exchange_client_credentials(exchange).await.unwrap().into_inner().tokens.unwrap();
    let error = client.who_am_i(bearer(&system.access_token, pb::WhoAmIRequest {})).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);

    // The DSL leaves: their access token is refused at once (well before it expires).
    let disable = pb::DisableUserRequest { user_id: "dsl-oak".into(), left_on: None };
    let left = client.disable_user(bearer(&admin_token, disable)).await.unwrap().into_inner().user.unwrap();
    assert!(left.disabled);
    assert_eq!(left.active_sessions, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match client.list_access_register(bearer(&dsl_token, register("oak"))).await {
            Err(error) if error.code() == Code::Unauthenticated => break,
            _ => assert!(tokio::time::Instant::now() < deadline, "a leaver's token still worked"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let error = client.sign_in(pb::SignInRequest {
        login: "dsl-oak@example.org".into(),
        password: "kestrel meadow lantern 9".into(),
    });
    assert_eq!(error.await.unwrap_err().code(), Code::Unauthenticated);

    let jwks = client.get_jwks(pb::GetJwksRequest {}).await.unwrap().into_inner().jwks_json;
    assert!(jwks.contains("Ed25519"));
    fixture.stop().await;
}

/// A person with one role, signed in with the AUP accepted; returns their access token.
async fn person(served: &mut Served, admin_token: &str, id: &str, role: pb::Role, school_id: &str) -> String {
    let client = &mut served.client;
    let register = pb::RegisterUserRequest {
        user_id: id.into(),
        display_name: "Invented Person".into(),
        login: format!("{id}@example.org"),
        home_school_id: school_id.into(),
    };
    client.register_user(bearer(admin_token, register)).await.unwrap();
    client.grant_role(bearer(admin_token, grant_request(id, role, school_id))).await.unwrap();
    let password = pb::SetPasswordRequest {
        user_id: id.into(),
        current_password: String::new(),
        new_password: "otter quay lamp 31".into(),
    };
    client.set_password(bearer(admin_token, password)).await.unwrap();
    let users = served.accounts.users().clone();
    let login = format!("{id}@example.org");
    served.fixture.wait_until("the person reaches the directory", || users.by_login(&login).is_some()).await;
    signed_in(&mut served.client, &login, "otter quay lamp 31").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subject_directory_is_for_those_who_need_it_and_every_read_is_recorded() {
    let mut served = serve().await;
    let admin_token = signed_in(&mut served.client, "admin@example.org", ADMIN_PASSWORD).await;
    let dsl = person(&mut served, &admin_token, "dsl-oak", pb::Role::Dsl, "oak").await;
    let dsl_elm = person(&mut served, &admin_token, "dsl-elm", pb::Role::Dsl, "elm").await;
    let staff = person(&mut served, &admin_token, "staff-oak", pb::Role::Staff, "oak").await;
    let governor = person(&mut served, &admin_token, "gov-oak", pb::Role::Governor, "oak").await;
    let lead = person(&mut served, &admin_token, "lead", pb::Role::TrustSafeguardingLead, "").await;
    let client = &mut served.client;

    let csv = "name,year_group,flags\nAda Okafor,7,send;eal\n,3,\n\"Carter, Ben\",11,\nCara Diaz,15,\n";
    let import = pb::ImportRosterRequest { school_id: "oak".into(), csv: csv.into() };
    let report = client.import_roster(bearer(&dsl, import.clone())).await.unwrap().into_inner();
    assert_eq!(report.imported.len(), 2);
    assert_eq!(report.imported[1].display_name, "Carter, Ben");
    let bad: Vec<_> = report.errors.iter().map(|e| (e.line, e.column.as_str())).collect();
    assert_eq!(bad, vec![(3, "name"), (5, "year_group")]);
    let error = client.import_roster(bearer(&staff, import.clone())).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied, "staff cannot write the directory");
    let whole = pb::ImportRosterRequest { school_id: "oak".into(), csv: "who,what\n".into() };
    assert_eq!(client.import_roster(bearer(&dsl, whole)).await.unwrap_err().code(), Code::InvalidArgument);

    let ada = report.imported[0].subject_id.clone();
    assert!(ada.starts_with("s-") && ada.len() == 28, "pseudonymous: {ada}");
    let get = |token: &str, purpose: &str| {
        bearer(token, pb::GetSubjectRequest { subject_id: ada.clone(), purpose: purpose.into() })
    };
    let read = client.get_subject(get(&dsl, "triage of an alert")).await.unwrap().into_inner().subject.unwrap();
    assert_eq!(read.year_group, 7);
    assert!(client.get_subject(get(&lead, "trust review")).await.is_ok(), "the trust safeguarding lead");
    for (who, token) in
        [("DSL of another school", &dsl_elm), ("staff", &staff), ("governor", &governor), ("admin", &admin_token)]
    {
        let error = client.get_subject(get(token, "curious")).await.unwrap_err();
        assert_eq!(error.code(), Code::PermissionDenied, "{who}");
    }
    assert_eq!(client.get_subject(get(&dsl, " ")).await.unwrap_err().code(), Code::InvalidArgument, "a purpose");
    let list = pb::ListSubjectsRequest { school_id: "oak".into(), purpose: "weekly review".into() };
    assert_eq!(client.list_subjects(bearer(&dsl, list.clone())).await.unwrap().into_inner().subjects.len(), 2);
    assert_eq!(client.list_subjects(bearer(&dsl_elm, list)).await.unwrap_err().code(), Code::PermissionDenied);

    let flags =
        pb::ChangeSubjectFlagsRequest { subject_id: ada.clone(), flags: vec![pb::SubjectFlag::LookedAfter as i32] };
    let changed = client.change_subject_flags(bearer(&dsl, flags)).await.unwrap().into_inner().subject.unwrap();
    assert_eq!(changed.flags, vec![pb::SubjectFlag::LookedAfter as i32]);

    // Who has seen this record: two reads (DSL, trust lead) and one listing, by principal id only.
    let access = haven_kernel::StreamId::parse("subjectaccess-oak").unwrap();
    let slice = served.fixture.shared.read_stream(haven_eventlog_client::ReadStream::forwards(
        access,
        haven_kernel::Version(0),
        100,
    ));
    let views: Vec<_> = slice
        .await
        .unwrap()
        .events
        .iter()
        .map(|envelope| prost::Message::decode(envelope.payload.as_slice()).unwrap())
        .map(|view: pb::SubjectRecordViewed| (view.subject_id.is_empty(), view.viewer_id))
        .collect();
    assert_eq!(
        views,
        vec![(false, "user-dsl-oak".to_owned()), (false, "user-lead".to_owned()), (true, "user-dsl-oak".to_owned())]
    );
    served.fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn technical_staff_set_a_learners_network_logins_and_see_nothing_else_of_the_record() {
    let mut served = serve().await;
    let admin_token = signed_in(&mut served.client, "admin@example.org", ADMIN_PASSWORD).await;
    let dsl = person(&mut served, &admin_token, "dsl-oak", pb::Role::Dsl, "oak").await;
    let tech = person(&mut served, &admin_token, "tech-oak", pb::Role::TechnicalStaff, "oak").await;
    let tech_elm = person(&mut served, &admin_token, "tech-elm", pb::Role::TechnicalStaff, "elm").await;
    let client = &mut served.client;
    let csv = "name,year_group,flags,network_login\nAda Okafor,7,send,AOkafor\n";
    let import = pb::ImportRosterRequest { school_id: "oak".into(), csv: csv.into() };
    let ada = client.import_roster(bearer(&dsl, import)).await.unwrap().into_inner().imported.remove(0);
    assert_eq!(ada.network_logins, vec!["aokafor".to_owned()], "lowercased from the roster");

    let set = |logins: &[&str]| pb::SetSubjectNetworkLoginsRequest {
        subject_id: ada.subject_id.clone(),
        network_logins: logins.iter().map(|l| (*l).to_owned()).collect(),
    };
    let done = client.set_subject_network_logins(bearer(&tech, set(&["aokafor", "A.Okafor@Oak.example"]))).await;
    let done = done.unwrap().into_inner();
    assert_eq!(done.network_logins, vec!["a.okafor@oak.example".to_owned(), "aokafor".to_owned()]);
    assert_eq!(done.version, 1);
    for (who, token) in [("the DSL", &dsl), ("another school's technical staff", &tech_elm)] {
        let error = client.set_subject_network_logins(bearer(token, set(&["x"]))).await.unwrap_err();
        assert_eq!(error.code(), Code::PermissionDenied, "{who}");
    }
    let error = client.set_subject_network_logins(bearer(&tech, set(&["has space"]))).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("network_logins") && !error.message().contains("has space"), "{error:?}");
    let get = pb::GetSubjectRequest { subject_id: ada.subject_id.clone(), purpose: "check".into() };
    let read = client.get_subject(bearer(&dsl, get)).await.unwrap().into_inner().subject.unwrap();
    assert_eq!((read.version, read.network_logins.len()), (1, 2), "the refusals changed nothing");
    served.fixture.stop().await;
}

/// The `kid` in a token's header.
fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.expect("every token names its key")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trust_admin_rotates_the_signing_key_and_tokens_of_the_old_one_still_verify() {
    let mut served = serve().await;
    let admin_token = signed_in(&mut served.client, "admin@example.org", ADMIN_PASSWORD).await;
    let dsl = person(&mut served, &admin_token, "dsl-oak", pb::Role::Dsl, "oak").await;
    let old_kid = kid_of(&admin_token);

    // Nobody but a trust admin, and nothing changes when refused.
    let refused = served.client.rotate_signing_key(bearer(&dsl, pb::RotateSigningKeyRequest {})).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{}", refused.message());
    let unsigned = served.client.rotate_signing_key(pb::RotateSigningKeyRequest {}).await.unwrap_err();
    assert_eq!(unsigned.code(), Code::Unauthenticated);
    assert_eq!(kid_of(&signed_in(&mut served.client, "admin@example.org", ADMIN_PASSWORD).await), old_kid);

    let rotated = served
        .client
        .rotate_signing_key(bearer(&admin_token, pb::RotateSigningKeyRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(rotated.key_id, old_kid);
    assert_eq!(rotated.verifying_key_ids, vec![old_kid.clone(), rotated.key_id.clone()], "the old key still verifies");
    let jwks = served.client.get_jwks(pb::GetJwksRequest {}).await.unwrap().into_inner().jwks_json;
    assert!(jwks.contains(&old_kid) && jwks.contains(&rotated.key_id), "{jwks}");

    // New tokens are signed with the new key; a token of the old key is still accepted.
    let fresh = signed_in(&mut served.client, "admin@example.org", ADMIN_PASSWORD).await;
    assert_eq!(kid_of(&fresh), rotated.key_id);
    served.client.who_am_i(bearer(&fresh, pb::WhoAmIRequest {})).await.unwrap();
    served.client.who_am_i(bearer(&dsl, pb::WhoAmIRequest {})).await.unwrap();

    // Other processes learn the new public key from the log.
    let slice = served
        .fixture
        .shared
        .read_stream(haven_eventlog_client::ReadStream::forwards(
            haven_kernel::StreamId::parse(haven_identity::SIGNING_KEYS_STREAM).unwrap(),
            haven_kernel::Version(0),
            100,
        ))
        .await
        .unwrap();
    let announced: Vec<String> = slice
        .events
        .iter()
        .map(|e| <pb::SigningKeyRotated as prost::Message>::decode(e.payload.as_slice()).unwrap().key_id)
        .collect();
    assert_eq!(announced, vec![old_kid, rotated.key_id], "each key announced once, in order");
}
