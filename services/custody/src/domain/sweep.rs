//! The end-of-day sweep (policy 9.3: confiscated devices go back at the end of the day).
//!
//! ```text
//!  (custody records, the school day) ──end_of_day_sweep──▶ actions for the DSL
//!  each action ──▶ CustodyCommand::RaiseEndOfDayAction ──▶ EndOfDayActionRaised (once per record)
//! ```
//! A device seized during the day and by its end neither returned, handed to the police nor
//! under a hold needs the DSL. The sweep is pure; the shell turns each action into a command,
//! and the event it records makes a second sweep raise nothing new.

use haven_kernel::SchoolId;

use super::{CustodyRecord, UnixTime};

/// One school day, as the school's timetable sets it: `[starts_at, ends_at)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchoolDay {
    pub starts_at: UnixTime,
    pub ends_at: UnixTime,
}

/// A device the DSL must decide about before it goes home overnight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndOfDayAction {
    pub custody_id: String,
    pub school_id: SchoolId,
    pub seized_at: UnixTime,
    pub school_day_ends_at: UnixTime,
}

/// The actions for the DSL at the end of `day`: every record seized that day that is still in
/// the school's hands with no hold standing and no action raised yet.
pub fn end_of_day_sweep<'a>(
    records: impl IntoIterator<Item = &'a CustodyRecord>,
    day: SchoolDay,
) -> Vec<EndOfDayAction> {
    records
        .into_iter()
        .filter(|record| record.seized_at >= day.starts_at && record.seized_at < day.ends_at)
        .filter(|record| !record.ended() && record.holds.is_empty() && !record.end_of_day_raised)
        .map(|record| EndOfDayAction {
            custody_id: record.custody_id.clone(),
            school_id: record.school_id.clone(),
            seized_at: record.seized_at,
            school_day_ends_at: day.ends_at,
        })
        .collect()
}

impl EndOfDayAction {
    /// The command that records this action on its record; `at` is when the sweep ran.
    pub fn command(&self, at: UnixTime) -> super::CustodyCommand {
        super::CustodyCommand::RaiseEndOfDayAction { school_day_ends_at: self.school_day_ends_at, at }
    }
}
