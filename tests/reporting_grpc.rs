//! `haven.v1.Reporting` on a real `haven up --demo`: real tokens from the demo's people, real
//! gRPC over loopback, the demo's invented breaches and referrals.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use haven_proto::v1 as pb;
use haven_proto::v1::reporting_client::ReportingClient;
use tonic::Code;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn http(port: u16, method: &str, path: &str, bearer: Option<&str>, body: &str) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let authorization = bearer.map(|token| format!("Authorization: Bearer {token}\r\n")).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{authorization}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

struct Haven {
    child: Child,
    grpc: u16,
    http: u16,
    dir: Option<tempfile::TempDir>,
}

impl Haven {
    /// Stops it (SIGINT) and hands back its data directory.
    fn stop(mut self) -> tempfile::TempDir {
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        assert_eq!(self.child.wait().unwrap().code(), Some(0), "a clean stop");
        self.dir.take().unwrap()
    }
}

impl Drop for Haven {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn start() -> Haven {
    start_in(tempfile::tempdir().unwrap())
}

fn start_in(dir: tempfile::TempDir) -> Haven {
    start_with(dir, &[])
}

fn start_with(dir: tempfile::TempDir, env: &[(&str, &str)]) -> Haven {
    let (grpc, http_port) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_haven"))
        .envs(env.iter().copied())
        .args(["up", "--demo", "--data-dir"])
        .arg(dir.path())
        .args(["--grpc-addr", &format!("127.0.0.1:{grpc}"), "--http-addr", &format!("127.0.0.1:{http_port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut haven = Haven { child, grpc, http: http_port, dir: Some(dir) };
    let deadline = Instant::now() + Duration::from_secs(90);
    while TcpStream::connect(("127.0.0.1", http_port)).is_err() || http(http_port, "GET", "/readyz", None, "").0 != 200
    {
        assert!(haven.child.try_wait().unwrap().is_none(), "haven up exited");
        assert!(Instant::now() < deadline, "haven up never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    haven
}

/// An access token for a demo person, with the AUP accepted.
fn token(haven: &Haven, person: &str) -> String {
    let body = format!(r#"{{"login":"{person}@brightwater.example","password":"brightwater demo 2026"}}"#);
    let (status, signed_in) = http(haven.http, "POST", "/api/v1/sign-in", None, &body);
    assert_eq!(status, 200, "{signed_in}");
    let first = signed_in["access_token"].as_str().unwrap().to_owned();
    let (status, accepted) = http(haven.http, "POST", "/api/v1/aup/accept", Some(&first), r#"{"aup_version":1}"#);
    assert_eq!(status, 200, "{accepted}");
    accepted["access_token"].as_str().unwrap().to_owned()
}

fn signed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reporting_over_grpc_answers_each_role_with_what_it_may_see() {
    let haven = tokio::task::spawn_blocking(start).await.unwrap();
    let lead = token(&haven, "demo-lead");
    let governor = token(&haven, "kestrel-governor");
    let dsl = token(&haven, "kestrel-dsl");
    let auditor = token(&haven, "demo-auditor");
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{}", haven.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ReportingClient::new(channel);

    // The projection catches up with the seeded demo: wait until the lead sees every school.
    let mut dashboard = pb::GetTrustDashboardResponse::default();
    for _attempt in 0..100 {
        dashboard = client
            .get_trust_dashboard(signed(pb::GetTrustDashboardRequest::default(), &lead))
            .await
            .unwrap()
            .into_inner();
        if dashboard.breaches_by_school.len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dashboard.breaches_by_school.len(), 5, "the trust lead sees every school");
    assert!(dashboard.as_of_position > 0);
    assert!(dashboard.open_cases.iter().any(|row| row.case_type == pb::CaseType::AllegationAgainstStaff as i32));

    // A governor: their school's figures, no case types, never the trust or another school.
    let trust_wide = client.get_trust_dashboard(signed(pb::GetTrustDashboardRequest::default(), &governor)).await;
    assert_eq!(trust_wide.unwrap_err().code(), Code::PermissionDenied);
    let other = pb::GetTrustDashboardRequest { school_ids: vec!["heronsgate-academy".into()], ..Default::default() };
    assert_eq!(client.get_trust_dashboard(signed(other, &governor)).await.unwrap_err().code(), Code::PermissionDenied);
    let own = pb::GetTrustDashboardRequest { school_ids: vec!["kestrel-primary".into()], ..Default::default() };
    let own = client.get_trust_dashboard(signed(own, &governor)).await.unwrap().into_inner();
    assert_eq!(own.breaches_by_school.len(), 1);
    assert!(own.open_cases.iter().all(|row| row.case_type == 0), "no case types for a governor: {:?}", own.open_cases);
    assert!(own.critical_cases.is_empty() && own.overdue_actions.is_empty());
    let register = client.get_lado_register(signed(pb::GetLadoRegisterRequest::default(), &governor)).await;
    assert_eq!(register.unwrap_err().code(), Code::PermissionDenied, "a governor never reaches a case register");
    let report = pb::GetGovernorsReportRequest {
        school_id: "kestrel-primary".into(),
        academic_year: "2026-27".into(),
        term: pb::Term::Autumn as i32,
    };
    assert!(client.get_governors_report(signed(report, &governor)).await.unwrap().into_inner().report.is_some());

    // A DSL: their school's register, not the trust's.
    let trust_register = client.get_police_register(signed(pb::GetPoliceRegisterRequest::default(), &dsl)).await;
    assert_eq!(trust_register.unwrap_err().code(), Code::PermissionDenied);
    let own = pb::GetLadoRegisterRequest { school_ids: vec!["kestrel-primary".into()], ..Default::default() };
    let lado = client.get_lado_register(signed(own, &dsl)).await.unwrap().into_inner();
    assert_eq!(lado.entries.len(), 1, "the demo's LADO referral at Kestrel Lane");
    assert_eq!(lado.entries[0].reference_number, "LADO-DEMO-0001");

    // Audit views: the auditor only; each read and verification is recorded.
    let history = pb::GetStreamHistoryRequest { stream_id: "incident-demo-case-k1".into(), ..Default::default() };
    assert_eq!(
        client.get_stream_history(signed(history.clone(), &lead)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let history = client.get_stream_history(signed(history, &auditor)).await.unwrap().into_inner();
    assert_eq!(history.events.len(), 2);
    let chain = client.verify_chain(signed(pb::VerifyChainRequest::default(), &auditor)).await.unwrap().into_inner();
    assert!(chain.ok && chain.events_checked > 0, "{chain:?}");
    let accesses = pb::ListRecordAccessesRequest { stream_id: "incident-demo-case-k1".into(), ..Default::default() };
    let accesses = client.list_record_accesses(signed(accesses, &auditor)).await.unwrap().into_inner();
    assert!(
        accesses.accesses.iter().any(|access| access.principal_id == "user-demo-auditor"),
        "the auditor's own read of the case history is on record: {accesses:?}"
    );
    let opened = pb::ListRecordAccessesRequest { stream_id: "register-lado".into(), ..Default::default() };
    let opened = client.list_record_accesses(signed(opened, &auditor)).await.unwrap().into_inner();
    assert!(
        opened.accesses.iter().any(|access| access.principal_id == "user-kestrel-dsl"),
        "the DSL's opening of the LADO register is on record: {opened:?}"
    );
    let bad = pb::VerifyChainRequest { expected_hash: vec![1, 2, 3], ..Default::default() };
    let refused = client.verify_chain(signed(bad, &auditor)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("expected_hash"), "{}", refused.message());

    // Rebuilds are for the trust lead and trust admin, and nobody signed in gets nothing.
    let rebuild = pb::RebuildProjectionRequest { projection: "reporting".into(), reason: String::new() };
    for person in [&auditor, &governor, &dsl] {
        let refused = client.rebuild_projection(signed(rebuild.clone(), person)).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
        let listed = client.list_projections(signed(pb::ListProjectionsRequest {}, person)).await.unwrap_err();
        assert_eq!(listed.code(), Code::PermissionDenied);
    }
    let anonymous = client.get_trust_dashboard(pb::GetTrustDashboardRequest::default()).await;
    assert_eq!(anonymous.unwrap_err().code(), Code::Unauthenticated);
}

async fn client(haven: &Haven) -> ReportingClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{}", haven.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    ReportingClient::new(channel)
}

/// The trust dashboard for a fixed window, retried while the projection or the access facts
/// catch up after a start, once it holds every event before `at_least`.
async fn settled_dashboard(
    client: &mut ReportingClient<tonic::transport::Channel>,
    token: &str,
    at_least: u64,
) -> pb::GetTrustDashboardResponse {
    // The demo's whole days: the 60 days before today (UTC).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let today = now - now.rem_euclid(86_400);
    let window = pb::GetTrustDashboardRequest {
        school_ids: Vec::new(),
        from: Some(prost_types::Timestamp { seconds: today - 60 * 86_400, nanos: 0 }),
        to: Some(prost_types::Timestamp { seconds: today, nanos: 0 }),
    };
    for _attempt in 0..200 {
        if let Ok(response) = client.get_trust_dashboard(signed(window.clone(), token)).await {
            let response = response.into_inner();
            if response.as_of_position >= at_least && response.breaches_by_school.len() == 5 {
                return response;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the dashboard never caught up to position {at_least}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projection_rebuilt_from_position_0_on_restart_answers_as_the_live_one_did() {
    // The live filter feed off: the log stands still between the two looks.
    let quiet = [("HAVEN_INGEST__DEMO_FEED", "false")];
    let haven = tokio::task::spawn_blocking(move || start_with(tempfile::tempdir().unwrap(), &quiet)).await.unwrap();
    let lead = token(&haven, "demo-lead");
    let mut live_client = client(&haven).await;
    let live = settled_dashboard(&mut live_client, &lead, 1).await;
    let dir = tokio::task::spawn_blocking(move || haven.stop()).await.unwrap();
    // A restart rebuilds the in-memory projection from position 0 of the same log.
    let haven = tokio::task::spawn_blocking(move || start_with(dir, &quiet)).await.unwrap();
    let mut rebuilt_client = client(&haven).await;
    let rebuilt = settled_dashboard(&mut rebuilt_client, &lead, live.as_of_position).await;
    let without_position = |mut r: pb::GetTrustDashboardResponse| {
        r.as_of_position = 0;
        r
    };
    assert!(!live.breaches_by_hour.is_empty() && live.breaches_by_category.len() > 3);
    assert_eq!(without_position(rebuilt), without_position(live), "rebuilt from 0 = live");
}

#[test]
fn the_pages_send_strangers_to_sign_in_refuse_bad_passwords_and_escape_what_they_echo() {
    let haven = start();
    let raw = |request: String| {
        let mut stream = TcpStream::connect(("127.0.0.1", haven.http)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let get = |path: &str, cookie: &str| {
        raw(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{cookie}Connection: close\r\n\r\n"))
    };
    let answer = get("/dashboard", "");
    assert!(answer.starts_with("HTTP/1.1 303") && answer.contains("location: /sign-in"), "{answer}");
    let answer = get("/registers/lado", "Cookie: haven_session=not-a-token\r\n");
    assert!(answer.contains("location: /sign-in"), "a forged cookie is no session: {answer}");
    let form = "login=demo-lead%40brightwater.example&password=wrong";
    let answer = raw(format!(
        "POST /sign-in HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    ));
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("were not accepted") && !answer.to_lowercase().contains("set-cookie"), "{answer}");
    // A signed-in lead asking for a school that does not exist: the page never echoes markup.
    let lead = token(&haven, "demo-lead");
    let cookie = format!("Cookie: haven_session={lead}\r\n");
    let answer = get("/schools/%3Cscript%3Ealert(1)%3C%2Fscript%3E", &cookie);
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(!answer.contains("<script>"), "{answer}");
    let answer = get("/audit?stream=%3Cb%3Ex", &cookie);
    assert!(answer.starts_with("HTTP/1.1 403"), "the lead may not read audit trails: {answer}");
    let answer = get("/dashboard?days=1000", &cookie);
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("days"), "{answer}");
    let answer = get("/registers/lado.csv", &cookie);
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("text/csv"), "{answer}");
    assert!(answer.contains("LADO-DEMO-0001"), "{answer}");
}

/// The value a response sets for cookie `name`.
fn set_cookie(response: &str, name: &str) -> Option<String> {
    response
        .lines()
        .filter_map(|line| line.strip_prefix("set-cookie: "))
        .filter_map(|cookie| cookie.split(';').next()?.split_once('='))
        .find(|(cookie, _)| *cookie == name)
        .map(|(_, value)| value.to_owned())
}

#[test]
fn an_expired_page_session_is_renewed_from_the_refresh_cookie() {
    // Access tokens of one second: expired (past the verifier's 5 s leeway) within the test.
    let haven = start_with(tempfile::tempdir().unwrap(), &[("HAVEN_IDENTITY__ACCESS_TOKEN_TTL_S", "1")]);
    let send = |request: String| {
        let mut stream = TcpStream::connect(("127.0.0.1", haven.http)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let post = |path: &str, form: &str, cookie: &str| {
        send(format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\n{cookie}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
            form.len()
        ))
    };
    let signed_in = post("/sign-in", "login=demo-lead%40brightwater.example&password=brightwater+demo+2026", "");
    let refresh = set_cookie(&signed_in, "haven_refresh").expect("a refresh cookie");
    let session = set_cookie(&signed_in, "haven_session").expect("a session cookie");
    assert!(signed_in.contains("HttpOnly; SameSite=Strict"), "{signed_in}");
    let accepted = post("/aup", "aup_version=1&accept=yes", &format!("Cookie: haven_session={session}\r\n"));
    let session = set_cookie(&accepted, "haven_session").expect("the session with the AUP accepted");
    std::thread::sleep(Duration::from_secs(8));
    let get = |cookie: String| {
        send(format!("GET /dashboard HTTP/1.1\r\nHost: localhost\r\n{cookie}Connection: close\r\n\r\n"))
    };
    let expired = get(format!("Cookie: haven_session={session}\r\n"));
    assert!(expired.contains("location: /sign-in"), "an expired session alone goes to sign in: {expired}");
    let renewed = get(format!("Cookie: haven_session={session}; haven_refresh={refresh}\r\n"));
    assert!(renewed.starts_with("HTTP/1.1 200"), "{renewed}");
    let new_session = set_cookie(&renewed, "haven_session").expect("a renewed session cookie");
    assert_ne!(new_session, session);
    let forged = get("Cookie: haven_refresh=not-a-refresh-token\r\n".to_owned());
    assert!(forged.contains("location: /sign-in"), "{forged}");
    assert!(forged.contains("haven_refresh=; Path=/"), "a refused refresh token is cleared: {forged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_on_request_swaps_in_the_same_answers_and_is_recorded() {
    let quiet = [("HAVEN_INGEST__DEMO_FEED", "false")];
    let haven = tokio::task::spawn_blocking(move || start_with(tempfile::tempdir().unwrap(), &quiet)).await.unwrap();
    let lead = token(&haven, "demo-lead");
    let auditor = token(&haven, "demo-auditor");
    let mut client = client(&haven).await;
    let live = settled_dashboard(&mut client, &lead, 1).await;
    let listed = client.list_projections(signed(pb::ListProjectionsRequest {}, &lead)).await.unwrap().into_inner();
    assert_eq!(listed.projections.len(), 1);
    let before = &listed.projections[0];
    assert_eq!(before.name, "reporting");
    assert!(before.checkpoint_position > 0 && before.checkpoint_position <= before.head_position);
    assert!(before.last_rebuilt_at.is_none() && !before.rebuilding);

    let unknown = pb::RebuildProjectionRequest { projection: "trust-dashboard".into(), reason: String::new() };
    assert_eq!(client.rebuild_projection(signed(unknown, &lead)).await.unwrap_err().code(), Code::NotFound);
    let rebuild = pb::RebuildProjectionRequest { projection: "reporting".into(), reason: "test: rebuild".into() };
    let target = client.rebuild_projection(signed(rebuild, &lead)).await.unwrap().into_inner().target_position;
    assert!(target >= before.checkpoint_position);
    let mut after = pb::ProjectionState::default();
    for _attempt in 0..200 {
        let listed = client.list_projections(signed(pb::ListProjectionsRequest {}, &lead)).await.unwrap().into_inner();
        after = listed.projections[0].clone();
        if after.last_rebuilt_at.is_some() && !after.rebuilding {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(after.last_rebuilt_at.is_some(), "the rebuild finished: {after:?}");
    assert!(after.last_rebuild_error.is_empty(), "{after:?}");
    assert!(after.last_rebuild_events > 0 && after.last_rebuild_position >= before.checkpoint_position, "{after:?}");

    // The swapped-in state answers exactly as the live one did.
    let rebuilt = settled_dashboard(&mut client, &lead, live.as_of_position).await;
    let without_position = |mut r: pb::GetTrustDashboardResponse| {
        r.as_of_position = 0;
        r
    };
    assert_eq!(without_position(rebuilt), without_position(live), "rebuilt on request = live");

    // The request is on record, with who asked and why.
    let history = pb::GetStreamHistoryRequest { stream_id: "projection-reporting".into(), ..Default::default() };
    let history = client.get_stream_history(signed(history, &auditor)).await.unwrap().into_inner();
    assert_eq!(history.events.len(), 1);
    let envelope = history.events[0].envelope.as_ref().unwrap();
    assert_eq!(envelope.event_type, "reporting.ProjectionRebuildRequested");
    let requested = <pb::ProjectionRebuildRequested as prost::Message>::decode(envelope.payload.as_slice()).unwrap();
    assert_eq!(requested.reason, "test: rebuild");
    assert_eq!(requested.requested_by_principal_id, "user-demo-lead");
    assert_eq!(requested.target_position, target);
    // The payload, for people: the proto3 JSON mapping of the message the type names.
    let json: serde_json::Value = serde_json::from_str(&history.events[0].payload_json).unwrap();
    assert_eq!(json["reason"], "test: rebuild");
    assert_eq!(json["requestedByPrincipalId"], "user-demo-lead");

    // The audit pages: an auditor downloads a pack for today and sees who did and read what;
    // the trust lead (no audit trail right) is refused each.
    let case = pb::GetStreamHistoryRequest {
        stream_id: "incident-demo-case-k1".into(),
        purpose: "pack test".into(),
        ..Default::default()
    };
    client.get_stream_history(signed(case, &auditor)).await.unwrap();
    let today = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    let pack = page(haven.http, &format!("/audit/pack?from={today}&to={today}"), &auditor);
    assert!(pack.starts_with("HTTP/1.1 200"), "{pack}");
    assert!(pack.contains("content-type: application/x-ndjson"), "{pack}");
    assert!(pack.contains(&format!("attachment; filename=\"haven-audit-pack-{today}-{today}.jsonl\"")), "{pack}");
    let lines: Vec<&str> = pack.split_once("\r\n\r\n").unwrap().1.lines().collect();
    assert!(lines[0].starts_with(r#"{"record":"pack","format":"haven-audit-pack/1""#), "{}", lines[0]);
    assert!(lines[1].starts_with(r#"{"record":"chain","ok":true"#), "{}", lines[1]);
    assert!(lines.iter().any(|line| line.contains(r#""event_type":"reporting.ProjectionRebuildRequested""#)));
    assert!(
        lines.iter().any(|line| line.starts_with(r#"{"record":"access""#)
            && line.contains(r#""stream_id":"access-incident-demo-case-k1""#)
            && line.contains(r#""purpose":"pack test""#)),
        "the auditor's read of the case history is an access in the pack"
    );
    assert!(lines.last().unwrap().starts_with(r#"{"record":"seal""#));
    let bad = page(haven.http, &format!("/audit/pack?from={today}&to=yesterday"), &auditor);
    assert!(bad.starts_with("HTTP/1.1 400") && bad.contains("to: a day as YYYY-MM-DD"), "{bad}");

    let actions = page(haven.http, "/audit/actor?principal=user-demo-auditor", &auditor);
    assert!(actions.starts_with("HTTP/1.1 200"), "{actions}");
    assert!(actions.contains("reporting.AuditPackExported"), "the export is one of the auditor's actions");
    let readers = page(haven.http, "/audit/accesses?stream=incident-demo-case-k1", &auditor);
    assert!(readers.starts_with("HTTP/1.1 200") && readers.contains("user-demo-auditor"), "{readers}");
    for path in [
        "/audit/pack?from=2026-01-01&to=2026-01-02",
        "/audit/actor?principal=user-demo-lead",
        "/audit/accesses?stream=incident-demo-case-k1",
    ] {
        let refused = page(haven.http, path, &lead);
        assert!(refused.starts_with("HTTP/1.1 403"), "{path}: {refused}");
    }
}

/// A page fetched with `token` as the session cookie: the whole response.
fn page(port: u16, path: &str, token: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nCookie: haven_session={token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}
