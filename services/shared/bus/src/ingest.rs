//! The ingest buffer: edge collectors publish raw filter lines, batched, to
//! `haven.ingest.<school>.<format>` (stream `HAVEN_INGEST`, a work queue) when the ingest
//! service is down or far away; the ingest service takes batches off it and acknowledges each
//! once its lines are appended to the log (the ingest issue wires that end).
//!
//! Unlike domain events, a buffered batch exists nowhere else until it is acknowledged, so the
//! server's fsync setting decides what a power cut can lose (docs/operations/nats.md). Lines go
//! many to a message so that `sync_interval: always` (an fsync per message) stays fast.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use futures_util::StreamExt;
use haven_kernel::SchoolId;

use crate::nats::{INGEST_STREAM, MAX_INGEST_BATCH_BYTES};
use crate::subject::ingest_subject;
use crate::{BusError, Nats};

const HEADER_SCHOOL: &str = "Haven-School";
const HEADER_FORMAT: &str = "Haven-Format";
/// Most lines in one batch.
pub const MAX_INGEST_BATCH_LINES: usize = 10_000;

/// Publishing to and consuming from the ingest buffer.
#[derive(Clone, Debug)]
pub struct IngestBuffer {
    nats: Nats,
}

/// A batch taken off the buffer; acknowledge it once its lines are safely in the log.
#[derive(Debug)]
pub struct IngestBatch {
    pub school_id: SchoolId,
    pub format: String,
    pub lines: Vec<String>,
    message: async_nats::jetstream::Message,
}

/// A durable consumer of the buffer (several processes may share one: a work queue).
pub struct IngestConsumer {
    messages: pull::Stream,
}

impl std::fmt::Debug for IngestConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestConsumer").finish_non_exhaustive()
    }
}

impl IngestBuffer {
    pub async fn new(nats: Nats) -> Result<Self, BusError> {
        nats.ensure_ingest_stream().await?;
        Ok(IngestBuffer { nats })
    }

    /// Publishes one batch of lines. `batch_id` (unique per batch, chosen by the collector)
    /// makes a retried publish a no-op within the duplicate window. Returns the stream sequence.
    pub async fn publish(
        &self,
        school_id: &SchoolId,
        format: &str,
        batch_id: &str,
        lines: &[String],
    ) -> Result<u64, BusError> {
        check_format(format)?;
        if batch_id.is_empty() || batch_id.len() > 128 || !batch_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(BusError::invalid("batch_id", "must be 1 to 128 printable ASCII characters"));
        }
        if lines.is_empty() || lines.len() > MAX_INGEST_BATCH_LINES {
            return Err(BusError::invalid("lines", format!("a batch holds 1 to {MAX_INGEST_BATCH_LINES} lines")));
        }
        if let Some(at) = lines.iter().position(|line| line.contains('\n')) {
            return Err(BusError::invalid("lines", format!("line {at} contains a newline")));
        }
        let payload = lines.join("\n");
        if payload.len() > MAX_INGEST_BATCH_BYTES {
            return Err(BusError::invalid("lines", format!("a batch holds at most {MAX_INGEST_BATCH_BYTES} bytes")));
        }
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_SCHOOL, school_id.as_str());
        headers.insert(HEADER_FORMAT, format);
        let publish = PublishMessage::build().payload(Bytes::from(payload)).headers(headers).message_id(batch_id);
        let ack = self
            .nats
            .jetstream
            .send_publish(ingest_subject(school_id.as_str(), format), publish)
            .await
            .map_err(|error| BusError::nats("publish ingest batch", error))?
            .await
            .map_err(|error| BusError::nats("publish ingest batch", error))?;
        Ok(ack.sequence)
    }

    /// A durable consumer named `name` (shared by every ingest process using the same name).
    pub async fn consumer(&self, name: &str) -> Result<IngestConsumer, BusError> {
        if name.is_empty()
            || name.len() > 64
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(BusError::invalid("consumer name", "must be 1 to 64 of A-Z, a-z, 0-9, - and _"));
        }
        let stream = self.nats.stream(INGEST_STREAM).await?;
        let consumer = stream
            .get_or_create_consumer(
                name,
                pull::Config {
                    durable_name: Some(name.to_owned()),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(60),
                    ..Default::default()
                },
            )
            .await
            .map_err(|error| BusError::nats("create ingest consumer", error))?;
        let messages = consumer.messages().await.map_err(|error| BusError::nats("consume ingest", error))?;
        Ok(IngestConsumer { messages })
    }
}

impl IngestConsumer {
    /// The next batch. A message without valid school and format headers is terminated
    /// (never redelivered) and reported as [`BusError::Malformed`].
    pub async fn next(&mut self) -> Result<IngestBatch, BusError> {
        let message = self
            .messages
            .next()
            .await
            .ok_or(BusError::SourceEnded)?
            .map_err(|error| BusError::nats("receive ingest batch", error))?;
        let sequence = message.info().map(|info| info.stream_sequence).unwrap_or(0);
        match parse_batch(&message) {
            Ok((school_id, format, lines)) => Ok(IngestBatch { school_id, format, lines, message }),
            Err(reason) => {
                let _ = message.ack_with(async_nats::jetstream::AckKind::Term).await;
                Err(BusError::Malformed { sequence, reason })
            }
        }
    }
}

impl IngestBatch {
    /// The lines are in the log: the batch leaves the buffer.
    pub async fn ack(self) -> Result<(), BusError> {
        self.message.double_ack().await.map_err(|error| BusError::nats("acknowledge ingest batch", error))
    }

    /// Not now: the batch is delivered again after `delay`.
    pub async fn retry_later(self, delay: Duration) -> Result<(), BusError> {
        self.message
            .ack_with(async_nats::jetstream::AckKind::Nak(Some(delay)))
            .await
            .map_err(|error| BusError::nats("return ingest batch", error))
    }
}

fn check_format(format: &str) -> Result<(), BusError> {
    let ok = (1..=32).contains(&format.len())
        && format.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(BusError::invalid("format", format!("{format:?} must be 1 to 32 of a-z, 0-9, _ and -")))
    }
}

fn parse_batch(message: &async_nats::jetstream::Message) -> Result<(SchoolId, String, Vec<String>), String> {
    let headers = message.headers.as_ref().ok_or("no headers")?;
    let school = headers.get(HEADER_SCHOOL).ok_or("no Haven-School header")?;
    let school_id = SchoolId::parse(school.as_str()).map_err(|error| format!("Haven-School: {error}"))?;
    let format = headers.get(HEADER_FORMAT).ok_or("no Haven-Format header")?.as_str().to_owned();
    check_format(&format).map_err(|error| error.to_string())?;
    let text = std::str::from_utf8(&message.payload).map_err(|_| "lines are not UTF-8")?;
    Ok((school_id, format, text.split('\n').map(str::to_owned).collect()))
}
