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
    let state =
        GatewayState { readiness: Readiness::default(), metrics: Metrics::default(), identity: None, web: None };
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
    let state =
        GatewayState { readiness: Readiness::default(), metrics: Metrics::default(), identity: None, web: None };
    let (status, body) = get(&state, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let document: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert!(document["paths"].get(path).is_some(), "{path} is described");
    }
    assert!(document["components"]["schemas"].get("ReadinessBody").is_some());
}
