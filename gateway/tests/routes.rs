//! The gateway's routes, served by the real router.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use haven_gateway::{GatewayState, router};
use haven_runtime::{Metrics, Readiness};
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn get(state: &GatewayState, path: &str) -> (StatusCode, String) {
    let response = router(state.clone()).oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn readyz_follows_every_component() {
    let state = GatewayState {
        readiness: Readiness::default(),
        metrics: Metrics::default(),
        identity: None,
        custody: None,
        incidents: None,
        filtering: None,
        web: None,
    };
    let log = state.readiness.register("eventlog", "opening");
    let (status, body) = get(&state, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("opening"), "{body}");
    log.set_ready();
    let (status, body) = get(&state, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(get(&state, "/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn openapi_describes_every_route() {
    let state = GatewayState {
        readiness: Readiness::default(),
        metrics: Metrics::default(),
        identity: None,
        custody: None,
        incidents: None,
        filtering: None,
        web: None,
    };
    let (status, body) = get(&state, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let document: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert!(document["paths"].get(path).is_some(), "{path} is described");
    }
    assert!(document["components"]["schemas"].get("ReadinessBody").is_some());
    for path in [
        "/api/v1/concerns",
        "/api/v1/concerns/{concern_id}/triage",
        "/api/v1/cases",
        "/api/v1/cases/{case_id}",
        "/api/v1/cases/{case_id}/actions",
        "/api/v1/cases/{case_id}/referrals",
        "/api/v1/cases/{case_id}/close",
        "/api/v1/learners/{subject_id}/chronology",
        "/api/v1/alerts/{alert_id}/acknowledge",
    ] {
        assert!(document["paths"].get(path).is_some(), "{path} is described");
    }
    assert!(
        document["paths"]["/api/v1/cases"].get("post").is_some()
            && document["paths"]["/api/v1/cases"].get("get").is_some()
    );
}

#[tokio::test]
async fn incidents_routes_without_incidents_answer_unavailable() {
    let state = GatewayState {
        readiness: Readiness::default(),
        metrics: Metrics::default(),
        identity: None,
        custody: None,
        incidents: None,
        filtering: None,
        web: None,
    };
    let (status, body) = get(&state, "/api/v1/cases").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("\"code\":\"unavailable\""), "{body}");
}

#[tokio::test]
async fn custody_routes_are_described_and_unavailable_where_custody_is_not_served() {
    let state = GatewayState {
        readiness: Readiness::default(),
        metrics: Metrics::default(),
        identity: None,
        custody: None,
        incidents: None,
        filtering: None,
        web: None,
    };
    let (_, body) = get(&state, "/openapi.json").await;
    let document: serde_json::Value = serde_json::from_str(&body).unwrap();
    for path in [
        "/api/v1/custody",
        "/api/v1/custody/{custody_id}",
        "/api/v1/custody/{custody_id}/export.json",
        "/api/v1/custody/{custody_id}/export.html",
        "/api/v1/custody/{custody_id}/hand-to-police",
        "/api/v1/devices/allocations",
    ] {
        assert!(document["paths"].get(path).is_some(), "{path} is described");
    }
    let (status, body) = get(&state, "/api/v1/custody/some-record").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("\"code\":\"unavailable\""), "{body}");
}
