//! Custody (DESIGN.md §5, policy 9.3 and 11.2–11.4, the second policy's section 12): it owns
//! the chain of custody of confiscated devices (`custody-<custody_id>`: seized, powered off and
//! sealed, stored, seal checks, searches, quarantine and police holds, handover to the police,
//! content deletion, return) and the register of school-owned devices (`device-<device_id>`:
//! registered, allocated with the AUP version accepted, returned, wiped, reallocated).
//!
//! ```text
//!  domain/custody.rs   decide/evolve of one confiscation; the rules (no return while a hold
//!                      stands, no search without consent or authority, imagery only with the
//!                      DSL's record, a witness where the policy expects one)
//!  domain/sweep.rs     end of the school day: states ─▶ actions for the DSL, raised once
//!  domain/register.rs  decide/evolve of one school-owned device; what a leaver still holds
//!  app.rs              load ─▶ fold ─▶ decide ─▶ append; exports; the sweep over given records
//!  index.rs            read model: every record and device, leavers (from identity)
//!  schedule.rs         the school day (configurable) and the sweep run after it ends
//!  grpc/               haven.v1.Custody, inside haven-authz's AuthLayer
//!  demo.rs             invented custody data for `haven up --demo`
//!  start.rs            the export signing key (0600), the read model and schedule in a process
//! ```
//! The domain is pure: no clock, no random ids, no I/O; time and looked-up facts (is the
//! searcher on the leadership team, the current AUP version) arrive in the command.

mod app;
mod config;
pub mod demo;
pub mod domain;
mod error;
mod events;
pub mod export;
mod grpc;
mod index;
pub mod schedule;
pub mod start;

pub use app::{CommandContext, CustodyApp, ExportedTrail, MAX_TRAIL_EVENTS, custody_stream, device_stream};
pub use config::CustodyConfig;
pub use error::Error;
pub use grpc::CustodyService;
pub use index::{AllocationFilter, CustodyIndex};
