//! Identity's HTTP routes: sign-in, tokens, the AUP, who am I, the access register and the
//! JWKS. Each route is authorised at the edge with the same rules and authenticator as the
//! gRPC service (`AuthLayer::admit` on the method it calls), then forwarded over gRPC with the
//! caller's bearer token, where identity checks again.
//!
//! ```text
//!  HTTP ─▶ admit(gRPC path, Authorization) ─▶ 401/403/503 ErrorBody │ IdentityClient ─▶ JSON
//! ```

use crate::GrpcChannel;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use haven_authz::AuthLayer;
use haven_kernel::ErrorCode;
use haven_proto::v1 as pb;
use haven_proto::v1::identity_client::IdentityClient;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::GatewayState;

/// What the identity routes need: a gRPC client of identity and the edge's layer.
#[derive(Clone, Debug)]
pub struct IdentityEdge {
    pub client: IdentityClient<GrpcChannel>,
    pub layer: AuthLayer,
}

/// The body of every non-2xx answer (`haven.v1.ErrorBody`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The shared error code, e.g. `permission_denied`.
    pub code: String,
    /// For people; names the field or rule at fault, never personal data.
    pub message: String,
}

/// Login and password.
#[derive(Deserialize, ToSchema)]
pub struct SignInBody {
    pub login: String,
    pub password: String,
}

impl std::fmt::Debug for SignInBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignInBody { .. }")
    }
}

/// A refresh token.
#[derive(Deserialize, ToSchema)]
pub struct RefreshBody {
    pub refresh_token: String,
}

impl std::fmt::Debug for RefreshBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshBody { .. }")
    }
}

/// A school system's client credentials.
#[derive(Deserialize, ToSchema)]
pub struct ClientCredentialsBody {
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for ClientCredentialsBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientCredentialsBody { .. }")
    }
}

/// The AUP version the person read and accepts.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AcceptAupBody {
    pub aup_version: u32,
}

/// Tokens, as sign-in, refresh, the exchange and AUP acceptance return them.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokensBody {
    pub access_token: String,
    /// Unix seconds.
    pub access_expires_at: i64,
    /// Absent for school systems and after accepting the AUP (keep the one you have).
    pub refresh_token: Option<String>,
    pub refresh_expires_at: Option<i64>,
    /// Until the AUP in force is accepted, only AUP routes are allowed.
    pub aup_required: bool,
}

/// A role grant.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantBody {
    pub role: String,
    /// Absent for the trust.
    pub school_id: Option<String>,
}

/// Who the token says the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmIBody {
    pub principal_id: String,
    pub grants: Vec<GrantBody>,
    pub school_id: Option<String>,
    pub aup_required: bool,
}

/// The AUP in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct AupBody {
    /// 0 when none is published.
    pub aup_version: u32,
    /// Hex SHA-256 of the text.
    pub text_sha256: String,
}

/// One line of the access register.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessEntryBody {
    pub position: u64,
    /// Unix seconds.
    pub at: i64,
    pub user_id: String,
    /// `user_registered`, `role_granted`, `role_revoked`, `aup_accepted`, `user_disabled`.
    pub change: String,
    pub role: Option<String>,
    pub school_id: Option<String>,
    pub by: String,
    pub reason: String,
}

/// Which school's register (absent: everything the caller may see).
#[derive(Debug, Deserialize, IntoParams)]
pub struct RegisterQuery {
    pub school_id: Option<String>,
}

pub(crate) fn error(code: ErrorCode, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(ErrorBody { code: code.as_str().to_owned(), message: message.into() })).into_response()
}

/// A gRPC status as the HTTP answer with the same code (ADR 0005).
pub(crate) fn from_status(status: tonic::Status) -> Response {
    let grpc = status.code() as i32;
    let code = ErrorCode::ALL.into_iter().find(|code| code.grpc_code() == grpc).unwrap_or(ErrorCode::Internal);
    error(code, status.message())
}

fn unavailable() -> Response {
    error(ErrorCode::Unavailable, "identity is not served by this process")
}

/// The edge's check for the gRPC method a route calls; returns the request to forward.
fn admitted<T>(
    edge: &IdentityEdge,
    method: &str,
    headers: &HeaderMap,
    message: T,
) -> Result<tonic::Request<T>, Response> {
    admit(&edge.layer, &format!("/haven.v1.Identity/{method}"), headers, message)
}

/// The edge's check of a route by the gRPC method it calls (the same rules and authenticator
/// as the gRPC layer); the request to forward, carrying the caller's bearer token.
pub(crate) fn admit<T>(
    layer: &haven_authz::AuthLayer,
    path: &str,
    headers: &HeaderMap,
    message: T,
) -> Result<tonic::Request<T>, Response> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    layer.admit(path, authorization).map_err(from_status)?;
    let mut request = tonic::Request::new(message);
    if let Some(value) = authorization.and_then(|value| value.parse().ok()) {
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

fn tokens(pair: Option<pb::TokenPair>) -> Json<TokensBody> {
    let pair = pair.unwrap_or_default();
    Json(TokensBody {
        access_token: pair.access_token,
        access_expires_at: pair.access_expires_at.map_or(0, |t| t.seconds),
        refresh_token: (!pair.refresh_token.is_empty()).then_some(pair.refresh_token),
        refresh_expires_at: pair.refresh_expires_at.map(|t| t.seconds),
        aup_required: pair.aup_required,
    })
}

fn role_name(raw: i32) -> Option<String> {
    let role = pb::Role::try_from(raw).ok().filter(|role| *role != pb::Role::Unspecified)?;
    Some(role.as_str_name().trim_start_matches("ROLE_").to_lowercase())
}

fn non_empty(raw: String) -> Option<String> {
    (!raw.is_empty()).then_some(raw)
}

/// Signs in with a login and password.
#[utoipa::path(post, path = "/api/v1/sign-in", tag = "identity", request_body = SignInBody,
    responses((status = 200, body = TokensBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn sign_in(State(state): State<GatewayState>, headers: HeaderMap, Json(body): Json<SignInBody>) -> Response {
    let Some(edge) = state.identity else { return unavailable() };
    let message = pb::SignInRequest { login: body.login, password: body.password };
    let request = match admitted(&edge, "SignIn", &headers, message) {
        Ok(request) => request,
        Err(response) => return response,
    };
    match edge.client.clone().sign_in(request).await {
        Ok(response) => tokens(response.into_inner().tokens).into_response(),
        Err(status) => from_status(status),
    }
}

/// A new access token for a live session.
#[utoipa::path(post, path = "/api/v1/token/refresh", tag = "identity", request_body = RefreshBody,
    responses((status = 200, body = TokensBody), (status = 401, body = ErrorBody)))]
pub async fn refresh(State(state): State<GatewayState>, headers: HeaderMap, Json(body): Json<RefreshBody>) -> Response {
    let Some(edge) = state.identity else { return unavailable() };
    let request = match admitted(
        &edge,
        "RefreshToken",
        &headers,
        pb::RefreshTokenRequest { refresh_token: body.refresh_token },
    ) {
        Ok(request) => request,
        Err(response) => return response,
    };
    match edge.client.clone().refresh_token(request).await {
        Ok(response) => tokens(response.into_inner().tokens).into_response(),
        Err(status) => from_status(status),
    }
}

/// A school system's client credentials for a one-school, ingest-only access token.
#[utoipa::path(post, path = "/api/v1/token/client-credentials", tag = "identity", request_body = ClientCredentialsBody,
    responses((status = 200, body = TokensBody), (status = 401, body = ErrorBody)))]
pub async fn client_credentials(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Json(body): Json<ClientCredentialsBody>,
) -> Response {
    let Some(edge) = state.identity else { return unavailable() };
    let message = pb::ExchangeClientCredentialsRequest { client_id: body.client_id, client_secret: body.client_secret };
    let request = match admitted(&edge, "ExchangeClientCredentials", &headers, message) {
        Ok(request) => request,
        Err(response) => return response,
    };
    match edge.client.clone().exchange_client_credentials(request).await {
        Ok(response) => tokens(response.into_inner().tokens).into_response(),
        Err(status) => from_status(status),
    }
}

/// Ends the caller's session.
#[utoipa::path(post, path = "/api/v1/sign-out", tag = "identity",
    responses((status = 204, description = "Signed out"), (status = 401, body = ErrorBody)))]
pub async fn sign_out(State(state): State<GatewayState>, headers: HeaderMap) -> Response {
    let Some(edge) = state.identity else { return unavailable() };
    let request = match admitted(&edge, "SignOut", &headers, pb::SignOutRequest {}) {
        Ok(request) => request,
        Err(response) => return response,
    };
    match edge.client.clone().sign_out(request).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(status) => from_status(status),
    }
}

/// Who the bearer token says the caller is.
#[utoipa::path(get, path = "/api/v1/me", tag = "identity",
    responses((status = 200, body = WhoAmIBody), (status = 401, body = ErrorBody)))]
pub async fn me(State(state): State<GatewayState>, headers: HeaderMap) -> Response {
    let Some(edge) = state.identity else { return unavailable() };
    let request = match admitted(&edge, "WhoAmI", &headers, pb::WhoAmIRequest {}) {
        Ok(request) => request,
        Err(response) => return response,
    };
    match edge.client.clone().who_am_i(request).await {
        Ok(response) => {
            let me = response.into_inner();
            let grants = me
                .grants
                .into_iter()
                .map(|grant| GrantBody {
                    role: role_name(grant.role).unwrap_or_default(),
                    school_id: non_empty(grant.school_id),
                })
                .collect();
            Json(WhoAmIBody {
                principal_id: me.principal_id,
                grants,
                school_id: non_empty(me.school_id),
                aup_required: me.aup_required,
            })
            .into_response()
        }
        Err(status) => from_status(status),
    }
}

/// The AUP in force.
#[utoipa::path(get, path = "/api/v1/aup", tag = "identity",
    responses((status = 200, body = AupBody), (status = 401, body = ErrorBody)))]
pub async fn aup(State(state): State<GatewayState>, headers: HeaderMap) -> Response {
    let Some(edge) = state.identity else { return unavailable() };
    let request = match admitted(&edge, "GetAup", &headers, pb::GetAupRequest {}) {
        Ok(request) => request,
        Err(response) => return response,
    };
    match edge.client.clone().get_aup(request).await {
        Ok(response) => {
            let aup = response.into_inner();
            let text_sha256 = aup.text_sha256.iter().map(|byte| format!("{byte:02x}")).collect();
            Json(AupBody { aup_version: aup.aup_version, text_sha256 }).into_response()
        }
        Err(status) => from_status(status),
    }
}

/// Accepts the AUP in force; returns an access token that carries the acceptance.
#[utoipa::path(post, path = "/api/v1/aup/accept", tag = "identity", request_body = AcceptAupBody,
    responses((status = 200, body = TokensBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn accept_aup(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Json(body): Json<AcceptAupBody>,
) -> Response {
    let Some(edge) = state.identity else { return unavailable() };
    let request = match admitted(&edge, "AcceptAup", &headers, pb::AcceptAupRequest { aup_version: body.aup_version }) {
        Ok(request) => request,
        Err(response) => return response,
    };
    match edge.client.clone().accept_aup(request).await {
        Ok(response) => tokens(response.into_inner().tokens).into_response(),
        Err(status) => from_status(status),
    }
}

/// The register of who was given access to what.
#[utoipa::path(get, path = "/api/v1/access-register", tag = "identity", params(RegisterQuery),
    responses((status = 200, body = [AccessEntryBody]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn access_register(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Query(query): Query<RegisterQuery>,
) -> Response {
    let Some(edge) = state.identity else { return unavailable() };
    let message = pb::ListAccessRegisterRequest { school_id: query.school_id.unwrap_or_default() };
    let request = match admitted(&edge, "ListAccessRegister", &headers, message) {
        Ok(request) => request,
        Err(response) => return response,
    };
    match edge.client.clone().list_access_register(request).await {
        Ok(response) => {
            let entries: Vec<AccessEntryBody> = response
                .into_inner()
                .entries
                .into_iter()
                .map(|entry| AccessEntryBody {
                    position: entry.position,
                    at: entry.at.map_or(0, |t| t.seconds),
                    user_id: entry.user_id,
                    change: pb::AccessChange::try_from(entry.change)
                        .map(|change| change.as_str_name().trim_start_matches("ACCESS_CHANGE_").to_lowercase())
                        .unwrap_or_default(),
                    role: role_name(entry.role),
                    school_id: non_empty(entry.school_id),
                    by: entry.by,
                    reason: entry.reason,
                })
                .collect();
            Json(entries).into_response()
        }
        Err(status) => from_status(status),
    }
}

/// The public keys that verify access tokens (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "identity",
    responses((status = 200, description = "The JSON Web Key Set")))]
pub async fn jwks(State(state): State<GatewayState>) -> Response {
    let Some(edge) = state.identity else { return unavailable() };
    match edge.client.clone().get_jwks(pb::GetJwksRequest {}).await {
        Ok(response) => {
            ([(header::CONTENT_TYPE, "application/jwk-set+json")], response.into_inner().jwks_json).into_response()
        }
        Err(status) => from_status(status),
    }
}
