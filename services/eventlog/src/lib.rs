//! The event log node: the system of record (docs/architecture.md, DESIGN.md §4).
//!
//! ```text
//!  clients ──EventLog trait / gRPC──▶ LocalEventLog ──bounded queue──▶ writer thread
//!                                         │                              │ plan, encode, chain
//!                                         │◀──── head (watch) ───────────┤ one fsync per group
//!                                         ▼                              ▼
//!                                    readers, subscriptions ◀──────── Store (sled)
//! ```
//! It owns storage, ordering, optimistic concurrency, idempotency and the hash chain. It must
//! not know any service's events: payloads are opaque bytes.

pub mod record;
pub mod store;
