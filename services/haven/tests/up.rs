//! `haven up` as a user runs it: a real process on loopback ports.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

fn start(data_dir: &std::path::Path, grpc: u16, http: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["up", "--data-dir"])
        .arg(data_dir)
        .args(["--grpc-addr", &format!("127.0.0.1:{grpc}"), "--http-addr", &format!("127.0.0.1:{http}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_ready(child: &mut Child, http: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        assert!(child.try_wait().unwrap().is_none(), "haven up exited before it was ready");
        if http_status(http, "/readyz") == Some(200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("haven up never became ready");
}

#[test]
fn up_becomes_ready_and_stops_cleanly_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, http) = (free_port(), free_port());
    let mut child = start(dir.path(), grpc, http);
    wait_ready(&mut child, http);
    assert_eq!(http_status(http, "/healthz"), Some(200));
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "Ctrl-C is a clean exit");
    let verify = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["log", "verify", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(verify.status.success());
    assert!(String::from_utf8_lossy(&verify.stdout).starts_with("OK: "), "the stopped log verifies");
}

#[test]
fn a_port_in_use_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let grpc = taken.local_addr().unwrap().port();
    let output = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["up", "--data-dir"])
        .arg(dir.path())
        .args(["--grpc-addr", &format!("127.0.0.1:{grpc}"), "--http-addr", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--grpc-addr") && stderr.contains("in use"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_bad_flag_is_refused_naming_it() {
    let output =
        Command::new(env!("CARGO_BIN_EXE_haven")).args(["up", "--grpc-addr", "not-an-address"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--grpc-addr"), "{stderr}");
}

/// The demo (the trust, 5 schools, 10 people registered, granted a role and given a password,
/// the AUP, 6 learners) and the signing key's announcement.
const DEMO_EVENTS: u64 = 1 + 5 + 3 * 10 + 1 + 6 + 1;

fn stop(child: &mut Child) {
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(0), "Ctrl-C is a clean exit");
}

fn verified_events(dir: &std::path::Path) -> u64 {
    let verify =
        Command::new(env!("CARGO_BIN_EXE_haven")).args(["log", "verify", "--data-dir"]).arg(dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(verify.status.success(), "{stdout}");
    stdout.strip_prefix("OK: ").and_then(|rest| rest.split(' ').next()).unwrap().parse().unwrap()
}

#[test]
fn the_demo_seeds_once_across_restarts_and_its_events_can_be_tailed() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, http) = (free_port(), free_port());
    let mut first_round = None;
    for _round in 0..2 {
        let utc_day = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 86_400;
        let mut child = Command::new(env!("CARGO_BIN_EXE_haven"))
            .args(["up", "--demo", "--data-dir"])
            .arg(dir.path())
            .args(["--grpc-addr", &format!("127.0.0.1:{grpc}"), "--http-addr", &format!("127.0.0.1:{http}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_ready(&mut child, http);
        let tail = Command::new(env!("CARGO_BIN_EXE_haven"))
            .args(["log", "tail", "--grpc-addr", &format!("127.0.0.1:{grpc}")])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&tail.stdout).into_owned();
        assert!(tail.status.success(), "{listing}");
        assert_eq!(listing.matches("identity.SchoolRegistered").count(), 5, "{listing}");
        assert_eq!(listing.matches("identity.TrustEstablished").count(), 1, "{listing}");
        assert!(listing.contains("ingest.BreachObserved"), "the demo's invented breaches for the dashboard");
        stop(&mut child);
        // The identity demo, the signing key's announcement and the invented breaches, alerts
        // and referrals (which grow by a day at midnight UTC), each written once.
        let events = verified_events(dir.path());
        assert!(events > DEMO_EVENTS, "{events}");
        match first_round {
            None => first_round = Some((utc_day, events)),
            Some((day, first)) if day == utc_day => assert_eq!(events, first, "a restart writes nothing again"),
            Some(_) => {}
        }
    }
}

#[test]
fn identity_served_alone_uses_a_log_node_served_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (log_grpc, log_http, id_grpc, id_http) = (free_port(), free_port(), free_port(), free_port());
    let mut log_node = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["serve", "eventlog", "--bootstrap", "--data-dir"])
        .arg(dir.path())
        .args(["--grpc-addr", &format!("127.0.0.1:{log_grpc}"), "--http-addr", &format!("127.0.0.1:{log_http}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(&mut log_node, log_http);
    let identity_dir = tempfile::tempdir().unwrap();
    let mut identity = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["serve", "identity", "--demo", "--eventlog-url", &format!("http://127.0.0.1:{log_grpc}")])
        .arg("--data-dir")
        .arg(identity_dir.path())
        .args(["--grpc-addr", &format!("127.0.0.1:{id_grpc}"), "--http-addr", &format!("127.0.0.1:{id_http}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(&mut identity, id_http);
    stop(&mut identity);
    stop(&mut log_node);
    assert_eq!(
        verified_events(dir.path()),
        DEMO_EVENTS,
        "identity wrote the demo and its signing key through the remote log"
    );
}

fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

#[test]
fn identity_routes_answer_at_the_edge_and_deny_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, http_port) = (free_port(), free_port());
    let mut child = start(dir.path(), grpc, http_port);
    wait_ready(&mut child, http_port);
    let (status, jwks) = http(http_port, "GET", "/.well-known/jwks.json", "");
    assert_eq!(status, 200, "{jwks}");
    assert!(jwks.contains("Ed25519") && jwks.contains("\"kid\""), "{jwks}");
    let (status, body) = http(http_port, "GET", "/api/v1/me", "");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"code\":\"unauthenticated\""), "{body}");
    let (status, body) = http(http_port, "GET", "/api/v1/access-register", "");
    assert_eq!(status, 401, "{body}");
    let wrong = r#"{"login":"nobody@example.org","password":"not the password"}"#;
    let (status, body) = http(http_port, "POST", "/api/v1/sign-in", wrong);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("the login or password is wrong"), "{body}");
    let key_dir = dir.path().join("identity").join("keys");
    for entry in std::fs::read_dir(&key_dir).unwrap() {
        use std::os::unix::fs::PermissionsExt;
        let mode = entry.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "signing keys are stored 0600");
    }
    stop(&mut child);
}

#[test]
fn a_demo_dsl_signs_in_from_the_command_line_and_sees_their_school_only() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, http_port) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["up", "--demo", "--data-dir"])
        .arg(dir.path())
        .args(["--grpc-addr", &format!("127.0.0.1:{grpc}"), "--http-addr", &format!("127.0.0.1:{http_port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(&mut child, http_port);
    let sign_in = |password: &str, accept: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_haven"));
        command.args([
            "sign-in",
            "--grpc-addr",
            &format!("127.0.0.1:{grpc}"),
            "--login",
            "kestrel-dsl@brightwater.example",
        ]);
        if accept {
            command.arg("--accept-aup");
        }
        let mut process = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        writeln!(process.stdin.take().unwrap(), "{password}").unwrap();
        process.wait_with_output().unwrap()
    };
    let refused = sign_in("not the demo password", false);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("sign-in refused"));
    let pending: serde_json::Value = serde_json::from_slice(&sign_in("brightwater demo 2026", false).stdout).unwrap();
    assert_eq!(pending["aup_required"], true, "{pending}");
    let output = sign_in("brightwater demo 2026", true);
    let tokens: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(tokens["aup_required"], false, "{tokens}");
    let token = tokens["access_token"].as_str().unwrap();
    let authorised = |path: &str| {
        let mut stream = TcpStream::connect(("127.0.0.1", http_port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status: u16 = response.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, response)
    };
    let (status, me) = authorised("/api/v1/me");
    assert_eq!(status, 200, "{me}");
    assert!(me.contains("user-kestrel-dsl") && me.contains("\"dsl\""), "{me}");
    assert_eq!(authorised("/api/v1/access-register?school_id=kestrel-primary").0, 200);
    assert_eq!(authorised("/api/v1/access-register?school_id=heronsgate-academy").0, 403);
    assert_eq!(authorised("/api/v1/access-register").0, 403, "not the whole trust");
    stop(&mut child);
}

#[test]
fn a_new_deployment_is_bootstrapped_once_and_its_first_admin_signs_in() {
    let dir = tempfile::tempdir().unwrap();
    let (grpc, http_port) = (free_port(), free_port());
    let mut child = start(dir.path(), grpc, http_port);
    wait_ready(&mut child, http_port);
    let run = |args: &[&str], stdin: &str| {
        let mut process = Command::new(env!("CARGO_BIN_EXE_haven"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(process.stdin.take().unwrap(), "{stdin}").unwrap();
        process.wait_with_output().unwrap()
    };
    let url = format!("http://127.0.0.1:{grpc}");
    let bootstrap = [
        "identity",
        "bootstrap",
        "--eventlog-url",
        &url,
        "--trust-id",
        "fernhill",
        "--trust-name",
        "Fernhill Learning Trust (invented)",
        "--admin-id",
        "first-admin",
        "--admin-name",
        "Invented Administrator",
        "--admin-login",
        "first-admin@fernhill.example",
    ];
    let weak = run(&bootstrap, "password");
    assert_eq!(weak.status.code(), Some(1), "a weak password is refused");
    assert!(String::from_utf8_lossy(&weak.stderr).contains("password"), "{}", String::from_utf8_lossy(&weak.stderr));
    let done = run(&bootstrap, "kettle meadow lantern 7");
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let again = run(&bootstrap, "kettle meadow lantern 7");
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already established"));
    // The identity directory follows the log; the new admin can sign in once it has caught up.
    let grpc_addr = format!("127.0.0.1:{grpc}");
    // No AUP is published yet: the admin signs in with the AUP still to come, which lets them
    // publish it (an AUP-exempt action) and nothing else.
    let sign_in = ["sign-in", "--grpc-addr", &grpc_addr, "--login", "first-admin@fernhill.example"];
    let deadline = Instant::now() + Duration::from_secs(20);
    let tokens = loop {
        let output = run(&sign_in, "kettle meadow lantern 7");
        if output.status.success() {
            break serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap();
        }
        assert!(Instant::now() < deadline, "never signed in: {}", String::from_utf8_lossy(&output.stderr));
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(tokens["access_token"].as_str().is_some_and(|t| !t.is_empty()), "{tokens}");
    assert_eq!(tokens["aup_required"], true, "{tokens}");
    stop(&mut child);
}
