use proptest::prelude::*;

use ed25519_dalek::Signer as _;

use super::*;

fn signer() -> TrailSigner {
    TrailSigner::from_seed("custody-test-key", &[7u8; 32])
}

fn header() -> TrailHeader {
    TrailHeader {
        custody_id: "c1".into(),
        school_id: "elm-academy".into(),
        case_id: "case-1".into(),
        device_description: "black phone, cracked case".into(),
        generated_at: 1_700_010_000,
        generated_by_user_id: "dsl-1".into(),
        purpose: "police evidence, ref CR-1 <urgent> & sealed".into(),
        head_position: 40,
        head_hash: vec![0xab; 32],
    }
}

fn steps() -> Vec<TrailStep> {
    ["custody.DeviceSeized", "custody.DevicePoweredOffAndSealed", "custody.DeviceHandedToPolice"]
        .iter()
        .enumerate()
        .map(|(i, event_type)| TrailStep {
            position: 10 + 7 * i as u64,
            event_type: (*event_type).into(),
            occurred_at: 1_700_000_000 + 60 * i as i64,
            recorded_by: "dsl-1".into(),
            by_user_id: "teacher-1".into(),
            witness_user_id: "teacher-2".into(),
            summary: format!("step {i}, é"),
            payload: vec![i as u8; 5],
            log_hash: vec![i as u8; 32],
        })
        .collect()
}

fn exported() -> Vec<u8> {
    export(&header(), &steps(), &signer()).to_json()
}

#[test]
fn an_untouched_export_verifies() {
    let verified = verify(&exported(), &VerifyOptions::default()).unwrap();
    assert_eq!(verified.key_id, "custody-test-key");
    assert_eq!(verified.public_key, signer().public_key());
    assert_eq!(verified.trail.document.entries.len(), 3);
    let pinned = VerifyOptions { trusted_public_key: Some(signer().public_key()) };
    assert!(verify(&exported(), &pinned).is_ok());
}

#[test]
fn every_flipped_byte_fails() {
    let original = exported();
    for offset in 0..original.len() {
        for mask in [0x01u8, 0x20, 0x80] {
            let mut edited = original.clone();
            edited[offset] ^= mask;
            assert!(verify(&edited, &VerifyOptions::default()).is_err(), "byte {offset} ^ {mask:#x} went unnoticed");
        }
    }
}

proptest! {
    #[test]
    fn any_edit_at_any_position_fails(position in any::<prop::sample::Index>(), replacement in any::<u8>()) {
        let original = exported();
        let offset = position.index(original.len());
        prop_assume!(original[offset] != replacement);
        let mut edited = original;
        edited[offset] = replacement;
        prop_assert!(verify(&edited, &VerifyOptions::default()).is_err());
    }
}

fn resigned(trail: &mut SignedTrail) {
    trail.signature = hex::encode(signer().key.sign(&trail.signed_bytes()).to_bytes());
}

#[test]
fn errors_name_what_is_wrong() {
    let trail = export(&header(), &steps(), &signer());

    let mut altered = trail.clone();
    altered.document.entries[1].summary = "something else".into();
    assert_eq!(verify(&altered.to_json(), &VerifyOptions::default()), Err(VerifyError::EntryAltered { seq: 1 }));

    let mut removed = trail.clone();
    removed.document.entries.remove(1);
    removed.document.entries[1].seq = 1;
    assert_eq!(verify(&removed.to_json(), &VerifyOptions::default()), Err(VerifyError::LinkBroken { seq: 1 }));

    let mut cut = trail.clone();
    cut.document.entries.pop();
    assert_eq!(verify(&cut.to_json(), &VerifyOptions::default()), Err(VerifyError::Truncated));

    let mut purpose = trail.clone();
    purpose.document.purpose = "something else".into();
    assert_eq!(verify(&purpose.to_json(), &VerifyOptions::default()), Err(VerifyError::SignatureInvalid));

    // Re-signed with another key: verifies on its own, not against the trusted key.
    let mut other = trail.clone();
    let forger = TrailSigner::from_seed("custody-test-key", &[9u8; 32]);
    other.document.signer.public_key = hex::encode(forger.public_key());
    other.signature = hex::encode(forger.key.sign(&other.signed_bytes()).to_bytes());
    assert!(verify(&other.to_json(), &VerifyOptions::default()).is_ok());
    let pinned = VerifyOptions { trusted_public_key: Some(signer().public_key()) };
    assert!(matches!(verify(&other.to_json(), &pinned), Err(VerifyError::UntrustedKey { .. })));

    // Same content, other bytes.
    let mut compact = serde_json::to_vec(&trail).unwrap();
    compact.push(b'\n');
    assert!(matches!(verify(&compact, &VerifyOptions::default()), Err(VerifyError::NotCanonical { .. })));

    let mut format = trail.clone();
    format.document.format = "other".into();
    resigned(&mut format);
    assert_eq!(verify(&format.to_json(), &VerifyOptions::default()), Err(VerifyError::UnknownFormat("other".into())));

    assert!(matches!(verify(b"{}", &VerifyOptions::default()), Err(VerifyError::Malformed { .. })));
}

#[test]
fn an_empty_trail_still_signs_and_verifies() {
    let trail = export(&header(), &[], &signer());
    assert_eq!(trail.document.last_entry_hash, GENESIS_HASH);
    assert!(verify(&trail.to_json(), &VerifyOptions::default()).is_ok());
}

#[test]
fn the_page_escapes_what_people_typed() {
    let html = render_html(&export(&header(), &steps(), &signer()));
    assert!(html.contains("ref CR-1 &lt;urgent&gt; &amp; sealed"));
    assert!(!html.contains("<urgent>"));
    assert!(html.contains("haven custody verify FILE"));
}
