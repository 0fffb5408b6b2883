//! The trust: established once.

use haven_kernel::Decider;

/// The trust as its stream says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trust {
    pub trust_id: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustCommand {
    Establish { trust_id: String, name: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustEvent {
    Established { trust_id: String, name: String },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("the trust is already established")]
    AlreadyEstablished,
    #[error("name {0}")]
    InvalidName(&'static str),
}

/// The trust aggregate.
#[derive(Debug)]
pub struct TrustDecider;

impl Decider for TrustDecider {
    type State = Option<Trust>;
    type Command = TrustCommand;
    type Event = TrustEvent;
    type Error = TrustError;

    fn initial() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error> {
        match command {
            TrustCommand::Establish { trust_id, name } => {
                if state.is_some() {
                    return Err(TrustError::AlreadyEstablished);
                }
                super::check_name(name).map_err(TrustError::InvalidName)?;
                Ok(vec![TrustEvent::Established { trust_id: trust_id.clone(), name: name.clone() }])
            }
        }
    }

    fn evolve(_state: Self::State, event: &Self::Event) -> Self::State {
        match event {
            TrustEvent::Established { trust_id, name } => {
                Some(Trust { trust_id: trust_id.clone(), name: name.clone() })
            }
        }
    }
}
