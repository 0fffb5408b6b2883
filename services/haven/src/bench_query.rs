//! `haven bench query`: the reporting projection at scale. Generated events in the real
//! formats (`identity.SchoolRegistered`, `ingest.BreachObserved`, alerts and their
//! acknowledgements, `incidents.CaseOpened` with a checklist, referrals and their outcomes,
//! closures) are fed in batches to the real projection's apply path
//! (`ReportingProjection::apply`, as the bus's consumer does), which is a full rebuild from
//! event 0: its rate is the time spent in `apply` only, generating and encoding the events is
//! not counted, nor is reading them from a log (`haven bench read` measures that). Then the
//! dashboard and trend queries the gRPC service and the web pages answer from are timed,
//! trust-wide and per school over several periods. Breaches come in time order with up to an
//! hour of jitter, as a live log records them (`--shuffled`: a year in random order, the
//! worst case). Nothing touches the disk.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use haven_bus::{Batch, Projection};
use haven_kernel::Position;
use haven_proto::v1 as pb;
use haven_reporting::events as ev;
use haven_reporting::projection::dashboard::dashboard;

use crate::bench_parse::thread_cpu_ns;
use haven_reporting::projection::trends::{TrendQuery, trends};
use haven_reporting::{ReportView, ReportingProjection};
use hdrhistogram::Histogram;
use prost::Message;
use serde::Serialize;

const DAY_SECS: i64 = 86_400;
/// The period's end: 2026-07-18 00:00 UTC, fixed so every run builds the same state.
const END: i64 = 1_784_332_800;

/// `haven bench query`.
#[derive(Clone, Debug, clap::Args)]
pub struct QueryArgs {
    /// Breach events (`ingest.BreachObserved`), spread over the period.
    #[arg(long, default_value_t = 10_000_000)]
    pub breaches: u64,
    /// Cases opened, each with a three-action checklist; about half closed, one in ten referred.
    #[arg(long, default_value_t = 50_000)]
    pub cases: u64,
    #[arg(long, default_value_t = 50)]
    pub schools: u64,
    /// The period the events fall in, in days before 2026-07-18.
    #[arg(long, default_value_t = 365)]
    pub days: u64,
    /// Pseudonymous learners breaches are attributed to (a quarter of breaches name one).
    #[arg(long, default_value_t = 200_000)]
    pub subjects: u64,
    /// Events per batch handed to the projection.
    #[arg(long, default_value_t = 1_024)]
    pub batch: usize,
    /// Breaches in a random order across the period (an import of a year shuffled: the worst
    /// case for the projection's memory locality) instead of in time order with up to an hour
    /// of jitter, as a live log records them.
    #[arg(long)]
    pub shuffled: bool,
    /// Timed runs of each query.
    #[arg(long, default_value_t = 100)]
    pub samples: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct QueryReport {
    query: String,
    samples: u64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    /// The same samples in the thread's CPU time: what the query costs when it has a core,
    /// whatever else the machine runs.
    cpu_p50_us: u64,
    cpu_p99_us: u64,
    /// A figure from the last answer (breaches counted, or rows), to show the query did the work.
    answer: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    schools: u64,
    breaches: u64,
    cases: u64,
    /// Every event applied: schools, breaches, alerts, acknowledgements and case events.
    events: u64,
    rebuild_seconds: f64,
    rebuild_events_per_second: f64,
    /// CPU time the rebuild's thread spent in `apply`, and events per CPU-second.
    rebuild_cpu_seconds: f64,
    rebuild_events_per_cpu_second: f64,
    /// Breaches the projection counted (its dashboard over the whole period), which must equal
    /// `breaches`.
    breaches_counted: u64,
    open_cases: u64,
    peak_rss_mib: Option<f64>,
    queries: Vec<QueryReport>,
}

/// A fixed mixing function (splitmix64): the same run builds the same events.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

fn school_id(index: u64) -> String {
    format!("bench-school-{index:03}")
}

/// Breach categories in the demo's order of likelihood.
const CATEGORIES: [pb::BreachCategory; 8] = crate::reporting_demo::CATEGORY_MIX;

const CASE_TYPES: [pb::CaseType; 4] = [
    pb::CaseType::OnlineAbuseExploitation,
    pb::CaseType::FilteringBreach,
    pb::CaseType::SharingNudes,
    pb::CaseType::AllegationAgainstStaff,
];

/// Builds the events, position by position, into envelopes as the log would deliver them.
struct Generator {
    args: QueryArgs,
    start: i64,
    position: u64,
    /// Breaches per case: cases (and their events) are spread among the breaches.
    breaches_per_case: u64,
    next_breach: u64,
    next_case: u64,
}

impl Generator {
    fn new(args: &QueryArgs) -> Self {
        Generator {
            args: args.clone(),
            start: END - i64::try_from(args.days.max(1)).unwrap_or(365) * DAY_SECS,
            position: 0,
            breaches_per_case: args.breaches.checked_div(args.cases).unwrap_or(u64::MAX).max(1),
            next_breach: 0,
            next_case: 0,
        }
    }

    /// When the log recorded the event at `position`: in log order across the period, as a
    /// log records them (only the breaches' `occurred_at` are scattered, as an import's are).
    fn recorded_at(&self, position: u64) -> i64 {
        let expected = self.args.breaches + self.args.breaches / 1_000 + 5 * self.args.cases + self.args.schools;
        let span = u128::try_from(END - self.start).unwrap_or(0);
        self.start + i64::try_from(u128::from(position) * span / u128::from(expected.max(1))).unwrap_or(0)
    }

    fn envelope(
        &mut self,
        stream_id: String,
        event_type: &str,
        school_id: &str,
        at: i64,
        payload: Vec<u8>,
    ) -> pb::EventEnvelope {
        let position = self.position;
        self.position += 1;
        let mut event_id = [0u8; 16];
        event_id[..8].copy_from_slice(&mix(position).to_be_bytes());
        event_id[8..].copy_from_slice(&position.to_be_bytes());
        pb::EventEnvelope {
            event_id: event_id.to_vec(),
            stream_id,
            version: 0,
            position,
            event_type: event_type.to_owned(),
            schema_version: 1,
            school_id: school_id.to_owned(),
            occurred_at: ts(at),
            recorded_at: ts(self.recorded_at(position)),
            actor: Some(pb::Actor {
                principal_id: "ingest".into(),
                kind: pb::ActorKind::System as i32,
                roles: Vec::new(),
            }),
            payload,
            hash: mix(position ^ 0xabcd).to_be_bytes().repeat(4),
            ..Default::default()
        }
    }

    /// The next batch of up to `size` events; empty when every event was made.
    fn batch(&mut self, size: usize) -> Vec<pb::EventEnvelope> {
        let mut events = Vec::with_capacity(size);
        if self.position == 0 {
            for index in 0..self.args.schools {
                let school = school_id(index);
                let registered = pb::SchoolRegistered {
                    school_id: school.clone(),
                    pupil_count: 300 + (mix(index) % 1_200) as u32,
                    ..Default::default()
                };
                let start = self.start - DAY_SECS;
                events.push(self.envelope(
                    format!("school-{school}"),
                    ev::SCHOOL_REGISTERED,
                    &school,
                    start,
                    registered.encode_to_vec(),
                ));
            }
        }
        while events.len() < size && (self.next_breach < self.args.breaches || self.next_case < self.args.cases) {
            if self.next_case < self.args.cases
                && (self.next_breach >= self.args.breaches
                    || self.next_breach >= self.next_case * self.breaches_per_case)
            {
                self.case(&mut events);
            } else {
                self.breach(&mut events);
            }
        }
        events
    }

    fn breach(&mut self, events: &mut Vec<pb::EventEnvelope>) {
        let index = self.next_breach;
        self.next_breach += 1;
        let h = mix(index);
        let school = school_id(h % self.args.schools.max(1));
        let span = (END - self.start).max(1) as u64;
        let at = if self.args.shuffled {
            self.start + (mix(h) % span) as i64
        } else {
            let in_order = u128::from(index) * u128::from(span) / u128::from(self.args.breaches.max(1));
            (self.start + i64::try_from(in_order).unwrap_or(0) + (mix(h) % 3_600) as i64 - 1_800)
                .clamp(self.start, END - 1)
        };
        let category = CATEGORIES[(h >> 8) as usize % CATEGORIES.len()];
        let subject_id = if (h >> 16).is_multiple_of(4) {
            format!("subject-{:07}", (h >> 20) % self.args.subjects.max(1))
        } else {
            String::new()
        };
        let breach = pb::BreachObserved {
            school_id: school.clone(),
            occurred_at: ts(at),
            received_at: ts(at + 1),
            source_id: "proxy-1".into(),
            source_format: pb::SourceFormat::SquidNative as i32,
            category: category as i32,
            vendor_category: format!("vendor-{}", category as i32),
            action: if (h >> 24).is_multiple_of(5) { pb::BreachAction::Flagged } else { pb::BreachAction::Blocked }
                as i32,
            url_host: format!("host-{}.example", (h >> 28) % 5_000),
            url_path_hmac: h.to_be_bytes().repeat(4),
            subject_id,
            source_ip: format!("10.{}.{}.{}", (h >> 32) % 256, (h >> 40) % 256, (h >> 48) % 256),
            repeat_count: 1,
            last_occurred_at: ts(at),
            line_sha256: mix(h).to_be_bytes().repeat(4),
            ..Default::default()
        };
        let date = jiff::Timestamp::from_second(at).map(|t| t.to_zoned_datetime(jiff::tz::TimeZone::UTC).date());
        let stream = format!("breaches-{school}-{}", date.map(|d| d.to_string()).unwrap_or_default());
        events.push(self.envelope(stream, ev::BREACH_OBSERVED, &school, at, breach.encode_to_vec()));
        // One breach in 2 000 raises an alert; most are acknowledged.
        if (h >> 4).is_multiple_of(2_000) {
            let alert_id = format!("bench-alert-{index}");
            let alert = pb::SafeguardingAlertRaised {
                alert_id: alert_id.clone(),
                school_id: school.clone(),
                severity: [pb::AlertSeverity::Medium, pb::AlertSeverity::High, pb::AlertSeverity::Critical]
                    [(h >> 36) as usize % 3] as i32,
                category: category as i32,
                action: pb::BreachAction::Flagged as i32,
                breach_count: 1,
                acknowledge_by: ts(at + 3_600),
                ..Default::default()
            };
            let stream = format!("alert-{alert_id}");
            events.push(self.envelope(stream.clone(), ev::ALERT_RAISED, &school, at, alert.encode_to_vec()));
            if !(h >> 44).is_multiple_of(10) {
                let ack = pb::SafeguardingAlertAcknowledged {
                    alert_id,
                    school_id: school.clone(),
                    within_deadline: true,
                    ..Default::default()
                };
                events.push(self.envelope(stream, ev::ALERT_ACKNOWLEDGED, &school, at + 1_200, ack.encode_to_vec()));
            }
        }
    }

    fn case(&mut self, events: &mut Vec<pb::EventEnvelope>) {
        let index = self.next_case;
        self.next_case += 1;
        let h = mix(index ^ 0x5eed);
        let school = school_id(h % self.args.schools.max(1));
        let span = (END - self.start).max(1) as u64;
        let at = self.start + (mix(h) % span) as i64;
        let case_id = format!("bench-case-{index}");
        let stream = format!("incident-{case_id}");
        let checklist = ["record-concern", "inform-parents", "strategy-discussion"]
            .iter()
            .enumerate()
            .map(|(offset, key)| pb::ChecklistItem {
                action_key: (*key).to_owned(),
                title: (*key).to_owned(),
                status: pb::ActionStatus::Outstanding as i32,
                due_at: ts(at + (1 + offset as i64) * DAY_SECS),
                ..Default::default()
            })
            .collect();
        let opened = pb::CaseOpened {
            case_id: case_id.clone(),
            school_id: school.clone(),
            case_type: CASE_TYPES[(h >> 8) as usize % CASE_TYPES.len()] as i32,
            risk_level: [pb::RiskLevel::Low, pb::RiskLevel::Medium, pb::RiskLevel::High, pb::RiskLevel::Critical]
                [(h >> 12) as usize % 4] as i32,
            lead_user_id: format!("user-dsl-{}", h % 500),
            checklist,
            ..Default::default()
        };
        events.push(self.envelope(stream.clone(), ev::CASE_OPENED, &school, at, opened.encode_to_vec()));
        let done = pb::CaseActionRecorded {
            case_id: case_id.clone(),
            school_id: school.clone(),
            action_key: "record-concern".into(),
            status: pb::ActionStatus::Done as i32,
            ..Default::default()
        };
        events.push(self.envelope(stream.clone(), ev::CASE_ACTION_RECORDED, &school, at + 600, done.encode_to_vec()));
        if (h >> 20).is_multiple_of(10) {
            let referral_id = format!("{case_id}-r1");
            let agency =
                if (h >> 24).is_multiple_of(2) { pb::ReferralAgency::Lado } else { pb::ReferralAgency::Police101 };
            let made = pb::ReferralMade {
                case_id: case_id.clone(),
                school_id: school.clone(),
                referral_id: referral_id.clone(),
                agency: agency as i32,
                reference_number: format!("REF-{index:06}"),
                ..Default::default()
            };
            events.push(self.envelope(stream.clone(), ev::REFERRAL_MADE, &school, at + 3_600, made.encode_to_vec()));
            if (h >> 28).is_multiple_of(2) {
                let outcome = pb::ReferralOutcomeRecorded {
                    case_id: case_id.clone(),
                    school_id: school.clone(),
                    referral_id,
                    outcome: pb::ReferralOutcome::NoFurtherAction as i32,
                    ..Default::default()
                };
                events.push(self.envelope(
                    stream.clone(),
                    ev::REFERRAL_OUTCOME_RECORDED,
                    &school,
                    at + 5 * DAY_SECS,
                    outcome.encode_to_vec(),
                ));
            }
        }
        if (h >> 32).is_multiple_of(2) {
            let closed = pb::CaseClosed { case_id, school_id: school.clone(), ..Default::default() };
            events.push(self.envelope(stream, ev::CASE_CLOSED, &school, at + 20 * DAY_SECS, closed.encode_to_vec()));
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Times `samples` runs of `query`, which returns a figure from its answer.
fn time(name: String, samples: u64, mut query: impl FnMut(u64) -> u64) -> QueryReport {
    let mut latencies = histogram();
    let mut cpu = histogram();
    let mut answer = 0;
    for sample in 0..samples.max(1) {
        let cpu_before = thread_cpu_ns();
        let started = Instant::now();
        answer = std::hint::black_box(query(sample));
        latencies.saturating_record(started.elapsed().as_micros() as u64);
        if let (Some(before), Some(after)) = (cpu_before, thread_cpu_ns()) {
            cpu.saturating_record(after.saturating_sub(before) / 1_000);
        }
    }
    QueryReport {
        query: name,
        samples: samples.max(1),
        p50_us: latencies.value_at_quantile(0.5),
        p99_us: latencies.value_at_quantile(0.99),
        max_us: latencies.max(),
        cpu_p50_us: cpu.value_at_quantile(0.5),
        cpu_p99_us: cpu.value_at_quantile(0.99),
        answer,
    }
}

fn breaches_in(response: &pb::GetTrustDashboardResponse) -> u64 {
    response.breaches_by_school.iter().map(|row| row.blocked + row.flagged + row.allowed).sum()
}

fn queries(view: &ReportView, args: &QueryArgs) -> Vec<QueryReport> {
    let schools: Vec<String> = (0..args.schools.max(1)).map(school_id).collect();
    let mut reports = Vec::new();
    for days in [7, 28, 92] {
        let from = END - days * DAY_SECS;
        reports.push(time(format!("dashboard trust {days}d"), args.samples, |_| {
            view.read(|state, _| breaches_in(&dashboard(state, None, from, END, END).response))
        }));
        reports.push(time(format!("dashboard school {days}d"), args.samples, |sample| {
            let scope = std::slice::from_ref(&schools[sample as usize % schools.len()]);
            view.read(|state, _| breaches_in(&dashboard(state, Some(scope), from, END, END).response))
        }));
    }
    for weeks in [8, 26, 52] {
        let query = |categories: Vec<i32>| TrendQuery {
            metric: pb::TrendMetric::Breaches as i32,
            categories,
            until: END - 1,
            weeks,
            ..Default::default()
        };
        let all = query(Vec::new());
        reports.push(time(format!("trends trust {weeks}w"), args.samples, |_| {
            view.read(|state, _| trends(state, None, &all).trust.iter().map(|week| week.count).sum())
        }));
        reports.push(time(format!("trends school {weeks}w"), args.samples, |sample| {
            let scope = std::slice::from_ref(&schools[sample as usize % schools.len()]);
            view.read(|state, _| trends(state, Some(scope), &all).trust.iter().map(|week| week.count).sum())
        }));
        let self_harm = query(vec![pb::BreachCategory::SelfHarm as i32]);
        reports.push(time(format!("trends trust self-harm {weeks}w"), args.samples, |_| {
            view.read(|state, _| trends(state, None, &self_harm).outliers.len() as u64)
        }));
    }
    let cases =
        TrendQuery { metric: pb::TrendMetric::CasesOpened as i32, until: END - 1, weeks: 26, ..Default::default() };
    reports.push(time("trends trust cases opened 26w".into(), args.samples, |_| {
        view.read(|state, _| trends(state, None, &cases).trust.iter().map(|week| week.count).sum())
    }));
    reports
}

pub async fn query(args: QueryArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.schools > 0, "--schools must be at least 1");
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    anyhow::ensure!(args.days > 0, "--days must be at least 1");
    let mut projection = ReportingProjection::new();
    let view = projection.view();
    let mut generator = Generator::new(&args);
    let mut applying = Duration::ZERO;
    let mut applying_cpu_ns = 0u64;
    loop {
        let events = generator.batch(args.batch);
        let Some(last) = events.last() else { break };
        let checkpoint = Position(last.position + 1);
        let cpu_before = thread_cpu_ns();
        let started = Instant::now();
        projection.apply(Batch { events: &events, checkpoint, parked: None }).await?;
        applying += started.elapsed();
        if let (Some(before), Some(after)) = (cpu_before, thread_cpu_ns()) {
            applying_cpu_ns += after.saturating_sub(before);
        }
    }
    let applying_cpu = applying_cpu_ns as f64 / 1e9;
    let events = generator.position;
    let everything = END - i64::try_from(args.days + 1).unwrap_or(366) * DAY_SECS;
    let (breaches_counted, open_cases) = view.read(|state, _| {
        let all = dashboard(state, None, everything, END + DAY_SECS, END).response;
        (breaches_in(&all), all.open_cases.iter().map(|row| u64::from(row.count)).sum())
    });
    let queries = queries(&view, &args);
    let report = Report {
        bench: "query",
        schools: args.schools,
        breaches: args.breaches,
        cases: args.cases,
        events,
        rebuild_seconds: applying.as_secs_f64(),
        rebuild_events_per_second: events as f64 / applying.as_secs_f64().max(1e-9),
        rebuild_cpu_seconds: applying_cpu,
        rebuild_events_per_cpu_second: events as f64 / applying_cpu.max(1e-9),
        breaches_counted,
        open_cases,
        peak_rss_mib: crate::bench_ingest::peak_rss_mib(),
        queries,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "rebuild: {} events ({} breaches, {} cases, {} schools) in {:.2} s: {:.0} events/s \
             ({:.2} s of CPU: {:.0} events per CPU-second); peak RSS {:.0} MiB",
            report.events,
            report.breaches,
            report.cases,
            report.schools,
            report.rebuild_seconds,
            report.rebuild_events_per_second,
            report.rebuild_cpu_seconds,
            report.rebuild_events_per_cpu_second,
            report.peak_rss_mib.unwrap_or(0.0)
        );
        for query in &report.queries {
            println!(
                "  {:<34} p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  (CPU p50 {:>7.2} ms, p99 {:>7.2} ms; {} samples)",
                query.query,
                query.p50_us as f64 / 1e3,
                query.p99_us as f64 / 1e3,
                query.max_us as f64 / 1e3,
                query.cpu_p50_us as f64 / 1e3,
                query.cpu_p99_us as f64 / 1e3,
                query.samples
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
