//! The connection to NATS and the two JetStream streams Haven uses.
//!
//! - `HAVEN_EVENTS` (`haven.events.>`): domain events from the relay. Limits retention, file
//!   storage, JetStream's default sync (fsync about every two minutes): NATS is not the record
//!   here — the log is, and consumers refill any gap from it (ADR 0009).
//! - `HAVEN_INGEST` (`haven.ingest.>`): the ingest buffer, a work queue. Here NATS *is* the
//!   only copy until the ingest service appends the lines to the log, so operators who cannot
//!   lose a buffered batch on power failure run the server with `sync_interval: always`
//!   (docs/operations/nats.md).

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::BusError;
use crate::subject::{EVENTS_WILDCARD, INGEST_WILDCARD};

/// The domain-event stream.
pub const EVENTS_STREAM: &str = "HAVEN_EVENTS";
/// The ingest work-queue stream.
pub const INGEST_STREAM: &str = "HAVEN_INGEST";
/// JetStream drops a message whose `Nats-Msg-Id` it stored within this window.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Domain events are kept this long on the bus; older ones are read from the log.
pub const EVENTS_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Largest ingest batch (a message), in bytes: well under NATS's default 1 MiB payload limit.
pub const MAX_INGEST_BATCH_BYTES: usize = 512 * 1024;

/// Publishes awaiting their acknowledgement on one connection, at most. A publish beyond it
/// waits for a permit that only an acknowledgement *being awaited* returns, so the relay keeps
/// its own window at or below this (it would otherwise wait on itself).
pub const MAX_ACKS_IN_FLIGHT: usize = 16_384;

/// A NATS server URL (`nats://host:port`, or `tls://` for TLS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsUrl(String);

impl NatsUrl {
    pub fn parse(raw: &str) -> Result<Self, BusError> {
        let rest = ["nats://", "tls://"]
            .iter()
            .find_map(|scheme| raw.strip_prefix(scheme))
            .ok_or_else(|| BusError::invalid("nats_url", format!("{raw:?} must start with nats:// or tls://")))?;
        if rest.is_empty() || rest.contains(['/', ' ', '?']) {
            return Err(BusError::invalid(
                "nats_url",
                format!("{raw:?} must be scheme://host[:port] and nothing more"),
            ));
        }
        raw.parse::<async_nats::ServerAddr>().map_err(|error| BusError::invalid("nats_url", error.to_string()))?;
        Ok(NatsUrl(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A connection to NATS with its JetStream context. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Nats {
    pub(crate) client: async_nats::Client,
    pub(crate) jetstream: jetstream::Context,
}

impl Nats {
    /// Connects; later disconnects are retried by the client in the background (at most one
    /// second apart), and calls made meanwhile fail with [`BusError::Nats`].
    pub async fn connect(url: &NatsUrl) -> Result<Self, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name("haven")
            .connection_timeout(Duration::from_secs(5))
            .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 100).min(1_000)))
            .connect(url.as_str())
            .await
            .map_err(|error| BusError::nats("connect", error))?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(5))
            .max_ack_inflight(MAX_ACKS_IN_FLIGHT)
            .build(client.clone());
        Ok(Nats { client, jetstream })
    }

    /// Creates `HAVEN_EVENTS` if it does not exist (idempotent; safe from many processes).
    pub async fn ensure_events_stream(&self) -> Result<(), BusError> {
        self.jetstream
            .get_or_create_stream(stream::Config {
                name: EVENTS_STREAM.into(),
                subjects: vec![EVENTS_WILDCARD.into()],
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                discard: stream::DiscardPolicy::Old,
                max_age: EVENTS_MAX_AGE,
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            })
            .await
            .map_err(|error| BusError::nats("create stream HAVEN_EVENTS", error))?;
        Ok(())
    }

    /// Creates `HAVEN_INGEST` if it does not exist: a work queue (a message is gone once a
    /// consumer acknowledges it).
    pub async fn ensure_ingest_stream(&self) -> Result<(), BusError> {
        self.jetstream
            .get_or_create_stream(stream::Config {
                name: INGEST_STREAM.into(),
                subjects: vec![INGEST_WILDCARD.into()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                max_message_size: MAX_INGEST_BATCH_BYTES as i32 + 4096,
                ..Default::default()
            })
            .await
            .map_err(|error| BusError::nats("create stream HAVEN_INGEST", error))?;
        Ok(())
    }

    /// Opens an existing stream.
    pub(crate) async fn stream(&self, name: &'static str) -> Result<stream::Stream, BusError> {
        self.jetstream.get_stream(name).await.map_err(|error| BusError::nats("open stream", error))
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_naming_the_key() {
        assert!(NatsUrl::parse("nats://127.0.0.1:4222").is_ok());
        assert!(NatsUrl::parse("tls://nats.trust.example:4222").is_ok());
        for bad in ["", "127.0.0.1:4222", "http://x:1", "nats://", "nats://x:1/path"] {
            let error = NatsUrl::parse(bad).unwrap_err();
            assert!(matches!(error, BusError::Invalid { field: "nats_url", .. }), "{bad}: {error}");
        }
    }
}
