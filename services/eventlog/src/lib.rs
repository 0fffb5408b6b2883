//! The event log node: the system of record (docs/architecture.md, DESIGN.md §4).
//!
//! ```text
//!  clients ──EventLog trait / gRPC──▶ LocalEventLog ──bounded queue──▶ writer thread
//!                                         │                              │ plan, encode, chain
//!                                         │◀──── durable head (watch) ───┤ one fsync per group
//!                                         ▼                              ▼
//!                                    readers, subscriptions ◀──────── Store (segments + redb)
//! ```
//! It owns storage, ordering, optimistic concurrency, idempotency and the hash chain. It must
//! not know any service's events: payloads are opaque bytes.

pub mod backup;
mod config;
pub mod grpc;
mod local;
mod metrics;
mod planner;
pub mod raft;
mod read;
pub mod record;
pub mod store;
mod subscribe;
mod validate;
mod verify;
mod writer;

pub use config::EventLogConfig;
pub use local::LocalEventLog;
pub use verify::{Verdict, verify};
