//! The demo trust: invented schools with invented pupil numbers, written as ordinary identity
//! commands. Every event id is derived from the demo's own keys, and every command is refused
//! as already done when it was, so seeding on every start writes once and only once.
//!
//! None of these names is a real school; keep it that way.

use haven_kernel::SchoolId;
use haven_proto::v1 as pb;

use crate::app::{CommandContext, EventIds};
use crate::domain::{SchoolCommand, SchoolError, SchoolPhase, TrustCommand, TrustError};
use crate::{Error, IdentityApp};

/// The demo trust's id.
pub const DEMO_TRUST_ID: &str = "brightwater";
const DEMO_TRUST_NAME: &str = "Brightwater Learning Trust (demo)";

/// (id, name, phase, pupils) of each invented school.
pub const DEMO_SCHOOLS: [(&str, &str, SchoolPhase, u32); 5] = [
    ("kestrel-primary", "Kestrel Lane Primary Academy", SchoolPhase::Primary, 412),
    ("marram-primary", "Marram Fields Primary Academy", SchoolPhase::Primary, 236),
    ("heronsgate-academy", "Heronsgate Academy", SchoolPhase::Secondary, 1_184),
    ("saltmarsh-high", "Saltmarsh High School", SchoolPhase::Secondary, 947),
    ("willowbrook-school", "Willowbrook School", SchoolPhase::Special, 128),
];

/// What a seed run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeedReport {
    /// Commands that wrote events this time.
    pub written: usize,
    /// Commands found already done (an earlier start seeded them).
    pub already_present: usize,
}

fn context(key: &str) -> CommandContext {
    CommandContext {
        actor: pb::Actor {
            principal_id: "haven".into(),
            kind: pb::ActorKind::System as i32,
            roles: vec!["demo-seed".into()],
        },
        // A fixed time: the demo's facts are the same on every start, so retries match exactly.
        occurred_at: prost_types::Timestamp { seconds: 1_788_220_800, nanos: 0 }, // 2026-09-01T00:00:00Z
        event_ids: EventIds::Derived { key: format!("demo:{key}") },
    }
}

/// Seeds the demo trust and its schools; safe to run on every start.
pub async fn seed(app: &IdentityApp) -> Result<SeedReport, Error> {
    let mut report = SeedReport::default();
    let trust = TrustCommand::Establish { trust_id: DEMO_TRUST_ID.into(), name: DEMO_TRUST_NAME.into() };
    match app.establish_trust(&context("trust"), trust).await {
        Ok(_) => report.written += 1,
        Err(Error::Trust(TrustError::AlreadyEstablished)) => report.already_present += 1,
        Err(other) => return Err(other),
    }
    for (id, name, phase, pupils) in DEMO_SCHOOLS {
        let school_id = SchoolId::parse(id).expect("demo ids are valid");
        let command = SchoolCommand::Register {
            school_id,
            trust_id: DEMO_TRUST_ID.into(),
            name: name.into(),
            phase,
            pupil_count: pupils,
        };
        match app.register_school(&context(&format!("school:{id}")), command).await {
            Ok(_) => report.written += 1,
            Err(Error::School(SchoolError::AlreadyRegistered)) => report.already_present += 1,
            Err(other) => return Err(other),
        }
    }
    Ok(report)
}
