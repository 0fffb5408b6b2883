//! The aggregate shape: `decide(state, command) -> events`, `evolve(state, event) -> state`.
//!
//! ```text
//!   command ──▶ decide(&state) ──▶ Ok(events) ──▶ appended by the shell
//!                               └▶ Err(domain refusal)
//!   events  ──▶ evolve(state, event) ─ ... ─▶ state   (fold, on load and after append)
//! ```
//! Time, ids and looked-up facts arrive inside the command, so both functions stay pure.

/// An event-sourced aggregate. Implementations hold no state of their own.
pub trait Decider {
    /// The aggregate's state, rebuilt by folding its events from `initial()`.
    type State: Clone;
    /// What a caller asks for, imperative (`RegisterSchool`).
    type Command;
    /// What happened, past tense (`SchoolRegistered`).
    type Event: Clone;
    /// Why a command was refused (a domain reason, never an infrastructure failure).
    type Error;

    /// The state of a stream with no events.
    fn initial() -> Self::State;
    /// Decides what events a command produces against the current state.
    fn decide(state: &Self::State, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
    /// Applies one event to the state. Must accept every event `decide` can produce.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;
}

/// Folds a history into a state, starting from the initial state.
pub fn fold<'a, D: Decider>(events: impl IntoIterator<Item = &'a D::Event>) -> D::State
where
    D::Event: 'a,
{
    events.into_iter().fold(D::initial(), D::evolve)
}
