//! Need to know: who may see (and so act on) a case or a concern, beyond the role table.
//!
//! ```text
//!  named as the staff member it is about ─▶ never
//!  case about staff (allegation, low-level concern) ─▶ the school's principal, the lead, grantees
//!  any other case ─▶ the school's DSL, deputies and principal, the trust's safeguarding lead,
//!                    the lead, grantees
//!  concern ─▶ its raiser; for a colleague, the school's principal; else the safeguarding team
//! ```
//! The roles arrive as facts about the reader in *this* case's school, looked up by the shell
//! from the caller's token, so a DSL of another school is simply not a DSL here.

use haven_authz::UserId;

use super::case::Case;
use super::concern::Concern;
use super::types::{AccessPolicy, ConcernAbout};

/// Who is reading, and what they are in the school of the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reader {
    pub user: UserId,
    /// A DSL or deputy DSL of the record's school.
    pub dsl_here: bool,
    /// The principal of the record's school.
    pub principal_here: bool,
    /// The trust's safeguarding lead (trust-wide).
    pub trust_lead: bool,
}

/// Why a reader may not see a record. The shell answers both as "not found", so a refusal
/// does not reveal that an allegation exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessRefusal {
    #[error("nobody may see a record about themselves")]
    AboutThemselves,
    #[error("the reader has no need to know")]
    NoNeedToKnow,
}

pub fn may_see_case(case: &Case, reader: &Reader) -> Result<(), AccessRefusal> {
    if case.opened.staff_ids.contains(&reader.user) {
        return Err(AccessRefusal::AboutThemselves);
    }
    let named = case.lead == reader.user || case.grants.contains(&reader.user);
    let allowed = named
        || match case.access_policy {
            AccessPolicy::PrincipalAndGrantees => reader.principal_here,
            AccessPolicy::SafeguardingTeam => reader.dsl_here || reader.principal_here || reader.trust_lead,
        };
    if allowed { Ok(()) } else { Err(AccessRefusal::NoNeedToKnow) }
}

pub fn may_see_concern(concern: &Concern, reader: &Reader) -> Result<(), AccessRefusal> {
    let details = &concern.details;
    if details.staff_ids.contains(&reader.user) {
        return Err(AccessRefusal::AboutThemselves);
    }
    let allowed = details.raised_by == reader.user
        || match details.about {
            ConcernAbout::Colleague => reader.principal_here,
            ConcernAbout::Learner | ConcernAbout::ParentCarer => {
                reader.dsl_here || reader.principal_here || reader.trust_lead
            }
        };
    if allowed { Ok(()) } else { Err(AccessRefusal::NoNeedToKnow) }
}

/// May the reader triage this concern: the principal for a colleague, else a DSL or deputy
/// (or the principal) of the school.
pub fn may_triage(concern: &Concern, reader: &Reader) -> bool {
    if concern.details.staff_ids.contains(&reader.user) {
        return false;
    }
    match concern.details.about {
        ConcernAbout::Colleague => reader.principal_here,
        ConcernAbout::Learner | ConcernAbout::ParentCarer => reader.dsl_here || reader.principal_here,
    }
}
