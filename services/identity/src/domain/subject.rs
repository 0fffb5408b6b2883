//! A learner in the protected directory (stream `subject-<id>`): a subject, not a user. The id
//! is pseudonymous (`s-` and 26 random base32 characters, chosen by the shell); the name, year
//! group and flags are personal data, kept only in the payloads and the protected directory.
//! So are the network logins (ADR 0025): the names a school's filter reports for the learner,
//! which ingest follows to attribute breaches; they never reach logs, metrics or subjects.

use std::collections::BTreeSet;

use haven_kernel::{Decider, SchoolId};

/// The oldest year group (year 14, sixth form or further); reception is 0.
pub const MAX_YEAR_GROUP: u32 = 14;
/// The most network logins one subject may carry.
pub const MAX_NETWORK_LOGINS: usize = 8;
/// The longest network login, in characters.
pub const MAX_LOGIN_CHARS: usize = 128;

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
    /// Lowercase (see [`network_logins`]).
    pub network_logins: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectCommand {
    Register {
        subject_id: String,
        school_id: SchoolId,
        display_name: String,
        year_group: u32,
        flags: BTreeSet<SubjectFlag>,
        /// As given; checked and lowercased by the decider.
        network_logins: Vec<String>,
    },
    ChangeFlags {
        flags: BTreeSet<SubjectFlag>,
    },
    /// Replaces the logins (empty: none).
    SetNetworkLogins {
        network_logins: Vec<String>,
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
        network_logins: BTreeSet<String>,
    },
    FlagsChanged {
        flags: BTreeSet<SubjectFlag>,
    },
    NetworkLoginsChanged {
        network_logins: BTreeSet<String>,
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
    #[error("network_logins {0}")]
    InvalidNetworkLogin(&'static str),
}

/// Checks network logins and lowercases them: at most [`MAX_NETWORK_LOGINS`], each 1 to
/// [`MAX_LOGIN_CHARS`] characters with no spaces or control characters. The error names the
/// rule, never the login.
pub fn network_logins(raw: &[String]) -> Result<BTreeSet<String>, SubjectError> {
    if raw.len() > MAX_NETWORK_LOGINS {
        return Err(SubjectError::InvalidNetworkLogin("has more than 8 logins"));
    }
    raw.iter()
        .map(|login| {
            if login.is_empty() || login.chars().count() > MAX_LOGIN_CHARS {
                return Err(SubjectError::InvalidNetworkLogin("must each be 1 to 128 characters"));
            }
            if login.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(SubjectError::InvalidNetworkLogin("must not contain spaces or control characters"));
            }
            Ok(login.to_lowercase())
        })
        .collect()
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
            (
                None,
                SubjectCommand::Register {
                    subject_id,
                    school_id,
                    display_name,
                    year_group,
                    flags,
                    network_logins: raw,
                },
            ) => {
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
                    network_logins: network_logins(raw)?,
                }])
            }
            (None, SubjectCommand::ChangeFlags { .. } | SubjectCommand::SetNetworkLogins { .. }) => {
                Err(SubjectError::NotRegistered)
            }
            (Some(subject), SubjectCommand::SetNetworkLogins { network_logins: raw }) => {
                let logins = network_logins(raw)?;
                if subject.network_logins == logins {
                    return Ok(vec![]);
                }
                Ok(vec![SubjectEvent::NetworkLoginsChanged { network_logins: logins }])
            }
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
            SubjectEvent::Registered { subject_id, school_id, display_name, year_group, flags, network_logins } => {
                Some(Subject {
                    subject_id: subject_id.clone(),
                    school_id: school_id.clone(),
                    display_name: display_name.clone(),
                    year_group: *year_group,
                    flags: flags.clone(),
                    network_logins: network_logins.clone(),
                })
            }
            SubjectEvent::FlagsChanged { flags } => state.map(|subject| Subject { flags: flags.clone(), ..subject }),
            SubjectEvent::NetworkLoginsChanged { network_logins } => {
                state.map(|subject| Subject { network_logins: network_logins.clone(), ..subject })
            }
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
            network_logins: vec!["JSmith".into()],
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
    fn network_logins_are_lowercased_replaced_and_checked_without_repeating_them() {
        let history = SubjectDecider::decide(&None, &register(7)).unwrap();
        let state = fold::<SubjectDecider>(&history);
        assert_eq!(state.as_ref().unwrap().network_logins, BTreeSet::from(["jsmith".to_owned()]));
        let set = |logins: &[&str]| SubjectCommand::SetNetworkLogins {
            network_logins: logins.iter().map(|login| (*login).to_owned()).collect(),
        };
        let changed = SubjectDecider::decide(&state, &set(&["J.Smith@Oak.example", "jsmith"])).unwrap();
        let all: Vec<_> = history.into_iter().chain(changed).collect();
        let state = fold::<SubjectDecider>(&all);
        let expected = BTreeSet::from(["j.smith@oak.example".to_owned(), "jsmith".to_owned()]);
        assert_eq!(state.as_ref().unwrap().network_logins, expected);
        assert!(SubjectDecider::decide(&state, &set(&["JSMITH", "j.smith@oak.example"])).unwrap().is_empty());
        for bad in [vec!["has space"], vec![""], vec!["x"; 9]] {
            let error = SubjectDecider::decide(&state, &set(&bad)).unwrap_err();
            assert!(matches!(error, SubjectError::InvalidNetworkLogin(_)), "{bad:?}");
            assert!(!error.to_string().contains("has space"), "the refusal never repeats the login");
        }
        assert_eq!(SubjectDecider::decide(&None, &set(&["a"])), Err(SubjectError::NotRegistered));
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
            network_logins: vec![],
        };
        assert_eq!(SubjectDecider::decide(&None, &named("jo-bloggs", "Jo")), Err(SubjectError::InvalidSubjectId));
        assert_eq!(
            SubjectDecider::decide(&None, &named("s-0123456789abcdefghjkmnpqrI", "Jo")),
            Err(SubjectError::InvalidSubjectId)
        );
        assert!(matches!(SubjectDecider::decide(&None, &named(ID, " ")), Err(SubjectError::InvalidName(_))));
    }
}
