//! The authorisation layer every gRPC service is wrapped in, and what handlers call.
//!
//! ```text
//!  request ─▶ AuthService: rule for the path? none ─▶ PERMISSION_DENIED (deny by default)
//!              Public ─▶ handler            Internal ─▶ handler only if allow_internal
//!              NotServed ─▶ PERMISSION_DENIED
//!              Signed(action) ─▶ bearer token ─▶ Authenticator (verify, revocations, AUP)
//!                 ─▶ could this caller ever do the action? ─▶ Caller in the extensions ─▶ handler
//!  handler ─▶ caller(&request) ─▶ check(&caller, action, &resource) (school, owner, about)
//! ```
//! Denials are logged with the principal's pseudonymous id, the action and the reason; never
//! a token, a name or a request field.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use haven_kernel::ErrorCode;
use tonic::{Code, Status};

use crate::access::{AccessState, Caller};
use crate::policy::{self, Decision, DenyReason};
use crate::rules::{self, Rule};
use crate::{Action, PrincipalKind, Resource, Scope, TokenError, TokenVerifier};

/// Verifies tokens and checks them against the access state.
#[derive(Clone, Debug)]
pub struct Authenticator {
    verifier: TokenVerifier,
    access: AccessState,
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// Why authentication failed, as the caller learns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// The token is missing, invalid, expired, revoked, or its principal left.
    Token(TokenError),
    /// The access state has not caught up with the log yet.
    NotReady,
}

impl Authenticator {
    pub fn new(verifier: TokenVerifier, access: AccessState) -> Self {
        Authenticator { verifier, access }
    }

    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    pub fn access(&self) -> &AccessState {
        &self.access
    }

    /// The caller a bearer token stands for, at `now` (Unix seconds).
    pub fn authenticate(&self, token: &str, now: i64) -> Result<Caller, AuthError> {
        if !self.access.is_caught_up() {
            return Err(AuthError::NotReady);
        }
        let claims = self.verifier.verify(token, now).map_err(AuthError::Token)?;
        let principal = claims.principal().ok_or(AuthError::Token(TokenError::BadClaims))?;
        self.access.check(&principal, claims.iat).map_err(AuthError::Token)
    }

    /// The caller of an `authorization: Bearer …` header value.
    pub fn authenticate_header(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        let token = header
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(AuthError::Token(TokenError::Missing))?;
        self.authenticate(token, unix_now())
    }
}

/// The status for a failed authentication. The message never carries the token.
pub fn auth_status(error: AuthError) -> Status {
    match error {
        AuthError::NotReady => Status::new(
            Code::from_i32(ErrorCode::Unavailable.grpc_code()),
            "access checks are catching up with the log; retry",
        ),
        AuthError::Token(TokenError::Missing) => Status::new(
            Code::from_i32(ErrorCode::Unauthenticated.grpc_code()),
            "this call needs `authorization: Bearer <access token>`",
        ),
        AuthError::Token(reason) => {
            Status::new(Code::from_i32(ErrorCode::Unauthenticated.grpc_code()), format!("token refused: {reason}"))
        }
    }
}

fn denied(message: impl Into<String>) -> Status {
    Status::new(Code::from_i32(ErrorCode::PermissionDenied.grpc_code()), message.into())
}

/// Whether the caller could do `action` to something: the layer's first, resource-blind check.
fn could_ever(caller: &Caller, action: Action) -> Result<(), DenyReason> {
    let principal = &caller.principal;
    if principal.kind == PrincipalKind::SchoolSystem {
        return if action.for_school_systems() { Ok(()) } else { Err(DenyReason::SchoolSystemLimit) };
    }
    if !caller.aup_current && !action.aup_exempt() {
        return Err(DenyReason::AupNotAccepted);
    }
    if policy::SELF_SERVICE.contains(&action) || policy::OWNER_ACTIONS.contains(&action) {
        return Ok(());
    }
    let reachable = policy::allowed(action).iter().any(|(role, reach)| {
        principal.grants.iter().any(|grant| {
            grant.role == *role
                && matches!(
                    (reach, &grant.scope),
                    (policy::Reach::Trust, Scope::Trust) | (policy::Reach::School, Scope::School(_))
                )
        })
    });
    if reachable { Ok(()) } else { Err(DenyReason::NoGrant) }
}

/// The caller the layer put in a request; refused when there is none (the service was not
/// wrapped in the layer, or the method's rule is not `Signed`): deny by default.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
    request.extensions().get::<Caller>().cloned().ok_or_else(|| {
        Status::new(Code::from_i32(ErrorCode::Unauthenticated.grpc_code()), "this call needs a signed-in caller")
    })
}

/// Checks an action against the resource it names; logs and refuses a denial.
pub fn check(caller: &Caller, action: Action, resource: &Resource) -> Result<(), Status> {
    match policy::authorize(&caller.principal, caller.aup_current, action, resource) {
        Decision::Allow => Ok(()),
        Decision::Deny(reason) => {
            // Who asked is not logged (a user id can name a person); the kind and the reason are.
            tracing::info!(kind = ?caller.principal.kind, ?action, reason = reason.as_str(), "denied");
            crate::denials::count(Some(action), reason.code());
            Err(denied(format!("{action:?} denied: {}", reason.as_str())))
        }
    }
}

/// A tower layer that authenticates and applies [`rules::METHOD_RULES`] before any handler.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    authenticator: Authenticator,
    allow_internal: bool,
}

impl AuthLayer {
    /// For services people and school systems call: `Internal` methods are denied.
    pub fn new(authenticator: Authenticator) -> Self {
        AuthLayer { authenticator, allow_internal: false }
    }

    /// For a log node's own server, where `Internal` methods (the log, raft, cluster) are
    /// served: to callers with the process's internal credential when one is installed
    /// (`haven_runtime::internal`, ADR 0023), otherwise kept in by a loopback binding.
    pub fn allowing_internal(authenticator: Authenticator) -> Self {
        AuthLayer { authenticator, allow_internal: true }
    }

    /// For an `Internal` method where they are served: a refusal unless the call carries the
    /// process's internal credential (when one is installed).
    fn internal_refusal<B>(&self, request: &http::Request<B>) -> Option<Status> {
        let path = request.uri().path();
        let credential = haven_runtime::internal::installed()?;
        if !self.allow_internal || rules::rule_for(path) != Some(Rule::Internal) {
            return None;
        }
        let presented = request.headers().get(haven_runtime::internal::HEADER).map(http::HeaderValue::as_bytes);
        if credential.accepts(presented.unwrap_or_default()) {
            return None;
        }
        tracing::info!(method = path, "refused: no valid internal credential");
        crate::denials::count(None, "no_internal_credential");
        Some(Status::unauthenticated(format!(
            "{path} is internal: this call carries no valid internal credential (internal_key_file)"
        )))
    }

    /// What the layer decides for a call to `path` with this `authorization` header.
    pub fn admit(&self, path: &str, authorization: Option<&str>) -> Result<Option<Caller>, Status> {
        let Some(rule) = rules::rule_for(path) else {
            tracing::info!(method = path, "denied: no rule for this method");
            crate::denials::count(None, "no_rule");
            return Err(denied(format!("{path} has no authorisation rule: denied by default")));
        };
        match rule {
            Rule::Public => Ok(None),
            Rule::Internal if self.allow_internal => Ok(None),
            Rule::Internal => {
                crate::denials::count(None, "internal_only");
                Err(denied(format!("{path} is reachable only inside the cluster")))
            }
            Rule::NotServed => {
                crate::denials::count(None, "not_served");
                Err(denied(format!("{path} is not served yet")))
            }
            Rule::Signed(action) => {
                let caller = self.authenticator.authenticate_header(authorization).map_err(|error| {
                    match error {
                        AuthError::Token(reason) => {
                            tracing::info!(method = path, reason = %reason, "unauthenticated");
                            crate::denials::count(Some(action), "unauthenticated");
                        }
                        AuthError::NotReady => crate::denials::count(Some(action), "not_ready"),
                    }
                    auth_status(error)
                })?;
                if let Err(reason) = could_ever(&caller, action) {
                    tracing::info!(kind = ?caller.principal.kind, ?action, reason = reason.as_str(), "denied");
                    crate::denials::count(Some(action), reason.code());
                    return Err(denied(format!("{action:?} denied: {}", reason.as_str())));
                }
                Ok(Some(caller))
            }
        }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, layer: self.clone() }
    }
}

/// A service wrapped in the [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for AuthService<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> tower_service::Service<http::Request<B>> for AuthService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if let Some(status) = self.layer.internal_refusal(&request) {
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let authorization = request.headers().get(http::header::AUTHORIZATION).and_then(|value| value.to_str().ok());
        match self.layer.admit(request.uri().path(), authorization) {
            Ok(caller) => {
                if let Some(caller) = caller {
                    request.extensions_mut().insert(caller);
                }
                // The service that was polled ready handles this call; a fresh clone waits for the next.
                let clone = self.inner.clone();
                let mut ready = std::mem::replace(&mut self.inner, clone);
                Box::pin(ready.call(request))
            }
            Err(status) => Box::pin(async move { Ok(status.into_http()) }),
        }
    }
}
