//! The event-sourcing kernel every Haven crate builds on.
//!
//! It owns the vocabulary of the event log — typed ids ([`StreamId`], [`EventId`],
//! [`Position`], [`Version`], [`SchoolId`]), the writer's [`ExpectedVersion`] — the shape of
//! an aggregate ([`Decider`]: pure `decide` and `evolve`), and the one small [`ErrorCode`]
//! enum that decides both a gRPC status and an HTTP status, so they never disagree.
//!
//! It must not do I/O, read clocks, generate random ids or know about async, tonic or prost:
//! everything here is plain, synchronous, deterministic Rust.

mod decider;
mod error_code;
mod expected;
mod ids;

pub use decider::{Decider, fold};
pub use error_code::ErrorCode;
pub use expected::ExpectedVersion;
pub use ids::{EventId, IdError, Position, SchoolId, StreamId, Version};
