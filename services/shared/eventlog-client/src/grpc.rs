//! [`EventLog`] over gRPC: the client a distributed service uses to reach a log node.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use haven_kernel::{ExpectedVersion, Position, StreamId, Version};
use haven_proto::v1 as pb;
use haven_proto::v1::event_log_client::EventLogClient;
use haven_runtime::grpc::InjectTrace;
use tonic::transport::{Channel, Endpoint};

use crate::status::{append_to_proto, batch_from_proto, from_status, outcome_from_proto};
use crate::{
    AllSlice, AppendOutcome, BatchItemOutcome, EventLog, Head, LogError, ReadStream, StreamAppend, StreamSlice,
    Subscription, SubscriptionBatch,
};

/// Messages up to this size are accepted from the log (a page of large events).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A gRPC client of `haven.v1.EventLog`. Cheap to clone; one HTTP/2 connection underneath.
/// Every call carries the calling span's trace context, so the log's append is part of the
/// request's trace (ADR 0021).
#[derive(Clone, Debug)]
pub struct GrpcEventLog {
    client: EventLogClient<InjectTrace<Channel>>,
    request_timeout: Duration,
    consistency: pb::ReadConsistency,
}

impl GrpcEventLog {
    /// Connects lazily to `endpoint` (e.g. `http://127.0.0.1:7070`). Every call has
    /// `request_timeout`; subscriptions are exempt (they are long-lived by design).
    pub fn connect_lazy(endpoint: &str, request_timeout: Duration) -> Result<Self, LogError> {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| LogError::invalid("endpoint", e.to_string()))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .connect_lazy();
        let client = EventLogClient::new(InjectTrace::new(channel))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(GrpcEventLog { client, request_timeout, consistency: pb::ReadConsistency::Linearizable })
    }

    /// How fresh reads must be (`ReadStream`, `ReadAll`, `GetHead`); linearizable unless
    /// set. [`pb::ReadConsistency::Local`] reads whatever the node holds: no round trip to
    /// the leader, possibly stale. Subscriptions are unaffected.
    pub fn with_read_consistency(mut self, consistency: pb::ReadConsistency) -> Self {
        self.consistency = consistency;
        self
    }

    fn client(&self) -> EventLogClient<InjectTrace<Channel>> {
        self.client.clone()
    }

    /// Wraps a unary request with the deadline (sent as `grpc-timeout`, enforced by both ends).
    fn unary<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = haven_runtime::internal::request(message);
        request.set_timeout(self.request_timeout);
        request
    }
}

#[async_trait]
impl EventLog for GrpcEventLog {
    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<pb::ProposedEvent>,
    ) -> Result<AppendOutcome, LogError> {
        let response = self
            .client()
            .append(self.unary(append_to_proto(StreamAppend { stream_id: stream_id.clone(), expected, events })))
            .await
            .map_err(|status| from_status(&status))?
            .into_inner();
        let result = response.result.ok_or_else(|| LogError::Internal("append response without a result".into()))?;
        Ok(outcome_from_proto(&result))
    }

    async fn append_batch(&self, appends: Vec<StreamAppend>) -> Result<Vec<BatchItemOutcome>, LogError> {
        let request = pb::AppendBatchRequest { appends: appends.into_iter().map(append_to_proto).collect() };
        let response =
            self.client().append_batch(self.unary(request)).await.map_err(|status| from_status(&status))?.into_inner();
        batch_from_proto(&response)
    }

    async fn read_stream(&self, read: ReadStream) -> Result<StreamSlice, LogError> {
        let direction = if read.backwards { pb::Direction::Backwards } else { pb::Direction::Forwards };
        let request = pb::ReadStreamRequest {
            stream_id: read.stream_id.to_string(),
            from_version: read.from_version.0,
            from_end: read.from_end,
            direction: direction as i32,
            limit: read.limit,
            consistency: self.consistency as i32,
        };
        let response = self.client().read_stream(self.unary(request)).await.map_err(|s| from_status(&s))?.into_inner();
        Ok(StreamSlice {
            events: response.events,
            last_version: response.stream_exists.then_some(Version(response.last_version)),
            end_of_stream: response.end_of_stream,
        })
    }

    async fn read_all(&self, from: Position, limit: u32, filter: &pb::EventFilter) -> Result<AllSlice, LogError> {
        let request = pb::ReadAllRequest {
            from_position: from.0,
            limit,
            filter: Some(filter.clone()),
            consistency: self.consistency as i32,
        };
        let response = self.client().read_all(self.unary(request)).await.map_err(|s| from_status(&s))?.into_inner();
        Ok(AllSlice {
            events: response.events,
            next_position: Position(response.next_position),
            end_of_log: response.end_of_log,
        })
    }

    async fn subscribe(&self, from: Position, filter: pb::EventFilter) -> Result<Subscription, LogError> {
        let request = pb::SubscribeRequest { from_position: from.0, filter: Some(filter) };
        let stream = self
            .client()
            .subscribe(haven_runtime::internal::request(request))
            .await
            .map_err(|s| from_status(&s))?
            .into_inner();
        Ok(Box::pin(stream.map(|item| {
            item.map(|message| SubscriptionBatch {
                events: message.events,
                checkpoint: Position(message.checkpoint),
                caught_up: message.caught_up,
            })
            .map_err(|status| from_status(&status))
        })))
    }

    async fn head(&self) -> Result<Head, LogError> {
        self.head_with(self.consistency).await
    }

    async fn read_barrier(&self) -> Result<(), LogError> {
        self.head_with(pb::ReadConsistency::Linearizable).await.map(|_| ())
    }
}

impl GrpcEventLog {
    async fn head_with(&self, consistency: pb::ReadConsistency) -> Result<Head, LogError> {
        let request = pb::GetHeadRequest { consistency: consistency as i32 };
        let response = self.client().get_head(self.unary(request)).await.map_err(|s| from_status(&s))?.into_inner();
        let head_hash: [u8; 32] = response
            .head_hash
            .as_slice()
            .try_into()
            .map_err(|_| LogError::Internal("head hash is not 32 bytes".into()))?;
        Ok(Head { next_position: Position(response.next_position), head_hash })
    }
}
