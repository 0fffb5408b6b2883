//! The alert rules (policy 7.3, issue 7): which breaches a DSL must see, and how urgently.
//! Pure: the pipeline passes each breach and the time, the rules keep their own windows.
//!
//! ```text
//!  illegal content (IWF, CTIRU, coercive control, intimate image abuse) ─▶ critical, at once
//!  self-harm or suicide, or the filter's own safeguarding level (5)    ─▶ critical, at once
//!  a category the rules name (default: extremism)                      ─▶ high
//!  the same subject (else device, else address) on one category,
//!  `repeat_threshold` times within `repeat_window` (blocked or flagged) ─▶ medium, or one step up
//!  a vulnerable learner (looked-after, CP plan, SEND; ADR 0025), blocked
//!  or flagged: an alert one step up (critical stays critical); a first
//!  attempt in a harmful category (`vulnerable_categories`)             ─▶ medium at once
//!  anything else                                                       ─▶ recorded for trends
//! ```
//! Policy 7.3.2 names the harmful categories the filter blocks, and 5.2 the learners who are more
//! susceptible online: for them a DSL sees the first blocked attempt, not the third.
//! An alert for the same school, attribution, host and category inside the window is not
//! raised again: the later breaches are still recorded, each naming the alert it was collapsed
//! into, so the alert's count is kept in the log.
//!
//! The settings are per school (ADR 0028): `settings.rs` checks and merges a scope's
//! overrides, `book.rs` follows the changes from the log, `app.rs` records a change.

pub mod app;
pub mod book;
pub mod demo;
pub mod settings;

pub use app::RulesApp;
pub use book::{InForce, RuleBook};

use std::collections::{HashMap, VecDeque};

use haven_proto::v1 as pb;
use jiff::{SignedDuration, Timestamp};

/// The rules' settings: the deployment's defaults (`[ingest]` in the configuration), with the
/// trust's and a school's overrides merged over them (ADR 0028).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSettings {
    pub repeat_window: SignedDuration,
    pub repeat_threshold: u32,
    /// Categories that raise a high alert on their own.
    pub high_categories: Vec<pb::BreachCategory>,
    /// Categories that raise a critical alert at once; always holds illegal content and
    /// self-harm (`settings::ALWAYS_CRITICAL`), which alert as critical even if it did not.
    pub critical_categories: Vec<pb::BreachCategory>,
    /// How long a DSL has to acknowledge a critical alert before it escalates.
    pub critical_ack: SignedDuration,
    /// ... and an alert of any other severity.
    pub other_ack: SignedDuration,
    /// Whether a vulnerable learner's breaches raise severity (on by default).
    pub vulnerable_raise: bool,
    /// Categories in which a vulnerable learner's first blocked or flagged attempt alerts.
    pub vulnerable_categories: Vec<pb::BreachCategory>,
}

/// The harmful categories of policy 7.3.2 (and illegal content).
pub const HARMFUL_CATEGORIES: [pb::BreachCategory; 14] = [
    pb::BreachCategory::Discrimination,
    pb::BreachCategory::HateSpeech,
    pb::BreachCategory::Drugs,
    pb::BreachCategory::Extremism,
    pb::BreachCategory::Gambling,
    pb::BreachCategory::MalwareHacking,
    pb::BreachCategory::Pornography,
    pb::BreachCategory::Piracy,
    pb::BreachCategory::SelfHarm,
    pb::BreachCategory::Violence,
    pb::BreachCategory::IllegalChildAbuseIwf,
    pb::BreachCategory::IllegalTerroristContentCtiru,
    pb::BreachCategory::IllegalCoerciveControl,
    pb::BreachCategory::IllegalIntimateImageAbuse,
];

impl Default for RuleSettings {
    fn default() -> Self {
        RuleSettings {
            repeat_window: SignedDuration::from_mins(10),
            repeat_threshold: 3,
            high_categories: vec![pb::BreachCategory::Extremism],
            critical_categories: settings::ALWAYS_CRITICAL.to_vec(),
            critical_ack: SignedDuration::from_mins(15),
            other_ack: SignedDuration::from_hours(24),
            vulnerable_raise: true,
            vulnerable_categories: HARMFUL_CATEGORIES.to_vec(),
        }
    }
}

/// What the rules decided for one breach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub severity: pb::AlertSeverity,
    pub triggers: Vec<pb::AlertTrigger>,
    pub acknowledge_by: Timestamp,
    /// The learner's flags raised (or, for a critical alert, marked) the alert.
    pub vulnerable_learner: bool,
}

/// What the rules made of one breach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Recorded for trends; no alert.
    Recorded,
    Alert(Verdict),
    /// The same alert was raised within the window (this id): recorded, counted with it.
    CollapsedInto(String),
}

/// Who a breach is attributed to for repeats and duplicates: the device, else the address.
type Attribution = String;

/// What makes two alerts the same: school, attribution, host, category.
type AlertKey = (String, Attribution, String, i32);

/// The rules with their windows.
#[derive(Debug, Default)]
pub struct Rules {
    settings: RuleSettings,
    /// (school, attribution, category) → times of recent attempts.
    attempts: HashMap<(String, Attribution, i32), VecDeque<Timestamp>>,
    /// (school, attribution, host, category) → when the last alert was raised, for which
    /// breach (its line digest) and its id: judging that breach again (a batch retried after
    /// the log refused it) raises the same alert again instead of suppressing it.
    raised: HashMap<AlertKey, (Timestamp, Vec<u8>, String)>,
    /// The longest repeat window any school's rules have had: windows are kept that long.
    longest_window: SignedDuration,
    /// The windows are pruned when they grow past this, which then doubles from what is left:
    /// pruning stays amortised O(1) per breach however many attributions are active.
    prune_at: usize,
}

/// The windows are never pruned below this many entries.
const PRUNE_FLOOR: usize = 10_000;

/// Whether a category is illegal content.
pub fn is_illegal(category: pb::BreachCategory) -> bool {
    matches!(
        category,
        pb::BreachCategory::IllegalChildAbuseIwf
            | pb::BreachCategory::IllegalTerroristContentCtiru
            | pb::BreachCategory::IllegalCoerciveControl
            | pb::BreachCategory::IllegalIntimateImageAbuse
    )
}

impl Rules {
    /// Rules whose [`Rules::judge`] uses `settings` (the pipeline passes each school's).
    pub fn new(settings: RuleSettings) -> Self {
        Rules { settings, prune_at: PRUNE_FLOOR, ..Rules::default() }
    }

    pub fn settings(&self) -> &RuleSettings {
        &self.settings
    }

    /// [`Rules::judge_under`] the settings the rules were made with. `None`: recorded, no
    /// alert — either nothing to alert on, or the same alert was raised within the window.
    pub fn judge(&mut self, breach: &pb::BreachObserved, at: Timestamp, vulnerable: bool) -> Option<Verdict> {
        let settings = self.settings.clone();
        match self.judge_under(&settings, breach, at, vulnerable, String::new) {
            Judgement::Alert(verdict) => Some(verdict),
            Judgement::Recorded | Judgement::CollapsedInto(_) => None,
        }
    }

    /// Judges one breach seen at `at` (its occurred time) under its school's `settings`;
    /// `vulnerable` when it resolved to a vulnerable learner; `alert_id` gives the id its alert
    /// has, named by later breaches collapsed into it (asked only when an alert is raised:
    /// most breaches raise none).
    pub fn judge_under(
        &mut self,
        settings: &RuleSettings,
        breach: &pb::BreachObserved,
        at: Timestamp,
        vulnerable: bool,
        alert_id: impl FnOnce() -> String,
    ) -> Judgement {
        let category = pb::BreachCategory::try_from(breach.category).unwrap_or(pb::BreachCategory::Unspecified);
        let attribution = attribution(breach);
        let mut triggers = Vec::new();
        let mut severity = pb::AlertSeverity::Unspecified;
        if is_illegal(category) {
            triggers.push(pb::AlertTrigger::IllegalContent);
            severity = pb::AlertSeverity::Critical;
        }
        if category == pb::BreachCategory::SelfHarm || breach.vendor_severity >= 5 {
            triggers.push(pb::AlertTrigger::RiskToLife);
            severity = pb::AlertSeverity::Critical;
        }
        if severity != pb::AlertSeverity::Critical && settings.critical_categories.contains(&category) {
            triggers.push(pb::AlertTrigger::CategoryRule);
            severity = pb::AlertSeverity::Critical;
        }
        if settings.high_categories.contains(&category) && !triggers.contains(&pb::AlertTrigger::CategoryRule) {
            triggers.push(pb::AlertTrigger::CategoryRule);
            severity = severity.max(pb::AlertSeverity::High);
        }
        self.longest_window = self.longest_window.max(settings.repeat_window);
        self.forget_before(at);
        let counted = breach.action != pb::BreachAction::Allowed as i32 && !attribution.is_empty();
        if counted
            && self.repeated(
                settings,
                (breach.school_id.as_str(), attribution.as_str(), breach.category),
                at,
                breach.repeat_count.max(1),
            )
        {
            triggers.push(pb::AlertTrigger::RepeatedAttempts);
            severity = match severity {
                pb::AlertSeverity::Unspecified => pb::AlertSeverity::Medium,
                pb::AlertSeverity::Low | pb::AlertSeverity::Medium => pb::AlertSeverity::High,
                other => other,
            };
        }
        let vulnerable_learner = vulnerable
            && settings.vulnerable_raise
            && breach.action != pb::BreachAction::Allowed as i32
            && (severity != pb::AlertSeverity::Unspecified || settings.vulnerable_categories.contains(&category));
        if vulnerable_learner {
            triggers.push(pb::AlertTrigger::VulnerableLearner);
            severity = match severity {
                pb::AlertSeverity::Unspecified | pb::AlertSeverity::Low => pb::AlertSeverity::Medium,
                pb::AlertSeverity::Medium => pb::AlertSeverity::High,
                _ => pb::AlertSeverity::Critical,
            };
        }
        if severity == pb::AlertSeverity::Unspecified {
            return Judgement::Recorded;
        }
        let key = (breach.school_id.clone(), attribution, breach.url_host.clone(), breach.category);
        if let Some((last, breach_digest, raised_id)) = self.raised.get(&key)
            && at.duration_since(*last) < settings.repeat_window
            && at >= *last
            && (breach.line_sha256.is_empty() || *breach_digest != breach.line_sha256)
        {
            return Judgement::CollapsedInto(raised_id.clone());
        }
        self.raised.insert(key, (at, breach.line_sha256.clone(), alert_id()));
        let ack = if severity == pb::AlertSeverity::Critical { settings.critical_ack } else { settings.other_ack };
        Judgement::Alert(Verdict {
            severity,
            triggers,
            acknowledge_by: at.checked_add(ack).unwrap_or(at),
            vulnerable_learner,
        })
    }

    /// Counts `count` attempts at `at` of (school, attribution, category); true when the
    /// window now holds the threshold or more.
    fn repeated(&mut self, settings: &RuleSettings, of: (&str, &str, i32), at: Timestamp, count: u32) -> bool {
        let (school, attribution, category) = of;
        let window = settings.repeat_window;
        let threshold = settings.repeat_threshold.max(1);
        let times = self.attempts.entry((school.to_owned(), attribution.to_owned(), category)).or_default();
        for _ in 0..count.min(threshold) {
            times.push_back(at);
        }
        while times.front().is_some_and(|first| at.duration_since(*first) >= window) {
            times.pop_front();
        }
        while times.len() > threshold as usize {
            times.pop_front();
        }
        times.len() as u32 >= threshold
    }

    /// Drops windows that ended before `at`, so memory stays bounded by recent activity.
    fn forget_before(&mut self, at: Timestamp) {
        if self.raised.len() + self.attempts.len() <= self.prune_at {
            return;
        }
        let window = self.longest_window;
        self.raised.retain(|_, (last, ..)| at.duration_since(*last) < window);
        self.attempts.retain(|_, times| times.back().is_some_and(|last| at.duration_since(*last) < window));
        self.prune_at = PRUNE_FLOOR.max(2 * (self.raised.len() + self.attempts.len()));
    }
}

/// The device when the source named a known one, else the client address; empty when neither.
fn attribution(breach: &pb::BreachObserved) -> String {
    if !breach.subject_id.is_empty() {
        return format!("subject:{}", breach.subject_id);
    }
    if !breach.device_id.is_empty() {
        return format!("device:{}", breach.device_id);
    }
    if !breach.source_ip.is_empty() {
        return format!("ip:{}", breach.source_ip);
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breach(category: pb::BreachCategory, ip: &str, host: &str) -> pb::BreachObserved {
        pb::BreachObserved {
            school_id: "oak".into(),
            category: category as i32,
            action: pb::BreachAction::Blocked as i32,
            source_ip: ip.into(),
            url_host: host.into(),
            repeat_count: 1,
            ..Default::default()
        }
    }

    fn at(minute: i64) -> Timestamp {
        Timestamp::from_second(1_765_000_000 + minute * 60).unwrap()
    }

    #[test]
    fn illegal_content_and_risk_to_life_are_critical_at_once_with_a_15_minute_deadline() {
        let mut rules = Rules::default();
        for category in [
            pb::BreachCategory::IllegalChildAbuseIwf,
            pb::BreachCategory::IllegalTerroristContentCtiru,
            pb::BreachCategory::IllegalCoerciveControl,
            pb::BreachCategory::IllegalIntimateImageAbuse,
        ] {
            let verdict = rules.judge(&breach(category, "10.0.0.1", "a.example"), at(0), false).unwrap();
            assert_eq!(verdict.severity, pb::AlertSeverity::Critical, "{category:?}");
            assert_eq!(verdict.triggers, vec![pb::AlertTrigger::IllegalContent]);
            assert_eq!(verdict.acknowledge_by, at(15));
        }
        let verdict =
            rules.judge(&breach(pb::BreachCategory::SelfHarm, "10.0.0.2", "b.example"), at(0), false).unwrap();
        assert_eq!(
            (verdict.severity, verdict.triggers),
            (pb::AlertSeverity::Critical, vec![pb::AlertTrigger::RiskToLife])
        );
        let mut flagged = breach(pb::BreachCategory::Other, "10.0.0.3", "c.example");
        flagged.vendor_severity = 5;
        assert_eq!(
            rules.judge(&flagged, at(0), false).unwrap().severity,
            pb::AlertSeverity::Critical,
            "the filter's level 5"
        );
    }

    #[test]
    fn the_same_breach_judged_again_raises_its_alert_again_and_another_does_not() {
        let mut rules = Rules::default();
        let mut first = breach(pb::BreachCategory::SelfHarm, "10.0.0.7", "s.example");
        first.line_sha256 = vec![1; 32];
        assert!(rules.judge(&first, at(0), false).is_some());
        assert!(rules.judge(&first, at(0), false).is_some(), "a retried batch must not lose its alert");
        let mut second = first.clone();
        second.line_sha256 = vec![2; 32];
        assert_eq!(rules.judge(&second, at(1), false), None, "another breach of the same alert inside the window");
    }

    #[test]
    fn ordinary_categories_are_recorded_until_they_repeat_then_alert_once_per_window() {
        let mut rules = Rules::default();
        let attempt = breach(pb::BreachCategory::Gambling, "10.0.0.9", "bet.example");
        assert_eq!(rules.judge(&attempt, at(0), false), None);
        assert_eq!(rules.judge(&attempt, at(1), false), None);
        let third = rules.judge(&attempt, at(2), false).unwrap();
        assert_eq!(
            (third.severity, third.triggers),
            (pb::AlertSeverity::Medium, vec![pb::AlertTrigger::RepeatedAttempts])
        );
        assert_eq!(third.acknowledge_by, at(2 + 24 * 60));
        assert_eq!(rules.judge(&attempt, at(3), false), None, "the same alert is not raised again inside the window");
        let other = breach(pb::BreachCategory::Gambling, "10.0.0.10", "bet.example");
        assert_eq!(rules.judge(&other, at(3), false), None, "another address has its own count");
        // Long after, attempts spread out never reach the threshold.
        for minute in [100, 111, 122, 133] {
            assert_eq!(rules.judge(&attempt, at(minute), false), None, "minute {minute}");
        }
    }

    #[test]
    fn a_collapsed_burst_counts_as_its_repeats_and_repeats_raise_a_rule_alert_one_step() {
        let mut rules = Rules::default();
        let mut burst = breach(pb::BreachCategory::Extremism, "10.0.0.4", "x.example");
        let alone = rules.judge(&burst, at(0), false).unwrap();
        assert_eq!(alone.severity, pb::AlertSeverity::High);
        burst.url_host = "y.example".into();
        burst.repeat_count = 5;
        let repeated = rules.judge(&burst, at(1), false).unwrap();
        assert_eq!(repeated.triggers, vec![pb::AlertTrigger::CategoryRule, pb::AlertTrigger::RepeatedAttempts]);
        assert_eq!(repeated.severity, pb::AlertSeverity::High, "high stays high; critical stays critical");
        let mut porn = breach(pb::BreachCategory::Pornography, "10.0.0.5", "p.example");
        porn.repeat_count = 3;
        assert_eq!(rules.judge(&porn, at(0), false).unwrap().severity, pb::AlertSeverity::Medium);
    }

    #[test]
    fn a_vulnerable_learners_breach_raises_one_step_and_a_first_harmful_attempt_alerts() {
        let mut rules = Rules::default();
        let mut gambling = breach(pb::BreachCategory::Gambling, "10.0.0.8", "bet.example");
        gambling.subject_id = "s-0123456789abcdefghjkmnpqrs".into();
        assert_eq!(rules.judge(&gambling, at(0), false), None, "not vulnerable: recorded until it repeats");
        let first = rules
            .judge(
                &{
                    let mut g = gambling.clone();
                    g.url_host = "spin.example".into();
                    g
                },
                at(0),
                true,
            )
            .unwrap();
        assert_eq!(
            (first.severity, first.triggers, first.vulnerable_learner),
            (pb::AlertSeverity::Medium, vec![pb::AlertTrigger::VulnerableLearner], true)
        );
        let mut extremism = breach(pb::BreachCategory::Extremism, "10.0.0.8", "x.example");
        extremism.subject_id = gambling.subject_id.clone();
        let raised = rules.judge(&extremism, at(0), true).unwrap();
        assert_eq!(raised.severity, pb::AlertSeverity::Critical, "a category rule's high, one step up");
        let mut repeated = gambling.clone();
        repeated.url_host = "dice.example".into();
        repeated.repeat_count = 3;
        let verdict = rules.judge(&repeated, at(1), true).unwrap();
        assert_eq!(verdict.severity, pb::AlertSeverity::High, "repeats make medium, the flags one step more");
        assert_eq!(verdict.triggers, vec![pb::AlertTrigger::RepeatedAttempts, pb::AlertTrigger::VulnerableLearner]);
        let mut self_harm = breach(pb::BreachCategory::SelfHarm, "10.0.0.8", "s.example");
        self_harm.subject_id = gambling.subject_id.clone();
        let critical = rules.judge(&self_harm, at(0), true).unwrap();
        assert_eq!((critical.severity, critical.vulnerable_learner), (pb::AlertSeverity::Critical, true));
        let mut games = breach(pb::BreachCategory::Other, "10.0.0.8", "arcade.example");
        games.subject_id = gambling.subject_id.clone();
        assert_eq!(rules.judge(&games, at(0), true), None, "a category outside the harmful list is recorded");
        let mut allowed = gambling.clone();
        allowed.action = pb::BreachAction::Allowed as i32;
        allowed.url_host = "other.example".into();
        assert_eq!(rules.judge(&allowed, at(0), true), None, "an allowed request is not an attempt");
        let mut off = Rules::new(RuleSettings { vulnerable_raise: false, ..RuleSettings::default() });
        assert_eq!(off.judge(&gambling, at(0), true), None, "the raise is configurable");
    }

    #[test]
    fn each_schools_settings_judge_its_breaches_and_a_duplicate_names_the_alert_it_joins() {
        let mut rules = Rules::default();
        let trust = RuleSettings::default();
        let stricter = RuleSettings {
            repeat_threshold: 1,
            critical_categories: [&settings::ALWAYS_CRITICAL[..], &[pb::BreachCategory::Violence][..]].concat(),
            ..RuleSettings::default()
        };
        let attempt = breach(pb::BreachCategory::Gambling, "10.0.0.9", "bet.example");
        assert_eq!(rules.judge_under(&trust, &attempt, at(0), false, || "a1".into()), Judgement::Recorded);
        let mut elsewhere = attempt.clone();
        elsewhere.school_id = "elm".into();
        let Judgement::Alert(verdict) = rules.judge_under(&stricter, &elsewhere, at(0), false, || "a2".into()) else {
            panic!("a threshold of 1 alerts at the first attempt")
        };
        assert_eq!(verdict.triggers, vec![pb::AlertTrigger::RepeatedAttempts]);
        let mut later = elsewhere.clone();
        later.line_sha256 = vec![3; 32];
        assert_eq!(
            rules.judge_under(&stricter, &later, at(1), false, || "a3".into()),
            Judgement::CollapsedInto("a2".into()),
            "inside the window: counted with the alert raised, not raised again"
        );
        let violence = breach(pb::BreachCategory::Violence, "10.0.0.10", "fight.example");
        assert_eq!(rules.judge_under(&trust, &violence, at(0), false, || "a4".into()), Judgement::Recorded);
        let Judgement::Alert(critical) = rules.judge_under(&stricter, &violence, at(0), false, || "a5".into()) else {
            panic!("an added critical category alerts at once")
        };
        assert_eq!(
            (critical.severity, critical.triggers),
            (pb::AlertSeverity::Critical, vec![pb::AlertTrigger::CategoryRule, pb::AlertTrigger::RepeatedAttempts]),
            "the added category, and at a threshold of 1 its first attempt is a repeat"
        );
        // Even settings that lost them (an event written around the guard rails) keep them critical.
        let emptied = RuleSettings { critical_categories: vec![], ..RuleSettings::default() };
        let self_harm = breach(pb::BreachCategory::SelfHarm, "10.0.0.11", "s.example");
        let Judgement::Alert(risk) = rules.judge_under(&emptied, &self_harm, at(0), false, || "a6".into()) else {
            panic!("self-harm always alerts")
        };
        assert_eq!(risk.severity, pb::AlertSeverity::Critical);
    }

    #[test]
    fn old_windows_are_forgotten_and_the_state_stays_bounded() {
        let mut rules = Rules::default();
        for i in 0..3 * PRUNE_FLOOR as i64 {
            // A new address every second: each window ends ten minutes later.
            let at = Timestamp::from_second(1_765_000_000 + i).unwrap();
            rules.judge(
                &breach(pb::BreachCategory::Gambling, &format!("10.1.{}.{}", i / 250, i % 250), "a.example"),
                at,
                false,
            );
        }
        let active = rules.raised.len() + rules.attempts.len();
        assert!(active <= 2 * PRUNE_FLOOR + 600, "{active} windows kept");
        assert!(rules.prune_at <= 4 * PRUNE_FLOOR + 1_200, "{}", rules.prune_at);
    }

    #[test]
    fn allowed_requests_and_unattributed_ones_never_count_as_repeats() {
        let mut rules = Rules::default();
        let mut allowed = breach(pb::BreachCategory::Gambling, "10.0.0.6", "bet.example");
        allowed.action = pb::BreachAction::Allowed as i32;
        let nobody = breach(pb::BreachCategory::Gambling, "", "bet.example");
        for minute in 0..5 {
            assert_eq!(rules.judge(&allowed, at(minute), false), None);
            assert_eq!(rules.judge(&nobody, at(minute), false), None);
        }
    }
}
