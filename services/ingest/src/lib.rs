//! Ingest's parsing half: a line from a school's web filter or proxy, in any vendor's format,
//! becomes one normalised [`BreachObserved`] with a category from Haven's one taxonomy, or a
//! typed [`LineError`] that the [`Quarantine`] counts.
//!
//! ```text
//!  byte stream ─▶ syslog::framing::Deframer ─▶ frame ─▶ LineParser::parse ─┬─▶ BreachObserved
//!                 (octet-counted or LF)                 (envelope, format, │   (borrows the line)
//!                                                        fields, category) └─▶ LineError ─▶ Quarantine
//! ```
//!
//! It owns the vendor formats (`formats/`, one module each, layouts in
//! `shared/corpus/FORMATS.md`), per-line detection, source time and zones, and the category
//! table (`mappings/categories.csv`, data not code). It must not do I/O, read clocks, log, or
//! keep a line's content: callers pass the time a line was received, and refusals carry static
//! messages and positions only. Attribution to subjects, collapsing repeats, alert rules and
//! appending to the log are the service's job, after this.

mod breach;
mod detect;
mod error;
mod format;
mod formats;
mod mapping;
mod parser;
mod quarantine;
pub mod samples;
pub mod syslog;
mod taxonomy;
mod text;
mod time;

pub use breach::{Action, BreachObserved, TimeBasis};
pub use error::{LineError, ParseError, QuarantineReason};
pub use format::{SourceFormat, UnknownFormat};
pub use mapping::{CategoryMap, MapError};
pub use parser::{LineParser, SourceConfig};
pub use quarantine::{Quarantine, QuarantineKey, QuarantinedLine};
pub use taxonomy::{Category, UnknownCategory};
