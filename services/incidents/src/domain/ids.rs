//! Typed ids of what incidents names: cases, concerns, learners (subjects), alerts, referrals.
//! Each is 1..=63 bytes of lowercase letters, digits and `-` (the rules of [`SchoolId`]), so it
//! is safe inside a stream name such as `incident-<case_id>`.

use std::fmt;

use haven_kernel::{IdError, SchoolId};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                SchoolId::parse(raw).map(|checked| $name(checked.as_str().to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }
    };
}

id!(
    /// A case: stream `incident-<case_id>`.
    CaseId
);
id!(
    /// A concern: stream `concern-<concern_id>`.
    ConcernId
);
id!(
    /// A learner, pseudonymous (identity's subject id).
    SubjectId
);
id!(
    /// One of ingest's safeguarding alerts: stream `alert-<alert_id>` here.
    AlertId
);
id!(
    /// A referral within its case.
    ReferralId
);
