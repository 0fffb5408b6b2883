//! The LADO and police referral registers, and their CSV export.

use haven_proto::v1 as pb;

use super::dashboard::{Scope, in_scope};
use super::state::{CustodyEnd, ReportState};
use crate::time::timestamp;

const POLICE_AGENCIES: [pb::ReferralAgency; 3] =
    [pb::ReferralAgency::Police101, pb::ReferralAgency::Police999, pb::ReferralAgency::Ceop];

/// LADO referrals made in `[from, to)`, oldest first. A case about `caller` (one of its
/// `staff_user_ids`) is never listed.
pub fn lado_register(
    state: &ReportState,
    scope: Scope<'_>,
    from: i64,
    to: i64,
    caller: &str,
) -> Vec<pb::LadoRegisterEntry> {
    let mut entries: Vec<_> = state
        .referrals
        .iter()
        .filter(|(_, r)| r.agency == pb::ReferralAgency::Lado as i32)
        .filter(|(_, r)| in_scope(scope, &r.school_id) && r.referred_at >= from && r.referred_at < to)
        .filter(|(_, r)| {
            !state.cases.get(&r.case_id).is_some_and(|case| case.staff_user_ids.iter().any(|id| id == caller))
        })
        .map(|(referral_id, r)| {
            let case = state.cases.get(&r.case_id);
            pb::LadoRegisterEntry {
                case_id: r.case_id.clone(),
                school_id: r.school_id.clone(),
                referral_id: referral_id.clone(),
                referred_at: Some(timestamp(r.referred_at)),
                reference_number: r.reference_number.clone(),
                outcome: r.outcome,
                allegation_outcome: r.allegation_outcome,
                outcome_at: r.outcome_at.map(timestamp),
                case_status: match case {
                    Some(case) if case.closed_at.is_some() => pb::CaseStatus::Closed as i32,
                    Some(_) => pb::CaseStatus::Open as i32,
                    None => pb::CaseStatus::Unspecified as i32,
                },
                closed_at: case.and_then(|case| case.closed_at).map(timestamp),
            }
        })
        .collect();
    entries.sort_by_key(|entry| (entry.referred_at.map(|t| t.seconds), entry.referral_id.clone()));
    entries
}

/// Police (101, 999) and CEOP referrals made in `[from, to)`, oldest first, with the devices
/// handed to the police for each case.
pub fn police_register(state: &ReportState, scope: Scope<'_>, from: i64, to: i64) -> Vec<pb::PoliceRegisterEntry> {
    let mut entries: Vec<_> = state
        .referrals
        .iter()
        .filter(|(_, r)| POLICE_AGENCIES.iter().any(|agency| *agency as i32 == r.agency))
        .filter(|(_, r)| in_scope(scope, &r.school_id) && r.referred_at >= from && r.referred_at < to)
        .map(|(referral_id, r)| pb::PoliceRegisterEntry {
            case_id: r.case_id.clone(),
            school_id: r.school_id.clone(),
            case_type: state.cases.get(&r.case_id).map_or(0, |case| case.case_type),
            referral_id: referral_id.clone(),
            agency: r.agency,
            referred_at: Some(timestamp(r.referred_at)),
            reference_number: r.reference_number.clone(),
            outcome: r.outcome,
            outcome_at: r.outcome_at.map(timestamp),
            custody_ids: state
                .custody
                .iter()
                .filter(|(_, custody)| {
                    !r.case_id.is_empty()
                        && custody.case_id == r.case_id
                        && matches!(custody.ended, Some((_, CustodyEnd::HandedToPolice)))
                })
                .map(|(custody_id, _)| custody_id.clone())
                .collect(),
        })
        .collect();
    entries.sort_by_key(|entry| (entry.referred_at.map(|t| t.seconds), entry.referral_id.clone()));
    entries
}

/// A CSV field: quoted when it holds a comma, quote or line break; a leading `=`, `+`, `-` or
/// `@` is prefixed with `'` so a spreadsheet never runs it as a formula.
fn field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

fn time(value: Option<prost_types::Timestamp>) -> String {
    value.and_then(|t| jiff::Timestamp::from_second(t.seconds).ok()).map(|t| t.to_string()).unwrap_or_default()
}

fn name<E: TryFrom<i32>>(value: i32, as_str: impl Fn(E) -> &'static str) -> String {
    E::try_from(value).map(as_str).unwrap_or("UNKNOWN").to_owned()
}

/// The LADO register as CSV (RFC 4180, header first, CRLF line ends).
pub fn lado_csv(entries: &[pb::LadoRegisterEntry]) -> String {
    let mut csv = String::from(
        "case_id,school_id,referral_id,referred_at,reference_number,outcome,allegation_outcome,outcome_at,case_status,closed_at\r\n",
    );
    for e in entries {
        let row = [
            field(&e.case_id),
            field(&e.school_id),
            field(&e.referral_id),
            time(e.referred_at),
            field(&e.reference_number),
            name(e.outcome, |o: pb::ReferralOutcome| o.as_str_name()),
            name(e.allegation_outcome, |o: pb::AllegationOutcome| o.as_str_name()),
            time(e.outcome_at),
            name(e.case_status, |s: pb::CaseStatus| s.as_str_name()),
            time(e.closed_at),
        ];
        csv.push_str(&row.join(","));
        csv.push_str("\r\n");
    }
    csv
}

/// The police register as CSV (custody ids separated by `;`).
pub fn police_csv(entries: &[pb::PoliceRegisterEntry]) -> String {
    let mut csv = String::from(
        "case_id,school_id,case_type,referral_id,agency,referred_at,reference_number,outcome,outcome_at,custody_ids\r\n",
    );
    for e in entries {
        let row = [
            field(&e.case_id),
            field(&e.school_id),
            name(e.case_type, |t: pb::CaseType| t.as_str_name()),
            field(&e.referral_id),
            name(e.agency, |a: pb::ReferralAgency| a.as_str_name()),
            time(e.referred_at),
            field(&e.reference_number),
            name(e.outcome, |o: pb::ReferralOutcome| o.as_str_name()),
            time(e.outcome_at),
            field(&e.custody_ids.join(";")),
        ];
        csv.push_str(&row.join(","));
        csv.push_str("\r\n");
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(field("CR/123"), "CR/123");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }
}
