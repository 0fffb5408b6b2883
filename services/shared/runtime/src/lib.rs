//! What every Haven process shares, whichever services it runs: one way to stop
//! ([`Shutdown`]), one way to say it is ready ([`Readiness`]), one metrics registry
//! ([`Metrics`]), one way to listen on a port ([`listen`]) with an error a person can act on,
//! and one telemetry setup ([`Telemetry`]: log lines, and spans over OTLP) with the W3C trace
//! context carried across gRPC ([`grpc`]) and into stored events ([`trace`]).
//!
//! It must not know any service: services register with it, it never calls them.

pub mod grpc;
pub mod internal;
mod listen;
mod metrics;
mod readiness;
mod shutdown;
mod telemetry;
pub mod trace;

pub use listen::{ListenError, listen};
pub use metrics::Metrics;
pub use readiness::{ComponentReadiness, Readiness, ReadinessHandle};
pub use shutdown::{Shutdown, wait_for_stop_signal};
pub use telemetry::{Telemetry, TelemetryError, check_otlp_endpoint};
