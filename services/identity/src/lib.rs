//! Identity (DESIGN.md §5): it owns the trust (`trust-<id>`) and its schools (`school-<id>`,
//! with pupil numbers for rates per 100 pupils). Users, role grants, AUP acceptance, sign-in,
//! school-system credentials and the protected subject directory arrive with issue 6.
//!
//! ```text
//!  gRPC (grpc.rs) ──▶ app.rs: load stream ─▶ fold ─▶ decide (domain/) ─▶ append(expected version)
//!  event log ──subscribe──▶ directory.rs: the schools read model (ready once caught up)
//! ```
//! The domain is pure; only `events.rs` knows the protobuf forms of its events, and only
//! `grpc.rs` knows tonic. Writes are refused over gRPC until sign-in exists (deny by default).

mod app;
pub mod demo;
mod directory;
pub mod domain;
mod error;
mod events;
mod grpc;

pub use app::{CommandContext, EventIds, IdentityApp};
pub use directory::SchoolDirectory;
pub use error::Error;
pub use grpc::IdentityService;
