//! One school-owned device in the register (`device-<device_id>`, policy section 7).
//!
//! ```text
//!  Register ─▶ unallocated ─Allocate(AUP accepted)─▶ allocated ─Return─▶ awaiting wipe ─Wipe─▶ unallocated ─Allocate─▶ …
//! ```
//! A device goes to one holder at a time, only with the current AUP accepted, and is wiped
//! before it is allocated again. [`still_allocated_to`] lists what a leaver still holds.

use haven_kernel::{Decider, SchoolId};

use super::{FieldProblem, UnixTime, optional_text, short};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    Laptop,
    Tablet,
    Phone,
    Desktop,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocationReturnReason {
    Leaver,
    EndOfLoan,
    Fault,
    Replaced,
    Lost,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceCondition {
    Good,
    Damaged,
    Missing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WipeMethod {
    FactoryReset,
    RemoteWipe,
    SecureErase,
}

/// Who holds a device: a staff member or a learner.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Holder {
    Staff { user_id: String },
    Learner { subject_id: String },
}

/// A current allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    pub holder: Holder,
    pub allocated_at: UnixTime,
    pub aup_version: u32,
    pub purpose: String,
    pub expected_return_at: Option<UnixTime>,
}

/// A school-owned device as its stream says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchoolDevice {
    pub device_id: String,
    pub school_id: SchoolId,
    pub kind: DeviceKind,
    pub asset_tag: String,
    pub serial_number: String,
    pub model: String,
    pub managed: bool,
    pub allocation: Option<Allocation>,
    /// Returned and not yet wiped: it cannot be allocated again.
    pub awaiting_wipe: bool,
    /// How many times it has been allocated.
    pub allocations: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterCommand {
    Register {
        device_id: String,
        school_id: SchoolId,
        kind: DeviceKind,
        asset_tag: String,
        serial_number: String,
        model: String,
        managed: bool,
        registered_by: String,
        at: UnixTime,
    },
    Allocate {
        holder: Holder,
        /// The AUP version the holder (or, for a learner, their parent/carer) accepted.
        aup_version: u32,
        /// Looked up by the shell: the AUP version in force now.
        current_aup_version: u32,
        purpose: String,
        expected_return_at: Option<UnixTime>,
        allocated_by: String,
        at: UnixTime,
    },
    Return {
        reason: AllocationReturnReason,
        condition: DeviceCondition,
        received_by: String,
        note: String,
        at: UnixTime,
    },
    Wipe {
        method: WipeMethod,
        verified: bool,
        wiped_by: String,
        note: String,
        at: UnixTime,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterEvent {
    Registered {
        device_id: String,
        school_id: SchoolId,
        kind: DeviceKind,
        asset_tag: String,
        serial_number: String,
        model: String,
        managed: bool,
        registered_by: String,
        at: UnixTime,
    },
    Allocated {
        holder: Holder,
        aup_version: u32,
        purpose: String,
        expected_return_at: Option<UnixTime>,
        allocated_by: String,
        at: UnixTime,
    },
    Returned {
        holder: Holder,
        reason: AllocationReturnReason,
        condition: DeviceCondition,
        received_by: String,
        note: String,
        at: UnixTime,
    },
    Wiped {
        method: WipeMethod,
        verified: bool,
        wiped_by: String,
        note: String,
        at: UnixTime,
    },
}

impl RegisterEvent {
    /// When it happened.
    pub fn at(&self) -> UnixTime {
        match self {
            RegisterEvent::Registered { at, .. }
            | RegisterEvent::Allocated { at, .. }
            | RegisterEvent::Returned { at, .. }
            | RegisterEvent::Wiped { at, .. } => *at,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("the device is already in the register")]
    AlreadyRegistered,
    #[error("the device is not in the register")]
    NotRegistered,
    #[error("{field} {problem}")]
    Invalid { field: &'static str, problem: FieldProblem },
    #[error("the device is allocated to someone else")]
    AlreadyAllocated,
    #[error("the device is not allocated")]
    NotAllocated,
    #[error("the device must be wiped before it is allocated again")]
    NotWiped,
    #[error("AUP version {accepted} was accepted; version {current} is in force")]
    NotCurrentAup { accepted: u32, current: u32 },
    #[error("the device was not returned; only a remote wipe reaches it")]
    StillAllocated,
    #[error("a remote wipe needs a device enrolled in device management")]
    NotManaged,
    #[error("there is nothing to wipe: the device was not returned since its last wipe")]
    NothingToWipe,
    #[error("a device reported lost comes back with condition Missing, and only then")]
    LostMeansMissing,
}

fn field(name: &'static str, check: fn(&str) -> Result<(), FieldProblem>, value: &str) -> Result<(), RegisterError> {
    check(value).map_err(|problem| RegisterError::Invalid { field: name, problem })
}

/// The register aggregate.
#[derive(Debug)]
pub struct RegisterDecider;

impl Decider for RegisterDecider {
    type State = Option<SchoolDevice>;
    type Command = RegisterCommand;
    type Event = RegisterEvent;
    type Error = RegisterError;

    fn initial() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error> {
        let device = match (state, command) {
            (Some(_), RegisterCommand::Register { .. }) => return Err(RegisterError::AlreadyRegistered),
            (
                None,
                RegisterCommand::Register {
                    device_id,
                    school_id,
                    kind,
                    asset_tag,
                    serial_number,
                    model,
                    managed,
                    registered_by,
                    at,
                },
            ) => {
                field("device_id", short, device_id)?;
                field("asset_tag", short, asset_tag)?;
                field("serial_number", short, serial_number)?;
                field("model", short, model)?;
                field("registered_by", short, registered_by)?;
                return Ok(vec![RegisterEvent::Registered {
                    device_id: device_id.clone(),
                    school_id: school_id.clone(),
                    kind: *kind,
                    asset_tag: asset_tag.clone(),
                    serial_number: serial_number.clone(),
                    model: model.clone(),
                    managed: *managed,
                    registered_by: registered_by.clone(),
                    at: *at,
                }]);
            }
            (None, _) => return Err(RegisterError::NotRegistered),
            (Some(device), _) => device,
        };
        match command {
            RegisterCommand::Register { .. } => Err(RegisterError::AlreadyRegistered),
            RegisterCommand::Allocate {
                holder,
                aup_version,
                current_aup_version,
                purpose,
                expected_return_at,
                allocated_by,
                at,
            } => {
                if device.allocation.is_some() {
                    return Err(RegisterError::AlreadyAllocated);
                }
                if device.awaiting_wipe {
                    return Err(RegisterError::NotWiped);
                }
                match holder {
                    Holder::Staff { user_id } => field("user_id", short, user_id)?,
                    Holder::Learner { subject_id } => field("subject_id", short, subject_id)?,
                }
                if aup_version != current_aup_version {
                    return Err(RegisterError::NotCurrentAup { accepted: *aup_version, current: *current_aup_version });
                }
                field("purpose", optional_text, purpose)?;
                field("allocated_by", short, allocated_by)?;
                Ok(vec![RegisterEvent::Allocated {
                    holder: holder.clone(),
                    aup_version: *aup_version,
                    purpose: purpose.clone(),
                    expected_return_at: *expected_return_at,
                    allocated_by: allocated_by.clone(),
                    at: *at,
                }])
            }
            RegisterCommand::Return { reason, condition, received_by, note, at } => {
                let allocation = device.allocation.as_ref().ok_or(RegisterError::NotAllocated)?;
                if (*reason == AllocationReturnReason::Lost) != (*condition == DeviceCondition::Missing) {
                    return Err(RegisterError::LostMeansMissing);
                }
                field("received_by", short, received_by)?;
                field("note", optional_text, note)?;
                Ok(vec![RegisterEvent::Returned {
                    holder: allocation.holder.clone(),
                    reason: *reason,
                    condition: *condition,
                    received_by: received_by.clone(),
                    note: note.clone(),
                    at: *at,
                }])
            }
            RegisterCommand::Wipe { method, verified, wiped_by, note, at } => {
                if *method == WipeMethod::RemoteWipe && !device.managed {
                    return Err(RegisterError::NotManaged);
                }
                if device.allocation.is_some() {
                    return Err(RegisterError::StillAllocated);
                }
                if !device.awaiting_wipe {
                    return Err(RegisterError::NothingToWipe);
                }
                field("wiped_by", short, wiped_by)?;
                field("note", optional_text, note)?;
                Ok(vec![RegisterEvent::Wiped {
                    method: *method,
                    verified: *verified,
                    wiped_by: wiped_by.clone(),
                    note: note.clone(),
                    at: *at,
                }])
            }
        }
    }

    fn evolve(state: Self::State, event: &Self::Event) -> Self::State {
        if let RegisterEvent::Registered {
            device_id, school_id, kind, asset_tag, serial_number, model, managed, ..
        } = event
        {
            return Some(SchoolDevice {
                device_id: device_id.clone(),
                school_id: school_id.clone(),
                kind: *kind,
                asset_tag: asset_tag.clone(),
                serial_number: serial_number.clone(),
                model: model.clone(),
                managed: *managed,
                allocation: None,
                awaiting_wipe: false,
                allocations: 0,
            });
        }
        let mut device = state?;
        match event {
            RegisterEvent::Registered { .. } => {}
            RegisterEvent::Allocated { holder, aup_version, purpose, expected_return_at, at, .. } => {
                device.allocation = Some(Allocation {
                    holder: holder.clone(),
                    allocated_at: *at,
                    aup_version: *aup_version,
                    purpose: purpose.clone(),
                    expected_return_at: *expected_return_at,
                });
                device.allocations += 1;
            }
            RegisterEvent::Returned { .. } => {
                device.allocation = None;
                device.awaiting_wipe = true;
            }
            RegisterEvent::Wiped { .. } => device.awaiting_wipe = false,
        }
        Some(device)
    }
}

/// Every device still allocated to `holder` (for a leaver), in the order given.
pub fn still_allocated_to<'a>(
    devices: impl IntoIterator<Item = &'a SchoolDevice>,
    holder: &Holder,
) -> Vec<&'a SchoolDevice> {
    devices.into_iter().filter(|device| device.allocation.as_ref().is_some_and(|a| &a.holder == holder)).collect()
}

#[cfg(test)]
mod tests {
    use haven_kernel::fold;

    use super::*;

    fn school() -> SchoolId {
        SchoolId::parse("elm-academy").unwrap()
    }

    fn register(device_id: &str, managed: bool) -> RegisterCommand {
        RegisterCommand::Register {
            device_id: device_id.into(),
            school_id: school(),
            kind: DeviceKind::Laptop,
            asset_tag: format!("TAG-{device_id}"),
            serial_number: "SN-1".into(),
            model: "Model 3".into(),
            managed,
            registered_by: "tech-1".into(),
            at: UnixTime(100),
        }
    }

    fn allocate(holder: Holder, accepted: u32) -> RegisterCommand {
        RegisterCommand::Allocate {
            holder,
            aup_version: accepted,
            current_aup_version: 2,
            purpose: "remote learning".into(),
            expected_return_at: Some(UnixTime(10_000)),
            allocated_by: "tech-1".into(),
            at: UnixTime(200),
        }
    }

    fn ret(reason: AllocationReturnReason, condition: DeviceCondition) -> RegisterCommand {
        RegisterCommand::Return {
            reason,
            condition,
            received_by: "tech-1".into(),
            note: String::new(),
            at: UnixTime(300),
        }
    }

    fn wipe(method: WipeMethod) -> RegisterCommand {
        RegisterCommand::Wipe {
            method,
            verified: true,
            wiped_by: "tech-1".into(),
            note: String::new(),
            at: UnixTime(400),
        }
    }

    fn learner(id: &str) -> Holder {
        Holder::Learner { subject_id: id.into() }
    }

    /// Given `history` commands applied in turn, when `command`, then the result.
    fn when(history: &[RegisterCommand], command: &RegisterCommand) -> Result<Vec<RegisterEvent>, RegisterError> {
        let mut events = Vec::new();
        for given in history {
            events.extend(RegisterDecider::decide(&fold::<RegisterDecider>(&events), given).expect("history decides"));
        }
        RegisterDecider::decide(&fold::<RegisterDecider>(&events), command)
    }

    fn state(history: &[RegisterCommand]) -> SchoolDevice {
        let mut events = Vec::new();
        for given in history {
            events.extend(RegisterDecider::decide(&fold::<RegisterDecider>(&events), given).unwrap());
        }
        fold::<RegisterDecider>(&events).unwrap()
    }

    #[test]
    fn register_allocate_return_wipe_reallocate() {
        let history = [
            register("d1", false),
            allocate(learner("s1"), 2),
            ret(AllocationReturnReason::EndOfLoan, DeviceCondition::Good),
            wipe(WipeMethod::FactoryReset),
        ];
        let device = state(&history);
        assert!(device.allocation.is_none() && !device.awaiting_wipe);
        let events = when(&history, &allocate(learner("s2"), 2)).unwrap();
        assert!(
            matches!(&events[..], [RegisterEvent::Allocated { holder, aup_version: 2, .. }] if *holder == learner("s2"))
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(when(&[], &allocate(learner("s1"), 2)), Err(RegisterError::NotRegistered));
        assert_eq!(when(&[register("d1", false)], &register("d1", false)), Err(RegisterError::AlreadyRegistered));
        assert_eq!(
            when(&[register("d1", false)], &allocate(learner("s1"), 1)),
            Err(RegisterError::NotCurrentAup { accepted: 1, current: 2 })
        );
        let allocated = [register("d1", false), allocate(learner("s1"), 2)];
        assert_eq!(when(&allocated, &allocate(learner("s2"), 2)), Err(RegisterError::AlreadyAllocated));
        assert_eq!(when(&allocated, &wipe(WipeMethod::FactoryReset)), Err(RegisterError::StillAllocated));
        assert_eq!(when(&allocated, &wipe(WipeMethod::RemoteWipe)), Err(RegisterError::NotManaged));
        assert_eq!(
            when(&allocated, &ret(AllocationReturnReason::Lost, DeviceCondition::Good)),
            Err(RegisterError::LostMeansMissing)
        );
        let returned = [
            register("d1", false),
            allocate(learner("s1"), 2),
            ret(AllocationReturnReason::Leaver, DeviceCondition::Good),
        ];
        assert_eq!(when(&returned, &allocate(learner("s2"), 2)), Err(RegisterError::NotWiped));
        assert_eq!(
            when(&returned, &ret(AllocationReturnReason::Leaver, DeviceCondition::Good)),
            Err(RegisterError::NotAllocated)
        );
        assert_eq!(when(&[register("d1", false)], &wipe(WipeMethod::FactoryReset)), Err(RegisterError::NothingToWipe));
    }

    #[test]
    fn a_lost_managed_device_is_wiped_remotely() {
        let lost = [
            register("d1", true),
            allocate(learner("s1"), 2),
            ret(AllocationReturnReason::Lost, DeviceCondition::Missing),
        ];
        assert!(when(&lost, &wipe(WipeMethod::RemoteWipe)).is_ok());
    }

    #[test]
    fn a_leaver_sees_every_device_still_allocated_to_them() {
        let leaver = Holder::Staff { user_id: "u-leaver".into() };
        let devices = [
            state(&[register("d1", false), allocate(leaver.clone(), 2)]),
            state(&[register("d2", false), allocate(learner("s1"), 2)]),
            state(&[
                register("d3", false),
                allocate(leaver.clone(), 2),
                ret(AllocationReturnReason::Fault, DeviceCondition::Damaged),
            ]),
            state(&[register("d4", false), allocate(leaver.clone(), 2)]),
        ];
        let held: Vec<_> = still_allocated_to(&devices, &leaver).into_iter().map(|d| d.device_id.as_str()).collect();
        assert_eq!(held, ["d1", "d4"]);
    }
}
