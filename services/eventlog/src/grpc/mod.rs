//! `haven.v1.EventLog` over gRPC: parse and check the request, call an [`EventLog`], map the
//! answer. Only this module knows tonic; conversions live in `haven_eventlog_client::status`
//! so the client and the server cannot drift apart.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use haven_eventlog_client::status::{batch_to_proto, expected_from_proto, outcome_to_proto, to_status};
use haven_eventlog_client::{EventLog, LogError, ReadStream, StreamAppend};
use haven_kernel::{Position, StreamId, Version};
use haven_proto::v1 as pb;
use haven_proto::v1::event_log_server::{EventLog as EventLogRpc, EventLogServer};
use tonic::{Request, Response, Status};

/// Largest message the server accepts or sends (a batch of large events, a page of them).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// The gRPC face of any [`EventLog`].
#[derive(Clone)]
pub struct EventLogService {
    log: Arc<dyn EventLog>,
}

impl std::fmt::Debug for EventLogService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLogService").finish_non_exhaustive()
    }
}

impl EventLogService {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        EventLogService { log }
    }

    /// The tonic service, with the message size limits set.
    pub fn into_server(self) -> EventLogServer<Self> {
        EventLogServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

fn status(error: LogError) -> Status {
    to_status(&error)
}

fn stream_id(raw: &str, field: &str) -> Result<StreamId, LogError> {
    StreamId::parse(raw).map_err(|e| LogError::invalid(field, e.to_string()))
}

/// A stream append from its protobuf form (raft commands).
pub(crate) fn stream_append_from_proto(request: pb::AppendRequest) -> Result<StreamAppend, LogError> {
    stream_append(request, "")
}

/// A batch's appends, each error naming its index (`appends[2].stream_id`).
pub(crate) fn batch_from_request(request: pb::AppendBatchRequest) -> Result<Vec<StreamAppend>, LogError> {
    request
        .appends
        .into_iter()
        .enumerate()
        .map(|(i, append)| stream_append(append, &format!("appends[{i}].")))
        .collect()
}

fn stream_append(request: pb::AppendRequest, prefix: &str) -> Result<StreamAppend, LogError> {
    Ok(StreamAppend {
        stream_id: stream_id(&request.stream_id, &format!("{prefix}stream_id"))?,
        expected: expected_from_proto(request.expected.as_ref(), &format!("{prefix}expected"))?,
        events: request.events,
    })
}

/// Waits for a read index unless the caller asked for a local read.
async fn before_read(log: &dyn EventLog, consistency: i32) -> Result<(), LogError> {
    match pb::ReadConsistency::try_from(consistency) {
        Ok(pb::ReadConsistency::Local) => Ok(()),
        Ok(pb::ReadConsistency::Linearizable | pb::ReadConsistency::Unspecified) => log.read_barrier().await,
        Err(_) => Err(LogError::invalid("consistency", format!("{consistency} is not a read consistency"))),
    }
}

#[tonic::async_trait]
impl EventLogRpc for EventLogService {
    async fn append(&self, request: Request<pb::AppendRequest>) -> Result<Response<pb::AppendResponse>, Status> {
        let append = stream_append(request.into_inner(), "").map_err(status)?;
        let outcome = self.log.append(&append.stream_id, append.expected, append.events).await.map_err(status)?;
        Ok(Response::new(pb::AppendResponse { result: Some(outcome_to_proto(&outcome)) }))
    }

    async fn append_batch(
        &self,
        request: Request<pb::AppendBatchRequest>,
    ) -> Result<Response<pb::AppendBatchResponse>, Status> {
        let appends = batch_from_request(request.into_inner()).map_err(status)?;
        let outcomes = self.log.append_batch(appends).await.map_err(status)?;
        Ok(Response::new(batch_to_proto(&outcomes)))
    }

    async fn read_stream(
        &self,
        request: Request<pb::ReadStreamRequest>,
    ) -> Result<Response<pb::ReadStreamResponse>, Status> {
        let request = request.into_inner();
        let backwards = match pb::Direction::try_from(request.direction) {
            Ok(pb::Direction::Forwards) | Ok(pb::Direction::Unspecified) => false,
            Ok(pb::Direction::Backwards) => true,
            Err(_) => {
                return Err(status(LogError::invalid(
                    "direction",
                    format!("{} is not a direction", request.direction),
                )));
            }
        };
        let read = ReadStream {
            stream_id: stream_id(&request.stream_id, "stream_id").map_err(status)?,
            from_version: Version(request.from_version),
            from_end: request.from_end,
            backwards,
            limit: request.limit,
        };
        before_read(self.log.as_ref(), request.consistency).await.map_err(status)?;
        let slice = self.log.read_stream(read).await.map_err(status)?;
        Ok(Response::new(pb::ReadStreamResponse {
            events: slice.events,
            stream_exists: slice.last_version.is_some(),
            last_version: slice.last_version.map_or(0, |v| v.0),
            end_of_stream: slice.end_of_stream,
        }))
    }

    async fn read_all(&self, request: Request<pb::ReadAllRequest>) -> Result<Response<pb::ReadAllResponse>, Status> {
        let request = request.into_inner();
        before_read(self.log.as_ref(), request.consistency).await.map_err(status)?;
        let filter = request.filter.unwrap_or_default();
        let slice = self.log.read_all(Position(request.from_position), request.limit, &filter).await.map_err(status)?;
        Ok(Response::new(pb::ReadAllResponse {
            events: slice.events,
            next_position: slice.next_position.0,
            end_of_log: slice.end_of_log,
        }))
    }

    type SubscribeStream = Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let request = request.into_inner();
        let subscription = self
            .log
            .subscribe(Position(request.from_position), request.filter.unwrap_or_default())
            .await
            .map_err(status)?;
        let responses = subscription.map(|item| {
            item.map(|batch| pb::SubscribeResponse {
                events: batch.events,
                checkpoint: batch.checkpoint.0,
                caught_up: batch.caught_up,
            })
            .map_err(status)
        });
        Ok(Response::new(Box::pin(responses)))
    }

    async fn get_head(&self, request: Request<pb::GetHeadRequest>) -> Result<Response<pb::GetHeadResponse>, Status> {
        before_read(self.log.as_ref(), request.into_inner().consistency).await.map_err(status)?;
        let head = self.log.head().await.map_err(status)?;
        Ok(Response::new(pb::GetHeadResponse {
            next_position: head.next_position.0,
            head_hash: head.head_hash.to_vec(),
        }))
    }
}
