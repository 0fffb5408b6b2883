//! One batch of a source's lines to events in the log.
//!
//! ```text
//!  lines ─▶ SHA-256 each ─▶ seen in this batch? drop (duplicate)
//!        ─▶ haven-ingest parse ─┬─ refused ─▶ quarantine (count per school, format, reason)
//!                               └─ breach  ─▶ attribution: user ─▶ login, else device/address
//!                                             ─▶ lease ─▶ subject, else unresolved (ADR 0025)
//!                                          ─▶ collapse identical requests (subject, address/
//!                                             device, host, path, action, category), counted
//!        ─▶ the school's rules in force (RuleBook; a vulnerable learner raises severity)
//!           ─▶ alerts, each with the rules' versions; a breach whose alert was raised within
//!              the window names that alert instead
//!        ─▶ one append batch: each breach on `breaches-<school>-<yyyy-mm-dd>`, each alert on
//!           `alert-<id>` (version 0)
//! ```
//! Event ids are derived from the line (school, source, SHA-256 of the bytes), and an alert's
//! from its breach, so a line delivered twice — a collector resending after a reconnect, a
//! retried batch — is recognised by the log and not recorded twice. What is stored of a line:
//! the host, an HMAC of the path, the vendor's labels, the address, the pseudonymous subject it
//! resolved to; never the raw line, the query string or the username.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use haven_eventlog_client::{EventLog, LogError, StreamAppend};
use haven_ingest::{BreachObserved, LineParser, QuarantineReason, SourceConfig, SourceFormat};

use crate::attribution::Directory;
use crate::quarantine::{LINES_QUARANTINED, QuarantineBook, Refused};
use haven_kernel::{ExpectedVersion, SchoolId, StreamId};
use haven_proto::v1 as pb;
use jiff::Timestamp;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::key::PathKey;
use crate::metrics::IngestMetrics;
use crate::rules::{Judgement, RuleBook, RuleSettings, Rules};

pub const BREACH_OBSERVED: &str = "ingest.BreachObserved";
/// Stream appends per `append_batch` call (the log's default limit is 10 000).
const APPENDS_PER_CALL: usize = 4_096;
pub const ALERT_RAISED: &str = "ingest.SafeguardingAlertRaised";

/// A school's log source as ingest reads it.
#[derive(Clone, Debug)]
pub struct Source {
    pub school: SchoolId,
    /// Unique within the school, e.g. `proxy-1`.
    pub source_id: String,
    pub config: SourceConfig,
    /// Who appends for it: the school system's principal, or the listener bound to it.
    pub actor: pb::Actor,
}

impl Source {
    /// A source of `school` read with `config` (its format, zone and line limit).
    pub fn new(school: SchoolId, source_id: &str, config: SourceConfig, actor_id: String) -> Source {
        let actor = pb::Actor { principal_id: actor_id, kind: pb::ActorKind::SchoolSystem as i32, roles: vec![] };
        Source { school, source_id: source_id.to_owned(), config, actor }
    }
}

/// One line as received.
#[derive(Clone, Debug)]
pub struct Line {
    pub bytes: Vec<u8>,
    pub received_at: Timestamp,
}

/// What a batch came to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub lines_received: u64,
    pub breaches_observed: u64,
    pub repeats_collapsed: u64,
    pub duplicates_dropped: u64,
    pub quarantined: BTreeMap<QuarantineReason, u64>,
    pub alerts_raised: u64,
    /// Global position of the last event appended; 0 when nothing was.
    pub last_position: u64,
}

/// The pipeline shared by every input.
pub struct Pipeline {
    log: Arc<dyn EventLog>,
    key: PathKey,
    rules: Mutex<Rules>,
    /// The rules in force per school, followed from the log (ADR 0028).
    book: RuleBook,
    attribution: Directory,
    quarantine: Mutex<QuarantineBook>,
    recent: Mutex<Recent>,
    metrics: IngestMetrics,
    /// Lines through `submit` so far (appended, collapsed, dropped or refused).
    processed: std::sync::atomic::AtomicU64,
}

/// Lines recorded lately (school, source and line digest), so a line resent after it was
/// folded into another's count is still recognised; the log's event ids catch the rest.
#[derive(Debug, Default)]
struct Recent {
    set: HashSet<u128>,
    order: std::collections::VecDeque<u128>,
}

impl Recent {
    const CAPACITY: usize = 1 << 18;

    /// A source's part of the key, hashed once per batch.
    fn source_key(source: &Source) -> u128 {
        let mut hasher = Sha256::new();
        hasher.update(source.school.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(source.source_id.as_bytes());
        u128::from_le_bytes(hasher.finalize()[..16].try_into().expect("16 bytes"))
    }

    /// A line's key: its digest (already a SHA-256) tied to its source.
    fn key(source_key: u128, digest: &[u8; 32]) -> u128 {
        source_key ^ u128::from_le_bytes(digest[..16].try_into().expect("16 bytes"))
    }

    fn insert(&mut self, key: u128) {
        if self.set.insert(key) {
            self.order.push_back(key);
            if self.order.len() > Self::CAPACITY
                && let Some(oldest) = self.order.pop_front()
            {
                self.set.remove(&oldest);
            }
        }
    }
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

/// Breaches of one batch folded by what makes requests "the same".
struct Collapsed {
    event: pb::BreachObserved,
    /// It resolved to a vulnerable learner (the flags themselves never leave the directory).
    vulnerable: bool,
    event_id: Vec<u8>,
    received_at: Timestamp,
}

impl Pipeline {
    /// A pipeline whose rules are `defaults` until the log records the trust's or a school's.
    pub fn new(log: Arc<dyn EventLog>, key: PathKey, defaults: RuleSettings, metrics: IngestMetrics) -> Self {
        Pipeline {
            log,
            key,
            book: RuleBook::new(defaults.clone()),
            rules: Mutex::new(Rules::new(defaults)),
            attribution: Directory::default(),
            quarantine: Mutex::new(QuarantineBook::new(Timestamp::now())),
            recent: Mutex::new(Recent::default()),
            metrics,
            processed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn log(&self) -> Arc<dyn EventLog> {
        Arc::clone(&self.log)
    }

    /// The logins and leases breaches are attributed with (followed from the log by `start`).
    pub fn attribution(&self) -> &Directory {
        &self.attribution
    }

    /// The alert rules in force per school (followed from the log by `start`).
    pub fn rule_book(&self) -> &RuleBook {
        &self.book
    }

    pub fn metrics(&self) -> &IngestMetrics {
        &self.metrics
    }

    /// Lines through [`Pipeline::submit`] so far, whatever became of each.
    pub fn lines_processed(&self) -> u64 {
        self.processed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Refused lines: counts per school, source, format and reason, and each school's latest
    /// refusals (no content).
    pub fn quarantine(&self) -> std::sync::MutexGuard<'_, QuarantineBook> {
        self.quarantine.lock().expect("quarantine lock")
    }

    /// Parses, collapses and judges `lines` of `source`, and appends the result as one batch.
    /// An error from the log leaves nothing half-written for this batch: retry it whole.
    pub async fn submit(&self, source: &Source, lines: &[Line]) -> Result<Summary, LogError> {
        let mut summary = Summary { lines_received: lines.len() as u64, ..Summary::default() };
        let parser = LineParser::new(source.config.clone());
        let format_label = source.config.format.map(SourceFormat::as_str).unwrap_or("auto");
        let mut seen = HashSet::new();
        let mut recorded = Vec::new();
        // Each line hashed once: its digest names it in this batch, in the recent set and in its id.
        let digests: Vec<[u8; 32]> = lines.iter().map(|line| Sha256::digest(&line.bytes).into()).collect();
        let source_key = Recent::source_key(source);
        let already: Vec<bool> = {
            let recent = self.recent.lock().expect("recent lock");
            digests.iter().map(|digest| recent.set.contains(&Recent::key(source_key, digest))).collect()
        };
        let mut order: Vec<String> = Vec::new();
        let mut collapsed: HashMap<String, Collapsed> = HashMap::new();
        let mut refused = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            let digest = digests[index];
            if !seen.insert(digest) || already[index] {
                summary.duplicates_dropped += 1;
                continue;
            }
            let parsed = match parser.parse(&line.bytes, line.received_at) {
                Ok(parsed) => parsed,
                Err(error) => {
                    let reason = error.reason();
                    *summary.quarantined.entry(reason).or_default() += 1;
                    self.metrics.quarantined(source.school.as_str(), format_label, reason.as_str());
                    self.quarantine().record(
                        source.school.as_str(),
                        &source.source_id,
                        index as u64 + 1,
                        line.bytes.len(),
                        line.received_at,
                        &error,
                    );
                    refused.push(Refused { format: error.format, reason, digest, received_at: line.received_at });
                    continue;
                }
            };
            recorded.push(Recent::key(source_key, &digest));
            let (event, vulnerable) = self.normalise(source, &parsed, line.received_at, &digest);
            let key = collapse_key(&event);
            match collapsed.get_mut(&key) {
                Some(earlier) => {
                    earlier.event.repeat_count += 1;
                    if event.occurred_at.as_ref().map(seconds) > earlier.event.last_occurred_at.as_ref().map(seconds) {
                        earlier.event.last_occurred_at = event.occurred_at;
                    }
                    summary.repeats_collapsed += 1;
                }
                None => {
                    let event_id = line_event_id(&source.school, &source.source_id, &digest);
                    order.push(key.clone());
                    collapsed.insert(key, Collapsed { event, vulnerable, event_id, received_at: line.received_at });
                }
            }
        }

        // The refusals' counts, durable with the batch (quarantine.rs).
        let mut appends = crate::quarantine::lines_quarantined(source, &refused)?;
        let mut alerts = 0u64;
        let in_force = self.book.in_force(source.school.as_str());
        {
            let mut rules = self.rules.lock().expect("rules lock");
            for key in &order {
                let breach = collapsed.get_mut(key).expect("every key ordered was collapsed");
                let occurred = breach.event.occurred_at.as_ref().map(to_jiff).unwrap_or(breach.received_at);
                let judgement =
                    rules.judge_under(&in_force.settings, &breach.event, occurred, breach.vulnerable, || {
                        alert_id(&breach.event_id)
                    });
                if let Judgement::CollapsedInto(raised) = &judgement {
                    breach.event.collapsed_into_alert_id.clone_from(raised);
                }
                let breach = &collapsed[key];
                appends.push(single(
                    breach_stream(&source.school, occurred)?,
                    proposed(
                        source,
                        &breach.event_id,
                        BREACH_OBSERVED,
                        breach.received_at,
                        breach.event.encode_to_vec(),
                    ),
                ));
                if let Judgement::Alert(verdict) = judgement {
                    let alert_id = alert_id(&breach.event_id);
                    let alert = pb::SafeguardingAlertRaised {
                        alert_id: alert_id.clone(),
                        school_id: source.school.to_string(),
                        severity: verdict.severity as i32,
                        triggers: verdict.triggers.iter().map(|t| *t as i32).collect(),
                        category: breach.event.category,
                        action: breach.event.action,
                        subject_id: breach.event.subject_id.clone(),
                        user_id: breach.event.user_id.clone(),
                        device_id: breach.event.device_id.clone(),
                        url_host: breach.event.url_host.clone(),
                        breach_event_ids: vec![breach.event_id.clone()],
                        breach_count: breach.event.repeat_count,
                        first_occurred_at: breach.event.occurred_at,
                        last_occurred_at: breach.event.last_occurred_at,
                        vulnerable_learner: verdict.vulnerable_learner,
                        acknowledge_by: Some(to_proto(verdict.acknowledge_by)),
                        trust_rules_version: in_force.trust_version,
                        school_rules_version: in_force.school_version,
                    };
                    let stream = StreamId::new("alert", &alert_id)
                        .map_err(|e| LogError::Internal(format!("alert stream name: {e}")))?;
                    let event_id = derived_id(&format!("alert:{}", hex(&breach.event_id)));
                    let event = proposed(source, &event_id, ALERT_RAISED, breach.received_at, alert.encode_to_vec());
                    appends.push(StreamAppend {
                        stream_id: stream,
                        expected: ExpectedVersion::NoStream,
                        events: vec![event],
                    });
                    self.metrics.alert(source.school.as_str(), verdict.severity.as_str_name());
                    alerts += 1;
                }
            }
        }
        if appends.is_empty() {
            self.processed.fetch_add(summary.lines_received, std::sync::atomic::Ordering::Relaxed);
            return Ok(summary);
        }
        let (positions, duplicates) = self.append(appends).await?;
        {
            let mut recent = self.recent.lock().expect("recent lock");
            for key in recorded {
                recent.insert(key);
            }
        }
        summary.breaches_observed = order.len() as u64 - duplicates.breaches;
        summary.duplicates_dropped += duplicates.breaches;
        summary.alerts_raised = alerts - duplicates.alerts;
        summary.last_position = positions;
        self.metrics.lines(source.school.as_str(), format_label, &summary);
        self.processed.fetch_add(summary.lines_received, std::sync::atomic::Ordering::Relaxed);
        Ok(summary)
    }

    /// Appends the batch; when the log reports ids it already holds with other content (a
    /// line delivered again, received at another time), appends one by one so only those are
    /// dropped. Returns the last position written and how many were already there.
    async fn append(&self, appends: Vec<StreamAppend>) -> Result<(u64, Duplicates), LogError> {
        let mut last = 0;
        let mut duplicates = Duplicates::default();
        // Each event is its own append, so the batch may be cut anywhere: in parts within the
        // log's limit of appends per call.
        for part in appends.chunks(APPENDS_PER_CALL) {
            let (part_last, part_duplicates) = self.append_part(part.to_vec()).await?;
            last = last.max(part_last);
            duplicates.breaches += part_duplicates.breaches;
            duplicates.alerts += part_duplicates.alerts;
        }
        Ok((last, duplicates))
    }

    async fn append_part(&self, appends: Vec<StreamAppend>) -> Result<(u64, Duplicates), LogError> {
        match self.log.append_batch(appends.clone()).await {
            Ok(outcomes) => {
                let mut last = 0;
                let mut duplicates = Duplicates::default();
                for (append, outcome) in appends.iter().zip(outcomes) {
                    match outcome {
                        Ok(outcome) if outcome.duplicate => duplicates.count(append),
                        Ok(outcome) => last = last.max(outcome.last_position.0),
                        // Only an alert's stream is appended with an expectation: it exists.
                        Err(_) => duplicates.count(append),
                    }
                }
                Ok((last, duplicates))
            }
            Err(LogError::EventIdConflict { .. }) => {
                let mut last = 0;
                let mut duplicates = Duplicates::default();
                for append in appends {
                    match self.log.append(&append.stream_id, append.expected, append.events.clone()).await {
                        Ok(outcome) if !outcome.duplicate => last = last.max(outcome.last_position.0),
                        Ok(_) | Err(LogError::EventIdConflict { .. }) | Err(LogError::WrongExpectedVersion(_)) => {
                            duplicates.count(&append)
                        }
                        Err(error) => return Err(error),
                    }
                }
                Ok((last, duplicates))
            }
            Err(error) => Err(error),
        }
    }

    /// The breach a line would be recorded as, without recording it (`ParseLines`).
    pub fn preview(
        &self,
        source: &Source,
        parsed: &BreachObserved<'_>,
        received_at: Timestamp,
        line: &[u8],
    ) -> pb::BreachObserved {
        let digest: [u8; 32] = Sha256::digest(line).into();
        self.normalise(source, parsed, received_at, &digest).0
    }

    /// The breach as recorded, and whether it resolved to a vulnerable learner.
    fn normalise(
        &self,
        source: &Source,
        parsed: &BreachObserved<'_>,
        received_at: Timestamp,
        digest: &[u8; 32],
    ) -> (pb::BreachObserved, bool) {
        let occurred = to_proto(parsed.occurred_at);
        let resolved = self.attribution.resolve(
            source.school.as_str(),
            parsed.user.as_deref(),
            parsed.device.as_deref(),
            parsed.client_ip,
            parsed.occurred_at,
        );
        let vulnerable = resolved.as_ref().is_some_and(|resolved| resolved.vulnerable);
        let (subject_id, attribution) = match resolved {
            Some(resolved) => (resolved.subject_id, resolved.basis),
            None => (String::new(), pb::Attribution::Unresolved),
        };
        let event = pb::BreachObserved {
            school_id: source.school.to_string(),
            occurred_at: Some(occurred),
            received_at: Some(to_proto(received_at)),
            source_id: source.source_id.clone(),
            source_format: format_to_proto(parsed.source_format) as i32,
            category: category_to_proto(parsed.category) as i32,
            vendor_category: parsed.vendor_category.as_deref().unwrap_or_default().to_owned(),
            action: match parsed.action {
                haven_ingest::Action::Blocked => pb::BreachAction::Blocked,
                haven_ingest::Action::Flagged => pb::BreachAction::Flagged,
                haven_ingest::Action::Allowed => pb::BreachAction::Allowed,
            } as i32,
            vendor_severity: 0,
            url_host: parsed.host.to_string(),
            url_path_hmac: match url_path(&parsed.url) {
                Some(path) => self.key.path_hmac(&source.school, path).to_vec(),
                None => Vec::new(),
            },
            subject_id,
            user_id: String::new(),
            device_id: String::new(),
            source_ip: parsed.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            repeat_count: 1,
            last_occurred_at: Some(occurred),
            line_sha256: digest.to_vec(),
            attribution: attribution as i32,
            collapsed_into_alert_id: String::new(),
        };
        (event, vulnerable)
    }
}

#[derive(Debug, Default)]
struct Duplicates {
    breaches: u64,
    alerts: u64,
}

impl Duplicates {
    fn count(&mut self, append: &StreamAppend) {
        if append.events.iter().any(|e| e.event_type == ALERT_RAISED) {
            self.alerts += 1;
        } else if append.events.iter().any(|e| e.event_type == LINES_QUARANTINED) {
            // A batch's refusals already counted: nothing to report.
        } else {
            self.breaches += 1;
        }
    }
}

fn single(stream_id: StreamId, event: pb::ProposedEvent) -> StreamAppend {
    StreamAppend { stream_id, expected: ExpectedVersion::Any, events: vec![event] }
}

pub(crate) fn proposed(
    source: &Source,
    event_id: &[u8],
    event_type: &str,
    at: Timestamp,
    payload: Vec<u8>,
) -> pb::ProposedEvent {
    pb::ProposedEvent {
        event_id: event_id.to_vec(),
        event_type: event_type.to_owned(),
        schema_version: 1,
        school_id: source.school.to_string(),
        occurred_at: Some(to_proto(at)),
        actor: Some(source.actor.clone()),
        correlation_id: vec![],
        causation_id: vec![],
        trace_context: None,
        payload,
    }
}

/// `breaches-<school>-<yyyy-mm-dd>`, the UTC day the request was made.
pub fn breach_stream(school: &SchoolId, occurred: Timestamp) -> Result<StreamId, LogError> {
    let day = occurred.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    StreamId::new("breaches", &format!("{school}-{day}"))
        .map_err(|e| LogError::Internal(format!("breach stream name: {e}")))
}

/// What makes two requests of one batch "the same": who, where, what was done, and the category.
fn collapse_key(event: &pb::BreachObserved) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}|{}",
        event.subject_id,
        event.source_ip,
        event.device_id,
        event.url_host,
        hex(&event.url_path_hmac),
        event.action,
        event.category
    )
}

pub(crate) fn derived_id(key: &str) -> Vec<u8> {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("haven:ingest:{key}").as_bytes()).as_bytes().to_vec()
}

fn line_event_id(school: &SchoolId, source_id: &str, digest: &[u8; 32]) -> Vec<u8> {
    derived_id(&format!("line:{school}:{source_id}:{}", hex(digest)))
}

/// The alert id for a breach: 32 lowercase hex digits, stable for the same breach.
fn alert_id(breach_event_id: &[u8]) -> String {
    let id = derived_id(&format!("alert-id:{}", hex(breach_event_id)));
    hex(&id)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The path of a URL without scheme and host; `None` when there is none (`host:port`).
fn url_path(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let at = rest.find('/')?;
    let path = &rest[at..];
    (path.len() > 1).then_some(path)
}

fn seconds(t: &prost_types::Timestamp) -> (i64, i32) {
    (t.seconds, t.nanos)
}

pub fn to_proto(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.as_second(), nanos: t.subsec_nanosecond() }
}

pub fn to_jiff(t: &prost_types::Timestamp) -> Timestamp {
    Timestamp::new(t.seconds, t.nanos).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub fn format_to_proto(format: SourceFormat) -> pb::SourceFormat {
    pb::SourceFormat::from_str_name(&format!("SOURCE_FORMAT_{}", format.as_str().to_ascii_uppercase()))
        .unwrap_or(pb::SourceFormat::Unspecified)
}

pub fn category_to_proto(category: haven_ingest::Category) -> pb::BreachCategory {
    pb::BreachCategory::from_str_name(&format!("BREACH_CATEGORY_{}", category.as_str().to_ascii_uppercase()))
        .unwrap_or(pb::BreachCategory::Other)
}

pub fn reason_to_proto(reason: QuarantineReason) -> pb::QuarantineReason {
    pb::QuarantineReason::from_str_name(&format!("QUARANTINE_REASON_{}", reason.as_str().to_ascii_uppercase()))
        .unwrap_or(pb::QuarantineReason::Unspecified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_category_format_and_reason_has_its_protobuf_value() {
        for category in haven_ingest::Category::ALL {
            let mapped = category_to_proto(category);
            let fallback = category == haven_ingest::Category::Other;
            assert!(fallback || mapped != pb::BreachCategory::Other, "{category:?} has no BreachCategory");
        }
        for name in ["squid_native", "squidguard", "fortigate", "pan_os", "cisco_umbrella", "zscaler_nss", "json_lines"]
        {
            let format = name.parse::<SourceFormat>().unwrap();
            assert_ne!(format_to_proto(format), pb::SourceFormat::Unspecified, "{name}");
        }
        assert_eq!(reason_to_proto(QuarantineReason::AmbiguousLocalTime), pb::QuarantineReason::AmbiguousLocalTime);
    }

    #[test]
    fn only_the_path_of_a_url_is_hashed_and_a_bare_host_has_none() {
        assert_eq!(url_path("http://example.com/a/b"), Some("/a/b"));
        assert_eq!(url_path("https://example.com/"), None);
        assert_eq!(url_path("example.com:443"), None);
        assert_eq!(url_path("example.com/x"), Some("/x"));
    }
}
