//! What every Haven process shares, whichever services it runs: one way to stop
//! ([`Shutdown`]), one way to say it is ready ([`Readiness`]), one metrics registry
//! ([`Metrics`]) and one way to listen on a port ([`listen`]) with an error a person can act on.
//!
//! It must not know any service: services register with it, it never calls them.

pub mod internal;
mod listen;
mod metrics;
mod readiness;
mod shutdown;

pub use listen::{ListenError, listen};
pub use metrics::Metrics;
pub use readiness::{ComponentReadiness, Readiness, ReadinessHandle};
pub use shutdown::{Shutdown, wait_for_stop_signal};
