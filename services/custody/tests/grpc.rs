//! Custody over gRPC, as a client sees it: the real service inside the authorisation layer, on
//! a loopback port, against a real log, with real tokens signed by identity's key ring and the
//! access facts (the AUP in force, leavers) followed from the log.

use std::sync::Arc;
use std::time::Duration;

use haven_authz::{AccessState, AuthLayer, Authenticator, Role, RoleGrant, Scope, TokenVerifier, UserId};
use haven_custody::export::{TrailSigner, VerifyOptions, verify};
use haven_custody::{CustodyApp, CustodyIndex, CustodyService};
use haven_eventlog::{EventLogConfig, LocalEventLog};
use haven_eventlog_client::{EventLog, ReadStream};
use haven_identity::domain::{UnixTime as IdTime, UserCommand};
use haven_identity::tokens::{TokenLifetimes, Tokens};
use haven_identity::{EventIds, IdentityApp};
use haven_kernel::{SchoolId, StreamId, Version};
use haven_proto::v1 as pb;
use haven_proto::v1::custody_client::CustodyClient;
use haven_runtime::{Readiness, Shutdown};
use tonic::Code;
use tonic::transport::Channel;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

struct Served {
    _dir: tempfile::TempDir,
    log: LocalEventLog,
    identity: IdentityApp,
    tokens: Tokens,
    client: CustodyClient<Channel>,
    shutdown: Shutdown,
}

fn admin() -> haven_identity::CommandContext {
    haven_identity::CommandContext {
        actor: pb::Actor { principal_id: "user-admin".into(), kind: 1, roles: vec!["trust_admin".into()] },
        occurred_at: prost_types::Timestamp { seconds: now(), nanos: 0 },
        event_ids: EventIds::Fresh,
    }
}

async fn serve() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let log = LocalEventLog::open(&dir.path().join("log"), EventLogConfig::default()).unwrap();
    let shared: Arc<dyn EventLog> = Arc::new(log.clone());
    let identity = IdentityApp::new(Arc::clone(&shared));
    identity.publish_aup(&admin(), 1, [1; 32]).await.unwrap();
    let verifier = TokenVerifier::default();
    let lifetimes = TokenLifetimes { access_s: 900, refresh_s: 3600 };
    let tokens = Tokens::open(&dir.path().join("keys"), now(), verifier.clone(), lifetimes).unwrap();
    let authenticator = Authenticator::new(verifier.clone(), AccessState::default());
    let readiness = Readiness::default();
    let shutdown = Shutdown::default();
    tokio::spawn(authenticator.access().clone().follow(
        Arc::clone(&shared),
        verifier,
        readiness.register("access", "catching up"),
        shutdown.clone(),
    ));
    let index = CustodyIndex::default();
    tokio::spawn(index.clone().follow(
        Arc::clone(&shared),
        readiness.register("custody", "catching up"),
        shutdown.clone(),
    ));
    let signer = Arc::new(TrailSigner::from_seed("custody-test", &[9u8; 32]));
    let app = CustodyApp::new(Arc::clone(&shared), signer);
    let service = CustodyService::new(app, index, authenticator.access().clone());
    let server = tower_layer::Layer::layer(&AuthLayer::new(authenticator.clone()), service.into_server());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(server)
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), stop.triggered())
            .await
            .unwrap();
    });
    let access = authenticator.access().clone();
    wait_until("the access facts catch up", || readiness.is_ready() && access.current_aup() == 1).await;
    let channel = Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    Served { _dir: dir, log, identity, tokens, client: CustodyClient::new(channel), shutdown }
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

impl Served {
    /// An access token for `user` holding `role` at `school`, with the AUP accepted.
    fn token(&self, user: &str, role: Role, school: &str) -> String {
        let grants = [RoleGrant { role, scope: Scope::School(SchoolId::parse(school).unwrap()) }];
        self.tokens.for_user(&UserId::parse(user).unwrap(), &format!("session-{user}"), &grants, 1, now()).unwrap().0
    }

    async fn stream_len(&self, stream: &str) -> usize {
        let read = ReadStream::forwards(StreamId::parse(stream).unwrap(), Version(0), 1000);
        self.log.read_stream(read).await.unwrap().events.len()
    }

    async fn stop(self) {
        self.shutdown.trigger();
        self.log.close().await;
    }
}

fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn seize_request(request_id: &str, school: &str) -> pb::SeizeDeviceRequest {
    pb::SeizeDeviceRequest {
        request_id: request_id.into(),
        school_id: school.into(),
        device_description: "blue phone, invented".into(),
        from_subject_id: "s-0000000000000000000000test".into(),
        witness_user_id: "oak-deputy".into(),
        reason: "messages feared to be harassment".into(),
        case_id: "case-1".into(),
        return_due_at: Some(prost_types::Timestamp { seconds: now() + 3600, nanos: 0 }),
        ..Default::default()
    }
}

fn seal_request(request_id: &str, custody_id: &str, seal: &str) -> pb::SealDeviceRequest {
    pb::SealDeviceRequest {
        request_id: request_id.into(),
        custody_id: custody_id.into(),
        seal_number: seal.into(),
        witness_user_id: "oak-deputy".into(),
        powered_off: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dsl_seizes_seals_stores_and_exports_and_the_export_verifies() {
    let mut s = serve().await;
    let dsl = s.token("oak-dsl", Role::Dsl, "oak");
    let seized = s.client.seize_device(bearer(&dsl, seize_request("req-1", "oak"))).await.unwrap().into_inner();
    let id = seized.custody_id.clone();
    // A retry with the same request id: the same record, nothing new.
    let again = s.client.seize_device(bearer(&dsl, seize_request("req-1", "oak"))).await.unwrap().into_inner();
    assert_eq!((again.custody_id.as_str(), again.position), (id.as_str(), seized.position));
    let sealed = s.client.seal_device(bearer(&dsl, seal_request("req-2", &id, "OAK-0001"))).await.unwrap();
    assert_eq!(sealed.into_inner().version, 1);
    let store = pb::StoreDeviceRequest {
        request_id: "req-3".into(),
        custody_id: id.clone(),
        location: "DSL office safe".into(),
        witness_user_id: "oak-deputy".into(),
        ..Default::default()
    };
    assert_eq!(s.client.store_device(bearer(&dsl, store)).await.unwrap().into_inner().version, 2);

    let trail = s.client.get_custody_trail(bearer(&dsl, pb::GetCustodyTrailRequest { custody_id: id.clone() }));
    let trail = trail.await.unwrap().into_inner();
    let record = trail.record.unwrap();
    assert_eq!(record.status, pb::CustodyStatus::Stored as i32);
    assert_eq!((record.seal_number.as_str(), record.case_id.as_str()), ("OAK-0001", "case-1"));
    assert_eq!(trail.steps.len(), 3);
    assert_eq!(trail.steps[0].by_user_id, "oak-dsl", "empty seized_by means the caller");

    let export =
        pb::ExportCustodyTrailRequest { custody_id: id.clone(), purpose: "police evidence, ref 12/3456/26".into() };
    let exported = s.client.export_custody_trail(bearer(&dsl, export)).await.unwrap().into_inner();
    let verified = verify(&exported.json, &VerifyOptions { trusted_public_key: None }).unwrap();
    assert_eq!(verified.trail.document.custody_id, id);
    assert_eq!(verified.trail.document.entries.len(), 3);
    assert_eq!(verified.key_id, "custody-test");
    assert!(exported.html.contains("OAK-0001"), "the printable page shows the seal");
    let signed = exported.trail.unwrap();
    assert_eq!(
        (signed.key_id.as_str(), signed.algorithm.as_str(), signed.signature.len()),
        ("custody-test", "Ed25519", 64)
    );
    // The export is itself recorded; an edited byte no longer verifies.
    assert_eq!(s.stream_len(&format!("access-custody-{id}")).await, 1);
    let mut edited = exported.json.clone();
    let middle = edited.len() / 2;
    edited[middle] ^= 0x01;
    assert!(verify(&edited, &VerifyOptions::default()).is_err());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_the_right_and_another_school_are_denied_and_nothing_is_written() {
    let mut s = serve().await;
    let teacher = s.token("oak-teacher", Role::Staff, "oak");
    // Any member of staff may confiscate and seal.
    let id =
        s.client.seize_device(bearer(&teacher, seize_request("t-1", "oak"))).await.unwrap().into_inner().custody_id;
    s.client.seal_device(bearer(&teacher, seal_request("t-2", &id, "OAK-0002"))).await.unwrap();
    let stream = format!("custody-{id}");
    assert_eq!(s.stream_len(&stream).await, 2);
    // Only the DSL or principal hands over or returns; staff do not read the trail.
    let handover = pb::HandToPoliceRequest {
        request_id: "t-3".into(),
        custody_id: id.clone(),
        officer: "PC Invented".into(),
        force: "Invented Constabulary".into(),
        police_reference: "REF-1".into(),
        witness_user_id: "oak-deputy".into(),
        seal_number: "OAK-0002".into(),
        ..Default::default()
    };
    let denied = s.client.hand_to_police(bearer(&teacher, handover.clone())).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let give_back = pb::ReturnDeviceRequest {
        request_id: "t-4".into(),
        custody_id: id.clone(),
        recipient: pb::ReturnRecipient::Learner as i32,
        ..Default::default()
    };
    assert_eq!(s.client.return_device(bearer(&teacher, give_back)).await.unwrap_err().code(), Code::PermissionDenied);
    let read = pb::GetCustodyTrailRequest { custody_id: id.clone() };
    assert_eq!(
        s.client.get_custody_trail(bearer(&teacher, read.clone())).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    // A DSL of another school is refused the record: reading, steps, handover, export.
    let elm = s.token("elm-dsl", Role::Dsl, "elm");
    assert_eq!(s.client.get_custody_trail(bearer(&elm, read)).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(
        s.client.hand_to_police(bearer(&elm, handover.clone())).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let export = pb::ExportCustodyTrailRequest { custody_id: id.clone(), purpose: "curiosity".into() };
    assert_eq!(s.client.export_custody_trail(bearer(&elm, export)).await.unwrap_err().code(), Code::PermissionDenied);
    let seize_there = s.client.seize_device(bearer(&elm, seize_request("e-1", "oak"))).await.unwrap_err();
    assert_eq!(seize_there.code(), Code::PermissionDenied);
    // No token at all.
    let anonymous = s.client.get_custody_trail(pb::GetCustodyTrailRequest { custody_id: id.clone() }).await;
    assert_eq!(anonymous.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(s.stream_len(&stream).await, 2, "nothing was appended");
    assert_eq!(s.stream_len(&format!("access-custody-{id}")).await, 0, "no export was recorded");
    // The school's DSL may.
    let dsl = s.token("oak-dsl", Role::Dsl, "oak");
    s.client.hand_to_police(bearer(&dsl, handover)).await.unwrap();
    assert_eq!(s.stream_len(&stream).await, 3);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_field_and_changes_nothing() {
    let mut s = serve().await;
    let dsl = s.token("oak-dsl", Role::Dsl, "oak");
    let invalid = |status: tonic::Status, field: &str| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(field), "{field} not named in {:?}", status.message());
    };
    let mut no_due = seize_request("b-1", "oak");
    no_due.return_due_at = None;
    invalid(s.client.seize_device(bearer(&dsl, no_due)).await.unwrap_err(), "return_due_at");
    let mut both = seize_request("b-2", "oak");
    both.from_user_id = "oak-teacher".into();
    invalid(s.client.seize_device(bearer(&dsl, both)).await.unwrap_err(), "from_subject_id");
    let mut bad_witness = seize_request("b-3", "oak");
    bad_witness.witness_user_id = "Not An Id!".into();
    invalid(s.client.seize_device(bearer(&dsl, bad_witness)).await.unwrap_err(), "witness_user_id");
    let mut no_reason = seize_request("b-4", "oak");
    no_reason.reason = "  ".into();
    invalid(s.client.seize_device(bearer(&dsl, no_reason)).await.unwrap_err(), "reason");
    invalid(s.client.seize_device(bearer(&dsl, seize_request("b-5", "Not A School"))).await.unwrap_err(), "school_id");

    let id = s.client.seize_device(bearer(&dsl, seize_request("b-6", "oak"))).await.unwrap().into_inner().custody_id;
    let stream = format!("custody-{id}");
    invalid(s.client.seal_device(bearer(&dsl, seal_request("b-7", &id, ""))).await.unwrap_err(), "seal_number");
    let check = pb::CheckSealRequest { request_id: "b-8".into(), custody_id: id.clone(), ..Default::default() };
    invalid(s.client.check_seal(bearer(&dsl, check)).await.unwrap_err(), "condition");
    let export = pb::ExportCustodyTrailRequest { custody_id: id.clone(), purpose: String::new() };
    invalid(s.client.export_custody_trail(bearer(&dsl, export)).await.unwrap_err(), "purpose");
    let list = pb::ListAllocationsRequest { school_id: "oak".into(), page_size: 100_000, ..Default::default() };
    let tech = s.token("oak-tech", Role::TechnicalStaff, "oak");
    invalid(s.client.list_allocations(bearer(&tech, list)).await.unwrap_err(), "page_size");
    assert_eq!(s.stream_len(&stream).await, 1, "only the seizure");
    // Rules of the domain keep their codes: a return while a quarantine stands is refused.
    let hold = pb::QuarantineDeviceRequest {
        request_id: "b-9".into(),
        custody_id: id.clone(),
        kind: pb::HoldKind::Quarantine as i32,
        reason: "pending police advice".into(),
        ..Default::default()
    };
    s.client.quarantine_device(bearer(&dsl, hold)).await.unwrap();
    let give_back = pb::ReturnDeviceRequest {
        request_id: "b-10".into(),
        custody_id: id.clone(),
        recipient: pb::ReturnRecipient::Learner as i32,
        ..Default::default()
    };
    let refused = s.client.return_device(bearer(&dsl, give_back)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Aborted, "{refused:?}");
    assert_eq!(s.stream_len(&stream).await, 2, "the seizure and the hold");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leavers_devices_are_listed_when_they_leave() {
    let mut s = serve().await;
    let tech = s.token("oak-tech", Role::TechnicalStaff, "oak");
    let register = |request_id: &str, tag: &str| pb::RegisterSchoolDeviceRequest {
        request_id: request_id.into(),
        school_id: "oak".into(),
        kind: pb::DeviceKind::Laptop as i32,
        asset_tag: tag.into(),
        serial_number: format!("SN-{tag}"),
        model: "invented laptop".into(),
        managed: true,
    };
    let mut devices = Vec::new();
    for (request_id, tag) in [("d-1", "OAK-LT-1"), ("d-2", "OAK-LT-2")] {
        let device = s.client.register_school_device(bearer(&tech, register(request_id, tag))).await.unwrap();
        devices.push(device.into_inner().device_id);
    }
    let allocate = |request_id: &str, device_id: &str, aup_version: u32| pb::AllocateDeviceRequest {
        request_id: request_id.into(),
        device_id: device_id.into(),
        user_id: "oak-leaver".into(),
        aup_version,
        purpose: "teaching".into(),
        ..Default::default()
    };
    // Not the AUP in force: refused.
    let refused = s.client.allocate_device(bearer(&tech, allocate("a-0", &devices[0], 7))).await.unwrap_err();
    assert_eq!(refused.code(), Code::Aborted, "{refused:?}");
    s.client.allocate_device(bearer(&tech, allocate("a-1", &devices[0], 1))).await.unwrap();
    s.client.allocate_device(bearer(&tech, allocate("a-2", &devices[1], 1))).await.unwrap();
    // A DSL does not manage the register; another school's technician does not see it.
    let dsl = s.token("oak-dsl", Role::Dsl, "oak");
    let denied = s.client.allocate_device(bearer(&dsl, allocate("a-3", &devices[0], 1))).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let elm_tech = s.token("elm-tech", Role::TechnicalStaff, "elm");
    let list =
        |leavers_only: bool| pb::ListAllocationsRequest { school_id: "oak".into(), leavers_only, ..Default::default() };
    assert_eq!(
        s.client.list_allocations(bearer(&elm_tech, list(false))).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    let listed = |client: &mut CustodyClient<Channel>, leavers_only: bool| {
        let request = bearer(&tech, list(leavers_only));
        let mut client = client.clone();
        async move { client.list_allocations(request).await.unwrap().into_inner().devices }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while listed(&mut s.client, false).await.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the allocations never reached the index");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(listed(&mut s.client, true).await.is_empty(), "nobody has left yet");
    // The holder leaves (identity disables the account): both devices are listed.
    let context = admin();
    let leaver = UserId::parse("oak-leaver").unwrap();
    let registration = UserCommand::Register {
        user_id: leaver.clone(),
        display_name: "Invented Leaver".into(),
        login: "oak-leaver@example.org".into(),
        home_school: None,
        registered_by: "user-admin".into(),
        at: IdTime(now()),
    };
    s.identity.register_user(&context, registration).await.unwrap();
    let disable = UserCommand::Disable { disabled_by: "user-admin".into(), left_on: IdTime(now()), at: IdTime(now()) };
    s.identity.user_command(&context, &leaver, disable).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let held = loop {
        let held = listed(&mut s.client, true).await;
        if !held.is_empty() {
            break held;
        }
        assert!(tokio::time::Instant::now() < deadline, "the leaver never reached the index");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut ids: Vec<_> = held.iter().map(|device| device.device_id.clone()).collect();
    ids.sort();
    devices.sort();
    assert_eq!(ids, devices);
    assert!(held.iter().all(|device| device.allocated_to_user_id == "oak-leaver" && device.aup_version == 1));
    // Handed back: no longer listed, and awaiting a wipe before it goes out again.
    let back = pb::ReturnAllocatedDeviceRequest {
        request_id: "r-1".into(),
        device_id: devices[0].clone(),
        reason: pb::AllocationReturnReason::Leaver as i32,
        condition: pb::DeviceCondition::Good as i32,
        ..Default::default()
    };
    s.client.return_allocated_device(bearer(&tech, back)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while listed(&mut s.client, true).await.len() != 1 {
        assert!(tokio::time::Instant::now() < deadline, "the return never reached the index");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let again = s.client.allocate_device(bearer(&tech, allocate("a-4", &devices[0], 1))).await.unwrap_err();
    assert_eq!(again.code(), Code::Aborted, "not wiped yet: {again:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_members_own_confiscated_device_is_not_theirs_to_see() {
    let mut s = serve().await;
    let head = s.token("oak-head", Role::Principal, "oak");
    let mut seize = seize_request("o-1", "oak");
    seize.from_subject_id = String::new();
    seize.from_user_id = "oak-dsl".into();
    let id = s.client.seize_device(bearer(&head, seize)).await.unwrap().into_inner().custody_id;
    let read = pb::GetCustodyTrailRequest { custody_id: id.clone() };
    let record = s.client.get_custody_trail(bearer(&head, read.clone())).await.unwrap().into_inner().record.unwrap();
    assert_eq!(record.from_user_id, "oak-dsl");
    // The DSL may read custody records at the school, but not one about them.
    let dsl = s.token("oak-dsl", Role::Dsl, "oak");
    assert_eq!(s.client.get_custody_trail(bearer(&dsl, read)).await.unwrap_err().code(), Code::PermissionDenied);
    let seal = s.client.seal_device(bearer(&dsl, seal_request("o-2", &id, "OAK-0003"))).await.unwrap_err();
    assert_eq!(seal.code(), Code::PermissionDenied);
    assert_eq!(s.stream_len(&format!("custody-{id}")).await, 1);
    s.stop().await;
}
