//! Authorisation for every Haven service (DESIGN.md §6, ADR 0010).
//!
//! It owns the vocabulary of access — [`Role`], [`Scope`], [`RoleGrant`], [`UserId`] — that
//! identity records and every other service checks. It must not know any one service's
//! domain beyond the actions it authorises.

mod principal;
pub mod token;

pub use principal::{Principal, PrincipalKind, Role, RoleGrant, Scope, UserId};
pub use token::{Claims, TokenError, TokenVerifier};
