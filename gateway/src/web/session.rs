//! Signing in from a browser: a form posting the login and password, the access token kept in
//! an `HttpOnly`, `SameSite=Strict` cookie (no script can read it, no other site can send it,
//! so the forms need no separate CSRF token), the refresh token beside it in another such
//! cookie to renew the 15-minute session, the AUP accepted when identity asks for it.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use haven_authz::grpc::AuthError;
use haven_proto::v1 as pb;
use serde::Deserialize;

use super::html::{self, escape};
use super::{Viewer, WebEdge};
use crate::GatewayState;

/// The cookie holding the access token.
pub const SESSION_COOKIE: &str = "haven_session";

/// The cookie holding the refresh token, which renews an expired page session.
pub const REFRESH_COOKIE: &str = "haven_refresh";

/// The form of `/sign-in`.
#[derive(Deserialize)]
pub struct SignInForm {
    login: String,
    password: String,
}

/// The form of `/aup`.
#[derive(Debug, Deserialize)]
pub struct AcceptForm {
    aup_version: u32,
    #[serde(default)]
    accept: Option<String>,
}

fn cookie<'a>(headers: &'a HeaderMap, wanted: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, token)| token)
        .filter(|token| !token.is_empty())
}

/// The token in the request's session cookie.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, SESSION_COOKIE)
}

fn set_cookie(name: &str, token: &str, max_age_s: i64) -> HeaderValue {
    // Tokens are base64url and dots: nothing that needs quoting in a cookie.
    let cookie = format!("{name}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}");
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("haven_session=; Path=/; Max-Age=0"))
}

fn set_session(token: &str, max_age_s: i64) -> HeaderValue {
    set_cookie(SESSION_COOKIE, token, max_age_s)
}

/// The cookies for a token pair: the access token, and the refresh token when one came.
fn session_cookies(tokens: &pb::TokenPair) -> Vec<HeaderValue> {
    let now = unix_now();
    let mut cookies =
        vec![set_session(&tokens.access_token, tokens.access_expires_at.map_or(0, |t| t.seconds - now).max(0))];
    if !tokens.refresh_token.is_empty() {
        let max_age = tokens.refresh_expires_at.map_or(0, |t| t.seconds - now).max(0);
        cookies.push(set_cookie(REFRESH_COOKIE, &tokens.refresh_token, max_age));
    }
    cookies
}

/// Renews an expired page session before the page sees the request: with a refresh cookie
/// and no valid access token, identity's `RefreshToken` gives a new one, which the page is
/// served with and the browser keeps. A refused refresh clears the refresh cookie; the page
/// then sends the person to sign in.
pub async fn renew(State(state): State<GatewayState>, mut request: axum::extract::Request, next: Next) -> Response {
    let (Some(web), Some(identity)) = (state.web.as_ref(), state.identity.as_ref()) else {
        return next.run(request).await;
    };
    let headers = request.headers();
    let Some(refresh) = cookie(headers, REFRESH_COOKIE) else { return next.run(request).await };
    let expired = session_token(headers)
        .is_none_or(|token| matches!(web.authenticator.authenticate(token, unix_now()), Err(AuthError::Token(_))));
    if !expired {
        return next.run(request).await;
    }
    let refresh_request = pb::RefreshTokenRequest { refresh_token: refresh.to_owned() };
    match identity.client.clone().refresh_token(refresh_request).await {
        Ok(response) => {
            let tokens = response.into_inner().tokens.unwrap_or_default();
            if let Ok(value) = HeaderValue::from_str(&format!("{SESSION_COOKIE}={}", tokens.access_token)) {
                request.headers_mut().insert(header::COOKIE, value);
            }
            let mut response = next.run(request).await;
            for cookie in session_cookies(&tokens) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(_) => {
            request.headers_mut().remove(header::COOKIE);
            with_cookie(next.run(request).await, set_cookie(REFRESH_COOKIE, "", 0))
        }
    }
}

fn with_cookie(mut response: Response, cookie: HeaderValue) -> Response {
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The signed-in viewer of a page, or the answer to give instead: to the sign-in page when
/// there is no valid session, to the AUP when it must be accepted first.
pub fn viewer(state: &GatewayState, headers: &HeaderMap) -> Result<(WebEdge, Viewer), Response> {
    let Some(web) = state.web.clone() else {
        return Err(html::error_page(StatusCode::SERVICE_UNAVAILABLE, "Reporting is not served by this process."));
    };
    let Some(token) = session_token(headers) else { return Err(Redirect::to("/sign-in").into_response()) };
    match web.authenticator.authenticate(token, unix_now()) {
        Ok(caller) if caller.aup_current => Ok((web, Viewer { caller })),
        Ok(_) => Err(Redirect::to("/aup").into_response()),
        Err(AuthError::NotReady) => {
            Err(html::error_page(StatusCode::SERVICE_UNAVAILABLE, "Haven is starting; try again in a moment."))
        }
        Err(AuthError::Token(_)) => Err(Redirect::to("/sign-in").into_response()),
    }
}

fn sign_in_form(message: Option<&str>) -> String {
    let notice = message.map(|m| format!("<p class=\"notice\" role=\"alert\">{}</p>", escape(m))).unwrap_or_default();
    format!(
        "<h1>Sign in to Haven</h1>{notice}<form method=\"post\" action=\"/sign-in\" class=\"card narrow\">\
         <label>Login <input id=\"login\" name=\"login\" type=\"email\" autocomplete=\"username\" required></label>\
         <label>Password <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button id=\"sign-in\" type=\"submit\">Sign in</button></form>"
    )
}

pub async fn sign_in_page() -> Response {
    html::page("Sign in", None, &sign_in_form(None)).into_response()
}

pub async fn sign_in(State(state): State<GatewayState>, Form(form): Form<SignInForm>) -> Response {
    let Some(identity) = state.identity else {
        return html::error_page(StatusCode::SERVICE_UNAVAILABLE, "Identity is not served by this process.");
    };
    let request = pb::SignInRequest { login: form.login, password: form.password };
    match identity.client.clone().sign_in(request).await {
        Ok(response) => {
            let tokens = response.into_inner().tokens.unwrap_or_default();
            let next = if tokens.aup_required { "/aup" } else { "/dashboard" };
            let mut response = Redirect::to(next).into_response();
            for cookie in session_cookies(&tokens) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(status) => {
            let (code, message) = match status.code() {
                tonic::Code::ResourceExhausted => {
                    (StatusCode::TOO_MANY_REQUESTS, "Too many attempts. Wait a few minutes, then try again.")
                }
                tonic::Code::Unauthenticated | tonic::Code::InvalidArgument | tonic::Code::PermissionDenied => {
                    (StatusCode::UNAUTHORIZED, "That login and password were not accepted.")
                }
                _ => (StatusCode::SERVICE_UNAVAILABLE, "Signing in is not possible right now; try again shortly."),
            };
            (code, html::page("Sign in", None, &sign_in_form(Some(message)))).into_response()
        }
    }
}

fn bearer(token: &str) -> Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>> {
    format!("Bearer {token}").parse().ok()
}

pub async fn aup_page(State(state): State<GatewayState>, headers: HeaderMap) -> Response {
    let (Some(identity), Some(token)) = (state.identity, session_token(&headers)) else {
        return Redirect::to("/sign-in").into_response();
    };
    let mut request = tonic::Request::new(pb::GetAupRequest {});
    if let Some(value) = bearer(token) {
        request.metadata_mut().insert("authorization", value);
    }
    match identity.client.clone().get_aup(request).await {
        Ok(response) => {
            let aup = response.into_inner();
            let sha: String = aup.text_sha256.iter().map(|byte| format!("{byte:02x}")).collect();
            let body = format!(
                "<h1>Acceptable use policy</h1><div class=\"card narrow\"><p>Before using Haven you must accept the \
                 trust's acceptable use policy, version {version}: use Haven only for the safeguarding work you are \
                 asked to do, and never share what you see.</p><p class=\"muted\">Text fingerprint (SHA-256): \
                 <code>{sha}</code></p><form method=\"post\" action=\"/aup\">\
                 <input type=\"hidden\" name=\"aup_version\" value=\"{version}\">\
                 <label><input id=\"accept\" type=\"checkbox\" name=\"accept\" value=\"yes\" required> I have read \
                 and accept it</label><button id=\"accept-aup\" type=\"submit\">Accept and continue</button></form></div>",
                version = aup.aup_version,
                sha = escape(&sha),
            );
            html::page("Acceptable use policy", None, &body).into_response()
        }
        Err(status) if status.code() == tonic::Code::Unauthenticated => Redirect::to("/sign-in").into_response(),
        Err(_) => html::error_page(StatusCode::SERVICE_UNAVAILABLE, "The policy cannot be read right now."),
    }
}

pub async fn accept_aup(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Form(form): Form<AcceptForm>,
) -> Response {
    let (Some(identity), Some(token)) = (state.identity, session_token(&headers)) else {
        return Redirect::to("/sign-in").into_response();
    };
    if form.accept.as_deref() != Some("yes") {
        return html::error_page(StatusCode::BAD_REQUEST, "Tick the box to accept the policy.");
    }
    let mut request = tonic::Request::new(pb::AcceptAupRequest { aup_version: form.aup_version });
    if let Some(value) = bearer(token) {
        request.metadata_mut().insert("authorization", value);
    }
    match identity.client.clone().accept_aup(request).await {
        Ok(response) => {
            let tokens = response.into_inner().tokens.unwrap_or_default();
            let max_age = tokens.access_expires_at.map_or(0, |t| t.seconds - unix_now()).max(0);
            with_cookie(Redirect::to("/dashboard").into_response(), set_session(&tokens.access_token, max_age))
        }
        Err(status) if status.code() == tonic::Code::Unauthenticated => Redirect::to("/sign-in").into_response(),
        Err(status) if status.code() == tonic::Code::FailedPrecondition || status.code() == tonic::Code::Aborted => {
            Redirect::to("/aup").into_response()
        }
        Err(_) => html::error_page(StatusCode::SERVICE_UNAVAILABLE, "The policy cannot be accepted right now."),
    }
}

pub async fn sign_out(State(state): State<GatewayState>, headers: HeaderMap) -> Response {
    if let (Some(identity), Some(token)) = (state.identity, session_token(&headers)) {
        let mut request = tonic::Request::new(pb::SignOutRequest {});
        if let Some(value) = bearer(token) {
            request.metadata_mut().insert("authorization", value);
        }
        // Signing out of an expired session changes nothing; the cookie goes either way.
        let _ = identity.client.clone().sign_out(request).await;
    }
    let response = with_cookie(Redirect::to("/sign-in").into_response(), set_session("", 0));
    with_cookie(response, set_cookie(REFRESH_COOKIE, "", 0))
}
