//! Property: however a history is cut into batches, the projection ends in the state that
//! folding the events one by one gives (so a rebuild equals the live projection).

use haven_bus::{Batch, Projection};
use haven_kernel::Position;
use haven_proto::v1 as pb;
use haven_reporting::{ReportState, ReportingProjection};
use proptest::prelude::*;
use prost::Message;

fn event(position: u64, kind: u8, school: u8, at: i64) -> pb::EventEnvelope {
    let school_id = format!("school-{school}");
    let (event_type, payload) = match kind % 6 {
        0 => (
            "identity.SchoolRegistered",
            pb::SchoolRegistered {
                school_id: school_id.clone(),
                pupil_count: 100 + u32::from(school),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        1 => (
            "ingest.BreachObserved",
            pb::BreachObserved {
                school_id: school_id.clone(),
                category: i32::from(kind % 13),
                subject_id: format!("s{}", kind % 3),
                repeat_count: 1,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        2 => (
            "incidents.CaseOpened",
            pb::CaseOpened {
                case_id: format!("c{}", kind % 4),
                school_id: school_id.clone(),
                risk_level: i32::from(kind % 5),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        3 => (
            "incidents.CaseClosed",
            pb::CaseClosed { case_id: format!("c{}", kind % 4), ..Default::default() }.encode_to_vec(),
        ),
        4 => (
            "incidents.ReferralMade",
            pb::ReferralMade {
                case_id: format!("c{}", kind % 4),
                referral_id: format!("r{}", kind % 2),
                school_id: school_id.clone(),
                agency: i32::from(kind % 10),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        _ => (
            "custody.DeviceSeized",
            pb::DeviceSeized {
                custody_id: format!("d{}", kind % 3),
                school_id: school_id.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
    };
    pb::EventEnvelope {
        event_id: position.to_be_bytes().to_vec(),
        position,
        event_type: event_type.to_owned(),
        school_id,
        occurred_at: Some(prost_types::Timestamp { seconds: at, nanos: 0 }),
        payload,
        ..Default::default()
    }
}

proptest! {
    #[test]
    fn batches_of_any_size_rebuild_the_same_state(
        history in proptest::collection::vec((any::<u8>(), 0u8..4, 1_700_000_000i64..1_700_900_000), 0..80),
        batch in 1usize..20,
    ) {
        let events: Vec<_> = history.iter().enumerate().map(|(i, (kind, school, at))| event(i as u64, *kind, *school, *at)).collect();
        let mut folded = ReportState::default();
        for event in &events {
            folded.apply(event);
        }
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut projection = ReportingProjection::new();
        let view = projection.view();
        runtime.block_on(async {
            for (index, chunk) in events.chunks(batch).enumerate() {
                let checkpoint = Position(((index + 1) * batch).min(events.len()) as u64);
                projection.apply(Batch { events: chunk, checkpoint, parked: None }).await.unwrap();
            }
        });
        let live = view.read(|state, checkpoint| { assert_eq!(checkpoint, events.len() as u64); state.clone() });
        prop_assert_eq!(live, folded);
    }
}
