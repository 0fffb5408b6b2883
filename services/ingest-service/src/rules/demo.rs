//! The alert rules of `haven up --demo`: Heronsgate Academy's DSL made its rules stricter than
//! the trust's (an `AlertRulesChanged` on `alertrules-school-heronsgate-academy`): two attempts
//! alert rather than three, drugs and violence alert as high beside extremism, and a critical
//! alert escalates after ten minutes. Recorded once: a later start finds version 1 and writes
//! nothing.

use haven_kernel::SchoolId;
use haven_proto::v1 as pb;

use super::app::{Error, RulesApp};

pub const SCHOOL: &str = "heronsgate-academy";

/// The demo school's overrides.
pub fn stricter() -> pb::AlertRuleSettings {
    pb::AlertRuleSettings {
        repeat_threshold: Some(2),
        high_categories: Some(pb::CategorySet {
            categories: vec![
                pb::BreachCategory::Extremism as i32,
                pb::BreachCategory::Drugs as i32,
                pb::BreachCategory::Violence as i32,
            ],
        }),
        critical_ack_minutes: Some(10),
        ..Default::default()
    }
}

/// Records the demo school's rules unless some are recorded already.
pub async fn seed(app: &RulesApp) -> Result<(), Error> {
    let school = SchoolId::parse(SCHOOL).expect("demo ids are valid");
    let dsl = pb::Actor {
        principal_id: "user-heronsgate-dsl".into(),
        kind: pb::ActorKind::User as i32,
        roles: vec!["dsl".into()],
    };
    let reason = "Older pupils found the drugs and violence sites the filter let through last term (invented)";
    match app.set(Some(&school), 0, stricter(), reason, dsl).await {
        Ok(_) | Err(Error::Conflict { .. }) => Ok(()),
        Err(other) => Err(other),
    }
}
