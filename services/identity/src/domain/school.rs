//! A school of the trust: registered once, its pupil numbers changed as its roll changes.

use haven_kernel::{Decider, SchoolId};

/// Most pupils a school can record: a bound against typos (the largest English schools have
/// about 4 000).
pub const MAX_PUPILS: u32 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchoolPhase {
    Primary,
    Secondary,
    AllThrough,
    Special,
    AlternativeProvision,
}

/// A school as its stream says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct School {
    pub school_id: SchoolId,
    pub trust_id: String,
    pub name: String,
    pub phase: SchoolPhase,
    pub pupil_count: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchoolCommand {
    Register { school_id: SchoolId, trust_id: String, name: String, phase: SchoolPhase, pupil_count: u32 },
    ChangePupilNumbers { pupil_count: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchoolEvent {
    Registered { school_id: SchoolId, trust_id: String, name: String, phase: SchoolPhase, pupil_count: u32 },
    PupilNumbersChanged { school_id: SchoolId, pupil_count: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchoolError {
    #[error("the school is already registered")]
    AlreadyRegistered,
    #[error("the school is not registered")]
    NotRegistered,
    #[error("name {0}")]
    InvalidName(&'static str),
    #[error("pupil_count {0} is outside 1..={MAX_PUPILS}")]
    PupilCountOutOfRange(u32),
}

fn check_pupils(pupil_count: u32) -> Result<(), SchoolError> {
    if pupil_count == 0 || pupil_count > MAX_PUPILS {
        return Err(SchoolError::PupilCountOutOfRange(pupil_count));
    }
    Ok(())
}

/// The school aggregate.
#[derive(Debug)]
pub struct SchoolDecider;

impl Decider for SchoolDecider {
    type State = Option<School>;
    type Command = SchoolCommand;
    type Event = SchoolEvent;
    type Error = SchoolError;

    fn initial() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error> {
        match (state, command) {
            (Some(_), SchoolCommand::Register { .. }) => Err(SchoolError::AlreadyRegistered),
            (None, SchoolCommand::Register { school_id, trust_id, name, phase, pupil_count }) => {
                super::check_name(name).map_err(SchoolError::InvalidName)?;
                check_pupils(*pupil_count)?;
                Ok(vec![SchoolEvent::Registered {
                    school_id: school_id.clone(),
                    trust_id: trust_id.clone(),
                    name: name.clone(),
                    phase: *phase,
                    pupil_count: *pupil_count,
                }])
            }
            (None, SchoolCommand::ChangePupilNumbers { .. }) => Err(SchoolError::NotRegistered),
            (Some(school), SchoolCommand::ChangePupilNumbers { pupil_count }) => {
                check_pupils(*pupil_count)?;
                if school.pupil_count == *pupil_count {
                    return Ok(vec![]);
                }
                Ok(vec![SchoolEvent::PupilNumbersChanged {
                    school_id: school.school_id.clone(),
                    pupil_count: *pupil_count,
                }])
            }
        }
    }

    fn evolve(state: Self::State, event: &Self::Event) -> Self::State {
        match (state, event) {
            (_, SchoolEvent::Registered { school_id, trust_id, name, phase, pupil_count }) => Some(School {
                school_id: school_id.clone(),
                trust_id: trust_id.clone(),
                name: name.clone(),
                phase: *phase,
                pupil_count: *pupil_count,
            }),
            (Some(school), SchoolEvent::PupilNumbersChanged { pupil_count, .. }) => {
                Some(School { pupil_count: *pupil_count, ..school })
            }
            (None, SchoolEvent::PupilNumbersChanged { .. }) => {
                debug_assert!(false, "a pupil-number change before registration");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use haven_kernel::fold;

    use super::*;

    fn oak() -> SchoolId {
        SchoolId::parse("oak-primary").unwrap()
    }

    fn register(pupils: u32) -> SchoolCommand {
        SchoolCommand::Register {
            school_id: oak(),
            trust_id: "demo".into(),
            name: "Oak Primary".into(),
            phase: SchoolPhase::Primary,
            pupil_count: pupils,
        }
    }

    fn given(events: &[SchoolEvent]) -> Option<School> {
        fold::<SchoolDecider>(events)
    }

    #[test]
    fn registering_a_new_school_records_it() {
        let events = SchoolDecider::decide(&given(&[]), &register(420)).unwrap();
        assert_eq!(events.len(), 1);
        let school = given(&events).unwrap();
        assert_eq!(school.pupil_count, 420);
    }

    #[test]
    fn a_school_registers_once() {
        let history = SchoolDecider::decide(&None, &register(420)).unwrap();
        assert_eq!(SchoolDecider::decide(&given(&history), &register(420)), Err(SchoolError::AlreadyRegistered));
    }

    #[test]
    fn pupil_numbers_must_be_plausible() {
        assert_eq!(SchoolDecider::decide(&None, &register(0)), Err(SchoolError::PupilCountOutOfRange(0)));
        assert_eq!(
            SchoolDecider::decide(&None, &register(MAX_PUPILS + 1)),
            Err(SchoolError::PupilCountOutOfRange(MAX_PUPILS + 1))
        );
    }

    #[test]
    fn changing_pupil_numbers_needs_a_school_and_a_change() {
        let change = SchoolCommand::ChangePupilNumbers { pupil_count: 430 };
        assert_eq!(SchoolDecider::decide(&None, &change), Err(SchoolError::NotRegistered));
        let history = SchoolDecider::decide(&None, &register(420)).unwrap();
        let changed = SchoolDecider::decide(&given(&history), &change).unwrap();
        assert_eq!(changed, vec![SchoolEvent::PupilNumbersChanged { school_id: oak(), pupil_count: 430 }]);
        let all: Vec<_> = history.into_iter().chain(changed).collect();
        assert_eq!(given(&all).unwrap().pupil_count, 430);
        assert!(SchoolDecider::decide(&given(&all), &change).unwrap().is_empty(), "no change, no event");
    }

    #[test]
    fn names_are_checked() {
        let mut command = register(10);
        if let SchoolCommand::Register { name, .. } = &mut command {
            *name = " padded".into();
        }
        assert!(matches!(SchoolDecider::decide(&None, &command), Err(SchoolError::InvalidName(_))));
    }
}
