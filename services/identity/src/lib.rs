//! Identity (DESIGN.md §5): it owns the trust (`trust-<id>`), its schools (`school-<id>`,
//! with pupil numbers for rates per 100 pupils), people's accounts (`user-<id>`: role grants
//! with who granted them and why, AUP acceptance, sessions, sign-in failures, leaving) and the
//! acceptable use policy (`aup-policy`).
//!
//! ```text
//!  gRPC (grpc.rs) ──▶ app.rs: load stream ─▶ fold ─▶ decide (domain/) ─▶ append(expected version)
//!  event log ──subscribe──▶ directory.rs: the schools read model (ready once caught up)
//!            ──subscribe──▶ users.rs: accounts by id and login, the access register
//!  sign_in.rs: passwords (password/: policy, argon2id) with backoff and lockout
//! ```
//! The domain is pure; only `events/` knows the protobuf forms of its events, and only
//! `grpc/` knows tonic. The gRPC service is served inside haven-authz's `AuthLayer`, and each
//! handler checks its action against the resource it names (deny by default).

mod app;
pub mod bootstrap;
mod config;
pub mod demo;
mod directory;
pub mod domain;
mod error;
mod events;
mod grpc;
pub mod keys;
pub mod password;
pub mod roster;
mod secret;
mod sign_in;
pub mod start;
mod subjects;
pub mod tokens;
mod users;

pub use app::{AUP_STREAM, CommandContext, EventIds, IdentityApp, RosterReport, SIGNING_KEYS_STREAM};
pub use config::IdentityConfig;
pub use directory::SchoolDirectory;
pub use error::Error;
pub use grpc::IdentityService;
pub use sign_in::{Accounts, user_context};
pub use subjects::SubjectDirectory;
pub use users::{AccessChange, AccessRegisterEntry, UserDirectory};
