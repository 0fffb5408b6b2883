//! `haven.v1.Ingest` over the pipeline: `SubmitBreaches` for school systems (a client stream
//! of line batches, each batch appended before the next is read, so the stream's own flow
//! control is the backpressure) and `ParseLines` to check a filter's export without writing;
//! the filtering record's methods are in [`governance`]; `ListQuarantine` shows a school's
//! refused lines (counts and positions, never content); the alert rules' methods are in
//! [`rules`].

mod governance;
mod rules;

pub use governance::Governance;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use haven_authz::grpc::{caller, check};
use haven_authz::{Action, Resource};
use haven_eventlog_client::status::to_status;
use haven_ingest::{LineParser, SourceConfig, SourceFormat};
use haven_kernel::SchoolId;
use haven_proto::v1 as pb;
use haven_proto::v1::ingest_server::{Ingest, IngestServer};
use tonic::{Request, Response, Status, Streaming};

use crate::pipeline::{Line, Pipeline, Source, reason_to_proto, to_jiff};

/// Most lines in one `SubmitBreachesRequest` or `ParseLinesRequest`.
pub const MAX_LINES_PER_MESSAGE: usize = 10_000;

/// The service.
#[derive(Clone, Debug)]
pub struct IngestService {
    pipeline: Arc<Pipeline>,
    governance: Governance,
    rules: crate::rules::RulesApp,
    /// Highest sequence made durable per (school, source), for collectors that resend.
    acknowledged: Arc<Mutex<HashMap<(String, String), u64>>>,
}

impl IngestService {
    pub fn new(pipeline: Arc<Pipeline>, governance: Governance, rules: crate::rules::RulesApp) -> Self {
        IngestService { pipeline, governance, rules, acknowledged: Arc::default() }
    }

    pub fn into_server(self) -> IngestServer<IngestService> {
        IngestServer::new(self).max_decoding_message_size(64 * 1024 * 1024)
    }
}

fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {reason}"))
}

fn school(raw: &str) -> Result<SchoolId, Status> {
    SchoolId::parse(raw).map_err(|e| invalid("school_id", e))
}

/// The vendor format a request names; `None` for auto-detection.
fn format(raw: i32) -> Result<Option<SourceFormat>, Status> {
    let format =
        pb::SourceFormat::try_from(raw).map_err(|_| invalid("source_format", format!("unknown value {raw}")))?;
    if format == pb::SourceFormat::Unspecified {
        return Ok(None);
    }
    let name = format.as_str_name().trim_start_matches("SOURCE_FORMAT_").to_ascii_lowercase();
    name.parse::<SourceFormat>().map(Some).map_err(|_| {
        invalid("source_format", format!("{} is not parsed by this version of Haven", format.as_str_name()))
    })
}

fn source_id(raw: &str) -> Result<(), Status> {
    let ok = !raw.is_empty()
        && raw.len() <= 63
        && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok { Ok(()) } else { Err(invalid("source_id", "1 to 63 lowercase letters, digits or '-'")) }
}

#[tonic::async_trait]
impl Ingest for IngestService {
    async fn submit_breaches(
        &self,
        request: Request<Streaming<pb::SubmitBreachesRequest>>,
    ) -> Result<Response<pb::SubmitBreachesResponse>, Status> {
        let caller = caller(&request)?;
        let mut stream = request.into_inner();
        let mut response = pb::SubmitBreachesResponse::default();
        let mut quarantined: std::collections::BTreeMap<haven_ingest::QuarantineReason, u64> = Default::default();
        while let Some(message) = stream.message().await? {
            let school = school(&message.school_id)?;
            check(&caller, Action::SubmitBreaches, &Resource::school(school.clone()))?;
            source_id(&message.source_id)?;
            if message.lines.is_empty() || message.lines.len() > MAX_LINES_PER_MESSAGE {
                return Err(invalid("lines", format!("1 to {MAX_LINES_PER_MESSAGE} lines per message")));
            }
            let mut config = SourceConfig::new(school.clone());
            config.format = format(message.source_format)?;
            let source = Source::new(school.clone(), &message.source_id, config, caller.principal.id.clone());
            let key = (school.to_string(), message.source_id.clone());
            let acknowledged = self.acknowledged.lock().expect("ack lock").get(&key).copied().unwrap_or(0);
            let mut lines = Vec::with_capacity(message.lines.len());
            let mut highest = acknowledged;
            for raw in message.lines {
                response.lines_received += 1;
                if raw.sequence != 0 && raw.sequence <= acknowledged {
                    response.duplicates_dropped += 1;
                    continue;
                }
                highest = highest.max(raw.sequence);
                let received_at = raw.received_at.as_ref().map(to_jiff).unwrap_or_else(jiff::Timestamp::now);
                lines.push(Line { bytes: raw.line, received_at });
            }
            let summary = self.pipeline.submit(&source, &lines).await.map_err(|e| to_status(&e))?;
            let mut acks = self.acknowledged.lock().expect("ack lock");
            let entry = acks.entry(key).or_default();
            *entry = (*entry).max(highest);
            response.acknowledged_sequence = *entry;
            drop(acks);
            response.breaches_observed += summary.breaches_observed;
            response.repeats_collapsed += summary.repeats_collapsed;
            response.duplicates_dropped += summary.duplicates_dropped;
            response.alerts_raised += summary.alerts_raised;
            response.last_position = response.last_position.max(summary.last_position);
            for (reason, count) in summary.quarantined {
                *quarantined.entry(reason).or_default() += count;
            }
        }
        response.quarantined = quarantined
            .into_iter()
            .map(|(reason, count)| pb::QuarantineCount { reason: reason_to_proto(reason) as i32, count })
            .collect();
        Ok(Response::new(response))
    }

    async fn parse_lines(
        &self,
        request: Request<pb::ParseLinesRequest>,
    ) -> Result<Response<pb::ParseLinesResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let school = school(&request.school_id)?;
        check(&caller, Action::ParseLines, &Resource::school(school.clone()))?;
        if request.lines.is_empty() || request.lines.len() > MAX_LINES_PER_MESSAGE {
            return Err(invalid("lines", format!("1 to {MAX_LINES_PER_MESSAGE} lines")));
        }
        let mut config = SourceConfig::new(school.clone());
        config.format = format(request.source_format)?;
        if !request.source_timezone.is_empty() {
            config.zone = jiff::tz::TimeZone::get(&request.source_timezone)
                .map_err(|_| invalid("source_timezone", "not an IANA timezone name"))?;
        }
        let source = Source::new(school, "preview", config.clone(), caller.principal.id.clone());
        let parser = LineParser::new(config);
        let now = jiff::Timestamp::now();
        let lines = request
            .lines
            .iter()
            .enumerate()
            .map(|(index, line)| match parser.parse(line, now) {
                Ok(parsed) => pb::ParsedLine {
                    index: index as u32,
                    source_format: crate::pipeline::format_to_proto(parsed.source_format) as i32,
                    result: Some(pb::parsed_line::Result::Breach(self.pipeline.preview(&source, &parsed, now, line))),
                },
                Err(error) => pb::ParsedLine {
                    index: index as u32,
                    source_format: error.format.map(crate::pipeline::format_to_proto).unwrap_or_default() as i32,
                    result: Some(pb::parsed_line::Result::Error(pb::LineError {
                        reason: reason_to_proto(error.reason()) as i32,
                        field: error.error.field.unwrap_or_default().to_owned(),
                        message: error.error.to_string(),
                    })),
                },
            })
            .collect();
        Ok(Response::new(pb::ParseLinesResponse { lines }))
    }

    async fn request_filtering_change(
        &self,
        request: Request<pb::RequestFilteringChangeRequest>,
    ) -> Result<Response<pb::RequestFilteringChangeResponse>, Status> {
        let caller = caller(&request)?;
        self.governance.request_change(&caller, request.into_inner()).await.map(Response::new)
    }

    async fn approve_filtering_change(
        &self,
        request: Request<pb::ApproveFilteringChangeRequest>,
    ) -> Result<Response<pb::ApproveFilteringChangeResponse>, Status> {
        let caller = caller(&request)?;
        self.governance.approve(&caller, request.into_inner()).await.map(Response::new)
    }

    async fn reject_filtering_change(
        &self,
        request: Request<pb::RejectFilteringChangeRequest>,
    ) -> Result<Response<pb::RejectFilteringChangeResponse>, Status> {
        let caller = caller(&request)?;
        self.governance.reject(&caller, request.into_inner()).await.map(Response::new)
    }

    async fn apply_filtering_change(
        &self,
        request: Request<pb::ApplyFilteringChangeRequest>,
    ) -> Result<Response<pb::ApplyFilteringChangeResponse>, Status> {
        let caller = caller(&request)?;
        self.governance.apply(&caller, request.into_inner()).await.map(Response::new)
    }

    async fn list_filtering_changes(
        &self,
        request: Request<pb::ListFilteringChangesRequest>,
    ) -> Result<Response<pb::ListFilteringChangesResponse>, Status> {
        let caller = caller(&request)?;
        self.governance.list(&caller, request.into_inner()).map(Response::new)
    }

    async fn record_filter_check(
        &self,
        request: Request<pb::RecordFilterCheckRequest>,
    ) -> Result<Response<pb::RecordFilterCheckResponse>, Status> {
        let caller = caller(&request)?;
        self.governance.record_check(&caller, request.into_inner()).await.map(Response::new)
    }

    async fn report_overblocking(
        &self,
        request: Request<pb::ReportOverblockingRequest>,
    ) -> Result<Response<pb::ReportOverblockingResponse>, Status> {
        let caller = caller(&request)?;
        self.governance.report_overblocking(&caller, request.into_inner()).await.map(Response::new)
    }

    async fn record_filtering_review(
        &self,
        request: Request<pb::RecordFilteringReviewRequest>,
    ) -> Result<Response<pb::RecordFilteringReviewResponse>, Status> {
        let caller = caller(&request)?;
        self.governance.record_review(&caller, request.into_inner()).await.map(Response::new)
    }

    async fn get_filtering_report(
        &self,
        request: Request<pb::GetFilteringReportRequest>,
    ) -> Result<Response<pb::GetFilteringReportResponse>, Status> {
        let caller = caller(&request)?;
        self.governance.report(&caller, request.into_inner()).map(Response::new)
    }

    async fn list_quarantine(
        &self,
        request: Request<pb::ListQuarantineRequest>,
    ) -> Result<Response<pb::ListQuarantineResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let school = school(&request.school_id)?;
        check(&caller, Action::ListQuarantine, &Resource::school(school.clone()))?;
        if !request.source_id.is_empty() {
            source_id(&request.source_id)?;
        }
        let wanted = (!request.source_id.is_empty()).then_some(request.source_id.as_str());
        let (held, since) = {
            let book = self.pipeline.quarantine();
            (book.school(school.as_str(), wanted), book.started_at())
        };
        Ok(Response::new(quarantine_to_proto(held, since)))
    }

    async fn get_alert_rules(
        &self,
        request: Request<pb::GetAlertRulesRequest>,
    ) -> Result<Response<pb::GetAlertRulesResponse>, Status> {
        let caller = caller(&request)?;
        rules::get(&self.rules, &caller, request.into_inner()).await.map(Response::new)
    }

    async fn set_alert_rules(
        &self,
        request: Request<pb::SetAlertRulesRequest>,
    ) -> Result<Response<pb::SetAlertRulesResponse>, Status> {
        let caller = caller(&request)?;
        rules::set(&self.rules, &caller, request.into_inner()).await.map(Response::new)
    }

    async fn record_device_leases(
        &self,
        request: Request<pb::RecordDeviceLeasesRequest>,
    ) -> Result<Response<pb::RecordDeviceLeasesResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let school = school(&request.school_id)?;
        check(&caller, Action::RecordDeviceLeases, &Resource::school(school.clone()))?;
        let directory = self.pipeline.attribution();
        crate::attribution::check_leases(school.as_str(), &request.leases, |subject| directory.school_of(subject))
            .map_err(|(field, reason)| invalid(&field, reason))?;
        let position = crate::attribution::record(
            &*self.pipeline.log(),
            directory,
            &school,
            governance::actor(&caller),
            request.leases.clone(),
        )
        .await
        .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::RecordDeviceLeasesResponse { recorded: request.leases.len() as u32, position }))
    }
}

fn optional_format(format: Option<SourceFormat>) -> i32 {
    format.map(crate::pipeline::format_to_proto).unwrap_or_default() as i32
}

fn quarantine_to_proto(
    held: crate::quarantine::SchoolQuarantine,
    since: jiff::Timestamp,
) -> pb::ListQuarantineResponse {
    let mut totals: std::collections::BTreeMap<haven_ingest::QuarantineReason, u64> = Default::default();
    let counts = held
        .counts
        .into_iter()
        .map(|((source_id, format, reason), count)| {
            *totals.entry(reason).or_default() += count;
            pb::QuarantineSourceCount {
                source_id,
                source_format: optional_format(format),
                reason: reason_to_proto(reason) as i32,
                count,
            }
        })
        .collect();
    let recent = held
        .recent
        .into_iter()
        .map(|refusal| pb::QuarantinedLine {
            source_id: refusal.source_id,
            source_format: optional_format(refusal.format),
            reason: reason_to_proto(refusal.reason) as i32,
            field: refusal.field.unwrap_or_default().to_owned(),
            message: refusal.message.to_owned(),
            line_number: refusal.line_number,
            line_bytes: refusal.line_bytes,
            received_at: Some(crate::pipeline::to_proto(refusal.received_at)),
        })
        .collect();
    pb::ListQuarantineResponse {
        counts,
        totals: totals
            .into_iter()
            .map(|(reason, count)| pb::QuarantineCount { reason: reason_to_proto(reason) as i32, count })
            .collect(),
        recent,
        evicted: held.evicted,
        since: Some(crate::pipeline::to_proto(since)),
    }
}
