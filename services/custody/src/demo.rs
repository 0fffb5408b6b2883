//! Invented custody data for `haven up --demo`, at the demo trust's Kestrel Lane Primary and
//! with its invented people and learners: a phone seized, sealed, stored and quarantined under
//! a linked case; a tablet handed to the police; a phone not returned by the end of the day
//! (the sweep raised the DSL's action); and school laptops, two of them allocated.
//!
//! Everything goes through the real app with request ids derived from the demo's own keys, so
//! seeding on every start writes once and only once. None of this is real; keep it that way.

use haven_kernel::SchoolId;
use haven_proto::v1 as pb;

use crate::domain::{CustodyCommand, DeviceKind, HoldKind, Holder, Owner, RegisterCommand, SchoolDay, UnixTime};
use crate::{CommandContext, CustodyApp, CustodyConfig, Error};

/// The school the demo's custody data belongs to.
pub const DEMO_SCHOOL: &str = "kestrel-primary";
/// The demo's custody records: quarantined, with the police, and swept at the end of the day.
pub const DEMO_QUARANTINED: &str = "demo-kestrel-phone-1";
pub const DEMO_WITH_POLICE: &str = "demo-kestrel-tablet-1";
pub const DEMO_SWEPT: &str = "demo-kestrel-phone-2";
/// The case the quarantined phone is linked to (invented).
pub const DEMO_CASE: &str = "demo-case-kestrel-1";
/// The demo's school laptops: (device id, asset tag, holder).
pub const DEMO_LAPTOPS: [&str; 3] = ["demo-kestrel-laptop-1", "demo-kestrel-laptop-2", "demo-kestrel-laptop-3"];
/// Events the demo writes: 4 + 4 + 3 on the three records, 3 registrations and 2 allocations.
pub const DEMO_EVENTS: u64 = 16;

/// 2026-10-06, a Tuesday: the demo's day (10:00 UTC is 11:00 in the school).
const DAY: i64 = 1_791_280_800;

fn context(key: &str, at: i64) -> CommandContext {
    CommandContext {
        actor: pb::Actor {
            principal_id: "haven".into(),
            kind: pb::ActorKind::System as i32,
            roles: vec!["demo-seed".into()],
        },
        occurred_at: prost_types::Timestamp { seconds: at, nanos: 0 },
        request_id: format!("demo:custody:{key}"),
    }
}

fn school() -> SchoolId {
    SchoolId::parse(DEMO_SCHOOL).expect("demo ids are valid")
}

fn seize(
    custody_id: &str,
    description: &str,
    subject_id: String,
    reason: &str,
    case: Option<&str>,
    at: i64,
) -> CustodyCommand {
    CustodyCommand::Seize {
        custody_id: custody_id.into(),
        school_id: school(),
        device_id: None,
        device_description: description.into(),
        from: Owner::Learner { subject_id },
        seized_by: "kestrel-teacher".into(),
        witness: Some("kestrel-deputy".into()),
        reason: reason.into(),
        case_id: case.map(Into::into),
        return_due_at: UnixTime(DAY + 4 * 3600 + 1800),
        at: UnixTime(at),
    }
}

fn seal(number: &str, at: i64) -> CustodyCommand {
    CustodyCommand::Seal {
        seal_number: number.into(),
        sealed_by: "kestrel-teacher".into(),
        witness: Some("kestrel-deputy".into()),
        powered_off: true,
        note: String::new(),
        at: UnixTime(at),
    }
}

fn store(at: i64) -> CustodyCommand {
    CustodyCommand::Store {
        location: "DSL office safe (demo)".into(),
        stored_by: "kestrel-dsl".into(),
        witness: Some("kestrel-head".into()),
        at: UnixTime(at),
    }
}

/// Seeds the demo's custody records and devices; `learner` gives the subject id of identity's
/// invented learner with a key (`k1`, `k2`, `k3`). Safe to run on every start.
pub async fn seed(app: &CustodyApp, learner: impl Fn(&str) -> String) -> Result<(), Error> {
    let step = |record: &'static str, key: &'static str, command: CustodyCommand, at: i64| async move {
        app.custody_command(&context(&format!("{record}:{key}"), at), record, command).await.map(drop)
    };
    // A phone with messages feared to be harassment: sealed, stored, quarantined pending police advice.
    let reason = "messages feared to be harassment of another pupil (demo)";
    step(
        DEMO_QUARANTINED,
        "seize",
        seize(DEMO_QUARANTINED, "black phone, cracked case (demo)", learner("k2"), reason, Some(DEMO_CASE), DAY),
        DAY,
    )
    .await?;
    step(DEMO_QUARANTINED, "seal", seal("KP-000123", DAY + 300), DAY + 300).await?;
    step(DEMO_QUARANTINED, "store", store(DAY + 600), DAY + 600).await?;
    let hold = CustodyCommand::PlaceHold {
        kind: HoldKind::Quarantine,
        reason: "kept untouched until police advice is sought (demo)".into(),
        police_reference: None,
        authorised_by: "kestrel-dsl".into(),
        at: UnixTime(DAY + 900),
    };
    step(DEMO_QUARANTINED, "quarantine", hold, DAY + 900).await?;

    // A tablet the police asked for: sealed, stored, handed over with the seal intact.
    let reason = "images feared to be indecent (demo): not viewed, police informed";
    let at = DAY + 1200;
    step(
        DEMO_WITH_POLICE,
        "seize",
        seize(DEMO_WITH_POLICE, "silver tablet, blue cover (demo)", learner("k3"), reason, None, at),
        at,
    )
    .await?;
    step(DEMO_WITH_POLICE, "seal", seal("KP-000124", at + 300), at + 300).await?;
    step(DEMO_WITH_POLICE, "store", store(at + 600), at + 600).await?;
    let handover = CustodyCommand::HandToPolice {
        officer: "PC 0000 Example (demo)".into(),
        force: "Invented Constabulary (demo)".into(),
        police_reference: "DEMO/0001/26".into(),
        handed_over_by: "kestrel-dsl".into(),
        witness: Some("kestrel-head".into()),
        seal_number: "KP-000124".into(),
        at: UnixTime(at + 7200),
    };
    step(DEMO_WITH_POLICE, "handover", handover, at + 7200).await?;

    // A phone confiscated in the afternoon and not given back: the end-of-day sweep's action.
    let at = DAY + 3 * 3600;
    step(
        DEMO_SWEPT,
        "seize",
        seize(DEMO_SWEPT, "green phone (demo)", learner("k1"), "used in class against the rules (demo)", None, at),
        at,
    )
    .await?;
    step(DEMO_SWEPT, "seal", seal("KP-000125", at + 120), at + 120).await?;
    let date = jiff::civil::date(2026, 10, 6);
    let day: SchoolDay = CustodyConfig::default().school_day(date).expect("the default school day is valid");
    let swept_at = UnixTime(day.ends_at.0 + 60);
    let sweep = CommandContext { request_id: format!("sweep:{date}"), ..context("sweep", swept_at.0) };
    app.end_of_day_sweep(&sweep, &[DEMO_SWEPT.to_owned()], day, swept_at).await?;

    // School laptops: three registered, one with a teacher, one on loan to a learner.
    for (index, device_id) in DEMO_LAPTOPS.iter().enumerate() {
        let at = DAY - 30 * 86_400 + index as i64 * 60;
        let register = RegisterCommand::Register {
            device_id: (*device_id).into(),
            school_id: school(),
            kind: DeviceKind::Laptop,
            asset_tag: format!("KP-LT-{:04}", index + 1),
            serial_number: format!("DEMO-SN-{:06}", 1000 + index),
            model: "Invented 14-inch laptop (demo)".into(),
            managed: true,
            registered_by: "kestrel-tech".into(),
            at: UnixTime(at),
        };
        app.register_command(&context(&format!("{device_id}:register"), at), device_id, register).await?;
    }
    let holders = [
        (Holder::Staff { user_id: "kestrel-teacher".into() }, "teaching (demo)", None),
        (
            Holder::Learner { subject_id: learner("k1") },
            "remote learning loan (demo)",
            Some(UnixTime(DAY + 60 * 86_400)),
        ),
    ];
    for ((holder, purpose, due), device_id) in holders.into_iter().zip(DEMO_LAPTOPS) {
        let at = DAY - 29 * 86_400;
        let allocate = RegisterCommand::Allocate {
            holder,
            aup_version: 1,
            current_aup_version: 1,
            purpose: purpose.into(),
            expected_return_at: due,
            allocated_by: "kestrel-tech".into(),
            at: UnixTime(at),
        };
        app.register_command(&context(&format!("{device_id}:allocate"), at), device_id, allocate).await?;
    }
    Ok(())
}
