//! Custody's pure domain: aggregates as deciders, no I/O, no clock, no random ids.

pub mod custody;
pub mod register;
pub mod sweep;

pub use custody::{
    CustodyCommand, CustodyDecider, CustodyError, CustodyEvent, CustodyRecord, CustodyStatus, DeletionAuthority,
    DeletionRequest, HoldKind, Owner, ReturnRecipient, SealCondition, SearchAuthority,
};
pub use register::{
    Allocation, AllocationReturnReason, DeviceCondition, DeviceKind, Holder, RegisterCommand, RegisterDecider,
    RegisterError, RegisterEvent, SchoolDevice, WipeMethod, still_allocated_to,
};
pub use sweep::{EndOfDayAction, SchoolDay, end_of_day_sweep};

/// A moment, in whole seconds since the Unix epoch (UTC). Commands carry it; the domain
/// never reads a clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct UnixTime(pub i64);

impl std::fmt::Display for UnixTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} s after the epoch", self.0)
    }
}

/// Longest free-text field (a reason, a description, findings), in characters.
pub const MAX_TEXT_CHARS: usize = 2_000;
/// Longest identifier or short field (a user id, a seal number, a location), in characters.
pub const MAX_SHORT_CHARS: usize = 200;

/// Why a field was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldProblem {
    Empty,
    TooLong,
    ControlCharacters,
}

impl std::fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FieldProblem::Empty => "must not be empty",
            FieldProblem::TooLong => "is too long",
            FieldProblem::ControlCharacters => "must not contain control characters",
        })
    }
}

/// A required short field: 1..=200 characters, no control characters.
pub(crate) fn short(value: &str) -> Result<(), FieldProblem> {
    if value.trim().is_empty() {
        return Err(FieldProblem::Empty);
    }
    if value.chars().count() > MAX_SHORT_CHARS {
        return Err(FieldProblem::TooLong);
    }
    if value.chars().any(char::is_control) {
        return Err(FieldProblem::ControlCharacters);
    }
    Ok(())
}

/// A required free-text field: 1..=2 000 characters; line breaks allowed.
pub(crate) fn text(value: &str) -> Result<(), FieldProblem> {
    if value.trim().is_empty() {
        return Err(FieldProblem::Empty);
    }
    if value.chars().count() > MAX_TEXT_CHARS {
        return Err(FieldProblem::TooLong);
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(FieldProblem::ControlCharacters);
    }
    Ok(())
}

/// An optional free-text field: empty, or as [`text`].
pub(crate) fn optional_text(value: &str) -> Result<(), FieldProblem> {
    if value.is_empty() { Ok(()) } else { text(value) }
}
