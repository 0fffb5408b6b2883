//! A learner in the protected directory (stream `subject-<id>`): a subject, not a user. The id
//! is pseudonymous (`s-` and 26 random base32 characters, chosen by the shell); the name, year
//! group and flags are personal data, kept only in the payloads and the protected directory.

use std::collections::BTreeSet;

use haven_kernel::{Decider, SchoolId};

/// The oldest year group (year 14, sixth form or further); reception is 0.
pub const MAX_YEAR_GROUP: u32 = 14;

/// A flag that raises a learner's vulnerability (DESIGN.md §5, the policy's vulnerable groups).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectFlag {
    LookedAfter,
    ChildProtectionPlan,
    Send,
    Eal,
}

impl SubjectFlag {
    pub const ALL: [SubjectFlag; 4] =
        [SubjectFlag::LookedAfter, SubjectFlag::ChildProtectionPlan, SubjectFlag::Send, SubjectFlag::Eal];

    /// The name used in roster files.
    pub const fn as_str(self) -> &'static str {
        match self {
            SubjectFlag::LookedAfter => "looked_after",
            SubjectFlag::ChildProtectionPlan => "child_protection_plan",
            SubjectFlag::Send => "send",
            SubjectFlag::Eal => "eal",
        }
    }

    pub fn from_name(name: &str) -> Option<SubjectFlag> {
        SubjectFlag::ALL.into_iter().find(|flag| flag.as_str() == name)
    }
}

/// A subject as the stream says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub subject_id: String,
    pub school_id: SchoolId,
    pub display_name: String,
    pub year_group: u32,
    pub flags: BTreeSet<SubjectFlag>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectCommand {
    Register {
        subject_id: String,
        school_id: SchoolId,
        display_name: String,
        year_group: u32,
        flags: BTreeSet<SubjectFlag>,
    },
    ChangeFlags {
        flags: BTreeSet<SubjectFlag>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectEvent {
    Registered {
        subject_id: String,
        school_id: SchoolId,
        display_name: String,
        year_group: u32,
        flags: BTreeSet<SubjectFlag>,
    },
    FlagsChanged {
        flags: BTreeSet<SubjectFlag>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("the subject is already registered")]
    AlreadyRegistered,
    #[error("the subject is not registered")]
    NotRegistered,
    #[error("subject_id must be `s-` and 26 base32 characters")]
    InvalidSubjectId,
    #[error("display_name {0}")]
    InvalidName(&'static str),
    #[error("year_group {0} is outside 0..={MAX_YEAR_GROUP}")]
    YearGroupOutOfRange(u32),
}

/// Whether a subject id has the pseudonymous shape (it reaches stream ids and log lines).
pub fn check_subject_id(subject_id: &str) -> bool {
    subject_id.len() == 28
        && subject_id.starts_with("s-")
        && subject_id[2..].bytes().all(|b| b.is_ascii_digit() || (b.is_ascii_lowercase() && !b"ilou".contains(&b)))
}

/// The subject aggregate.
#[derive(Debug)]
pub struct SubjectDecider;

impl Decider for SubjectDecider {
    type State = Option<Subject>;
    type Command = SubjectCommand;
    type Event = SubjectEvent;
    type Error = SubjectError;

    fn initial() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error> {
        match (state, command) {
            (Some(_), SubjectCommand::Register { .. }) => Err(SubjectError::AlreadyRegistered),
            (None, SubjectCommand::Register { subject_id, school_id, display_name, year_group, flags }) => {
                if !check_subject_id(subject_id) {
                    return Err(SubjectError::InvalidSubjectId);
                }
                super::check_name(display_name).map_err(SubjectError::InvalidName)?;
                if *year_group > MAX_YEAR_GROUP {
                    return Err(SubjectError::YearGroupOutOfRange(*year_group));
                }
                Ok(vec![SubjectEvent::Registered {
                    subject_id: subject_id.clone(),
                    school_id: school_id.clone(),
                    display_name: display_name.clone(),
                    year_group: *year_group,
                    flags: flags.clone(),
                }])
            }
            (None, SubjectCommand::ChangeFlags { .. }) => Err(SubjectError::NotRegistered),
            (Some(subject), SubjectCommand::ChangeFlags { flags }) => {
                if subject.flags == *flags {
                    return Ok(vec![]);
                }
                Ok(vec![SubjectEvent::FlagsChanged { flags: flags.clone() }])
            }
        }
    }

    fn evolve(state: Self::State, event: &Self::Event) -> Self::State {
        match event {
            SubjectEvent::Registered { subject_id, school_id, display_name, year_group, flags } => Some(Subject {
                subject_id: subject_id.clone(),
                school_id: school_id.clone(),
                display_name: display_name.clone(),
                year_group: *year_group,
                flags: flags.clone(),
            }),
            SubjectEvent::FlagsChanged { flags } => state.map(|subject| Subject { flags: flags.clone(), ..subject }),
        }
    }
}

#[cfg(test)]
mod tests {
    use haven_kernel::fold;

    use super::*;

    const ID: &str = "s-0123456789abcdefghjkmnpqrs";

    fn register(year_group: u32) -> SubjectCommand {
        SubjectCommand::Register {
            subject_id: ID.into(),
            school_id: SchoolId::parse("oak").unwrap(),
            display_name: "Invented Learner".into(),
            year_group,
            flags: BTreeSet::from([SubjectFlag::Send]),
        }
    }

    #[test]
    fn a_subject_registers_once_and_its_flags_change() {
        let history = SubjectDecider::decide(&None, &register(7)).unwrap();
        let state = fold::<SubjectDecider>(&history);
        assert_eq!(SubjectDecider::decide(&state, &register(7)), Err(SubjectError::AlreadyRegistered));
        let change = SubjectCommand::ChangeFlags { flags: BTreeSet::from([SubjectFlag::LookedAfter]) };
        let changed = SubjectDecider::decide(&state, &change).unwrap();
        let all: Vec<_> = history.into_iter().chain(changed).collect();
        let state = fold::<SubjectDecider>(&all);
        assert_eq!(state.as_ref().unwrap().flags, BTreeSet::from([SubjectFlag::LookedAfter]));
        assert!(SubjectDecider::decide(&state, &change).unwrap().is_empty(), "no change, no event");
        assert_eq!(SubjectDecider::decide(&None, &change), Err(SubjectError::NotRegistered));
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(SubjectDecider::decide(&None, &register(15)), Err(SubjectError::YearGroupOutOfRange(15)));
        let SubjectCommand::Register { school_id, flags, .. } = register(1) else { unreachable!() };
        let named = |subject_id: &str, display_name: &str| SubjectCommand::Register {
            subject_id: subject_id.into(),
            school_id: school_id.clone(),
            display_name: display_name.into(),
            year_group: 1,
            flags: flags.clone(),
        };
        assert_eq!(SubjectDecider::decide(&None, &named("jo-bloggs", "Jo")), Err(SubjectError::InvalidSubjectId));
        assert_eq!(
            SubjectDecider::decide(&None, &named("s-0123456789abcdefghjkmnpqrI", "Jo")),
            Err(SubjectError::InvalidSubjectId)
        );
        assert!(matches!(SubjectDecider::decide(&None, &named(ID, " ")), Err(SubjectError::InvalidName(_))));
    }
}
