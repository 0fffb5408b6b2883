//! The demo trust: invented schools with invented pupil numbers, invented staff with roles,
//! the first AUP, and invented learners, written as ordinary identity commands. Every event id
//! is derived from the demo's own keys, and every command is refused as already done when it
//! was, so seeding on every start writes once and only once.
//!
//! None of these names is a real school or a real person; keep it that way (never take names
//! from the policy documents). Every demo account has the password [`DEMO_PASSWORD`]: a demo,
//! not a deployment.

use std::collections::BTreeSet;

use haven_authz::{Role, RoleGrant, Scope, UserId};
use haven_kernel::SchoolId;
use haven_proto::v1 as pb;

use crate::app::{CommandContext, EventIds};
use crate::domain::{
    AupError, SchoolCommand, SchoolError, SchoolPhase, SubjectCommand, SubjectError, SubjectFlag, SystemCommand,
    TrustCommand, TrustError, UnixTime, UserCommand, UserError,
};
use crate::password::PasswordHasher;
use crate::{Error, IdentityApp};

/// The password of every demo account.
pub const DEMO_PASSWORD: &str = "brightwater demo 2026";
/// The demo's school system, (system id, school): Heronsgate's invented web-filter collector,
/// which streams its lines to ingest over gRPC (`SubmitBreaches`) with the token it exchanges
/// its credential for.
pub const DEMO_SYSTEM: (&str, &str) = ("heronsgate-filter", "heronsgate-academy");
/// The client secret of [`DEMO_SYSTEM`]: a demo, not a deployment.
pub const DEMO_SYSTEM_SECRET: &str = "brightwater demo system 2026";
/// The text of the demo's AUP (version 1).
pub const DEMO_AUP_TEXT: &str = "Brightwater Learning Trust (demo) acceptable use policy, version 1: \
    use Haven only for safeguarding work you are asked to do; never share what you see.";
/// An invented person of the demo.
#[derive(Clone, Copy, Debug)]
pub struct DemoPerson {
    pub id: &'static str,
    pub name: &'static str,
    pub home: Option<&'static str>,
    pub role: Role,
    /// Where the role is held; `None` for the trust.
    pub held_in: Option<&'static str>,
}

const fn person(
    id: &'static str,
    name: &'static str,
    home: Option<&'static str>,
    role: Role,
    held_in: Option<&'static str>,
) -> DemoPerson {
    DemoPerson { id, name, home, role, held_in }
}

/// The invented people (login `<id>@brightwater.example`).
pub const DEMO_PEOPLE: [DemoPerson; 10] = [
    person("demo-admin", "Avery Quill (demo)", None, Role::TrustAdmin, None),
    person("demo-lead", "Rowan Pike (demo)", None, Role::TrustSafeguardingLead, None),
    person("demo-auditor", "Sasha Wren (demo)", None, Role::Auditor, None),
    person("kestrel-head", "Jordan Ashby (demo)", Some("kestrel-primary"), Role::Principal, Some("kestrel-primary")),
    person("kestrel-dsl", "Morgan Vale (demo)", Some("kestrel-primary"), Role::Dsl, Some("kestrel-primary")),
    person("kestrel-deputy", "Casey Lowe (demo)", Some("kestrel-primary"), Role::DeputyDsl, Some("kestrel-primary")),
    person("kestrel-teacher", "Robin Hale (demo)", Some("kestrel-primary"), Role::Staff, Some("kestrel-primary")),
    person("kestrel-tech", "Drew Fenn (demo)", Some("kestrel-primary"), Role::TechnicalStaff, Some("kestrel-primary")),
    person("kestrel-governor", "Ellis Marsh (demo)", Some("kestrel-primary"), Role::Governor, Some("kestrel-primary")),
    person("heronsgate-dsl", "Kit Harrow (demo)", Some("heronsgate-academy"), Role::Dsl, Some("heronsgate-academy")),
];
/// (key, display name, school, year group, flags, network login) of an invented learner.
pub type DemoLearner = (&'static str, &'static str, &'static str, u32, &'static [SubjectFlag], &'static str);

/// Each invented learner; the logins are what the demo feed's filter reports (ADR 0025).
pub const DEMO_LEARNERS: [DemoLearner; 6] = [
    ("k1", "Tam Example", "kestrel-primary", 4, &[], "texample"),
    ("k2", "Nico Sample", "kestrel-primary", 6, &[SubjectFlag::Send], "nsample"),
    ("k3", "Ari Placeholder", "kestrel-primary", 2, &[SubjectFlag::LookedAfter, SubjectFlag::Eal], "aplaceholder"),
    ("h1", "Jess Fictional", "heronsgate-academy", 9, &[], "jfictional"),
    ("h2", "Lou Invented", "heronsgate-academy", 11, &[SubjectFlag::ChildProtectionPlan], "linvented"),
    ("h3", "Sam Madeup", "heronsgate-academy", 8, &[SubjectFlag::Eal], "smadeup"),
];

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

/// The demo's fixed time (2026-09-01T00:00:00Z) as the domain's time.
const DEMO_AT: UnixTime = UnixTime(1_788_220_800);

/// Seeds the demo trust, its schools, people, AUP and learners; safe to run on every start.
pub async fn seed(app: &IdentityApp, hasher: &PasswordHasher) -> Result<SeedReport, Error> {
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
    seed_people(app, hasher, &mut report).await?;
    let aup_sha256: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(DEMO_AUP_TEXT.as_bytes()).into();
    tally(&mut report, app.publish_aup(&context("aup:1"), 1, aup_sha256).await, |e| {
        matches!(e, Error::Aup(AupError::NotNextVersion { .. } | AupError::SameText))
    })?;
    for (key, name, school, year_group, flags, login) in DEMO_LEARNERS {
        let subject_id = learner_subject_id(key);
        let command = SubjectCommand::Register {
            subject_id: subject_id.clone(),
            school_id: SchoolId::parse(school).expect("demo ids are valid"),
            display_name: name.into(),
            year_group,
            flags: flags.iter().copied().collect::<BTreeSet<_>>(),
            network_logins: vec![login.into()],
        };
        let outcome = app.subject_command(&context(&format!("learner:{key}")), &subject_id, command).await;
        // A demo log seeded before learners had network logins gets them now.
        let without_login = matches!(outcome, Err(Error::Subject(SubjectError::AlreadyRegistered)))
            && app.subject(&subject_id).await?.is_some_and(|(subject, _)| subject.network_logins.is_empty());
        if without_login {
            let set = SubjectCommand::SetNetworkLogins { network_logins: vec![login.into()] };
            app.subject_command(&context(&format!("learner-login:{key}")), &subject_id, set).await?;
            report.written += 1;
            continue;
        }
        tally(&mut report, outcome, |e| matches!(e, Error::Subject(SubjectError::AlreadyRegistered)))?;
    }
    seed_system(app, hasher, &mut report).await?;
    Ok(report)
}

/// Issues [`DEMO_SYSTEM`]'s credential, once: a hash has a random salt, so it is issued only
/// when the system has none (a retry would differ).
async fn seed_system(app: &IdentityApp, hasher: &PasswordHasher, report: &mut SeedReport) -> Result<(), Error> {
    let (system_id, school) = DEMO_SYSTEM;
    if app.system(system_id).await?.is_some() {
        report.already_present += 1;
        return Ok(());
    }
    let issue = SystemCommand::Issue {
        system_id: system_id.into(),
        school_id: SchoolId::parse(school).expect("demo ids are valid"),
        secret_hash: hasher.hash(DEMO_SYSTEM_SECRET).map_err(Error::Internal)?,
        issued_by: "haven".into(),
        at: DEMO_AT,
    };
    app.system_command(&context(&format!("system:{system_id}")), system_id, issue).await?;
    report.written += 1;
    Ok(())
}

/// The subject id of the demo learner with `key` (`k1`, `h2`, … of [`DEMO_LEARNERS`]): the
/// same on every start, so other services' demo data (custody, incidents) can name the learners.
pub fn learner_subject_id(key: &str) -> String {
    let bits =
        *uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("haven:demo:learner:{key}").as_bytes()).as_bytes();
    crate::secret::subject_id_from(bits)
}

/// Counts a command as written, or as already present when `done` says its refusal means so.
fn tally<T>(report: &mut SeedReport, outcome: Result<T, Error>, done: impl Fn(&Error) -> bool) -> Result<(), Error> {
    match outcome {
        Ok(_) => report.written += 1,
        Err(error) if done(&error) => report.already_present += 1,
        Err(other) => return Err(other),
    }
    Ok(())
}

async fn seed_people(app: &IdentityApp, hasher: &PasswordHasher, report: &mut SeedReport) -> Result<(), Error> {
    for DemoPerson { id, name, home, role, held_in } in DEMO_PEOPLE {
        let user_id = UserId::parse(id).expect("demo ids are valid");
        let school = |raw: Option<&str>| raw.map(|raw| SchoolId::parse(raw).expect("demo ids are valid"));
        let register = UserCommand::Register {
            user_id: user_id.clone(),
            display_name: name.into(),
            login: format!("{id}@brightwater.example"),
            home_school: school(home),
            registered_by: "haven".into(),
            at: DEMO_AT,
        };
        let outcome = app.register_user(&context(&format!("user:{id}")), register).await;
        tally(report, outcome, |e| matches!(e, Error::User(UserError::AlreadyRegistered)))?;
        let grant = UserCommand::GrantRole {
            grant: RoleGrant { role, scope: school(held_in).map_or(Scope::Trust, Scope::School) },
            granted_by: "haven".into(),
            reason: "demo account".into(),
            at: DEMO_AT,
        };
        let outcome = app.user_command(&context(&format!("grant:{id}")), &user_id, grant).await;
        tally(report, outcome, |e| matches!(e, Error::User(UserError::AlreadyGranted)))?;
        // A hash has a random salt, so it is set only when none is (a retry would differ).
        let has_password = app.user(&user_id).await?.is_some_and(|(user, _)| user.password_hash.is_some());
        if has_password {
            report.already_present += 1;
            continue;
        }
        let password_hash = hasher.hash(DEMO_PASSWORD).map_err(Error::Internal)?;
        app.user_command(&context(&format!("password:{id}")), &user_id, UserCommand::SetPassword { password_hash })
            .await?;
        report.written += 1;
    }
    Ok(())
}
