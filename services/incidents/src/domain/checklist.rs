//! The checklist of actions each case type's procedure requires, as versioned data.
//!
//! One table, one row per action, each with the policy section it comes from (first policy
//! unless marked "second policy"). A case copies the rows for its type when it opens, with
//! [`CHECKLIST_VERSION`], so it keeps showing what was required at the time after the table
//! changes. Changing a row's meaning means a new version: add rows, bump the version, never
//! edit what a version said.

use super::types::{Agency, CaseType};

/// The version of [`CHECKLIST`] new cases open with.
pub const CHECKLIST_VERSION: u32 = 1;

/// When a row applies to a case of its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    Always,
    /// Only when the case names a member of staff (e.g. staff holding indecent images, 11.4).
    WhenStaffInvolved,
}

/// When the action is due, counted from the case's opening.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    NoDeadline,
    /// Within this many working days (Monday to Friday).
    WorkingDays(u32),
}

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChecklistRow {
    /// `None`: every case type carries it.
    pub case_type: Option<CaseType>,
    pub key: &'static str,
    pub title: &'static str,
    /// Where the policy requires it.
    pub section: &'static str,
    pub applies: Applies,
    pub due: Due,
    /// A referral to this agency completes the action when it is recorded.
    pub done_by_referral: Option<Agency>,
}

const fn row(case_type: CaseType, key: &'static str, title: &'static str, section: &'static str) -> ChecklistRow {
    ChecklistRow {
        case_type: Some(case_type),
        key,
        title,
        section,
        applies: Applies::Always,
        due: Due::NoDeadline,
        done_by_referral: None,
    }
}

const fn lado(case_type: CaseType, key: &'static str, title: &'static str, section: &'static str) -> ChecklistRow {
    ChecklistRow {
        due: Due::WorkingDays(1),
        done_by_referral: Some(Agency::Lado),
        ..row(case_type, key, title, section)
    }
}

const fn when_staff(row: ChecklistRow) -> ChecklistRow {
    ChecklistRow { applies: Applies::WhenStaffInvolved, ..row }
}

const fn every_type(key: &'static str, title: &'static str, section: &'static str) -> ChecklistRow {
    ChecklistRow { case_type: None, ..row(CaseType::FilteringBreach, key, title, section) }
}

use CaseType::*;

/// Version 1 of every case type's checklist (policy sections 7.3, 10, 11; second policy 12).
pub const CHECKLIST: &[ChecklistRow] = &[
    // Every type (policy 10).
    every_type(
        "seek-advice-if-unsure",
        "Seek advice from the Education Safeguarding Service if unsure how to proceed",
        "10",
    ),
    every_type(
        "police-if-illegal",
        "Contact the police (101, or 999 on immediate risk) where illegal activity is suspected",
        "10",
    ),
    // Filtering breach (7.3.2).
    row(
        FilteringBreach,
        "notify-dsl-and-technical",
        "Report the breach to the DSL (or deputy) and technical staff",
        "7.3.2",
    ),
    row(FilteringBreach, "inform-parents", "Inform parents/carers of a breach involving their child", "7.3.2"),
    row(
        FilteringBreach,
        "report-illegal-content",
        "Report material believed illegal to the IWF, police and/or CEOP",
        "7.3.2",
    ),
    row(FilteringBreach, "review-filtering", "Review the filtering policy in the light of the breach", "7.3.1"),
    // Online sexual violence and sexual harassment between children (11.1).
    row(OnlineSexualViolenceHarassment, "notify-dsl", "Notify the DSL (or deputy) immediately", "11.1"),
    row(
        OnlineSexualViolenceHarassment,
        "manage-devices",
        "Manage devices under the searching, screening and confiscation advice",
        "11.1",
    ),
    row(
        OnlineSexualViolenceHarassment,
        "safety-plan-and-support",
        "Safety plans and support for all learners involved",
        "11.1",
    ),
    row(OnlineSexualViolenceHarassment, "sanctions", "Sanctions under the behaviour policy", "11.1"),
    row(
        OnlineSexualViolenceHarassment,
        "inform-parents",
        "Inform parents/carers, if appropriate, of the incident and how it is managed",
        "11.1",
    ),
    row(
        OnlineSexualViolenceHarassment,
        "consider-referral",
        "Consider referral to Children's Social Work Service and/or the police",
        "11.1",
    ),
    row(
        OnlineSexualViolenceHarassment,
        "police-first-if-criminal",
        "Discuss with the police first if a criminal offence was committed",
        "11.1",
    ),
    row(OnlineSexualViolenceHarassment, "liaise-other-settings", "Work with DSLs of other settings involved", "11.1"),
    row(OnlineSexualViolenceHarassment, "review-handling", "Review the handling of the incident", "11.1"),
    // Sharing nudes and semi-nudes (11.2, UKCIS; second policy 12).
    row(SharingNudes, "notify-dsl", "Report to and have the DSL (or deputy) deal with it", "11.2"),
    row(
        SharingNudes,
        "do-not-view-or-copy",
        "Do not view, send, share, save or copy the imagery",
        "11.2; second policy 12",
    ),
    row(SharingNudes, "secure-devices", "Store devices containing the imagery securely", "11.2"),
    row(SharingNudes, "block-and-isolate", "Block access to imagery on the school network and isolate it", "11.2"),
    row(SharingNudes, "risk-assessment", "Risk assessment under the UKCIS guidance", "11.2"),
    row(SharingNudes, "inform-parents", "Inform parents/carers and provide support and signposting", "11.2"),
    row(
        SharingNudes,
        "consider-referral",
        "Referral to Children's Social Work Service and/or the police as appropriate",
        "11.2",
    ),
    row(SharingNudes, "support", "Counselling or pastoral support for learners", "11.2"),
    row(SharingNudes, "sanctions", "Sanctions, taking care not to further traumatise victims", "11.2"),
    row(SharingNudes, "consider-deletion", "Consider deletion, only once the DSL confirms no agency needs it", "11.2"),
    row(SharingNudes, "review-handling", "Review the handling of the incident", "11.2"),
    // Online abuse and exploitation (11.3).
    row(OnlineAbuseExploitation, "notify-dsl", "Report to and have the DSL (or deputy) deal with it", "11.3"),
    row(OnlineAbuseExploitation, "secure-devices", "Store devices containing evidence securely", "11.3"),
    row(
        OnlineAbuseExploitation,
        "block-and-isolate",
        "Block access to content on the school network and isolate it",
        "11.3",
    ),
    row(
        OnlineAbuseExploitation,
        "refer-csws-and-police",
        "Refer to Children's Social Work Service and inform the police (101, or 999)",
        "11.3",
    ),
    row(OnlineAbuseExploitation, "risk-assessment", "Risk assessment considering learners' vulnerabilities", "11.3"),
    row(OnlineAbuseExploitation, "inform-parents", "Inform parents/carers and provide support and signposting", "11.3"),
    row(OnlineAbuseExploitation, "support", "Counselling or pastoral support for learners", "11.3"),
    row(
        OnlineAbuseExploitation,
        "pass-intelligence-to-police",
        "Pass intelligence on child sexual exploitation to the police",
        "11.3",
    ),
    row(
        OnlineAbuseExploitation,
        "advice-before-sharing-beyond-school",
        "Seek police or ESS advice before sharing beyond the school",
        "11.3",
    ),
    row(OnlineAbuseExploitation, "review-handling", "Review the handling of the incident", "11.3"),
    // Indecent images of children (11.4).
    row(IndecentImagesOfChildren, "notify-dsl", "Ensure the DSL (or deputy) is informed", "11.4"),
    row(IndecentImagesOfChildren, "secure-devices", "Store devices involved securely", "11.4"),
    row(IndecentImagesOfChildren, "report-urls-to-iwf", "Report the URLs containing the images to the IWF", "11.4"),
    row(IndecentImagesOfChildren, "inform-police", "Inform the police (101, or 999 on immediate risk)", "11.4"),
    row(IndecentImagesOfChildren, "refer-csws", "Refer to Children's Social Work Service as appropriate", "11.4"),
    row(IndecentImagesOfChildren, "delete-other-copies", "Ensure any copies (e.g. in emails) are deleted", "11.4"),
    row(
        IndecentImagesOfChildren,
        "store-only-on-police-written-request",
        "Store copies only on a written request from the police",
        "11.4",
    ),
    row(IndecentImagesOfChildren, "inform-parents", "Report concerns to parents/carers as appropriate", "11.4"),
    when_staff(row(
        IndecentImagesOfChildren,
        "inform-principal",
        "Inform the principal under the allegations against staff policy",
        "11.4",
    )),
    when_staff(lado(IndecentImagesOfChildren, "refer-lado", "Inform the LADO", "11.4")),
    when_staff(row(
        IndecentImagesOfChildren,
        "quarantine-devices",
        "Quarantine devices until police advice has been sought",
        "11.4",
    )),
    // Cyberbullying (11.5, anti-bullying policy).
    row(Cyberbullying, "notify-dsl", "Inform the DSL (or deputy)", "11.5"),
    row(Cyberbullying, "support", "Support for the learners involved", "11.5"),
    row(Cyberbullying, "sanctions", "Sanctions under the anti-bullying and behaviour policies", "11.5"),
    row(Cyberbullying, "inform-parents", "Inform parents/carers", "10.1"),
    row(Cyberbullying, "report-and-remove-content", "Report and seek removal of the content", "11.5"),
    // Online hate (11.6).
    row(OnlineHate, "notify-dsl", "Inform the DSL (or deputy)", "11.6"),
    row(
        OnlineHate,
        "respond-under-policies",
        "Respond under the child protection, anti-bullying and behaviour policies",
        "11.6",
    ),
    row(OnlineHate, "police-if-offence-suspected", "Contact the police if a criminal offence is suspected", "11.6"),
    row(OnlineHate, "support", "Support for those targeted", "11.6"),
    row(OnlineHate, "inform-parents", "Inform parents/carers", "10.1"),
    // Online radicalisation and extremism (11.7).
    row(
        RadicalisationExtremism,
        "notify-dsl",
        "Inform the DSL (or deputy), or the principal for staff, immediately",
        "11.7",
    ),
    row(RadicalisationExtremism, "consider-prevent-referral", "Consider a Prevent / Channel referral", "11.7"),
    row(RadicalisationExtremism, "support", "Support in line with the child protection policy", "11.7"),
    row(RadicalisationExtremism, "inform-parents", "Inform parents/carers", "10.1"),
    // Allegation against staff (10.2).
    row(AllegationAgainstStaff, "inform-principal", "Refer the complaint to the principal", "10.2"),
    lado(
        AllegationAgainstStaff,
        "discuss-with-lado",
        "Discuss the allegation with the LADO within one working day",
        "10.2",
    ),
    row(
        AllegationAgainstStaff,
        "conduct-procedure",
        "Disciplinary, civil or legal action under the staff code of conduct",
        "10.2",
    ),
    row(AllegationAgainstStaff, "welfare-support", "Offer welfare support to the member of staff", "10.2"),
    // Low-level concern about staff (KCSIE part 4; recorded apart from allegations).
    row(LowLevelConcern, "inform-principal", "Share the concern with the principal", "10.2"),
    row(LowLevelConcern, "record-and-review", "Record the concern and review for patterns", "10.2"),
    // Concern about a parent/carer (10.3).
    row(ConcernAboutParentCarer, "inform-principal-or-dsl", "Report to the principal and/or DSL (or deputy)", "10.3"),
    row(ConcernAboutParentCarer, "respond-under-policies", "Respond under the relevant school policies", "10.3"),
    row(ConcernAboutParentCarer, "welfare-support", "Offer welfare support to the parent/carer", "10.3"),
    // Commerce: gambling, scams, phishing (4 Cs).
    row(Commerce, "notify-dsl", "Inform the DSL (or deputy)", "10.1"),
    row(Commerce, "support", "Support and advice for the learner", "10.1"),
    row(Commerce, "inform-parents", "Inform parents/carers", "10.1"),
    row(Commerce, "report-fraud", "Report scams or fraud (Action Fraud) where appropriate", "12"),
];

/// The rows a new case of `case_type` opens with, in table order.
pub fn rows_for(case_type: CaseType, staff_involved: bool) -> impl Iterator<Item = &'static ChecklistRow> {
    CHECKLIST.iter().filter(move |row| {
        row.case_type.is_none_or(|of| of == case_type) && (row.applies == Applies::Always || staff_involved)
    })
}

/// The key of an action outside the checklist.
pub const OTHER_ACTION: &str = "other";
/// The checklist key parents' decisions complete.
pub const INFORM_PARENTS: &str = "inform-parents";
/// The checklist key that says imagery must not be viewed; marking it not applicable means
/// it was viewed, which needs the written record first.
pub const DO_NOT_VIEW: &str = "do-not-view-or-copy";

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_type_has_its_own_procedure_and_keys_are_unique_per_type() {
        for case_type in CaseType::ALL {
            let keys: Vec<_> = rows_for(case_type, true).map(|row| row.key).collect();
            let unique: BTreeSet<_> = keys.iter().collect();
            assert_eq!(keys.len(), unique.len(), "{case_type:?} repeats a key");
            assert!(keys.len() > 2, "{case_type:?} has only the common rows");
            assert!(!keys.contains(&OTHER_ACTION));
        }
    }

    #[test]
    fn staff_rows_only_when_staff_are_involved() {
        let without: Vec<_> = rows_for(IndecentImagesOfChildren, false).map(|row| row.key).collect();
        let with: Vec<_> = rows_for(IndecentImagesOfChildren, true).map(|row| row.key).collect();
        assert!(!without.contains(&"refer-lado"));
        assert!(with.contains(&"refer-lado") && with.contains(&"quarantine-devices"));
    }

    #[test]
    fn every_row_names_its_policy_section_and_a_title() {
        for row in CHECKLIST {
            assert!(!row.section.is_empty() && !row.title.is_empty(), "{}", row.key);
            assert!(row.key.len() <= 64 && row.key.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'));
        }
    }
}
