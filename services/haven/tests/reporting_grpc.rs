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
    _dir: tempfile::TempDir,
}

impl Drop for Haven {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn start() -> Haven {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, http_port) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["up", "--demo", "--data-dir"])
        .arg(dir.path())
        .args(["--grpc-addr", &format!("127.0.0.1:{grpc}"), "--http-addr", &format!("127.0.0.1:{http_port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut haven = Haven { child, grpc, http: http_port, _dir: dir };
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

    // Not served yet, and nobody signed in gets nothing.
    let rebuild = client.rebuild_projection(signed(pb::RebuildProjectionRequest::default(), &auditor)).await;
    assert_eq!(rebuild.unwrap_err().code(), Code::PermissionDenied);
    let anonymous = client.get_trust_dashboard(pb::GetTrustDashboardRequest::default()).await;
    assert_eq!(anonymous.unwrap_err().code(), Code::Unauthenticated);
}
