//! Identity's pure domain: aggregates as deciders, no I/O, no clock, no random ids.

pub mod aup;
pub mod school;
pub mod system;
pub mod trust;
pub mod user;

pub use aup::{Aup, AupCommand, AupDecider, AupError, AupEvent};
pub use school::{School, SchoolCommand, SchoolDecider, SchoolError, SchoolEvent, SchoolPhase};
pub use system::{SchoolSystem, SystemCommand, SystemDecider, SystemError, SystemEvent};
pub use trust::{Trust, TrustCommand, TrustDecider, TrustError, TrustEvent};
pub use user::{GrantRecord, User, UserCommand, UserDecider, UserError, UserEvent};

/// A moment, in whole seconds since the Unix epoch (UTC). Commands carry it; the domain
/// never reads a clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct UnixTime(pub i64);

impl std::fmt::Display for UnixTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} s after the epoch", self.0)
    }
}

/// Longest school or trust name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 120;

/// A name is 1..=120 characters, trimmed, with no control characters.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.trim().is_empty() {
        return Err("must not be empty");
    }
    if name.trim() != name {
        return Err("must not start or end with spaces");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err("is longer than 120 characters");
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(())
}
