//! Authorisation for every Haven service (DESIGN.md §6, ADR 0010).
//!
//! ```text
//!  identity ─ signs ─▶ token ─▶ TokenVerifier (token.rs) ─▶ Principal ─┐
//!  log ─ identity's access events ─▶ AccessState (access.rs) ──────────┴▶ Caller
//!  gRPC path ─▶ METHOD_RULES (rules.rs) ─▶ AuthLayer (grpc.rs) ─▶ handler
//!  handler ─▶ check(caller, Action, Resource) ─▶ authorize (policy.rs, ROLE_TABLE) ─▶ allow │ deny + reason
//! ```
//! It owns the vocabulary of access ([`Role`], [`Scope`], [`RoleGrant`], [`UserId`],
//! [`Principal`]), the actions and resources ([`Action`], [`Resource`]), the one policy
//! function ([`policy::authorize`]) and its table, the method table, token verification and
//! the tower layer. It must not know any one service's domain beyond the actions it
//! authorises, and never logs a token, a name or a request's content.

mod access;
mod action;
pub mod denials;
pub mod grpc;
pub mod policy;
mod principal;
pub mod rules;
pub mod token;

pub use access::{AccessState, Caller};
pub use action::{Action, Resource};
pub use grpc::{AuthLayer, AuthService, Authenticator};
pub use policy::{Decision, DenyReason, authorize};
pub use principal::{Principal, PrincipalKind, Role, RoleGrant, Scope, UserId};
pub use token::{Claims, TokenError, TokenVerifier};
